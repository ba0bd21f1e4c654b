//! `GET /v1/gallery`: the caller's feed.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};

use super::index::Filters;
use super::{Card, PAGE_DEFAULT, PAGE_MAX};

/// One profile in a feed: the public card.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GalleryCard {
    pub user_id: String,
    pub display_name: Option<String>,
    pub age: Option<i32>,
    pub country: Option<String>,
    pub languages: Vec<String>,
    /// The avatar's media id (URLs come with media storage).
    pub avatar_media_id: Option<String>,
    pub online_since: Option<OffsetDateTime>,
    /// In a call now.
    pub busy: bool,
    /// The cohort tags shown to clients.
    pub tags: Vec<String>,
    /// The caller keeps them among their favorites.
    pub following: bool,
}

impl From<Card> for GalleryCard {
    fn from(c: Card) -> Self {
        GalleryCard {
            user_id: c.user_id,
            display_name: c.display_name,
            age: c.age,
            country: c.country,
            languages: c.languages,
            avatar_media_id: c.avatar_media_id,
            online_since: c.online_since_ms.map(to_datetime),
            busy: c.busy,
            tags: c.tags,
            following: c.following,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GalleryPage {
    pub items: Vec<GalleryCard>,
    /// The next page of the same list; absent at its end.
    pub next_cursor: Option<String>,
}

pub struct GalleryApi;

#[OpenApi(tag = "ApiTags::Social")]
impl GalleryApi {
    /// The caller's feed: users see online streamers, online longest first; streamers see
    /// online users, those who can pay for a call first, then the most recently online. Never
    /// the caller, anyone blocked either way, or banned accounts. The first page pins the
    /// list; `cursor` pages through it unchanged (`410 cursor_expired` after
    /// `gallery.cursor_ttl_secs`). `limit` 1–50 (20). Filters: `country` (ISO 3166 alpha-2),
    /// `language` (primary subtag), `minAge`, `maxAge`, `gender`, `tag`. Any role.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/v1/gallery", method = "get", operation_id = "gallery_feed")]
    async fn feed(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
        country: Query<Option<String>>,
        language: Query<Option<String>>,
        #[oai(name = "minAge")] min_age: Query<Option<u64>>,
        #[oai(name = "maxAge")] max_age: Query<Option<u64>>,
        gender: Query<Option<String>>,
        tag: Query<Option<String>>,
    ) -> AppResult<Json<GalleryPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = limit.0.map_or(PAGE_DEFAULT, |l| l as usize);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(AppError::validation(format!("limit must be 1–{PAGE_MAX}")));
        }
        let filters = Filters {
            country: country.0.map(|c| c.to_ascii_uppercase()),
            language: language.0.map(|l| l.to_ascii_lowercase()),
            min_age: min_age.0,
            max_age: max_age.0,
            gender: gender.0,
            tag: tag.0,
        };
        let page = super::feed(&ctx, &who, filters, cursor.0.as_deref(), limit).await?;
        Ok(Json(GalleryPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
