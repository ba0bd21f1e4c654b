//! REST routes of the blocklist.

use crate::api::body::JsonBody;
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

use super::{Block, BlockReason, Penalty};

const PAGE_MAX: u32 = 200;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BlockRequest {
    pub user_id: String,
    pub reason: BlockReason,
    /// Up to 500 characters, for moderators.
    pub comment: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BlockView {
    pub user_id: String,
    pub reason: BlockReason,
    pub comment: Option<String>,
    pub blocked_at: OffsetDateTime,
}

impl From<Block> for BlockView {
    fn from(b: Block) -> Self {
        BlockView {
            user_id: b.blocked_id,
            reason: b.reason,
            comment: b.comment,
            blocked_at: to_datetime(b.at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BlockPage {
    pub items: Vec<BlockView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PenaltyView {
    pub id: String,
    pub user_id: String,
    pub reason: BlockReason,
    pub by_user_id: String,
    pub at: OffsetDateTime,
    /// How much the blocker's report weighs: 1, plus 1 for an established account, plus 1 for
    /// one that has bought coins.
    pub weight: u32,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PenaltyList {
    pub items: Vec<PenaltyView>,
}

impl From<Penalty> for PenaltyView {
    fn from(p: Penalty) -> Self {
        PenaltyView {
            id: p.id,
            user_id: p.user_id,
            reason: p.reason,
            by_user_id: p.by_user_id,
            at: to_datetime(p.at_ms),
            weight: p.weight,
        }
    }
}

pub struct BlocklistApi;

#[OpenApi(tag = "ApiTags::Social")]
impl BlocklistApi {
    /// Block someone. At once: a call between you ends (`blocked`), neither can message or
    /// call the other (`blocked`), and neither is matched with or shown to the other. Blocking
    /// again replaces the reason. Any role.
    #[oai(path = "/v1/blocks", method = "post", operation_id = "blocks_create")]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<BlockRequest>,
    ) -> AppResult<Json<BlockView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let b = body.0;
        let block = super::block(&ctx, &who.user_id, &b.user_id, b.reason, b.comment).await?;
        Ok(Json(block.into()))
    }

    /// Lift a block (`not_found` if there was none). Any role.
    #[oai(
        path = "/v1/blocks/:user_id",
        method = "delete",
        operation_id = "blocks_delete"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::unblock(&ctx, &who.user_id, &user_id.0).await?;
        Ok(NoContent::Done)
    }

    /// The people you blocked, paged by `after`. Any role.
    #[oai(path = "/v1/blocks", method = "get", operation_id = "blocks_list")]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<BlockPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let items = super::list(&ctx, &who.user_id, after.0, limit).await?;
        let next_after = next_page(&items, limit, |b| Cursor::Id(b.blocked_id.clone()));
        Ok(Json(BlockPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    /// Penalties from blocks (a `nudity` block against a streamer), newest first; one user's
    /// with `userId`. Moderators and admins.
    #[oai(
        path = "/v1/admin/penalties",
        method = "get",
        operation_id = "admin_penalties_list"
    )]
    async fn penalties(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        #[oai(name = "userId")] user_id: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<PenaltyList>> {
        auth.require(&ctx, Access::Staff).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let items = super::penalties(&ctx, user_id.0, limit).await?;
        Ok(Json(PenaltyList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }
}
