//! The missed-call email digest: every `digest_every_secs`, each person with missed calls they
//! have not read since the last digest gets one email listing them — if they have an email
//! address, have not unsubscribed or muted missed-call emails, and SendGrid is configured.

use redb::ReadableTable;

use crate::app::Ctx;
use crate::core::error::AppResult;
use crate::core::store::{Tx, get};
use crate::domains::user;

use super::model::{Channel, Kind, Notification};
use super::tables::{DIGEST_PENDING, NOTIFICATIONS, NOTIFY_META};
use super::{delivery, preferences_tx, unsubscribe_url};

/// Pending rows one run reads, at most; the rest wait for the next run.
const DIGEST_SCAN_MAX: usize = 50_000;
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

/// Runs the digest now.
pub async fn run(ctx: &Ctx) -> AppResult<usize> {
    let pending: Vec<(String, String)> = ctx
        .store
        .read(|rtx| {
            let mut out = Vec::new();
            for row in rtx
                .open_table(DIGEST_PENDING)?
                .iter()?
                .take(DIGEST_SCAN_MAX)
            {
                let row = row?;
                let (u, id) = row.0.value();
                out.push((u.to_owned(), id.to_owned()));
            }
            Ok(out)
        })
        .await?;
    let mut by_user: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (u, id) in pending {
        by_user.entry(u).or_default().push(id);
    }
    let links: Vec<(String, String)> = by_user
        .keys()
        .map(|u| Ok((u.clone(), unsubscribe_url(ctx, u)?)))
        .collect::<AppResult<_>>()?;
    let can_email = ctx.delivery.has("sendgrid");
    ctx.store
        .write(move |tx| {
            let mut queued = 0;
            for ((user_id, ids), (_, link)) in by_user.iter().zip(&links) {
                queued += usize::from(digest_one(tx, user_id, ids, link, can_email)?);
            }
            tx.table(NOTIFY_META)?.insert(LAST_RUN, tx.now_ms())?;
            Ok(queued)
        })
        .await
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
    delivery::queue_email_tx(tx, first, &email, &subject, &text, link)?;
    Ok(true)
}
