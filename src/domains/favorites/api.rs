//! REST routes of favorites.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;

use super::Listing;

const PAGE_MAX: u32 = 200;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FavoriteView {
    pub user_id: String,
    pub since: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FavoritePage {
    /// Newest first.
    pub items: Vec<FavoriteView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

async fn page(
    ctx: &Ctx,
    listing: Listing,
    user_id: &str,
    before: Option<String>,
    limit: Option<u32>,
) -> AppResult<FavoritePage> {
    let limit = page_limit(limit, 50, PAGE_MAX)?;
    let before = Cursor::time(before)?;
    let rows = super::page(ctx, listing, user_id, before, limit).await?;
    let next_before = next_page(&rows, limit, |(ms, id)| Cursor::Time(*ms, id.clone()));
    Ok(FavoritePage {
        items: rows
            .into_iter()
            .map(|(ms, user_id)| FavoriteView {
                user_id,
                since: to_datetime(ms),
            })
            .collect(),
        next_before,
    })
}

pub struct FavoriteApi;

#[OpenApi(tag = "ApiTags::Social")]
impl FavoriteApi {
    /// Add someone to your favorites (again: no change). When a favorite streamer comes
    /// online you get a `favorite_online` notification. Any role.
    #[oai(
        path = "/v1/favorites/:user_id",
        method = "put",
        operation_id = "favorites_put"
    )]
    async fn put(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::add(&ctx, &who.user_id, &user_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Remove someone from your favorites (not there: no change). Any role.
    #[oai(
        path = "/v1/favorites/:user_id",
        method = "delete",
        operation_id = "favorites_delete"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::remove(&ctx, &who.user_id, &user_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Your favorites, newest first. Any role.
    #[oai(
        path = "/v1/favorites",
        method = "get",
        operation_id = "favorites_list"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<FavoritePage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        Ok(Json(
            page(&ctx, Listing::Favorites, &who.user_id, before.0, limit.0).await?,
        ))
    }

    /// The people who have you among their favorites, newest first. Streamers.
    #[oai(
        path = "/v1/me/followers",
        method = "get",
        operation_id = "me_followers"
    )]
    async fn followers(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<FavoritePage>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        Ok(Json(
            page(&ctx, Listing::Followers, &who.user_id, before.0, limit.0).await?,
        ))
    }
}
