//! Privacy: account deletion carried out over every domain, and the data export.
//!
//! Deleting is asked for with a fresh sign-in (`user::deletion::request`) and happens after a
//! grace period that signing in again cancels. When it is due, [`erase`] runs one commit over
//! every domain: chat turns the person's messages into tombstones, notifications lose their
//! addresses and what others were told about them, blocks lose their comments, the profile
//! goes, and the user domain removes identities, sessions, devices and sign-in records, leaving
//! a pseudonymous shell. What must be kept stays, by id only: ledger entries, payouts, audit
//! and penalty records. The event log keeps every event, but each one that mentioned the
//! person is rewritten by the domain that owns its kind, field by field (a message's text, a
//! profile's name, a notification's title). `user_erased` tells every consumer that keeps a
//! copy (the replica, ad networks) to erase theirs.
//!
//! The export gathers the person's data from every domain into one JSON archive: records as
//! stored (field names in snake_case, times in unix milliseconds).

pub mod api;

use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::auth::Principal;
use crate::core::error::{AppError, AppResult};
use crate::core::events;
use crate::domains::balance::model::Account;
use crate::domains::{
    audit, balance, blocklist, chat, favorites, media, mission_control, notification, panel,
    profile, user, video,
};

/// Accounts erased in one pass of the sweeper, at most.
const ERASURES_PER_PASS: usize = 16;
/// Rows of one kind an export reads, at most (messages, transfers, calls, …): a bound on the
/// work and memory of one request. An archive that reached it says `truncated`.
pub const EXPORT_ROWS_MAX: usize = 50_000;
/// Exports built at once over everyone; past it the answer is `unavailable` (retry shortly).
const EXPORTS_AT_ONCE: usize = 2;
static EXPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(EXPORTS_AT_ONCE);
/// The page size an export reads with.
const PAGE: usize = 500;
/// How long a failed erasure waits before it is tried again.
const RETRY_FAILED_ERASURE_MS: i64 = 3_600_000;
/// Who the audit log names for erasures the sweeper carries out.
const SWEEPER: &str = "system:privacy";

/// Erases every account whose deletion is due; returns how many.
pub async fn run_due(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let due = ctx
        .store
        .read(move |rtx| user::deletion::due(rtx, now, ERASURES_PER_PASS))
        .await?;
    let mut erased = 0;
    for user_id in due {
        // One account that fails holds up no other: it is tried again an hour later.
        match erase(ctx, &user_id).await {
            Ok(done) => erased += usize::from(done),
            Err(e) => {
                tracing::error!(user = %user_id, error = %e, "erasing an account failed; retrying in an hour");
                user::deletion::postpone(ctx, &user_id, RETRY_FAILED_ERASURE_MS).await?;
            }
        }
    }
    Ok(erased)
}

/// Erases the person, if their deletion is still due when the commit runs (they may have
/// signed in since). Returns whether it did.
pub async fn erase(ctx: &Ctx, user_id: &str) -> AppResult<bool> {
    let uid = user_id.to_owned();
    // Everything that needs a scan is found here, with a read; the single writer only applies
    // it, and looks at the short tails written since.
    let (own_events, seen_upto, chat_plan, notification_plan, user_plan) = ctx
        .store
        .read(move |rtx| {
            let upto = events::head_seq(rtx)?;
            Ok((
                events::of_user(rtx, &uid, 0)?,
                upto,
                chat::plan(rtx, &uid)?,
                notification::plan(rtx, &uid)?,
                user::deletion::plan(rtx, &uid)?,
            ))
        })
        .await?;
    let uid = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            if !user::deletion::still_due_tx(tx, &uid)? {
                return Ok(false);
            }
            let mut own = own_events.clone();
            own.extend(events::of_user_tx(tx, &uid, seen_upto)?);
            chat::erase_tx(tx, &uid, &chat_plan, &own)?;
            notification::erase_tx(tx, &uid, &notification_plan, &own)?;
            blocklist::erase_tx(tx, &uid)?;
            video::roulette::erase_tx(tx, &uid)?;
            panel::erase_tx(tx, &uid)?;
            media::erase_tx(tx, &uid)?;
            mission_control::reports::erase_tx(tx, &uid)?;
            profile::erase_tx(tx, &uid, &own)?;
            user::deletion::erase_tx(tx, &uid, &user_plan, &own)?;
            audit::record_tx(tx, SWEEPER, "user.erase", &uid, json!({}))?;
            Ok(true)
        })
        .await
}

/// An admin deletes an account at once (a request that reached support, a legal order).
pub async fn delete_by_admin(
    ctx: &Ctx,
    admin: &Principal,
    user_id: &str,
    reason: &str,
) -> AppResult<()> {
    let reason = crate::core::text::Text::<1, 500>::parse("reason", reason)?;
    if admin.user_id.as_str() == user_id {
        return Err(AppError::conflict(
            "admins cannot delete their own account here",
        ));
    }
    let (admin_id, uid) = (admin.user_id.to_string(), user_id.to_owned());
    ctx.store
        .write(move |tx| {
            user::deletion::schedule_tx(tx, &uid, tx.now_ms(), "admin")?;
            audit::record_tx(
                tx,
                &admin_id,
                "user.delete",
                &uid,
                json!({"reason": reason.as_str()}),
            )
        })
        .await?;
    erase(ctx, user_id).await?;
    Ok(())
}

/// An admin's copy of someone's export; audited.
pub async fn export_by_admin(ctx: &Ctx, admin: &Principal, user_id: &str) -> AppResult<Value> {
    let archive = export(ctx, user_id).await?;
    let (admin_id, uid) = (admin.user_id.to_string(), user_id.to_owned());
    ctx.store
        .write(move |tx| audit::record_tx(tx, &admin_id, "user.export", &uid, json!({})))
        .await?;
    Ok(archive)
}

fn to_json<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> AppResult<Vec<Value>> {
    items
        .into_iter()
        .map(|i| serde_json::to_value(i).map_err(AppError::internal))
        .collect()
}

/// Everything Duet keeps about the person, as one JSON object.
pub async fn export(ctx: &Ctx, user_id: &str) -> AppResult<Value> {
    let _turn = EXPORTS.try_acquire().map_err(|_| {
        let mut e = AppError::new(
            crate::core::error::Code::Unavailable,
            "other exports are being built; retry shortly",
        );
        e.retry_after_secs = Some(5);
        e
    })?;
    let own = profile::own(ctx, user_id).await?;
    if own.user.erased_at_ms.is_some() {
        return Err(AppError::not_found("no such user"));
    }
    let identities: Vec<Value> = user::identities::list(ctx, user_id)
        .await?
        .into_iter()
        .map(|i| {
            json!({"provider": i.kind.as_str(), "subject": i.subject,
                   "linked_at_ms": i.linked_at_ms, "verified": i.verified})
        })
        .collect();
    let mut account = serde_json::to_value(&own.user).map_err(AppError::internal)?;
    if let Some(a) = account.as_object_mut() {
        a.remove("password_hash");
    }
    let (conversations, messages) = conversations(ctx, user_id).await?;
    let sections = json!({
        "transfers": {
            "wallet": transfers(ctx, &Account::wallet(user_id)).await?,
            "earnings": transfers(ctx, &Account::earnings(user_id)).await?,
        },
        "calls": calls(ctx, user_id).await?,
        "favorites": favorites_of(ctx, user_id).await?,
        "blocks": to_json(blocklist::list(ctx, user_id, None, EXPORT_ROWS_MAX).await?)?,
        "notifications": notifications(ctx, user_id).await?,
        "media": to_json(media::list(ctx, user_id, None, EXPORT_ROWS_MAX).await?)?,
    });
    let full = |v: &Value| v.as_array().is_some_and(|a| a.len() >= EXPORT_ROWS_MAX);
    let truncated = messages >= EXPORT_ROWS_MAX
        || ["calls", "favorites", "blocks", "notifications", "media"]
            .iter()
            .any(|k| full(&sections[k]))
        || full(&sections["transfers"]["wallet"])
        || full(&sections["transfers"]["earnings"]);
    Ok(json!({
        "format": "duet-export/1",
        "truncated": truncated,
        "generated_at_ms": ctx.store.now_ms(),
        "user_id": user_id,
        "account": account,
        "identities": identities,
        "sessions": to_json(user::list_sessions(ctx, user_id).await?)?,
        "devices": to_json(user::list_devices(ctx, user_id).await?)?,
        "profile": serde_json::to_value(&own.profile).map_err(AppError::internal)?,
        "conversations": conversations,
        "transfers": sections["transfers"],
        "calls": sections["calls"],
        "favorites": sections["favorites"],
        "blocks": sections["blocks"],
        "notifications": sections["notifications"],
        "media": sections["media"],
        "payouts": to_json(mission_control::payouts::list_of_streamer(ctx, user_id).await?)?,
        "reports": to_json(mission_control::reports::filed_by(ctx, user_id, EXPORT_ROWS_MAX, false).await?)?,
    }))
}

/// The person's conversations with their messages, and how many messages were read.
async fn conversations(ctx: &Ctx, user_id: &str) -> AppResult<(Vec<Value>, usize)> {
    let mut out = Vec::new();
    let mut before = None;
    let mut rows = 0;
    while rows < EXPORT_ROWS_MAX && out.len() < EXPORT_ROWS_MAX {
        let page = chat::inbox(ctx, user_id, before.clone(), PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some((
            last.conversation.last_at_ms,
            last.conversation.id.to_string(),
        ));
        for summary in page {
            let chat_id = summary.conversation.id.to_string();
            let mut messages = Vec::new();
            let mut before_seq = None;
            while rows < EXPORT_ROWS_MAX {
                let batch = chat::messages(ctx, user_id, &chat_id, before_seq, PAGE).await?;
                let Some(oldest) = batch.last() else { break };
                before_seq = Some(oldest.seq);
                rows += batch.len();
                messages.extend(to_json(batch)?);
            }
            messages.reverse();
            out.push(json!({
                "conversation": serde_json::to_value(&summary.conversation).map_err(AppError::internal)?,
                "messages": messages,
            }));
        }
    }
    Ok((out, rows))
}

async fn transfers(ctx: &Ctx, account: &Account) -> AppResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = None;
    while out.len() < EXPORT_ROWS_MAX {
        let (page, next) = balance::history_page(ctx, account, before, PAGE).await?;
        out.extend(to_json(page)?);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    Ok(out)
}

async fn calls(ctx: &Ctx, user_id: &str) -> AppResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = None;
    while out.len() < EXPORT_ROWS_MAX {
        let page = video::calls_of(ctx, user_id, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.to_string());
        out.extend(to_json(page)?);
    }
    Ok(out)
}

async fn favorites_of(ctx: &Ctx, user_id: &str) -> AppResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = None;
    while out.len() < EXPORT_ROWS_MAX {
        let page =
            favorites::page(ctx, favorites::Listing::Favorites, user_id, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.clone());
        out.extend(
            page.into_iter()
                .map(|(since, id)| json!({"user_id": id, "since_ms": since})),
        );
    }
    Ok(out)
}

async fn notifications(ctx: &Ctx, user_id: &str) -> AppResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = None;
    while out.len() < EXPORT_ROWS_MAX {
        let (page, _) = notification::page(ctx, user_id, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        out.extend(to_json(page)?);
    }
    Ok(out)
}
