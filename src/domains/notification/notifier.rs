//! The `notifier` consumer: domain events become notifications, exactly once per event (the
//! notifications and the consumer's cursor are written in one transaction).

use std::sync::Arc;

use redb::ReadableTable;
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::AppResult;
use crate::core::events::{Audience, Consumer, Event, take_unapplied};
use crate::core::ids::new_id;
use crate::core::store::{Tx, put};
use crate::domains::chat::events::ChatEvent;
use crate::domains::chat::model::MessageKind;
use crate::domains::gift::events::GiftEvent;
use crate::domains::media::events::MediaEvent;
use crate::domains::media::model::{MediaKind, MediaStatus};
use crate::domains::mission_control::events::{KycEvent, PayoutEvent, ReportEvent};
use crate::domains::mission_control::kyc::KycState;
use crate::domains::user::events::UserEvent;
use crate::domains::video::events::CallEvent;
use crate::domains::video::model::CallState;
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

/// What the owner is told of a moderation decision: a rejection, whoever made it, and an
/// approval by a moderator (the item waited for one). A classifier's approval comes as the
/// upload finishes and is not news; neither is an item queued.
fn moderation_news(e: &MediaEvent) -> Option<(&'static str, String)> {
    let MediaEvent::Moderated {
        kind,
        status,
        by,
        reason,
        ..
    } = e
    else {
        return None;
    };
    let what = match kind {
        MediaKind::Video => "video",
        _ => "photo",
    };
    match status {
        MediaStatus::Rejected => Some((
            "Upload rejected",
            match reason {
                Some(r) => format!("Your {what} was rejected: {r}"),
                None => format!("Your {what} was rejected"),
            },
        )),
        MediaStatus::Approved if by != crate::domains::media::moderation::BY_CLASSIFIER => {
            Some(("Upload approved", format!("Your {what} was approved")))
        }
        _ => None,
    }
}

/// Whether an event may make notifications (a cheap check before decoding it).
fn handles(e: &Event) -> bool {
    // Decoding is cheap next to a commit: only the kinds that notify cost a write.
    e.decoded::<CallEvent>().is_some_and(|c| match c {
        CallEvent::Incoming { .. } | CallEvent::Missed { .. } => true,
        CallEvent::State { state, .. } => state != CallState::Ringing,
        _ => false,
    }) || e.is::<GiftEvent>()
        || e.is::<PayoutEvent>()
        || e.decoded::<ReportEvent>()
            .is_some_and(|r| matches!(r, ReportEvent::Warned { .. }))
        || e.decoded::<KycEvent>()
            .is_some_and(|KycEvent::Status { state, .. }| state != KycState::Pending)
        || e.decoded::<MediaEvent>()
            .is_some_and(|m| moderation_news(&m).is_some())
        || e.decoded::<ChatEvent>().is_some_and(|c| {
            matches!(
                c,
                ChatEvent::Message {
                    kind: MessageKind::Text,
                    ..
                }
            )
        })
        || e.decoded::<UserEvent>()
            .is_some_and(|u| matches!(u, UserEvent::PresenceChanged { online: true, .. }))
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

fn apply(tx: &Tx, ctx: &Ctx, e: &Event) -> AppResult<()> {
    let name = |id: &str| profile::display_name_tx(tx, id);
    let mut drafts: Vec<Draft> = Vec::new();
    if let Some(call) = e.decoded::<CallEvent>() {
        match call {
            CallEvent::Incoming {
                call_id, caller_id, ..
            } => drafts.push(Draft {
                user_id: e.subject.clone().unwrap_or_default(),
                kind: Kind::IncomingCall,
                title: "Incoming call".into(),
                body: format!("{} is calling you", name(&caller_id)?),
                data: json!({"callId": call_id, "callerId": caller_id}),
            }),
            CallEvent::Missed { summary } => drafts.push(Draft {
                user_id: summary.callee_id.clone().into(),
                kind: Kind::MissedCall,
                title: "Missed call".into(),
                body: format!("You missed a call from {}", name(&summary.caller_id)?),
                data: json!({"callId": summary.call_id, "callerId": summary.caller_id}),
            }),
            CallEvent::State { call_id, state, .. } if state != CallState::Ringing => {
                super::call_stopped_ringing_tx(tx, &call_id)?;
            }
            _ => {}
        }
    } else if let Some(GiftEvent::Sent {
        gift_id,
        name: gift_name,
        price,
        from_user_id,
        to_user_id,
        ..
    }) = e.decoded()
    {
        drafts.push(Draft {
            user_id: to_user_id.into(),
            kind: Kind::GiftReceived,
            title: "You received a gift".into(),
            body: format!(
                "{} sent you {gift_name} ({price} coins)",
                name(&from_user_id)?
            ),
            data: json!({"giftId": gift_id, "fromUserId": from_user_id}),
        });
    } else if let Some(PayoutEvent::Status {
        payout_id,
        state,
        amount,
        ..
    }) = e.decoded()
    {
        drafts.push(Draft {
            user_id: e.subject.clone().unwrap_or_default(),
            kind: Kind::PayoutStatus,
            title: "Payout update".into(),
            body: format!("Your payout of {amount} coins is {}", state.as_str()),
            data: json!({"payoutId": payout_id, "state": state}),
        });
    } else if let Some(m) = e.decoded::<MediaEvent>()
        && let Some((title, body)) = moderation_news(&m)
        && let MediaEvent::Moderated {
            media_id,
            owner_id,
            kind,
            status,
            reason,
            ..
        } = m
    {
        drafts.push(Draft {
            user_id: owner_id.into(),
            kind: Kind::MediaModerated,
            title: title.into(),
            body,
            data: json!({"mediaId": media_id, "kind": kind, "status": status, "reason": reason}),
        });
    } else if let Some(ReportEvent::Warned {
        user_id,
        target_kind,
        target_id,
        note,
    }) = e.decoded()
    {
        drafts.push(Draft {
            user_id: user_id.into(),
            kind: Kind::ModerationWarning,
            title: "A warning from our moderators".into(),
            body: note,
            data: json!({"targetKind": target_kind, "targetId": target_id}),
        });
    } else if let Some(KycEvent::Status {
        case_id,
        streamer_id,
        state,
        reason,
    }) = e.decoded()
        && state != KycState::Pending
    {
        let body = match (&reason, state) {
            (_, KycState::Verified) => "Your identity is verified: you can request payouts.".into(),
            (Some(r), _) => format!("Your identity documents were not accepted: {r}"),
            (None, _) => "Your identity documents were not accepted.".into(),
        };
        drafts.push(Draft {
            user_id: streamer_id.into(),
            kind: Kind::KycStatus,
            title: "Identity verification".into(),
            body,
            data: json!({"caseId": case_id, "state": state}),
        });
    } else if let Some(ChatEvent::Message {
        kind: MessageKind::Text,
        chat_id,
        seq,
        sender_id,
        text,
        ..
    }) = e.decoded()
    {
        let receiver = match &e.audience {
            Audience::Users(members) => members.iter().find(|m| **m != sender_id).cloned(),
            _ => None,
        };
        // Someone connected reads it on the `chat` topic; only the others are notified.
        if let Some(receiver) = receiver.filter(|r| !ctx.live.is_connected(r)) {
            drafts.push(Draft {
                user_id: receiver.into(),
                kind: Kind::NewMessage,
                title: name(&sender_id)?,
                body: text
                    .unwrap_or_default()
                    .chars()
                    .take(PREVIEW_CHARS)
                    .collect(),
                data: json!({"chatId": chat_id, "senderId": sender_id, "seq": seq}),
            });
        }
    } else if let Some(UserEvent::PresenceChanged {
        user_id,
        online: true,
        ..
    }) = e.decoded()
    {
        favorite_online(tx, &user_id, e.at_ms)?;
    }
    for draft in drafts {
        if draft.user_id.is_empty() {
            continue;
        }
        let live = ctx.live.is_connected(&draft.user_id);
        notify_tx(tx, &ctx.delivery, draft, live)?;
    }
    Ok(())
}

/// A streamer came online: a fan-out job tells their followers, in chunks, so a streamer
/// with many followers never holds the writer for long (`delivery::tick` runs it).
fn favorite_online(tx: &Tx, streamer: &str, at_ms: i64) -> AppResult<()> {
    let is_streamer = user::find_user_tx(tx, streamer)?
        .is_some_and(|u| u.role == Role::Streamer && u.is_reachable(tx.now_ms()));
    if is_streamer {
        let job = Fanout {
            id: new_id(),
            streamer_id: streamer.to_owned(),
            at_ms,
            after: None,
            broadcast: None,
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
