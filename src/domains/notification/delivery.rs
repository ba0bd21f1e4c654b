//! The outbox: pushes and emails are rows written in the same transaction as the decision to
//! send them, then handed to the providers by `tick`. Each send is claimed (`sending`) in one
//! commit before the provider is called and settled in another after it answers, so:
//! a provider that fails is retried with exponential backoff up to `attempts_max` and then
//! dead-lettered (kept, listed for admins, retryable); a token the provider calls unregistered
//! is removed from the user's devices; and a send interrupted by a crash between claim and
//! answer is dead-lettered as `interrupted`, never sent again — each notification reaches a
//! device at most once (`notification_device_sent`).

use redb::ReadableTable;
use serde_json::Value;

use crate::app::Ctx;
use crate::config::NotificationsConfig;
use crate::core::error::{AppError, AppResult};
use crate::core::ids::new_id;
use crate::core::store::{Tx, dec, get, put};
use crate::domains::user::{self, model::PushProvider};
use crate::domains::{favorites, panel, profile, video};
use crate::providers::notify::apns::Apns;
use crate::providers::notify::fcm::Fcm;
use crate::providers::notify::onesignal::OneSignal;
use crate::providers::notify::sendgrid::{Email, SendGrid};
use crate::providers::notify::{Outcome, PushMessage};

use super::model::*;
use super::tables::*;
use super::{Draft, is_voip, notifier, save};

/// Sends handed to providers in one pass, at most.
const SENDS_PER_TICK: usize = 256;
/// Fallbacks decided in one pass, at most.
const FALLBACKS_PER_TICK: usize = 1024;

/// The configured providers and the delivery rules.
pub struct Delivery {
    fcm: Option<Fcm>,
    apns: Option<Apns>,
    onesignal: Option<OneSignal>,
    sendgrid: Option<SendGrid>,
    config: NotificationsConfig,
    /// One pass at a time: the worker's and a test's `tick` never interleave, so a pass that
    /// returns has seen every send due when it started through to the provider's answer.
    pass: tokio::sync::Mutex<()>,
}

fn provider_name(p: PushProvider) -> &'static str {
    match p {
        PushProvider::Fcm => "fcm",
        PushProvider::Apns => "apns",
        PushProvider::ApnsVoip => "apns_voip",
        PushProvider::Onesignal => "onesignal",
    }
}

impl Delivery {
    pub fn from_config(cfg: &NotificationsConfig) -> anyhow::Result<Delivery> {
        Ok(Delivery {
            fcm: (!cfg.fcm.project_id.is_empty())
                .then(|| Fcm::new(&cfg.fcm))
                .transpose()?,
            apns: (!cfg.apns.team_id.is_empty())
                .then(|| Apns::new(&cfg.apns))
                .transpose()?,
            onesignal: (!cfg.onesignal.app_id.is_empty()).then(|| OneSignal::new(&cfg.onesignal)),
            sendgrid: (!cfg.sendgrid.api_key.is_empty()).then(|| SendGrid::new(&cfg.sendgrid)),
            config: cfg.clone(),
            pass: tokio::sync::Mutex::new(()),
        })
    }

    pub fn ack_timeout_ms(&self) -> i64 {
        self.config.ack_timeout_secs as i64 * 1000
    }

    /// Whether sends through `provider` can be made (it is configured).
    pub fn has(&self, provider: &str) -> bool {
        match provider {
            "fcm" => self.fcm.is_some(),
            "apns" | "apns_voip" => self.apns.is_some(),
            "onesignal" => self.onesignal.is_some(),
            "sendgrid" => self.sendgrid.is_some(),
            _ => false,
        }
    }

    /// The wait before attempt `attempts + 1`.
    fn backoff_ms(&self, attempts: u32) -> i64 {
        let base = self
            .config
            .retry_base_secs
            .saturating_mul(1 << attempts.min(20));
        base.min(self.config.retry_max_secs) as i64 * 1000
    }

    async fn send(&self, s: &Send, now_ms: i64) -> Outcome {
        let not_configured = || Outcome::Failed(format!("{} is not configured", s.provider));
        if s.channel == Channel::Email {
            let Some(sg) = &self.sendgrid else {
                return not_configured();
            };
            let email = Email {
                to: s.address.clone(),
                subject: s.title.clone(),
                text: s.body.clone(),
                unsubscribe_url: s.unsubscribe_url.clone(),
            };
            return sg.send(&email).await;
        }
        let msg = PushMessage {
            notification_id: s.notification_id.clone(),
            kind: s.kind.as_str().to_owned(),
            title: s.title.clone(),
            body: s.body.clone(),
            data: serde_json::from_str(&s.data).unwrap_or(Value::Null),
            voip: s.provider == "apns_voip",
            created_at_ms: s.created_at_ms,
        };
        match s.provider.as_str() {
            "fcm" => match &self.fcm {
                Some(p) => p.send(&s.address, &msg, now_ms).await,
                None => not_configured(),
            },
            "apns" | "apns_voip" => match &self.apns {
                Some(p) => p.send(&s.address, &msg, now_ms).await,
                None => not_configured(),
            },
            "onesignal" => match &self.onesignal {
                Some(p) => p.send(&s.address, &msg).await,
                None => not_configured(),
            },
            _ => not_configured(),
        }
    }
}

fn queue_tx(tx: &Tx, s: &Send) -> AppResult<()> {
    put(&mut tx.table(OUTBOX)?, s.id.as_str(), s)?;
    tx.table(OUTBOX_DUE)?
        .insert((s.next_at_ms, s.id.as_str()), ())?;
    Ok(())
}

fn new_send(tx: &Tx, n: &Notification, channel: Channel, provider: &str, address: &str) -> Send {
    let now = tx.now_ms();
    Send {
        id: new_id(),
        notification_id: n.id.clone(),
        user_id: n.user_id.clone(),
        channel,
        provider: provider.to_owned(),
        device_id: None,
        address: address.to_owned(),
        kind: n.kind,
        title: n.title.clone(),
        body: n.body.clone(),
        data: n.data.clone(),
        unsubscribe_url: None,
        state: SendState::Queued,
        attempts: 0,
        last_error: None,
        next_at_ms: now,
        created_at_ms: now,
        updated_at_ms: now,
    }
}

/// Queues a push of `n` to each of the user's devices with a configured provider — the VoIP
/// tokens when `voip`, the others otherwise — skipping devices it already went to.
pub fn queue_pushes_tx(
    tx: &Tx,
    delivery: &Delivery,
    n: &Notification,
    voip: bool,
) -> AppResult<usize> {
    let mut queued = 0;
    for device in user::devices_tx(tx, &n.user_id)? {
        let provider = provider_name(device.provider);
        if is_voip(device.provider) != voip || !delivery.has(provider) {
            continue;
        }
        let key = (n.id.as_str(), device.device_id.as_str());
        if tx.read(SENT_TO_DEVICE)?.get(key)?.is_some() {
            continue;
        }
        tx.table(SENT_TO_DEVICE)?.insert(key, ())?;
        let mut s = new_send(tx, n, Channel::Push, provider, &device.token);
        s.device_id = Some(device.device_id.clone());
        queue_tx(tx, &s)?;
        queued += 1;
    }
    Ok(queued)
}

/// Queues an email about `n` (a digest, say) to `to`.
pub fn queue_email_tx(
    tx: &Tx,
    n: &Notification,
    to: &str,
    subject: &str,
    text: &str,
    unsubscribe_url: &str,
) -> AppResult<()> {
    let mut s = new_send(tx, n, Channel::Email, "sendgrid", to);
    s.title = subject.to_owned();
    s.body = text.to_owned();
    s.unsubscribe_url = Some(unsubscribe_url.to_owned());
    queue_tx(tx, &s)
}

/// When the next fallback or send falls due.
pub async fn next_due(ctx: &Ctx) -> AppResult<Option<i64>> {
    ctx.store
        .read(|rtx| {
            let fallback = rtx
                .open_table(FALLBACK_DUE)?
                .first()?
                .map(|(k, _)| k.value().0);
            let send = rtx
                .open_table(OUTBOX_DUE)?
                .first()?
                .map(|(k, _)| k.value().0);
            let fanout = rtx.open_table(FANOUTS)?.first()?.map(|(k, _)| k.value().0);
            Ok([fallback, send, fanout].into_iter().flatten().min())
        })
        .await
}

/// Turns unacknowledged in-app deliveries whose time is up into pushes, and hands due sends to
/// the providers; returns how many of both. The delivery worker runs it as things fall due;
/// tests call it after moving the clock.
pub async fn tick(ctx: &Ctx) -> AppResult<usize> {
    let _pass = ctx.delivery.pass.lock().await;
    Ok(run_fanouts(ctx).await? + run_fallbacks(ctx).await? + run_sends(ctx).await?)
}

/// Fan-out writes one pass makes, at most (the rest waits for the next pass).
const FANOUT_CHUNKS_PER_TICK: usize = 20;

/// Works through fan-out jobs ("a favorite came online", a cohort broadcast), a chunk of
/// people per write; returns how many people were considered.
async fn run_fanouts(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let period = ctx.config.notifications.favorite_online_period_secs as i64 * 1000;
    let chunk = ctx.config.notifications.fanout_chunk as usize;
    let mut done = 0;
    for _ in 0..FANOUT_CHUNKS_PER_TICK {
        let next = ctx
            .store
            .read(move |rtx| {
                let jobs = rtx.open_table(FANOUTS)?;
                let Some(row) = jobs.first()? else {
                    return Ok(None);
                };
                let due = row.0.value().0;
                if due > now {
                    return Ok(None);
                }
                let job: Fanout = dec(row.1.value())?;
                let page = match &job.broadcast {
                    Some(b) => {
                        let after = job.after.as_ref().map(|(_, id)| id.as_str());
                        panel::members_after(rtx, &b.cohort_id, after, chunk)?
                            .into_iter()
                            .map(|(id, _)| (0, id))
                            .collect()
                    }
                    None => {
                        favorites::followers_page(rtx, &job.streamer_id, job.after.as_ref(), chunk)?
                    }
                };
                Ok(Some((due, job, page)))
            })
            .await?;
        let Some((due, job, page)) = next else {
            break;
        };
        // Who has a live connection is known here, outside the write.
        let live: Vec<bool> = page.iter().map(|(_, f)| ctx.live.is_connected(f)).collect();
        done += page.len();
        let owner = ctx.delivery.clone();
        ctx.store
            .write(move |tx| {
                // Another pass moved this job on meanwhile: nothing to do with this page.
                let current: Option<Fanout> = get(&tx.read(FANOUTS)?, (due, job.id.as_str()))?;
                if current.as_ref() != Some(&job) {
                    return Ok(());
                }
                if let Some(b) = &job.broadcast {
                    for ((_, member), live) in page.iter().zip(&live) {
                        let draft = Draft {
                            user_id: member.clone(),
                            kind: Kind::System,
                            title: b.title.clone(),
                            body: b.body.clone(),
                            data: serde_json::json!({"cohortId": b.cohort_id}),
                        };
                        super::notify_tx(tx, &owner, draft, *live)?;
                    }
                } else {
                    let name = profile::display_name_tx(tx, &job.streamer_id)?;
                    for ((_, follower), live) in page.iter().zip(&live) {
                        notifier::tell_follower_tx(
                            tx, &owner, &job, &name, period, follower, *live,
                        )?;
                    }
                }
                let mut t = tx.table(FANOUTS)?;
                t.remove((due, job.id.as_str()))?;
                if page.len() == chunk {
                    let next = Fanout {
                        after: page.last().cloned(),
                        ..job.clone()
                    };
                    // Due again now: behind the jobs already waiting, so one big broadcast
                    // never holds up "a favorite came online" for long.
                    put(&mut t, (tx.now_ms().max(due), job.id.as_str()), &next)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(done)
}

async fn run_fallbacks(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let due: Vec<(i64, String, String)> = ctx
        .store
        .read(move |rtx| {
            let mut out = Vec::new();
            for row in rtx
                .open_table(FALLBACK_DUE)?
                .range(..=(now, "\u{10ffff}", "\u{10ffff}"))?
                .take(FALLBACKS_PER_TICK)
            {
                let row = row?;
                let (at, u, id) = row.0.value();
                out.push((at, u.to_owned(), id.to_owned()));
            }
            Ok(out)
        })
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let n = due.len();
    let owner = ctx.delivery.clone();
    ctx.store
        .write(move |tx| {
            for (at, user_id, id) in &due {
                // Acknowledged or decided meanwhile: the row is gone.
                if tx
                    .table(FALLBACK_DUE)?
                    .remove((*at, user_id.as_str(), id.as_str()))?
                    .is_none()
                {
                    continue;
                }
                let Some(mut note): Option<Notification> =
                    get(&tx.read(NOTIFICATIONS)?, (user_id.as_str(), id.as_str()))?
                else {
                    continue;
                };
                note.fallback_due_ms = None;
                // An incoming call answered, declined or missed meanwhile needs no push.
                let stale_call = note.kind == Kind::IncomingCall
                    && !serde_json::from_str::<Value>(&note.data)
                        .ok()
                        .and_then(|d| d["callId"].as_str().map(str::to_owned))
                        .is_some_and(|call| video::is_ringing_tx(tx, &call).unwrap_or(false));
                if note.acked_at_ms.is_none() && note.read_at_ms.is_none() && !stale_call {
                    queue_pushes_tx(tx, &owner, &note, false)?;
                }
                save(tx, &note)?;
            }
            Ok(())
        })
        .await?;
    Ok(n)
}

async fn run_sends(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let due: Vec<(i64, String)> = ctx
        .store
        .read(move |rtx| {
            let mut out = Vec::new();
            for row in rtx
                .open_table(OUTBOX_DUE)?
                .range(..=(now, "\u{10ffff}"))?
                .take(SENDS_PER_TICK)
            {
                let row = row?;
                let (at, id) = row.0.value();
                out.push((at, id.to_owned()));
            }
            Ok(out)
        })
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    // Claim: out of the due index and marked `sending` in one commit, so two passes never
    // send the same row and a crash before the answer is known afterwards.
    let ring_ms = ctx.config.calls.ring_timeout_secs as i64 * 1000;
    let owner = ctx.delivery.clone();
    let claimed: Vec<Send> = ctx
        .store
        .write(move |tx| {
            let mut out = Vec::new();
            for (at, id) in &due {
                if tx.table(OUTBOX_DUE)?.remove((*at, id.as_str()))?.is_none() {
                    continue;
                }
                let Some(mut s): Option<Send> = get(&tx.read(OUTBOX)?, id.as_str())? else {
                    continue;
                };
                // A call rings for a while only: a late push would ring a call that is over.
                if s.kind == Kind::IncomingCall && tx.now_ms() - s.created_at_ms > ring_ms {
                    settle(
                        tx,
                        &owner,
                        &mut s,
                        Outcome::Failed(
                            "expired: the call stopped ringing before it could be sent".into(),
                        ),
                    )?;
                    continue;
                }
                s.state = SendState::Sending;
                s.attempts += 1;
                s.updated_at_ms = tx.now_ms();
                put(&mut tx.table(OUTBOX)?, id.as_str(), &s)?;
                tx.table(SENDING)?.insert(id.as_str(), ())?;
                out.push(s);
            }
            Ok(out)
        })
        .await?;
    let n = claimed.len();
    let outcomes =
        futures_util::future::join_all(claimed.iter().map(|s| ctx.delivery.send(s, now))).await;
    let owner = ctx.delivery.clone();
    ctx.store
        .write(move |tx| {
            for (s, outcome) in claimed.iter().zip(&outcomes) {
                settle(tx, &owner, &mut s.clone(), outcome.clone())?;
            }
            Ok(())
        })
        .await?;
    Ok(n)
}

fn settle(tx: &Tx, delivery: &Delivery, s: &mut Send, outcome: Outcome) -> AppResult<()> {
    let now = tx.now_ms();
    tx.table(SENDING)?.remove(s.id.as_str())?;
    s.updated_at_ms = now;
    match outcome {
        Outcome::Sent => {
            s.state = SendState::Sent;
            s.last_error = None;
        }
        Outcome::Unregistered => {
            s.state = SendState::Unregistered;
            if let Some(device) = &s.device_id {
                user::forget_token_tx(tx, &s.user_id, device, &s.address)?;
            }
        }
        Outcome::Retry(why) if s.attempts < delivery.config.attempts_max => {
            s.state = SendState::Queued;
            s.last_error = Some(why);
            s.next_at_ms = now + delivery.backoff_ms(s.attempts - 1);
            tx.table(OUTBOX_DUE)?
                .insert((s.next_at_ms, s.id.as_str()), ())?;
        }
        Outcome::Retry(why) | Outcome::Failed(why) => {
            s.state = SendState::Dead;
            s.last_error = Some(why);
            tx.table(DEAD_LETTERS)?.insert(s.id.as_str(), ())?;
        }
    }
    put(&mut tx.table(OUTBOX)?, s.id.as_str(), &*s)
}

/// After a restart: sends that were with a provider when the process stopped may or may not
/// have arrived. They are dead-lettered as `interrupted` rather than sent twice.
pub async fn recover(ctx: &Ctx) -> AppResult<usize> {
    ctx.store
        .write(|tx| {
            let ids: Vec<String> = {
                let t = tx.read(SENDING)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(row?.0.value().to_owned());
                }
                out
            };
            for id in &ids {
                tx.table(SENDING)?.remove(id.as_str())?;
                if let Some(mut s) = get::<&str, Send>(&tx.read(OUTBOX)?, id.as_str())? {
                    s.state = SendState::Dead;
                    s.last_error =
                        Some("interrupted: the server stopped before the provider answered".into());
                    put(&mut tx.table(OUTBOX)?, id.as_str(), &s)?;
                    tx.table(DEAD_LETTERS)?.insert(id.as_str(), ())?;
                }
            }
            Ok(ids.len())
        })
        .await
}

/// Dead letters, newest first.
pub async fn dead_letters(ctx: &Ctx, limit: usize) -> AppResult<Vec<Send>> {
    ctx.store
        .read(move |rtx| {
            let all = rtx.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for row in rtx.open_table(DEAD_LETTERS)?.iter()?.rev().take(limit) {
                if let Some(v) = all.get(row?.0.value())? {
                    out.push(dec(v.value())?);
                }
            }
            Ok(out)
        })
        .await
}

/// Gives a dead letter a new round of attempts.
pub async fn retry_dead(ctx: &Ctx, send_id: &str) -> AppResult<Send> {
    let id = send_id.to_owned();
    ctx.store
        .write(move |tx| {
            if tx.table(DEAD_LETTERS)?.remove(id.as_str())?.is_none() {
                return Err(AppError::not_found("no such dead letter"));
            }
            let mut s: Send = get(&tx.read(OUTBOX)?, id.as_str())?
                .ok_or_else(|| AppError::not_found("no such send"))?;
            s.state = SendState::Queued;
            s.attempts = 0;
            s.next_at_ms = tx.now_ms();
            s.updated_at_ms = tx.now_ms();
            queue_tx(tx, &s)?;
            Ok(s)
        })
        .await
}
