//! `GET /v1/admin/events`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::clock::to_datetime;
use crate::core::cursor::page_limit;
use crate::core::error::AppResult;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct EventView {
    pub seq: u64,
    #[oai(rename = "type")]
    pub kind: String,
    pub at: OffsetDateTime,
    /// The user the event is about.
    pub user_id: Option<String>,
    /// The WebSocket topic it was delivered on.
    pub topic: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `afterSeq` for the next page; absent when the scan reached the end of the log.
    pub next_after_seq: Option<u64>,
    /// The last committed sequence number.
    pub head_seq: u64,
}

/// Default page size.
const PAGE_DEFAULT: u32 = 100;

pub struct EventLogApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl EventLogApi {
    /// Query the event log by type and by a user the events are about or were delivered to, in
    /// sequence order. Admin.
    #[oai(
        path = "/v1/admin/events",
        method = "get",
        operation_id = "admin_events"
    )]
    async fn events(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        #[oai(name = "type")] kind: Query<Option<String>>,
        #[oai(name = "userId")] user_id: Query<Option<String>>,
        #[oai(name = "afterSeq")] after_seq: Query<Option<u64>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<EventPage>> {
        auth.require(&ctx, super::READ_ACCESS).await?;
        let max = ctx.config.events.query_limit_max;
        let limit = page_limit(limit.0, PAGE_DEFAULT.min(max), max)?;
        let after = after_seq.0.unwrap_or(0);
        let (page, head) = super::query(&ctx, kind.0, user_id.0, after, limit as usize).await?;
        // A full page, or a scan that stopped at its bound, continues where it stopped.
        let next_after_seq = (!page.exhausted).then_some(page.scanned_upto);
        Ok(Json(EventPage {
            items: page
                .items
                .into_iter()
                .map(|e| EventView {
                    seq: e.seq,
                    kind: e.kind,
                    at: to_datetime(e.at_ms),
                    user_id: e.subject,
                    topic: e.topic,
                    data: e.data,
                })
                .collect(),
            next_after_seq,
            head_seq: head,
        }))
    }
}
