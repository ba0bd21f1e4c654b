//! Privacy: account deletion carried out over every domain, and the data export.
//!
//! Deleting is asked for with a fresh sign-in (`user::deletion::request`) and happens after a
//! grace period that signing in again cancels. When it is due, [`erase`] runs one commit over
//! every domain: chat turns the person's messages into tombstones, notifications lose their
//! addresses and what others were told about them, blocks lose their comments, the profile
//! goes, and the user domain removes identities, sessions, devices and sign-in records, leaving
//! a pseudonymous shell. What must be kept stays, by id only: ledger entries, payouts, audit
//! and penalty records. The event log keeps every event, but each one that mentioned the
//! person is rewritten without their strings. `user_erased` tells every consumer that keeps a
//! copy (the replica, ad networks) to erase theirs.
//!
//! The export gathers the person's data from every domain into one JSON archive: records as
//! stored (field names in snake_case, times in unix milliseconds).

pub mod api;

use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::auth::Principal;
use crate::core::erasure::Needles;
use crate::core::error::{AppError, AppResult};
use crate::core::events;
use crate::domains::balance::model::Account;
use crate::domains::{
    audit, balance, blocklist, chat, favorites, mission_control, notification, profile, user, video,
};

/// Accounts erased in one pass of the sweeper, at most.
const ERASURES_PER_PASS: usize = 16;
/// Rows of one kind an export reads, at most (messages, transfers, calls, …): a bound on the
/// work of one request.
pub const EXPORT_ROWS_MAX: usize = 100_000;
/// The page size an export reads with.
const PAGE: usize = 500;
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
        erased += usize::from(erase(ctx, &user_id).await?);
    }
    Ok(erased)
}

/// Erases the person, if their deletion is still due when the commit runs (they may have
/// signed in since). Returns whether it did.
pub async fn erase(ctx: &Ctx, user_id: &str) -> AppResult<bool> {
    let uid = user_id.to_owned();
    // Found outside the write: the strings that identify them, and every event that mentions
    // them or those strings.
    // Everything that needs a scan is found here, with a read: the single writer only applies
    // it (and looks at the short tails written since).
    let (needles, scanned, scanned_upto, user_plan, notification_plan) = ctx
        .store
        .read(move |rtx| {
            let mut strings = user::deletion::personal_strings(rtx, &uid)?;
            strings.extend(profile::personal_strings(rtx, &uid)?);
            let needles = Needles::new(strings);
            let upto = events::head_seq(rtx)?;
            let scanned = events::scan(rtx, |b| mentions(&uid, &needles, b))?;
            let user_plan = user::deletion::plan(rtx, &uid)?;
            let notification_plan = notification::plan(rtx, &uid, &needles)?;
            Ok((needles, scanned, upto, user_plan, notification_plan))
        })
        .await?;
    let uid = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            if !user::deletion::still_due_tx(tx, &uid)? {
                return Ok(false);
            }
            // And the events appended since the scan.
            let mut candidates = scanned.clone();
            candidates.extend(events::scan_after_tx(tx, scanned_upto, |b| {
                mentions(&uid, &needles, b)
            })?);
            chat::erase_tx(tx, &uid, &candidates)?;
            notification::erase_tx(tx, &uid, &needles, &notification_plan, &candidates)?;
            blocklist::erase_tx(tx, &uid)?;
            profile::erase_tx(tx, &uid, &candidates)?;
            for e in &candidates {
                events::rewrite_tx(tx, e.seq, |data| {
                    needles.scrub_json(data);
                })?;
            }
            user::deletion::erase_tx(tx, &uid, &user_plan)?;
            audit::record_tx(tx, SWEEPER, "user.erase", &uid, json!({}))?;
            Ok(true)
        })
        .await
}

/// Whether a stored record mentions the person: their id, or one of their strings.
fn mentions(user_id: &str, needles: &Needles, bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, user_id.as_bytes()).is_some() || needles.in_bytes(bytes)
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
    Ok(json!({
        "format": "duet-export/1",
        "generated_at_ms": ctx.store.now_ms(),
        "user_id": user_id,
        "account": account,
        "identities": identities,
        "sessions": to_json(user::list_sessions(ctx, user_id).await?)?,
        "devices": to_json(user::list_devices(ctx, user_id).await?)?,
        "profile": serde_json::to_value(&own.profile).map_err(AppError::internal)?,
        "conversations": conversations(ctx, user_id).await?,
        "transfers": {
            "wallet": transfers(ctx, &Account::wallet(user_id)).await?,
            "earnings": transfers(ctx, &Account::earnings(user_id)).await?,
        },
        "calls": calls(ctx, user_id).await?,
        "favorites": favorites_of(ctx, user_id).await?,
        "blocks": to_json(blocklist::list(ctx, user_id, None, EXPORT_ROWS_MAX).await?)?,
        "notifications": notifications(ctx, user_id).await?,
        "payouts": to_json(mission_control::payouts::list_of_streamer(ctx, user_id).await?)?,
    }))
}

async fn conversations(ctx: &Ctx, user_id: &str) -> AppResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut before = None;
    let mut rows = 0;
    loop {
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
    Ok(out)
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
