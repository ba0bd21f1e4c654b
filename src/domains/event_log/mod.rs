//! The event_log domain: the admin's window onto the event log kept by `core::events`.

pub mod api;

use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::error::AppResult;
use crate::core::events::{self, QueryPage};

/// Who may read the event log — every event, private chat text and everyone's balances
/// included: `GET /v1/admin/events` and the WebSocket `admin` topic alike.
pub const READ_ACCESS: Access = Access::Admin;

/// One page of the admin query ([`events::query`]) after `after`, scanning at most the
/// configured `events.query_scan_max` rows, and the last committed sequence number (taken
/// before the page is read).
pub async fn query(
    ctx: &Ctx,
    kind: Option<String>,
    user_id: Option<String>,
    after: u64,
    limit: usize,
) -> AppResult<(QueryPage, u64)> {
    let scan_max = ctx.config.events.query_scan_max as usize;
    let head = ctx.store.head_seq();
    let page = ctx
        .store
        .read(move |rtx| {
            events::query(
                rtx,
                kind.as_deref(),
                user_id.as_deref(),
                after,
                limit,
                scan_max,
            )
        })
        .await?;
    Ok((page, head))
}
