//! mission_control: the admin panel's back end. Every admin action is written to the audit log
//! (and the event log) in the same transaction as the change it made. `moderation` holds the
//! automatic rules fed by blocks and the moderators' queue of cases they open.

pub mod api;
pub mod browser;
pub mod events;
pub mod kyc;
pub mod moderation;
pub mod payouts;
pub mod reports;
pub mod service;
mod tables;
pub use tables::TABLES;

use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};

use crate::domains::audit::record_tx as audit_tx;
use crate::domains::user;

/// Longest ban reason, in characters.
pub const BAN_REASON_CHARS_MAX: usize = 500;

/// Why an admin banned someone or rejected a payout: 1–[`BAN_REASON_CHARS_MAX`] characters.
pub type Reason = crate::core::text::Text<1, BAN_REASON_CHARS_MAX>;

/// What the admin's user view shows: the account, its presence and its cohorts.
pub struct UserOverview {
    pub user: user::model::UserRecord,
    pub presence: user::model::PresenceRecord,
    pub cohorts: Vec<crate::domains::panel::model::Cohort>,
}

pub async fn user_overview(ctx: &Ctx, user_id: &str) -> AppResult<UserOverview> {
    let id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let user =
                user::find_user(rtx, &id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            Ok(UserOverview {
                user,
                presence: user::presence_of(rtx, &id)?,
                cohorts: crate::domains::panel::cohorts_of(rtx, &id)?,
            })
        })
        .await
}

pub async fn set_role(ctx: &Ctx, actor: &str, user_id: &str, role: Role) -> AppResult<()> {
    if actor == user_id {
        return Err(AppError::conflict("admins cannot change their own role"));
    }
    let (actor, user_id) = (actor.to_owned(), user_id.to_owned());
    ctx.store
        .write(move |tx| {
            // A manager collects an agency's commissions on streamers; they are none of them.
            if role == Role::Streamer
                && crate::domains::agency::managed_agency(tx, &user_id)?.is_some()
            {
                return Err(AppError::conflict(
                    "this account manages an agency: name another manager first",
                ));
            }
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
    let reason = Reason::parse("reason", reason)?;
    let reason = reason.as_str();
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

/// The records in `state` of a `(state, id)` index, in id order after the `after` id, at most
/// `limit`: the queue reads of payouts, reports and KYC cases.
fn in_state<T: serde::de::DeserializeOwned>(
    rtx: &redb::ReadTransaction,
    index: redb::TableDefinition<'static, (&'static str, &'static str), ()>,
    records: redb::TableDefinition<'static, &'static str, &'static [u8]>,
    state: &str,
    after: Option<&str>,
    limit: usize,
) -> AppResult<Vec<T>> {
    let (idx, records) = (rtx.open_table(index)?, rtx.open_table(records)?);
    let from = after.unwrap_or_default();
    let mut out = Vec::new();
    for row in idx.range((state, from)..(state, "~"))? {
        if out.len() == limit {
            break;
        }
        let (k, _) = row?;
        let id = k.value().1;
        if id == from {
            continue;
        }
        if let Some(r) = crate::core::store::get::<&str, T>(&records, id)? {
            out.push(r);
        }
    }
    Ok(out)
}
