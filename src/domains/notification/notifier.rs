//! The `notifier` consumer: domain events become notifications, exactly once per event (the
//! notifications and the consumer's cursor are written in one transaction).

use std::sync::Arc;

use redb::ReadableTable;
use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Audience, Consumer, Event, take_unapplied};
use crate::core::ids::new_id;
use crate::core::store::{Tx, put};
use crate::domains::{profile, user};

use super::delivery::Delivery;
use super::model::{Fanout, Kind};
use super::tables::{FANOUTS, FAVORITE_ONLINE_TOLD};
use super::{Draft, notify_tx};

const NAME: &str = "notifier";
/// Characters of a message shown in its notification.
const PREVIEW_CHARS: usize = 100;

pub struct Notifier {
    pub ctx: Arc<Ctx>,
}

fn handles(e: &Event) -> bool {
    match e.kind.as_str() {
        "incoming_call" | "call_missed" | "gift_sent" | "payout_status" => true,
        "chat_message" => e.data["kind"] == "text",
        "presence_changed" => e.data["online"] == true,
        "call_state" => e.data["state"] != "ringing",
        _ => false,
    }
}

impl Consumer for Notifier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        if !events.iter().any(handles) {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        self.ctx
            .store
            .write(move |tx| {
                for e in take_unapplied(tx, NAME, &events)? {
                    if handles(e) {
                        apply(tx, &ctx, e)?;
                    }
                }
                Ok(())
            })
            .await
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn apply(tx: &Tx, ctx: &Ctx, e: &Event) -> AppResult<()> {
    let d = &e.data;
    let name = |id: &str| profile::display_name_tx(tx, id);
    let drafts: Vec<Draft> = match e.kind.as_str() {
        "incoming_call" => vec![Draft {
            user_id: e.subject.clone().unwrap_or_default(),
            kind: Kind::IncomingCall,
            title: "Incoming call".into(),
            body: format!("{} is calling you", name(s(d, "callerId"))?),
            data: json!({"callId": d["callId"], "callerId": d["callerId"]}),
        }],
        "call_missed" => vec![Draft {
            user_id: s(d, "calleeId").to_owned(),
            kind: Kind::MissedCall,
            title: "Missed call".into(),
            body: format!("You missed a call from {}", name(s(d, "callerId"))?),
            data: json!({"callId": d["callId"], "callerId": d["callerId"]}),
        }],
        "gift_sent" => vec![Draft {
            user_id: s(d, "toUserId").to_owned(),
            kind: Kind::GiftReceived,
            title: "You received a gift".into(),
            body: format!(
                "{} sent you {} ({} coins)",
                name(s(d, "fromUserId"))?,
                s(d, "name"),
                d["price"]
            ),
            data: json!({"giftId": d["giftId"], "fromUserId": d["fromUserId"]}),
        }],
        "payout_status" => vec![Draft {
            user_id: e.subject.clone().unwrap_or_default(),
            kind: Kind::PayoutStatus,
            title: "Payout update".into(),
            body: format!("Your payout of {} coins is {}", d["amount"], s(d, "state")),
            data: json!({"payoutId": d["payoutId"], "state": d["state"]}),
        }],
        "chat_message" => {
            let sender = s(d, "senderId");
            let receiver = match &e.audience {
                Audience::Users(members) => members.iter().find(|m| *m != sender).cloned(),
                _ => None,
            };
            // Someone connected reads it on the `chat` topic; only the others are notified.
            match receiver.filter(|r| !ctx.hub.is_connected(r)) {
                Some(receiver) => vec![Draft {
                    user_id: receiver,
                    kind: Kind::NewMessage,
                    title: name(sender)?,
                    body: s(d, "text").chars().take(PREVIEW_CHARS).collect(),
                    data: json!({"chatId": d["chatId"], "senderId": sender, "seq": d["seq"]}),
                }],
                None => vec![],
            }
        }
        "call_state" => {
            super::call_stopped_ringing_tx(tx, s(d, "callId"))?;
            vec![]
        }
        "presence_changed" => {
            favorite_online(tx, s(d, "userId"), e.at_ms)?;
            vec![]
        }
        _ => vec![],
    };
    for draft in drafts {
        if draft.user_id.is_empty() {
            continue;
        }
        let live = ctx.hub.is_connected(&draft.user_id);
        notify_tx(tx, &ctx.delivery, draft, live)?;
    }
    Ok(())
}

/// A streamer came online: a fan-out job tells their followers, in chunks, so a streamer
/// with many followers never holds the writer for long (`delivery::tick` runs it).
fn favorite_online(tx: &Tx, streamer: &str, at_ms: i64) -> AppResult<()> {
    let is_streamer = user::find_user_tx(tx, streamer)?
        .is_some_and(|u| u.role == Role::Streamer && u.ban.is_none());
    if is_streamer {
        let job = Fanout {
            id: new_id(),
            streamer_id: streamer.to_owned(),
            at_ms,
            after: None,
        };
        put(
            &mut tx.table(FANOUTS)?,
            (tx.now_ms(), job.id.as_str()),
            &job,
        )?;
    }
    Ok(())
}

/// Tells one follower that the job's streamer (called `name`) came online, unless they were
/// told within `period_ms`.
pub fn tell_follower_tx(
    tx: &Tx,
    delivery: &Delivery,
    job: &Fanout,
    name: &str,
    period_ms: i64,
    follower: &str,
    live: bool,
) -> AppResult<()> {
    let (streamer, at_ms) = (job.streamer_id.as_str(), job.at_ms);
    let key = (follower, streamer);
    let last = tx.read(FAVORITE_ONLINE_TOLD)?.get(key)?.map(|v| v.value());
    if last.is_some_and(|l| at_ms - l < period_ms) {
        return Ok(());
    }
    tx.table(FAVORITE_ONLINE_TOLD)?.insert(key, at_ms)?;
    notify_tx(
        tx,
        delivery,
        Draft {
            user_id: follower.to_owned(),
            kind: Kind::FavoriteOnline,
            title: format!("{name} is online"),
            body: format!("{name}, one of your favorites, is online now"),
            data: json!({"userId": streamer}),
        },
        live,
    )?;
    Ok(())
}
