//! notification: stored in-app notifications with an unread count, delivered live on the
//! `notifications` topic; the app answers with an `ack` frame. Without a live connection, or
//! without an ack within `ack_timeout_secs`, the notification goes out as a push to each of the
//! user's devices (incoming calls to iOS VoIP tokens at once), through a durable outbox with
//! retries, backoff and dead letters (`delivery`). Missed calls are also mailed in a periodic
//! digest (`digest`). The `notifier` consumer turns domain events into notifications.

pub mod api;
pub mod delivery;
pub mod digest;
pub mod events;
pub mod model;
pub mod notifier;
mod tables;
pub use tables::TABLES;

use redb::{ReadTransaction, ReadableTable};
use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::erasure::{ERASED, matching_rows, mentions};
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, Event, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Tx, dec, get, put};
use crate::domains::user::{self, model::PushProvider};
use delivery::Delivery;
use events::NotificationEvent;
use model::*;
use tables::*;

/// What a new notification says.
pub struct Draft {
    pub user_id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub data: Value,
}

pub fn preferences_tx(tx: &Tx, user_id: &str) -> AppResult<Preferences> {
    Ok(get(&tx.read(PREFERENCES)?, user_id)?.unwrap_or_default())
}

pub fn preferences(rtx: &ReadTransaction, user_id: &str) -> AppResult<Preferences> {
    Ok(get(&rtx.open_table(PREFERENCES)?, user_id)?.unwrap_or_default())
}

/// A user's preferences ([`preferences`] in its own read).
pub async fn preferences_of(ctx: &Ctx, user_id: &str) -> AppResult<Preferences> {
    let uid = user_id.to_owned();
    ctx.store.read(move |rtx| preferences(rtx, &uid)).await
}

fn bump_unread(tx: &Tx, user_id: &str, by: i64) -> AppResult<u64> {
    let mut t = tx.table(UNREAD)?;
    let n = t
        .get(user_id)?
        .map_or(0, |v| v.value())
        .saturating_add_signed(by);
    t.insert(user_id, n)?;
    Ok(n)
}

fn save(tx: &Tx, n: &Notification) -> AppResult<()> {
    put(
        &mut tx.table(NOTIFICATIONS)?,
        (n.user_id.as_str(), n.id.as_str()),
        n,
    )
}

/// How many favorite-online fan-out jobs are still to run.
pub fn fanouts_pending(rtx: &ReadTransaction) -> AppResult<u64> {
    use redb::ReadableTableMetadata;
    Ok(rtx.open_table(FANOUTS)?.len()?)
}

/// Stores a notification, delivers it in-app, and decides its push: at once when the user has
/// no live connection (`live` false), after `ack_timeout_secs` unless acknowledged otherwise;
/// an incoming call also goes to iOS VoIP tokens at once. Muted kinds are stored but not
/// pushed.
pub fn notify_tx(
    tx: &Tx,
    delivery: &Delivery,
    draft: Draft,
    live: bool,
) -> AppResult<Notification> {
    let now = tx.now_ms();
    let mut n = Notification {
        id: new_id(),
        user_id: draft.user_id,
        kind: draft.kind,
        title: draft.title,
        body: draft.body,
        data: draft.data.to_string(),
        created_at_ms: now,
        read_at_ms: None,
        acked_at_ms: None,
        seq: 0,
        fallback_due_ms: None,
    };
    n.seq = tx.emit(
        NewEvent::about(
            &n.user_id,
            NotificationEvent::Notification {
                id: n.id.clone(),
                kind: n.kind,
                title: n.title.clone(),
                body: n.body.clone(),
                data: draft.data.clone(),
                at: now,
            },
        )
        .to(Audience::Users(vec![n.user_id.clone().into()])),
    )?;
    tx.table(BY_SEQ)?
        .insert(n.seq, (n.user_id.as_str(), n.id.as_str()))?;
    bump_unread(tx, &n.user_id, 1)?;
    tx.table(UNREAD_IDS)?
        .insert((n.user_id.as_str(), n.id.as_str()), ())?;
    if preferences_tx(tx, &n.user_id)?.wants(Channel::Push, n.kind) {
        if n.kind == Kind::IncomingCall {
            delivery::queue_pushes_tx(tx, delivery, &n, true)?;
        }
        if live {
            let due = now + delivery.ack_timeout_ms();
            tx.table(FALLBACK_DUE)?
                .insert((due, n.user_id.as_str(), n.id.as_str()), ())?;
            n.fallback_due_ms = Some(due);
        } else {
            delivery::queue_pushes_tx(tx, delivery, &n, false)?;
        }
    }
    if n.kind == Kind::IncomingCall
        && let Some(call) = draft.data["callId"].as_str()
    {
        tx.table(CALL_NOTIFICATIONS)?
            .insert(call, (n.user_id.as_str(), n.id.as_str()))?;
    }
    if n.kind == Kind::MissedCall {
        tx.table(DIGEST_PENDING)?
            .insert((n.user_id.as_str(), n.id.as_str()), ())?;
    }
    save(tx, &n)?;
    Ok(n)
}

/// The push of a notification is no longer owed (acknowledged or read).
fn settle_fallback(tx: &Tx, n: &mut Notification) -> AppResult<()> {
    if let Some(due) = n.fallback_due_ms.take() {
        tx.table(FALLBACK_DUE)?
            .remove((due, n.user_id.as_str(), n.id.as_str()))?;
    }
    Ok(())
}

/// The app showed the notification delivered with event `seq`: no push. An ack of another
/// user's event, or of an event that is no notification, changes nothing.
pub async fn ack(ctx: &Ctx, user_id: &str, seq: u64) -> AppResult<bool> {
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            let Some((owner, id)) = tx.read(BY_SEQ)?.get(seq)?.map(|v| {
                let (u, i) = v.value();
                (u.to_owned(), i.to_owned())
            }) else {
                return Ok(false);
            };
            if owner != user_id {
                return Ok(false);
            }
            let Some(mut n): Option<Notification> =
                get(&tx.read(NOTIFICATIONS)?, (owner.as_str(), id.as_str()))?
            else {
                return Ok(false);
            };
            if n.acked_at_ms.is_some() {
                return Ok(true);
            }
            n.acked_at_ms = Some(tx.now_ms());
            settle_fallback(tx, &mut n)?;
            save(tx, &n)?;
            Ok(true)
        })
        .await
}

/// Marks one notification read (its push no longer owed); false if it already was. The caller
/// adjusts the unread count.
fn read_one_tx(tx: &Tx, n: &mut Notification, now: i64) -> AppResult<bool> {
    if n.read_at_ms.is_some() {
        return Ok(false);
    }
    n.read_at_ms = Some(now);
    settle_fallback(tx, n)?;
    save(tx, n)?;
    tx.table(UNREAD_IDS)?
        .remove((n.user_id.as_str(), n.id.as_str()))?;
    Ok(true)
}

/// A call's `incoming_call` notification is read once the call stops ringing (answered,
/// declined, missed or cancelled): the call itself told the callee; only `missed_call` stays
/// unread.
pub fn call_stopped_ringing_tx(tx: &Tx, call_id: &str) -> AppResult<()> {
    let Some((user_id, id)) = tx.table(CALL_NOTIFICATIONS)?.remove(call_id)?.map(|v| {
        let (u, i) = v.value();
        (u.to_owned(), i.to_owned())
    }) else {
        return Ok(());
    };
    let found: Option<Notification> =
        get(&tx.read(NOTIFICATIONS)?, (user_id.as_str(), id.as_str()))?;
    if let Some(mut n) = found
        && read_one_tx(tx, &mut n, tx.now_ms())?
    {
        bump_unread(tx, &user_id, -1)?;
    }
    Ok(())
}

/// Ids one `read` may name, at most.
pub const READ_IDS_MAX: usize = 500;

/// Marks notifications read (the given ids, or all); returns the unread count.
pub async fn mark_read(ctx: &Ctx, user_id: &str, ids: Option<Vec<String>>) -> AppResult<u64> {
    let ids = ids.map(|mut ids| {
        ids.sort();
        ids.dedup();
        ids
    });
    if ids.as_ref().is_some_and(|ids| ids.len() > READ_IDS_MAX) {
        return Err(AppError::validation(format!(
            "at most {READ_IDS_MAX} ids at once"
        )));
    }
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            let now = tx.now_ms();
            let targets: Vec<Notification> = match ids.clone() {
                Some(ids) => {
                    let t = tx.read(NOTIFICATIONS)?;
                    let mut out = Vec::new();
                    for id in ids {
                        out.extend(get::<(&str, &str), Notification>(
                            &t,
                            (user_id.as_str(), id.as_str()),
                        )?);
                    }
                    out
                }
                None => {
                    let unread = tx.read(UNREAD_IDS)?;
                    let all = tx.read(NOTIFICATIONS)?;
                    let mut out = Vec::new();
                    for row in
                        unread.range((user_id.as_str(), "")..(user_id.as_str(), "\u{10ffff}"))?
                    {
                        let row = row?;
                        let key = row.0.value();
                        out.extend(get::<(&str, &str), Notification>(&all, key)?);
                    }
                    out
                }
            };
            let mut read = 0;
            for mut n in targets {
                read += i64::from(read_one_tx(tx, &mut n, now)?);
            }
            bump_unread(tx, &user_id, -read)
        })
        .await
}

/// A user's notifications, newest first, before the id `before`.
pub fn list(
    rtx: &ReadTransaction,
    user_id: &str,
    before: Option<&str>,
    limit: usize,
) -> AppResult<(Vec<Notification>, u64)> {
    let t = rtx.open_table(NOTIFICATIONS)?;
    let end = before.unwrap_or("\u{10ffff}");
    let mut out = Vec::new();
    for row in t.range((user_id, "")..(user_id, end))?.rev().take(limit) {
        out.push(dec(row?.1.value())?);
    }
    let unread = rtx
        .open_table(UNREAD)?
        .get(user_id)?
        .map_or(0, |v| v.value());
    Ok((out, unread))
}

/// One page of a user's notifications, newest first, before the id `before`, and the unread
/// count ([`list`] in its own read).
pub async fn page(
    ctx: &Ctx,
    user_id: &str,
    before: Option<String>,
    limit: usize,
) -> AppResult<(Vec<Notification>, u64)> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| list(rtx, &uid, before.as_deref(), limit))
        .await
}

/// Changes preferences; `None` leaves a field as it is. Returns the result.
pub async fn update_preferences(
    ctx: &Ctx,
    user_id: &str,
    muted_push: Option<Vec<Kind>>,
    muted_email: Option<Vec<Kind>>,
    email_unsubscribed: Option<bool>,
) -> AppResult<Preferences> {
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            let mut p = preferences_tx(tx, &user_id)?;
            if let Some(v) = &muted_push {
                p.muted_push = v.clone();
            }
            if let Some(v) = &muted_email {
                p.muted_email = v.clone();
            }
            if let Some(v) = email_unsubscribed {
                p.email_unsubscribed = v;
            }
            put(&mut tx.table(PREFERENCES)?, user_id.as_str(), &p)?;
            Ok(p)
        })
        .await
}

/// The unsubscribe link of `user_id`'s emails.
pub fn unsubscribe_url(ctx: &Ctx, user_id: &str) -> AppResult<String> {
    let token = ctx.tokens.issue_for(UNSUBSCRIBE, user_id)?;
    Ok(format!(
        "{}/v1/email/unsubscribe?token={token}",
        ctx.config
            .notifications
            .public_base_url
            .trim_end_matches('/')
    ))
}

/// The audience of unsubscribe tokens.
pub const UNSUBSCRIBE: &str = "email-unsubscribe";

/// Unsubscribes the holder of an unsubscribe link from every email.
pub async fn unsubscribe(ctx: &Ctx, token: &str) -> AppResult<()> {
    let user_id = ctx.tokens.verify_for(UNSUBSCRIBE, token)?;
    ctx.store
        .write(move |tx| {
            let mut prefs = preferences_tx(tx, &user_id)?;
            if !prefs.email_unsubscribed {
                prefs.email_unsubscribed = true;
                put(&mut tx.table(PREFERENCES)?, user_id.as_str(), &prefs)?;
                tx.emit(NewEvent::about(
                    &user_id,
                    NotificationEvent::EmailUnsubscribed {
                        user_id: user_id.clone().into(),
                    },
                ))?;
            }
            Ok(())
        })
        .await
}

/// An admin's message: a title of 1–100 characters, a body of at most 1000.
fn check_message(title: &str, body: &str) -> AppResult<()> {
    if title.trim().is_empty() || title.chars().count() > 100 || body.chars().count() > 1000 {
        return Err(AppError::validation(
            "title must be 1–100 characters and body at most 1000",
        ));
    }
    Ok(())
}

/// An admin's `system` notification to every member of a cohort, as they are when the
/// fan-out reaches them (a chunk per write, `delivery::tick`); audited. Returns the job's id
/// and the cohort's size now.
pub async fn broadcast(
    ctx: &Ctx,
    actor: &str,
    cohort_id: &str,
    title: &str,
    body: &str,
) -> AppResult<(String, u64)> {
    check_message(title, body)?;
    let cohort = crate::domains::panel::find(ctx, cohort_id).await?;
    let job = model::Fanout {
        id: crate::core::ids::new_id(),
        streamer_id: String::new(),
        at_ms: ctx.store.now_ms(),
        after: None,
        broadcast: Some(model::Broadcast {
            cohort_id: cohort.id.clone(),
            title: title.to_owned(),
            body: body.to_owned(),
        }),
    };
    let actor = actor.to_owned();
    let id = job.id.clone();
    ctx.store
        .write(move |tx| {
            put(
                &mut tx.table(FANOUTS)?,
                (tx.now_ms(), job.id.as_str()),
                &job,
            )?;
            crate::domains::audit::record_tx(
                tx,
                &actor,
                "notification.broadcast",
                &cohort.id,
                json!({"broadcastId": job.id, "title": job.broadcast.as_ref().map(|b| &b.title)}),
            )
        })
        .await?;
    Ok((id, cohort.members))
}

/// An admin's message to one person (audited by the caller).
pub async fn send_system(
    ctx: &std::sync::Arc<Ctx>,
    actor: &str,
    user_id: &str,
    title: &str,
    body: &str,
) -> AppResult<Notification> {
    check_message(title, body)?;
    let live = ctx.live.is_connected(user_id);
    let owner = ctx.clone();
    let (actor, user_id, title, body) = (
        actor.to_owned(),
        user_id.to_owned(),
        title.to_owned(),
        body.to_owned(),
    );
    ctx.store
        .write(move |tx| {
            user::find_user_tx(tx, &user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            let n = notify_tx(
                tx,
                &owner.delivery,
                Draft {
                    user_id: user_id.clone(),
                    kind: Kind::System,
                    title: title.clone(),
                    body: body.clone(),
                    data: json!({}),
                },
                live,
            )?;
            crate::domains::audit::record_tx(
                tx,
                &actor,
                "notification.send",
                &user_id,
                json!({"notificationId": n.id, "title": title}),
            )?;
            Ok(n)
        })
        .await
}

/// Whether a device's provider takes VoIP pushes.
pub fn is_voip(provider: PushProvider) -> bool {
    provider == PushProvider::ApnsVoip
}

// ---------------------------------------------------------------------------------------------
// Erasure (account deletion).

/// What erasing the person will touch that only a scan finds, found with a read off the
/// writer: other people's notifications about them (with the seq of the event that delivered
/// each), the favorite-online pairs they are in, and the sends to them or about them.
pub struct ErasurePlan {
    about: Vec<(String, String, u64)>,
    /// The last event seq the read saw: notifications delivered after it are looked at again
    /// in the write, through their seq index.
    seen_seq: u64,
    told: Vec<(String, String)>,
    sends: Vec<String>,
    sends_seen_upto: Option<String>,
}

pub fn plan(rtx: &ReadTransaction, user_id: &str) -> AppResult<ErasurePlan> {
    let mut about = Vec::new();
    for row in rtx.open_table(NOTIFICATIONS)?.iter()? {
        let (k, v) = row?;
        let (owner, id) = k.value();
        if owner != user_id && mentions(v.value(), user_id) {
            let n: Notification = dec(v.value())?;
            about.push((owner.to_owned(), id.to_owned(), n.seq));
        }
    }
    let mut told = Vec::new();
    for row in rtx.open_table(FAVORITE_ONLINE_TOLD)?.iter()? {
        let (k, _) = row?;
        let (follower, favorite) = k.value();
        if follower == user_id || favorite == user_id {
            told.push((follower.to_owned(), favorite.to_owned()));
        }
    }
    let (sends, sends_seen_upto) =
        matching_rows(&rtx.open_table(OUTBOX)?, None, |b| Ok(mentions(b, user_id)))?;
    Ok(ErasurePlan {
        about,
        seen_seq: crate::core::events::head_seq(rtx)?,
        told,
        sends,
        sends_seen_upto,
    })
}

/// Erases the person's notifications, preferences and sends (their push tokens and email
/// address; queued ones are cancelled), and what other people were told about them: those
/// notifications keep their kind and ids, and lose their title and text (a name, a message
/// preview) — in the rows, the outbox and the events that delivered them. `own_events`: the
/// events indexed under the person.
pub fn erase_tx(tx: &Tx, user_id: &str, plan: &ErasurePlan, own_events: &[Event]) -> AppResult<()> {
    let own: Vec<Notification> =
        crate::core::store::records_under(&tx.read(NOTIFICATIONS)?, user_id)?;
    for n in &own {
        let key = (user_id, n.id.as_str());
        tx.table(NOTIFICATIONS)?.remove(key)?;
        tx.table(UNREAD_IDS)?.remove(key)?;
        tx.table(BY_SEQ)?.remove(n.seq)?;
        tx.table(DIGEST_PENDING)?.remove(key)?;
        if let Some(due) = n.fallback_due_ms {
            tx.table(FALLBACK_DUE)?
                .remove((due, user_id, n.id.as_str()))?;
        }
        let devices = crate::core::store::second_keys(&tx.read(SENT_TO_DEVICE)?, &n.id)?;
        for d in &devices {
            tx.table(SENT_TO_DEVICE)?
                .remove((n.id.as_str(), d.as_str()))?;
        }
    }
    tx.table(UNREAD)?.remove(user_id)?;
    tx.table(PREFERENCES)?.remove(user_id)?;
    // And the notifications about them delivered since the read (seqs are in order).
    let mut about = plan.about.clone();
    for row in tx.read(BY_SEQ)?.range(plan.seen_seq.saturating_add(1)..)? {
        let (k, v) = row?;
        let (owner, id) = v.value();
        if owner == user_id {
            continue;
        }
        let n: Option<Notification> = get(&tx.read(NOTIFICATIONS)?, (owner, id))?;
        if n.is_some_and(|n| n.data.contains(user_id)) {
            about.push((owner.to_owned(), id.to_owned(), k.value()));
        }
    }
    for (owner, id, seq) in &about {
        let key = (owner.as_str(), id.as_str());
        let found: Option<Notification> = get(&tx.read(NOTIFICATIONS)?, key)?;
        if let Some(mut n) = found {
            (n.title, n.body) = (ERASED.to_owned(), ERASED.to_owned());
            put(&mut tx.table(NOTIFICATIONS)?, key, &n)?;
        }
        erase_delivery_event(tx, *seq)?;
    }
    for (a, b) in &plan.told {
        tx.table(FAVORITE_ONLINE_TOLD)?
            .remove((a.as_str(), b.as_str()))?;
    }
    let (since, _) = matching_rows(&tx.read(OUTBOX)?, plan.sends_seen_upto.as_deref(), |b| {
        Ok(mentions(b, user_id))
    })?;
    for id in plan.sends.iter().chain(&since) {
        let found: Option<Send> = get(&tx.read(OUTBOX)?, id.as_str())?;
        let Some(mut s) = found else { continue };
        if s.user_id == user_id {
            s.address = ERASED.to_owned();
            s.device_id = None;
            s.unsubscribe_url = None;
            if s.state == SendState::Queued {
                tx.table(OUTBOX_DUE)?.remove((s.next_at_ms, id.as_str()))?;
                s.state = SendState::Dead;
                s.last_error = Some("the account was deleted".into());
            }
        }
        (s.title, s.body) = (ERASED.to_owned(), ERASED.to_owned());
        put(&mut tx.table(OUTBOX)?, id.as_str(), &s)?;
    }
    for e in own_events {
        if matches!(
            e.decoded::<NotificationEvent>(),
            Some(NotificationEvent::Notification { .. })
        ) {
            erase_delivery_event(tx, e.seq)?;
        }
    }
    Ok(())
}

/// Blanks the title and text of the `notification` event `seq` (kind and ids stay).
fn erase_delivery_event(tx: &Tx, seq: u64) -> AppResult<()> {
    crate::core::events::rewrite_tx(tx, seq, |payload| {
        for field in ["title", "body"] {
            if let Some(v) = payload.get_mut(field) {
                *v = Value::String(ERASED.to_owned());
            }
        }
    })
}
