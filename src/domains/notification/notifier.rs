//! The `notifier` consumer: domain events become notifications, exactly once per event (the
//! notifications and the consumer's cursor are written in one transaction).

use std::sync::Arc;

use redb::ReadableTable;
use serde_json::{Value, json};

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Audience, Consumer, Event, take_unapplied};
use crate::core::store::Tx;
use crate::domains::{favorites, profile, user};

use super::model::Kind;
use super::tables::FAVORITE_ONLINE_TOLD;
use super::{Draft, notify_tx};

const NAME: &str = "notifier";
/// Followers told about one favorite coming online, at most.
const FOLLOWERS_TOLD_MAX: usize = 10_000;
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
        "presence_changed" => favorite_online(tx, ctx, s(d, "userId"), e.at_ms)?,
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

/// A streamer came online: each follower not told within the period hears of it.
fn favorite_online(tx: &Tx, ctx: &Ctx, streamer: &str, at_ms: i64) -> AppResult<Vec<Draft>> {
    let is_streamer = user::find_user_tx(tx, streamer)?
        .is_some_and(|u| u.role == Role::Streamer && u.ban.is_none());
    if !is_streamer {
        return Ok(vec![]);
    }
    let period = ctx.config.notifications.favorite_online_period_secs as i64 * 1000;
    let name = profile::display_name_tx(tx, streamer)?;
    let mut out = Vec::new();
    for follower in favorites::followers_tx(tx, streamer, FOLLOWERS_TOLD_MAX)? {
        let key = (follower.as_str(), streamer);
        let last = tx.read(FAVORITE_ONLINE_TOLD)?.get(key)?.map(|v| v.value());
        if last.is_some_and(|l| at_ms - l < period) {
            continue;
        }
        tx.table(FAVORITE_ONLINE_TOLD)?.insert(key, at_ms)?;
        out.push(Draft {
            user_id: follower.clone(),
            kind: Kind::FavoriteOnline,
            title: format!("{name} is online"),
            body: format!("{name}, one of your favorites, is online now"),
            data: json!({"userId": streamer}),
        });
    }
    Ok(out)
}
