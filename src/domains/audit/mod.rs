//! audit: the audit log. Every admin action (and every automatic one, such as an auto-ban) is
//! recorded here, and on the event log, in the same transaction as the change it made. Every
//! domain that acts for an admin writes through [`record_tx`]; nothing here depends on another
//! domain.

pub mod events;
mod tables;

use serde::{Deserialize, Serialize};

use crate::app::Ctx;
use crate::core::error::AppResult;
use crate::core::events::NewEvent;
use crate::core::ids::new_id;
use crate::core::store::{Tx, dec, put};
use tables::*;

pub use tables::TABLES;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

/// Records an admin action in the current transaction.
pub fn record_tx(
    tx: &Tx,
    actor: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> AppResult<()> {
    let rec = AuditRecord {
        id: new_id(),
        at_ms: tx.now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.clone(),
    };
    put(&mut tx.table(AUDIT_LOG)?, rec.id.as_str(), &rec)?;
    tx.emit(NewEvent::about(
        actor,
        events::AuditEvent::AdminAction {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        },
    ))?;
    Ok(())
}

/// Audit records newest first, before the `before` id.
pub async fn page(ctx: &Ctx, before: Option<String>, limit: usize) -> AppResult<Vec<AuditRecord>> {
    ctx.store
        .read(move |rtx| {
            let t = rtx.open_table(AUDIT_LOG)?;
            let mut out = Vec::new();
            let rows = match &before {
                Some(b) => t.range(..b.as_str())?,
                None => t.range::<&str>(..)?,
            };
            for row in rows.rev().take(limit) {
                out.push(dec(row?.1.value())?);
            }
            Ok(out)
        })
        .await
}
