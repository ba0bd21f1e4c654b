//! The missed-call email digest: every `digest_every_secs`, each person with missed calls they
//! have not read since the last digest gets one email listing them — if they have an email
//! address, have not unsubscribed or muted missed-call emails, and SendGrid is configured.

use crate::app::Ctx;
use crate::core::error::AppResult;
use crate::core::store::{Tx, get};
use crate::domains::user;

use super::model::{Channel, Kind, Notification};
use super::tables::{DIGEST_PENDING, NOTIFICATIONS, NOTIFY_META};
use super::{delivery, preferences_tx, unsubscribe_url};

/// People one write handles.
const PEOPLE_PER_WRITE: usize = 200;
/// Calls listed in one email, at most.
const CALLS_LISTED_MAX: usize = 20;
const LAST_RUN: &str = "digest_last_run_ms";

/// Runs the digest when its period has passed since the last run (on the injected clock);
/// returns how many emails were queued.
pub async fn run_if_due(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let period = ctx.config.notifications.digest_every_secs as i64 * 1000;
    let last = ctx
        .store
        .read(|rtx| {
            Ok(rtx
                .open_table(NOTIFY_META)?
                .get(LAST_RUN)?
                .map(|v| v.value()))
        })
        .await?;
    match last {
        None => {
            // The first start: the period counts from now.
            ctx.store
                .write(move |tx| Ok(tx.table(NOTIFY_META)?.insert(LAST_RUN, now).map(|_| ())?))
                .await?;
            Ok(0)
        }
        Some(last) if now - last >= period => run(ctx).await,
        Some(_) => Ok(0),
    }
}

/// Runs the digest now, a few hundred people per write so the writer is never held long;
/// returns how many emails were queued.
pub async fn run(ctx: &Ctx) -> AppResult<usize> {
    let mut queued = 0;
    let mut after = String::new();
    loop {
        let from = after.clone();
        // Whole people only: their rows are contiguous, (user, notification id) ordered.
        let by_user: Vec<(String, Vec<String>)> = ctx
            .store
            .read(move |rtx| {
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                let t = rtx.open_table(DIGEST_PENDING)?;
                for row in t.range((from.as_str(), "\u{10ffff}")..)? {
                    let row = row?;
                    let (u, id) = row.0.value();
                    let people = out.len();
                    match out.last_mut() {
                        Some((last, ids)) if last == u => ids.push(id.to_owned()),
                        _ if people >= PEOPLE_PER_WRITE => break,
                        _ => out.push((u.to_owned(), vec![id.to_owned()])),
                    }
                }
                Ok(out)
            })
            .await?;
        let Some((last, _)) = by_user.last() else {
            break;
        };
        after = last.clone();
        let links: Vec<String> = by_user
            .iter()
            .map(|(u, _)| unsubscribe_url(ctx, u))
            .collect::<AppResult<_>>()?;
        let can_email = ctx.delivery.has("sendgrid");
        queued += ctx
            .store
            .write(move |tx| {
                let mut queued = 0;
                for ((user_id, ids), link) in by_user.iter().zip(&links) {
                    queued += usize::from(digest_one(tx, user_id, ids, link, can_email)?);
                }
                Ok(queued)
            })
            .await?;
    }
    ctx.store
        .write(|tx| {
            Ok(tx
                .table(NOTIFY_META)?
                .insert(LAST_RUN, tx.now_ms())
                .map(|_| ())?)
        })
        .await?;
    Ok(queued)
}

fn digest_one(
    tx: &Tx,
    user_id: &str,
    ids: &[String],
    link: &str,
    can_email: bool,
) -> AppResult<bool> {
    let mut unread: Vec<Notification> = Vec::new();
    for id in ids {
        tx.table(DIGEST_PENDING)?.remove((user_id, id.as_str()))?;
        if let Some(n) =
            get::<(&str, &str), Notification>(&tx.read(NOTIFICATIONS)?, (user_id, id.as_str()))?
            && n.read_at_ms.is_none()
        {
            unread.push(n);
        }
    }
    let Some(first) = unread.first() else {
        return Ok(false);
    };
    let email = user::find_user_tx(tx, user_id)?.and_then(|u| u.email);
    let Some(email) = email else {
        return Ok(false);
    };
    if !can_email || !preferences_tx(tx, user_id)?.wants(Channel::Email, Kind::MissedCall) {
        return Ok(false);
    }
    let count = unread.len();
    let subject = if count == 1 {
        "You missed a call".to_owned()
    } else {
        format!("You missed {count} calls")
    };
    let mut text = String::from("While you were away:\n\n");
    for n in unread.iter().take(CALLS_LISTED_MAX) {
        text.push_str(&format!("- {}\n", n.body));
    }
    if count > CALLS_LISTED_MAX {
        text.push_str(&format!("…and {} more\n", count - CALLS_LISTED_MAX));
    }
    text.push_str(&format!(
        "\nOpen Duet to call them back.\n\nNo more emails: {link}\n"
    ));
    // The send's data names every caller listed, so erasing one of them finds this email too.
    let listed: Vec<serde_json::Value> = unread
        .iter()
        .take(CALLS_LISTED_MAX)
        .map(|n| serde_json::from_str(&n.data).unwrap_or_default())
        .collect();
    let lead = Notification {
        data: serde_json::json!({ "calls": listed }).to_string(),
        ..(*first).clone()
    };
    delivery::queue_email_tx(tx, &lead, &email, &subject, &text, link)?;
    Ok(true)
}
