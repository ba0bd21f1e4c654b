//! REST routes of interactions.

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
use crate::core::cursor::{Cursor, page_limit};
use crate::core::error::AppResult;

use super::Stats;

const PAGE_MAX: u32 = 200;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct StatsView {
    pub profile_views: u64,
    /// Connected calls made, and their seconds.
    pub calls: u64,
    pub call_seconds: u64,
    /// Text messages sent.
    pub messages: u64,
    /// Coins spent on gifts.
    pub gift_coins: u64,
    pub favorite: bool,
}

impl From<&Stats> for StatsView {
    fn from(s: &Stats) -> Self {
        StatsView {
            profile_views: s.profile_views,
            calls: s.calls,
            call_seconds: s.call_seconds,
            messages: s.messages,
            gift_coins: s.gift_coins,
            favorite: s.favorite,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct InteractionView {
    pub with_user_id: String,
    /// What you did toward them.
    pub mine: StatsView,
    /// What they did toward you.
    pub theirs: StatsView,
    /// Absent when you never interacted.
    pub last_interaction_at: Option<OffsetDateTime>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct InteractionPage {
    /// Most recent first.
    pub items: Vec<InteractionView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

pub struct InteractionApi;

#[OpenApi(tag = "ApiTags::Social")]
impl InteractionApi {
    /// Your interactions with one person (`with`), or with everyone, most recent first:
    /// profile views, connected calls and seconds, messages, gift coins and favorite state,
    /// both ways. Counts follow the event log within moments. Any role.
    #[oai(
        path = "/v1/me/interactions",
        method = "get",
        operation_id = "me_interactions"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        with: Query<Option<String>>,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<InteractionPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let before = Cursor::time(before.0)?;
        let (rows, full) = super::page(&ctx, &who.user_id, with.0, before, limit).await?;
        let next_before = full
            .then(|| rows.last())
            .flatten()
            .map(|(other, mine, _)| Cursor::Time(mine.last_at_ms, other.clone()).encode());
        Ok(Json(InteractionPage {
            items: rows
                .iter()
                .map(|(other, mine, theirs)| InteractionView {
                    with_user_id: other.clone(),
                    mine: mine.into(),
                    theirs: theirs.into(),
                    last_interaction_at: (mine.last_at_ms > 0)
                        .then(|| to_datetime(mine.last_at_ms)),
                })
                .collect(),
            next_before,
        }))
    }
}
