//! The `chat_records` consumer: gifts and calls from the event log become timeline messages,
//! and new users get chats started with online streamers. Each event is applied exactly once:
//! the messages and the consumer's cursor are written in one transaction.

use std::hash::{Hash, Hasher};

use crate::config::ChatConfig;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Consumer, Event, take_unapplied};
use crate::core::store::{Store, Tx};
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
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, NAME, &events)? {
                    if handles(e) {
                        apply(tx, e, &config)?;
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

fn apply(tx: &Tx, e: &Event, config: &ChatConfig) -> AppResult<()> {
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
        return auto_add(tx, &user_id, config);
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

/// Starts chats between a new user and up to `auto_add_streamers` online streamers (only those
/// carrying one of `auto_add_tags`, when set), those speaking one of the user's languages
/// first, each with the greeting from the streamer.
fn auto_add(tx: &Tx, new_user: &str, config: &ChatConfig) -> AppResult<()> {
    let new_user = new_user.to_owned();
    if config.auto_add_streamers == 0 {
        return Ok(());
    }
    let languages = profile::languages_tx(tx, &new_user)?;
    let mut candidates: Vec<(bool, u64, String)> = Vec::new();
    for id in user::presence::online_streamers_tx(tx, ONLINE_SCAN_MAX)? {
        let Some(u) = user::find_user_tx(tx, &id)? else {
            continue;
        };
        if u.role != Role::Streamer || !u.is_reachable(tx.now_ms()) || id == new_user {
            continue;
        }
        if !config.auto_add_tags.is_empty()
            && !panel::tags(tx, &id)?
                .iter()
                .any(|t| config.auto_add_tags.contains(t))
        {
            continue;
        }
        let speaks = profile::shares_language(&languages, &profile::languages_tx(tx, &id)?);
        candidates.push((!speaks, spread(&new_user, &id), id));
    }
    candidates.sort();
    for (_, _, streamer) in candidates
        .into_iter()
        .take(config.auto_add_streamers as usize)
    {
        let mut conv = open_tx(tx, &streamer, &new_user)?;
        append_tx(
            tx,
            &mut conv,
            Draft {
                sender_id: streamer,
                kind: MessageKind::System,
                text: Some(config.greeting.clone()),
                gift: None,
                call: None,
                client_message_id: None,
            },
        )?;
    }
    Ok(())
}
