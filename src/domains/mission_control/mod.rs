//! mission_control: the admin panel's back end. Every admin action is written to the audit log
//! (and the event log) in the same transaction as the change it made.

pub mod api;
pub mod payouts;
pub mod tables;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};
use crate::core::events::NewEvent;
use crate::core::ids::new_id;
use crate::core::store::{Tx, dec, put};
use crate::domains::user;
use tables::*;

/// Longest ban reason, in characters.
pub const BAN_REASON_CHARS_MAX: usize = 500;

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
pub fn audit_tx(
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
        "admin_action",
        actor,
        json!({"actor": actor, "action": action, "target": target, "detail": detail}),
    ))?;
    Ok(())
}

pub async fn set_role(ctx: &Ctx, actor: &str, user_id: &str, role: Role) -> AppResult<()> {
    if actor == user_id {
        return Err(AppError::conflict("admins cannot change their own role"));
    }
    let (actor, user_id) = (actor.to_owned(), user_id.to_owned());
    ctx.store
        .write(move |tx| {
            let before = user::set_role_tx(tx, &user_id, role)?;
            audit_tx(
                tx,
                &actor,
                "user.role",
                &user_id,
                json!({"from": before.as_str(), "to": role.as_str()}),
            )
        })
        .await
}

pub async fn ban(ctx: &Ctx, actor: &str, user_id: &str, reason: &str) -> AppResult<()> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > BAN_REASON_CHARS_MAX {
        return Err(AppError::validation(format!(
            "reason must be 1–{BAN_REASON_CHARS_MAX} characters"
        )));
    }
    if actor == user_id {
        return Err(AppError::conflict("admins cannot ban themselves"));
    }
    let (actor, user_id, reason) = (actor.to_owned(), user_id.to_owned(), reason.to_owned());
    ctx.store
        .write(move |tx| {
            user::ban_tx(tx, &user_id, &reason, &actor)?;
            audit_tx(tx, &actor, "user.ban", &user_id, json!({"reason": reason}))
        })
        .await
}

pub async fn unban(ctx: &Ctx, actor: &str, user_id: &str) -> AppResult<()> {
    let (actor, user_id) = (actor.to_owned(), user_id.to_owned());
    ctx.store
        .write(move |tx| {
            user::unban_tx(tx, &user_id)?;
            audit_tx(tx, &actor, "user.unban", &user_id, json!({}))
        })
        .await
}

/// Audit records newest first, before the `before` id.
pub async fn audit_page(
    ctx: &Ctx,
    before: Option<String>,
    limit: usize,
) -> AppResult<Vec<AuditRecord>> {
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
