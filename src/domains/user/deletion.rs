//! Account deletion, the user domain's part: the request (a fresh sign-in, then a grace period
//! that signing in again cancels), and erasing what this domain keeps about the person once it
//! is due. The orchestration over every domain is `privacy`'s.

use redb::{ReadTransaction, ReadableTable};

use crate::app::Ctx;
use crate::core::auth::Principal;
use crate::core::erasure::matching_rows;
use crate::core::error::{AppError, AppResult};
use crate::core::events::NewEvent;
use crate::core::ids::secret_hash;
use crate::core::store::{Tx, dec, put, second_keys};

use super::events::UserEvent;
use super::model::*;
use super::tables::*;
use super::{find_user, find_user_tx, identities, revoke_all_sessions_tx};

/// Schedules the caller's own deletion after the grace period. Their session must be fresh
/// (`auth.fresh_sign_in_secs`): a phone left unlocked is not enough.
pub async fn request(ctx: &Ctx, who: &Principal) -> AppResult<i64> {
    let cfg = ctx.config.auth.deletion.clone();
    let fresh = super::Freshness::of(ctx, who);
    let user_id = who.user_id.to_string();
    ctx.store
        .write(move |tx| {
            fresh.check_tx(tx)?;
            let due = tx.now_ms() + cfg.grace_days as i64 * 86_400_000;
            schedule_tx(tx, &user_id, due, "owner")?;
            Ok(due)
        })
        .await
}

/// Schedules the account's deletion at `due_ms` and signs it out everywhere; signing in again
/// before then cancels it. `by` is `owner` or `admin`.
pub fn schedule_tx(tx: &Tx, user_id: &str, due_ms: i64, by: &str) -> AppResult<()> {
    let mut user = find_user_tx(tx, user_id)?
        .filter(|u| u.erased_at_ms.is_none())
        .ok_or_else(|| AppError::not_found("no such user"))?;
    let mut due = tx.table(DELETIONS_DUE)?;
    if let Some(old) = user.deletion_due_ms {
        due.remove((old, user_id))?;
    }
    due.insert((due_ms, user_id), ())?;
    drop(due);
    user.deletion_due_ms = Some(due_ms);
    user.deletion_forced |= by == "admin";
    put(&mut tx.table(USERS)?, user_id, &user)?;
    revoke_all_sessions_tx(tx, user_id, "account_deletion")?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::DeletionScheduled {
            user_id: user_id.to_owned().into(),
            due_ms,
            by: by.to_owned(),
        },
    ))?;
    Ok(())
}

/// Takes a scheduled deletion back (the owner signed in). The caller writes `user` back. One
/// an admin ordered is not taken back: the sign-in is refused instead.
pub(super) fn cancel_tx(tx: &Tx, user: &mut UserRecord) -> AppResult<()> {
    if user.deletion_forced {
        return Err(AppError::unauthorized("this account is being deleted"));
    }
    if let Some(due) = user.deletion_due_ms.take() {
        tx.table(DELETIONS_DUE)?.remove((due, user.id.as_str()))?;
        put(&mut tx.table(USERS)?, user.id.as_str(), &*user)?;
        tx.emit(NewEvent::about(
            &user.id,
            UserEvent::DeletionCancelled {
                user_id: user.id.clone().into(),
            },
        ))?;
    }
    Ok(())
}

/// Accounts whose deletion is due at `now_ms`, oldest first, at most `limit`.
pub fn due(rtx: &ReadTransaction, now_ms: i64, limit: usize) -> AppResult<Vec<String>> {
    let mut out = Vec::new();
    for row in rtx.open_table(DELETIONS_DUE)?.range((i64::MIN, "")..)? {
        let (k, _) = row?;
        let (due, user_id) = k.value();
        if due > now_ms || out.len() >= limit {
            break;
        }
        out.push(user_id.to_owned());
    }
    Ok(out)
}

/// Moves a due deletion whose erasure failed `by_ms` later, so the accounts due after it are
/// not held up (the failure is logged; it is tried again then).
pub async fn postpone(ctx: &Ctx, user_id: &str, by_ms: i64) -> AppResult<()> {
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            let Some(mut user) = find_user_tx(tx, &user_id)? else {
                return Ok(());
            };
            let Some(due) = user.deletion_due_ms else {
                return Ok(());
            };
            let later = tx.now_ms().max(due) + by_ms;
            let mut t = tx.table(DELETIONS_DUE)?;
            t.remove((due, user_id.as_str()))?;
            t.insert((later, user_id.as_str()), ())?;
            drop(t);
            user.deletion_due_ms = Some(later);
            put(&mut tx.table(USERS)?, user_id.as_str(), &user)
        })
        .await
}

/// Whether the account's deletion is still due at the write's time (the owner may have signed
/// in since it was found due).
pub fn still_due_tx(tx: &Tx, user_id: &str) -> AppResult<bool> {
    Ok(find_user_tx(tx, user_id)?
        .and_then(|u| u.deletion_due_ms)
        .is_some_and(|due| due <= tx.now_ms()))
}

/// What erasing the person will remove that only a scan finds, found with a read off the
/// writer: their sign-in attempts (failed ones name the account key, an email or a number) and
/// their sessions' refresh tokens.
pub struct ErasurePlan {
    attempts: Vec<String>,
    attempts_seen_upto: Option<String>,
    account_keys: Vec<String>,
    refresh_tokens: Vec<String>,
}

/// The account keys sign-in attempts and counters of the person are filed under: their
/// identities and the email they claimed.
fn account_keys(user: Option<&UserRecord>, identity_keys: Vec<String>) -> Vec<String> {
    let mut keys = identity_keys;
    if let Some(p) = user.and_then(|u| u.pending_email.as_ref()) {
        keys.push(IdentityKind::Email.key(&p.address));
    }
    keys
}

fn attempt_of(user_id: &str, account_keys: &[String]) -> impl Fn(&[u8]) -> AppResult<bool> {
    move |bytes| {
        let a: LoginAttempt = dec(bytes)?;
        Ok(a.user_id.as_deref() == Some(user_id) || account_keys.contains(&a.account))
    }
}

pub fn plan(rtx: &ReadTransaction, user_id: &str) -> AppResult<ErasurePlan> {
    let user = find_user(rtx, user_id)?;
    let keys = second_keys(&rtx.open_table(IDENTITIES_BY_USER)?, user_id)?;
    let mut account_keys = account_keys(user.as_ref(), keys);
    // Ways in they removed before: their successful sign-ins still name them.
    for row in rtx.open_table(LOGIN_ATTEMPTS)?.iter()? {
        let (_, v) = row?;
        let a: LoginAttempt = dec(v.value())?;
        if a.user_id.as_deref() == Some(user_id) && !account_keys.contains(&a.account) {
            account_keys.push(a.account);
        }
    }
    let (attempts, attempts_seen_upto) = matching_rows(
        &rtx.open_table(LOGIN_ATTEMPTS)?,
        None,
        attempt_of(user_id, &account_keys),
    )?;
    let sessions = second_keys(&rtx.open_table(SESSIONS_BY_USER)?, user_id)?;
    let mut refresh_tokens = Vec::new();
    for row in rtx.open_table(REFRESH_TOKENS)?.iter()? {
        let (k, v) = row?;
        let rec: RefreshRecord = dec(v.value())?;
        if sessions.contains(&rec.session_id) {
            refresh_tokens.push(k.value().to_owned());
        }
    }
    Ok(ErasurePlan {
        attempts,
        attempts_seen_upto,
        account_keys,
        refresh_tokens,
    })
}

/// Erases what the user domain keeps about the person: identities, claims and links, codes,
/// sessions, devices, presence, sign-in attempts and their counters. The account stays as a
/// pseudonymous shell (its id, role and ban), which the ledger, payouts, audit and penalties
/// go on naming. Emits `user_erased`.
pub fn erase_tx(
    tx: &Tx,
    user_id: &str,
    plan: &ErasurePlan,
    own_events: &[crate::core::events::Event],
) -> AppResult<()> {
    let mut user = find_user_tx(tx, user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
    let keys = identities::keys_tx(tx, user_id)?;
    let mut account_keys = account_keys(Some(&user), keys.clone());
    account_keys.extend(plan.account_keys.iter().cloned());
    account_keys.sort();
    account_keys.dedup();
    let mut emails: Vec<String> = user.email.iter().cloned().collect();
    emails.extend(user.pending_email.iter().map(|p| p.address.clone()));
    super::email::release_own_claim_tx(tx, &mut user)?;
    {
        let mut ids = tx.table(IDENTITIES)?;
        let mut index = tx.table(IDENTITIES_BY_USER)?;
        for key in &keys {
            ids.remove(key.as_str())?;
            index.remove((user_id, key.as_str()))?;
        }
        let mut codes = tx.table(PHONE_CODES)?;
        for key in &keys {
            if let Some((IdentityKind::Phone, phone)) = IdentityKind::of_key(key) {
                codes.remove(phone)?;
            }
        }
    }
    // Links still waiting in mailboxes.
    super::email::drop_links_of(tx, user_id, None)?;
    // Sessions (their addresses and user agents) and push devices.
    let sessions = second_keys(&tx.read(SESSIONS_BY_USER)?, user_id)?;
    {
        let mut by_user = tx.table(SESSIONS_BY_USER)?;
        let mut rows = tx.table(SESSIONS)?;
        for sid in &sessions {
            rows.remove(sid.as_str())?;
            by_user.remove((user_id, sid.as_str()))?;
        }
    }
    for device in super::devices_tx(tx, user_id)? {
        tx.table(PUSH_DEVICES)?
            .remove((user_id, device.device_id.as_str()))?;
        tx.table(PUSH_TOKEN_OWNERS)?
            .remove(secret_hash(&device.token).as_str())?;
    }
    let mut refresh = tx.table(REFRESH_TOKENS)?;
    for k in &plan.refresh_tokens {
        refresh.remove(k.as_str())?;
    }
    drop(refresh);
    // Device ids in the events that said a push token was dropped.
    for e in own_events {
        if let Some(UserEvent::PushTokenRemoved { .. }) = e.decoded::<UserEvent>() {
            crate::core::events::rewrite_tx(tx, e.seq, |data| {
                data["deviceId"] = serde_json::Value::String(crate::core::erasure::ERASED.into());
            })?;
        }
    }
    tx.table(PRESENCE)?.remove(user_id)?;
    tx.table(ONLINE_USERS)?.remove(user_id)?;
    tx.table(ONLINE_STREAMERS)?.remove(user_id)?;
    // Sign-in attempts name the account key (an email, a number) even when they failed: the
    // ones the plan found, and those made since (ids are time-ordered: a short tail).
    let (since, _) = matching_rows(
        &tx.read(LOGIN_ATTEMPTS)?,
        plan.attempts_seen_upto.as_deref(),
        attempt_of(user_id, &account_keys),
    )?;
    let mut t = tx.table(LOGIN_ATTEMPTS)?;
    for k in plan.attempts.iter().chain(&since) {
        t.remove(k.as_str())?;
    }
    drop(t);
    let mut counters = tx.table(LOGIN_THROTTLE)?;
    for key in &account_keys {
        counters.remove(format!("account:{key}").as_str())?;
        if let Some((IdentityKind::Phone, phone)) = IdentityKind::of_key(key) {
            counters.remove(super::phone::number_key("number", phone).as_str())?;
        }
    }
    for email in &emails {
        counters.remove(super::email::recipient_key(email).as_str())?;
        counters.remove(format!("notice:{}", secret_hash(email)).as_str())?;
    }
    counters.remove(format!("resend:{user_id}").as_str())?;
    drop(counters);
    let backoffs: Vec<String> = {
        let t = tx.read(SIGN_IN_BACKOFF)?;
        let mut out = Vec::new();
        for key in &account_keys {
            let prefix = format!("{key}|");
            for row in t.range(prefix.as_str()..)? {
                let (k, _) = row?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                out.push(k.value().to_owned());
            }
        }
        out
    };
    let mut t = tx.table(SIGN_IN_BACKOFF)?;
    for k in &backoffs {
        t.remove(k.as_str())?;
    }
    drop(t);
    if let Some(due) = user.deletion_due_ms.take() {
        tx.table(DELETIONS_DUE)?.remove((due, user_id))?;
    }
    user.email = None;
    user.password_hash = None;
    user.erased_at_ms = Some(tx.now_ms());
    put(&mut tx.table(USERS)?, user_id, &user)?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::Erased {
            user_id: user_id.to_owned().into(),
        },
    ))?;
    Ok(())
}
