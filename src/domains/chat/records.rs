//! The `chat_records` consumer: gifts and calls from the event log become timeline messages,
//! and new users get chats started with online streamers. Each event is applied exactly once:
//! the messages and the consumer's cursor are written in one transaction.

use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::config::ChatConfig;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Consumer, Event, take_unapplied};
use crate::core::store::{Store, Tx};
use crate::domains::{profile, user};

use super::model::*;
use super::{Draft, append_tx, open_tx};

/// Online streamers the auto-add rule looks at, at most.
const ONLINE_SCAN_MAX: usize = 1000;

pub struct ChatRecords {
    pub store: Store,
    pub config: ChatConfig,
}

const NAME: &str = "chat_records";

fn handles(kind: &str) -> bool {
    matches!(
        kind,
        "gift_sent" | "call_ended" | "call_missed" | "roulette_matched" | "user_signed_up"
    )
}

impl Consumer for ChatRecords {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        if !events.iter().any(|e| handles(&e.kind)) {
            return Ok(());
        }
        let config = self.config.clone();
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, NAME, &events)? {
                    if handles(&e.kind) {
                        apply(tx, e, &config)?;
                    }
                }
                Ok(())
            })
            .await
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

fn apply(tx: &Tx, e: &Event, config: &ChatConfig) -> AppResult<()> {
    let d = &e.data;
    let record = match e.kind.as_str() {
        "gift_sent" => (|| {
            let (from, to) = (text(d, "fromUserId")?, text(d, "toUserId")?);
            let gift = GiftRecord {
                gift_id: text(d, "giftId")?,
                name: text(d, "name")?,
                icon_media_id: text(d, "iconMediaId"),
                price: d["price"].as_i64()?,
            };
            Some((from, to, MessageKind::Gift, Some(gift), None))
        })(),
        "roulette_matched" => (|| {
            let call = CallRecord {
                call_id: text(d, "callId")?,
                kind: "roulette".into(),
                outcome: CallOutcome::Matched,
                duration_seconds: 0,
            };
            Some((
                text(d, "userId")?,
                text(d, "streamerId")?,
                MessageKind::Call,
                None,
                Some(call),
            ))
        })(),
        "call_ended" | "call_missed" => (|| {
            let outcome = match d["state"].as_str()? {
                // Ended before it connected (a block, a moderation decision): it never happened.
                "ended" if d["connected"] == false => CallOutcome::Cancelled,
                "ended" => CallOutcome::Ended,
                "missed" => CallOutcome::Missed,
                "declined" => CallOutcome::Declined,
                "cancelled" => CallOutcome::Cancelled,
                _ => return None,
            };
            let call = CallRecord {
                call_id: text(d, "callId")?,
                kind: text(d, "kind")?,
                outcome,
                duration_seconds: d["durationSeconds"].as_i64().unwrap_or(0),
            };
            Some((
                text(d, "callerId")?,
                text(d, "calleeId")?,
                MessageKind::Call,
                None,
                Some(call),
            ))
        })(),
        "user_signed_up" => return auto_add(tx, e, config),
        _ => None,
    };
    let Some((sender, other, kind, gift, call)) = record else {
        tracing::warn!(seq = e.seq, kind = %e.kind, "an event without the fields a chat record needs; skipped");
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

/// Starts chats between a new user and up to `auto_add_streamers` online streamers, those
/// speaking one of the user's languages first, each with the greeting from the streamer.
fn auto_add(tx: &Tx, e: &Event, config: &ChatConfig) -> AppResult<()> {
    let Some(new_user) = e.subject.clone() else {
        return Ok(());
    };
    if config.auto_add_streamers == 0 {
        return Ok(());
    }
    let languages = profile::languages_tx(tx, &new_user)?;
    let mut candidates: Vec<(bool, u64, String)> = Vec::new();
    for id in user::presence::online_streamers_tx(tx, ONLINE_SCAN_MAX)? {
        let Some(u) = user::find_user_tx(tx, &id)? else {
            continue;
        };
        if u.role != Role::Streamer || u.ban.is_some() || id == new_user {
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
