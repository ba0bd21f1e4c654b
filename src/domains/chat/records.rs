//! The `chat_records` consumer: gifts and calls from the event log become timeline messages,
//! and new users get chats started with online streamers. Each event is applied exactly once:
//! the messages and the consumer's cursor are written in one transaction.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::config::ChatConfig;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Consumer, Event, take_unapplied};
use crate::core::store::{Reads, Store, Tx};
use crate::domains::billing::model::CallKind;
use crate::domains::gift::events::GiftEvent;
use crate::domains::user::events::UserEvent;
use crate::domains::video::events::{CallEvent, CallSummary};
use crate::domains::video::model::CallState;
use crate::domains::{panel, profile, user};

use super::model::*;
use super::{Draft, append_tx, open_tx};

/// Online streamers the auto-add rule looks at, at most.
const ONLINE_SCAN_MAX: usize = 1000;

pub struct ChatRecords {
    pub store: Store,
    pub config: ChatConfig,
}

const NAME: &str = "chat_records";

/// Whether an event may make a chat record (a cheap check before decoding it).
fn handles(e: &Event) -> bool {
    // Decoding is cheap next to a commit: only the kinds that make records cost a write.
    e.is::<GiftEvent>()
        || e.decoded::<CallEvent>().is_some_and(|c| {
            matches!(
                c,
                CallEvent::RouletteMatched { .. }
                    | CallEvent::Ended { .. }
                    | CallEvent::Missed { .. }
            )
        })
        || e.decoded::<UserEvent>()
            .is_some_and(|u| matches!(u, UserEvent::SignedUp { .. }))
}

impl Consumer for ChatRecords {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        if !events.iter().any(handles) {
            return Ok(());
        }
        let config = self.config.clone();
        // The streamers each new user is offered are chosen in a read first: looking at up to
        // `ONLINE_SCAN_MAX` streamers is work the single writer must not do. The write then
        // checks only the few chosen.
        let new_users: Vec<String> = events
            .iter()
            .filter_map(|e| match e.decoded::<UserEvent>() {
                Some(UserEvent::SignedUp { user_id, .. }) => Some(user_id.into()),
                _ => None,
            })
            .collect();
        let choices: HashMap<String, Vec<String>> =
            if new_users.is_empty() || config.auto_add_streamers == 0 {
                HashMap::new()
            } else {
                let (c, now) = (config.clone(), self.store.now_ms());
                self.store
                    .read(move |rtx| {
                        new_users
                            .into_iter()
                            .map(|u| Ok((u.clone(), auto_add_choice(rtx, &u, &c, now)?)))
                            .collect()
                    })
                    .await?
            };
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, NAME, &events)? {
                    if handles(e) {
                        apply(tx, e, &config, &choices)?;
                    }
                }
                Ok(())
            })
            .await
    }
}

/// The record an event makes: (sender, other member, kind, gift, call).
type Record = (
    String,
    String,
    MessageKind,
    Option<GiftRecord>,
    Option<CallRecord>,
);

fn call_record(summary: &CallSummary) -> Option<Record> {
    let outcome = match summary.state {
        // Ended before it connected (a block, a moderation decision): it never happened.
        CallState::Ended if !summary.connected => CallOutcome::Cancelled,
        CallState::Ended => CallOutcome::Ended,
        CallState::Missed => CallOutcome::Missed,
        CallState::Declined => CallOutcome::Declined,
        CallState::Cancelled => CallOutcome::Cancelled,
        CallState::Ringing | CallState::Connecting | CallState::Connected => return None,
    };
    let call = CallRecord {
        call_id: summary.call_id.clone().into(),
        kind: summary.kind.as_str().to_owned(),
        outcome,
        duration_seconds: summary.duration_seconds,
    };
    Some((
        summary.caller_id.to_string(),
        summary.callee_id.to_string(),
        MessageKind::Call,
        None,
        Some(call),
    ))
}

fn apply(
    tx: &Tx,
    e: &Event,
    config: &ChatConfig,
    choices: &HashMap<String, Vec<String>>,
) -> AppResult<()> {
    let record = if let Some(GiftEvent::Sent {
        gift_id,
        name,
        icon_media_id,
        price,
        from_user_id,
        to_user_id,
        ..
    }) = e.decoded()
    {
        let gift = GiftRecord {
            gift_id,
            name,
            icon_media_id,
            price,
        };
        Some((
            from_user_id.into(),
            to_user_id.into(),
            MessageKind::Gift,
            Some(gift),
            None,
        ))
    } else if let Some(call) = e.decoded::<CallEvent>() {
        match call {
            CallEvent::RouletteMatched {
                call_id,
                user_id,
                streamer_id,
            } => {
                let call = CallRecord {
                    call_id: call_id.into(),
                    kind: CallKind::Roulette.as_str().to_owned(),
                    outcome: CallOutcome::Matched,
                    duration_seconds: 0,
                };
                Some((
                    user_id.into(),
                    streamer_id.into(),
                    MessageKind::Call,
                    None,
                    Some(call),
                ))
            }
            CallEvent::Ended { summary } | CallEvent::Missed { summary } => call_record(&summary),
            _ => None,
        }
    } else if let Some(UserEvent::SignedUp { user_id, .. }) = e.decoded() {
        let chosen = choices.get(user_id.as_str()).map_or(&[][..], |c| &c[..]);
        return auto_add(tx, &user_id, chosen, config);
    } else {
        None
    };
    let Some((sender, other, kind, gift, call)) = record else {
        return Ok(());
    };
    let mut conv = open_tx(tx, &sender, &other)?;
    append_tx(
        tx,
        &mut conv,
        Draft {
            sender_id: sender,
            kind,
            text: None,
            gift,
            call,
            client_message_id: None,
        },
    )?;
    Ok(())
}

/// A stable, per-user order of streamers, so new users are spread across them evenly.
fn spread(user_id: &str, streamer_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (user_id, streamer_id).hash(&mut h);
    h.finish()
}

/// The online streamers a new user's chats would start with, best first: up to twice
/// `auto_add_streamers` (spares for those who leave before the write), among those carrying one
/// of `auto_add_tags` when set, those speaking one of the user's languages first, then in a
/// per-user order that spreads new users evenly.
fn auto_add_choice(
    r: &impl Reads,
    new_user: &str,
    config: &ChatConfig,
    now: i64,
) -> AppResult<Vec<String>> {
    let languages = profile::languages_tx(r, new_user)?;
    let mut candidates: Vec<(bool, u64, String)> = Vec::new();
    for id in user::presence::online_streamers(r, ONLINE_SCAN_MAX)? {
        if id == new_user || !is_offerable(r, &id, now, config)? {
            continue;
        }
        let speaks = profile::shares_language(&languages, &profile::languages_tx(r, &id)?);
        candidates.push((!speaks, spread(new_user, &id), id));
    }
    candidates.sort();
    Ok(candidates
        .into_iter()
        .take(config.auto_add_streamers as usize * 2)
        .map(|(_, _, id)| id)
        .collect())
}

/// Whether a streamer may be offered to new users: a reachable streamer, with one of
/// `auto_add_tags` when set.
fn is_offerable(r: &impl Reads, id: &str, now_ms: i64, config: &ChatConfig) -> AppResult<bool> {
    let Some(u) = user::find_user(r, id)? else {
        return Ok(false);
    };
    if u.role != Role::Streamer || !u.is_reachable(now_ms) {
        return Ok(false);
    }
    Ok(config.auto_add_tags.is_empty()
        || panel::tags(r, id)?
            .iter()
            .any(|t| config.auto_add_tags.contains(t)))
}

/// Starts chats between a new user and up to `auto_add_streamers` of the streamers chosen for
/// them (still offerable now), each with the greeting from the streamer.
fn auto_add(tx: &Tx, new_user: &str, chosen: &[String], config: &ChatConfig) -> AppResult<()> {
    let mut started = 0;
    for streamer in chosen {
        if started == config.auto_add_streamers as usize {
            break;
        }
        if !is_offerable(tx, streamer, tx.now_ms(), config)? {
            continue;
        }
        let mut conv = open_tx(tx, streamer, new_user)?;
        append_tx(
            tx,
            &mut conv,
            Draft {
                sender_id: streamer.clone(),
                kind: MessageKind::System,
                text: Some(config.greeting.clone()),
                gift: None,
                call: None,
                client_message_id: None,
            },
        )?;
        started += 1;
    }
    Ok(())
}
