//! chat: one conversation per pair of people, a timeline of text, gift, call and system
//! messages with a per-conversation sequence, read positions and unread counts, idempotent
//! sends (a client message id), typing indicators relayed over the WebSocket (never stored),
//! and live delivery on the `chat` topic. Gift and call records are written by the
//! `chat_records` consumer from the event log, exactly once per event; new users get chats
//! started with online streamers (`records::auto_add`).

pub mod api;
pub mod events;
pub mod model;
pub mod records;
mod tables;
pub use tables::TABLES;

use redb::{ReadTransaction, ReadableTable};

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, Event, NewEvent};
use crate::core::ids::new_id;
use crate::core::rate_limit::Throttle;
use crate::core::store::{Reads, Tx, dec, get, newest_first, put};
use crate::domains::blocklist;
use crate::domains::user;
use events::ChatEvent;
use model::*;
use tables::*;

/// Longest text message, in characters.
pub const TEXT_CHARS_MAX: usize = 2000;
/// Longest client message id.
pub const CLIENT_ID_CHARS_MAX: usize = 100;
/// Messages one `read` recounts at most; older unread ones are counted as read.
const RECOUNT_MAX: usize = 10_000;

/// The pair's key in `CONVERSATION_BY_PAIR`: lower id first.
fn pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

pub fn conversation_tx(tx: &Tx, id: &str) -> AppResult<Conversation> {
    get(&tx.read(CONVERSATIONS)?, id)?.ok_or_else(|| AppError::not_found("no such chat"))
}

/// The conversation between two people, started if there is none.
pub fn open_tx(tx: &Tx, a: &str, b: &str) -> AppResult<Conversation> {
    let key = pair(a, b);
    let existing = tx
        .read(CONVERSATION_BY_PAIR)?
        .get(key)?
        .map(|v| v.value().to_owned());
    if let Some(id) = existing {
        return conversation_tx(tx, &id);
    }
    let conv = Conversation {
        id: new_id().into(),
        members: [key.0.into(), key.1.into()],
        created_at_ms: tx.now_ms(),
        last_seq: 0,
        last_at_ms: tx.now_ms(),
    };
    put(&mut tx.table(CONVERSATIONS)?, conv.id.as_str(), &conv)?;
    tx.table(CONVERSATION_BY_PAIR)?
        .insert(key, conv.id.as_str())?;
    for m in &conv.members {
        let membership = Membership {
            inbox_ms: conv.last_at_ms,
            ..Membership::default()
        };
        put(
            &mut tx.table(MEMBERSHIPS)?,
            (m.as_str(), conv.id.as_str()),
            &membership,
        )?;
        tx.table(INBOX)?
            .insert((m.as_str(), conv.last_at_ms, conv.id.as_str()), ())?;
    }
    Ok(conv)
}

/// What a new message holds besides its place in the timeline.
pub struct Draft {
    pub sender_id: String,
    pub kind: MessageKind,
    pub text: Option<String>,
    pub gift: Option<GiftRecord>,
    pub call: Option<CallRecord>,
    pub client_message_id: Option<String>,
}

/// A message as events and the WebSocket carry it (times in unix ms).
pub fn message_event(m: &Message) -> ChatEvent {
    ChatEvent::Message {
        chat_id: m.chat_id.clone(),
        seq: m.seq,
        sender_id: m.sender_id.clone(),
        kind: m.kind,
        text: m.text.clone(),
        gift: m.gift.clone(),
        call: m.call.clone(),
        client_message_id: m.client_message_id.clone(),
        at: m.at_ms,
        deleted: m.deleted_at_ms.is_some(),
    }
}

/// Appends a message to the conversation: the next seq, both members' inbox order, the other
/// member's unread count, and a `chat_message` event to both on `chat`.
pub fn append_tx(tx: &Tx, conv: &mut Conversation, draft: Draft) -> AppResult<Message> {
    let now = tx.now_ms();
    conv.last_seq += 1;
    conv.last_at_ms = now;
    let msg = Message {
        chat_id: conv.id.clone(),
        seq: conv.last_seq,
        sender_id: draft.sender_id.into(),
        kind: draft.kind,
        text: draft.text,
        gift: draft.gift,
        call: draft.call,
        client_message_id: draft.client_message_id,
        at_ms: now,
        deleted_at_ms: None,
    };
    put(&mut tx.table(MESSAGES)?, (conv.id.as_str(), msg.seq), &msg)?;
    put(&mut tx.table(CONVERSATIONS)?, conv.id.as_str(), &*conv)?;
    for m in &conv.members {
        let key = (m.as_str(), conv.id.as_str());
        let mut membership: Membership = get(&tx.read(MEMBERSHIPS)?, key)?.unwrap_or_default();
        let mut inbox = tx.table(INBOX)?;
        inbox.remove((m.as_str(), membership.inbox_ms, conv.id.as_str()))?;
        inbox.insert((m.as_str(), now, conv.id.as_str()), ())?;
        membership.inbox_ms = now;
        if *m == msg.sender_id {
            // Sending reads everything before it.
            membership.read_upto = msg.seq;
            membership.unread = 0;
        } else {
            membership.unread += 1;
        }
        put(&mut tx.table(MEMBERSHIPS)?, key, &membership)?;
    }
    tx.emit(
        NewEvent::about(&msg.sender_id, message_event(&msg))
            .to(Audience::Users(conv.members.to_vec())),
    )?;
    Ok(msg)
}

/// Sends a text message from `sender_id` to `to`; a retry with the same client message id
/// returns the first message.
pub async fn send_text(
    ctx: &Ctx,
    sender_id: &str,
    to: &str,
    client_message_id: &str,
    text: &str,
) -> AppResult<Message> {
    if sender_id == to {
        return Err(AppError::validation("you cannot message yourself"));
    }
    let text = crate::core::text::nfc(text);
    let text = text.as_str();
    let chars = text.chars().count();
    // Only spaces or only invisible characters make an empty-looking message.
    if !crate::core::text::has_visible(text) || chars > TEXT_CHARS_MAX {
        return Err(AppError::validation(format!(
            "text must be 1–{TEXT_CHARS_MAX} characters and not only spaces"
        )));
    }
    let client_id = crate::core::text::Text::<1, CLIENT_ID_CHARS_MAX>::parse(
        "clientMessageId",
        client_message_id,
    )?;
    let client_id = client_id.as_str();
    let per_minute = u64::from(ctx.config.chat.messages_per_minute);
    let (sender, to, client_id, text) = (
        sender_id.to_owned(),
        to.to_owned(),
        client_id.to_owned(),
        text.to_owned(),
    );
    ctx.store
        .write(move |tx| {
            let done = tx
                .read(CLIENT_MESSAGE_IDS)?
                .get((sender.as_str(), client_id.as_str()))?
                .map(|v| {
                    let (c, s) = v.value();
                    (c.to_owned(), s)
                });
            if let Some((chat, seq)) = done {
                if conversation_tx(tx, &chat)?.other(&sender) != to {
                    return Err(AppError::conflict(
                        "this clientMessageId was used for a message to someone else",
                    ));
                }
                return get(&tx.read(MESSAGES)?, (chat.as_str(), seq))?.ok_or_else(|| {
                    AppError::internal("a recorded client message id has no message")
                });
            }
            let receiver = user::find_user_tx(tx, &to)?
                .filter(|u| u.is_reachable(tx.now_ms()))
                .ok_or_else(|| AppError::not_found("no such user"))?;
            blocklist::refuse_if_blocked_tx(tx, &sender, &receiver.id)?;
            let now = tx.now_ms();
            let mut throttle: Throttle =
                get(&tx.read(SEND_THROTTLE)?, sender.as_str())?.unwrap_or_default();
            if let Some(wait) = throttle.wait_ms(now, 60_000, per_minute) {
                return Err(AppError::rate_limited((wait as u64).div_ceil(1000)));
            }
            throttle.record(now, 60_000);
            put(&mut tx.table(SEND_THROTTLE)?, sender.as_str(), &throttle)?;
            let mut conv = open_tx(tx, &sender, &to)?;
            let msg = append_tx(
                tx,
                &mut conv,
                Draft {
                    sender_id: sender.clone(),
                    kind: MessageKind::Text,
                    text: Some(text.clone()),
                    gift: None,
                    call: None,
                    client_message_id: Some(client_id.clone()),
                },
            )?;
            tx.table(CLIENT_MESSAGE_IDS)?.insert(
                (sender.as_str(), client_id.as_str()),
                (conv.id.as_str(), msg.seq),
            )?;
            Ok(msg)
        })
        .await
}

/// Marks the conversation read up to `upto_seq` for `user_id` (never backwards) and tells both
/// members (`chat_read`, the other side's read receipt).
pub async fn mark_read(
    ctx: &Ctx,
    user_id: &str,
    chat_id: &str,
    upto_seq: u64,
) -> AppResult<Membership> {
    let (user_id, chat_id) = (user_id.to_owned(), chat_id.to_owned());
    ctx.store
        .write(move |tx| {
            let conv = conversation_tx(tx, &chat_id)?;
            if !conv.has(&user_id) {
                return Err(AppError::not_found("no such chat"));
            }
            let key = (user_id.as_str(), chat_id.as_str());
            let mut m: Membership = get(&tx.read(MEMBERSHIPS)?, key)?.unwrap_or_default();
            let upto = upto_seq.min(conv.last_seq);
            if upto <= m.read_upto {
                return Ok(m);
            }
            m.read_upto = upto;
            let mut unread = 0;
            for row in tx
                .read(MESSAGES)?
                .range((chat_id.as_str(), upto + 1)..=(chat_id.as_str(), u64::MAX))?
                .take(RECOUNT_MAX)
            {
                let msg: Message = dec(row?.1.value())?;
                unread += u64::from(msg.sender_id != user_id && msg.deleted_at_ms.is_none());
            }
            m.unread = unread;
            put(&mut tx.table(MEMBERSHIPS)?, key, &m)?;
            tx.emit(
                NewEvent::about(
                    &user_id,
                    ChatEvent::Read {
                        chat_id: chat_id.clone().into(),
                        user_id: user_id.clone().into(),
                        up_to_seq: upto,
                    },
                )
                .to(Audience::Users(conv.members.to_vec())),
            )?;
            Ok(m)
        })
        .await
}

/// Deletes one's own text message: its text is gone, its place in the timeline stays.
pub async fn delete_message(ctx: &Ctx, user_id: &str, chat_id: &str, seq: u64) -> AppResult<()> {
    let (user_id, chat_id) = (user_id.to_owned(), chat_id.to_owned());
    ctx.store
        .write(move |tx| {
            let conv = conversation_tx(tx, &chat_id)?;
            if !conv.has(&user_id) {
                return Err(AppError::not_found("no such chat"));
            }
            let msg: Message = get(&tx.read(MESSAGES)?, (chat_id.as_str(), seq))?
                .ok_or_else(|| AppError::not_found("no such message"))?;
            if msg.sender_id != user_id || msg.kind != MessageKind::Text {
                return Err(AppError::forbidden(
                    "you can delete only your own text messages",
                ));
            }
            blank_tx(tx, &conv, msg)
        })
        .await
}

/// The sender of text message `seq` of `chat_id`, when `reporter` is the other member (what
/// a report of a message needs: only the person it was sent to can report it).
pub fn reportable_message(
    r: &impl Reads,
    reporter: &str,
    chat_id: &str,
    seq: u64,
) -> AppResult<Option<String>> {
    let Some(conv) = get::<&str, Conversation>(&r.read_table(CONVERSATIONS)?, chat_id)? else {
        return Ok(None);
    };
    if !conv.has(reporter) {
        return Ok(None);
    }
    let msg: Option<Message> = get(&r.read_table(MESSAGES)?, (chat_id, seq))?;
    Ok(msg
        .filter(|m| m.kind == MessageKind::Text && m.sender_id != reporter)
        .map(|m| m.sender_id.to_string()))
}

/// A moderator removes text message `seq` of `chat_id` (a report upheld): blanked as if its
/// sender had deleted it. Nothing happens to a message that is gone already.
pub fn remove_message_tx(tx: &Tx, chat_id: &str, seq: u64) -> AppResult<()> {
    let conv = conversation_tx(tx, chat_id)?;
    let msg: Message = get(&tx.read(MESSAGES)?, (chat_id, seq))?
        .ok_or_else(|| AppError::not_found("no such message"))?;
    blank_tx(tx, &conv, msg)
}

/// Blanks a text message (its sender's deletion or a moderator's removal) and tells both
/// members; it no longer counts as unread.
fn blank_tx(tx: &Tx, conv: &Conversation, mut msg: Message) -> AppResult<()> {
    if msg.deleted_at_ms.is_some() {
        return Ok(());
    }
    let (chat_id, seq) = (conv.id.as_str(), msg.seq);
    msg.deleted_at_ms = Some(tx.now_ms());
    msg.text = None;
    put(&mut tx.table(MESSAGES)?, (chat_id, seq), &msg)?;
    let other = conv.other(&msg.sender_id).to_owned();
    let key = (other.as_str(), chat_id);
    let mut m: Membership = get(&tx.read(MEMBERSHIPS)?, key)?.unwrap_or_default();
    if seq > m.read_upto && m.unread > 0 {
        m.unread -= 1;
        put(&mut tx.table(MEMBERSHIPS)?, key, &m)?;
    }
    tx.emit(
        NewEvent::about(
            &msg.sender_id,
            ChatEvent::MessageDeleted {
                chat_id: conv.id.clone(),
                seq,
            },
        )
        .to(Audience::Users(conv.members.to_vec())),
    )?;
    Ok(())
}

/// One line of a user's chat list.
pub struct Summary {
    pub conversation: Conversation,
    pub membership: Membership,
    pub last_message: Option<Message>,
}

/// A user's conversations, most recent activity first, before the `(ms, id)` cursor.
pub fn list(
    rtx: &ReadTransaction,
    user_id: &str,
    before: Option<(i64, String)>,
    limit: usize,
) -> AppResult<Vec<Summary>> {
    let inbox = rtx.open_table(INBOX)?;
    let convs = rtx.open_table(CONVERSATIONS)?;
    let members = rtx.open_table(MEMBERSHIPS)?;
    let messages = rtx.open_table(MESSAGES)?;
    let mut out = Vec::new();
    for (_, chat) in newest_first(&inbox, user_id, before.as_ref(), limit)? {
        let Some(conversation) = get::<&str, Conversation>(&convs, chat.as_str())? else {
            continue;
        };
        let membership = get(&members, (user_id, chat.as_str()))?.unwrap_or_default();
        let last_message = get(&messages, (chat.as_str(), conversation.last_seq))?;
        out.push(Summary {
            conversation,
            membership,
            last_message,
        });
    }
    Ok(out)
}

/// A conversation's messages, newest first, before `before` (a seq).
pub fn history(
    rtx: &ReadTransaction,
    user_id: &str,
    chat_id: &str,
    before: Option<u64>,
    limit: usize,
) -> AppResult<Vec<Message>> {
    let conv: Conversation = get(&rtx.open_table(CONVERSATIONS)?, chat_id)?
        .filter(|c: &Conversation| c.has(user_id))
        .ok_or_else(|| AppError::not_found("no such chat"))?;
    let end = before.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for row in rtx
        .open_table(MESSAGES)?
        .range((conv.id.as_str(), 0)..(conv.id.as_str(), end))?
        .rev()
        .take(limit)
    {
        out.push(dec(row?.1.value())?);
    }
    Ok(out)
}

/// A page of `user_id`'s conversations, most recent activity first, strictly before the
/// `(ms, chat id)` cursor.
pub async fn inbox(
    ctx: &Ctx,
    user_id: &str,
    before: Option<(i64, String)>,
    limit: usize,
) -> AppResult<Vec<Summary>> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| list(rtx, &user_id, before, limit))
        .await
}

/// A page of a conversation's messages, newest first, before the seq `before`; members only.
pub async fn messages(
    ctx: &Ctx,
    user_id: &str,
    chat_id: &str,
    before: Option<u64>,
    limit: usize,
) -> AppResult<Vec<Message>> {
    let (user_id, chat_id) = (user_id.to_owned(), chat_id.to_owned());
    ctx.store
        .read(move |rtx| history(rtx, &user_id, &chat_id, before, limit))
        .await
}

/// The ephemeral `typing` signal from `user_id` in `chat_id`, for the other member's live
/// connections: refused like [`peer`] when `user_id` is not a member or the two are blocked.
pub async fn typing_signal(ctx: &Ctx, user_id: &str, chat_id: &str) -> AppResult<Event> {
    let other = peer(ctx, user_id, chat_id).await?;
    NewEvent::about(
        user_id,
        ChatEvent::Typing {
            chat_id: chat_id.to_owned().into(),
            user_id: user_id.to_owned().into(),
        },
    )
    .to(Audience::Users(vec![other.into()]))
    .into_signal(ctx.store.now_ms())
}

/// The other member of a chat `user_id` is in (for typing indicators); `blocked` when either
/// blocked the other.
async fn peer(ctx: &Ctx, user_id: &str, chat_id: &str) -> AppResult<String> {
    let (user_id, chat_id) = (user_id.to_owned(), chat_id.to_owned());
    ctx.store
        .read(move |rtx| {
            let conv: Conversation = get(&rtx.open_table(CONVERSATIONS)?, chat_id.as_str())?
                .filter(|c: &Conversation| c.has(&user_id))
                .ok_or_else(|| AppError::not_found("no such chat"))?;
            let other = conv.other(&user_id).to_owned();
            blocklist::refuse_if_blocked(rtx, &user_id, &other)?;
            Ok(other)
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Erasure (account deletion).

/// The text messages the person wrote, found with a read off the writer.
pub struct ErasurePlan {
    written: Vec<(String, u64)>,
}

pub fn plan(rtx: &ReadTransaction, user_id: &str) -> AppResult<ErasurePlan> {
    let mut written = Vec::new();
    let messages = rtx.open_table(MESSAGES)?;
    for chat in crate::core::store::second_keys(&rtx.open_table(MEMBERSHIPS)?, user_id)? {
        for row in messages.range((chat.as_str(), 0)..=(chat.as_str(), u64::MAX))? {
            let (k, v) = row?;
            let msg: Message = dec(v.value())?;
            if msg.sender_id == user_id && msg.kind == MessageKind::Text {
                written.push((chat.clone(), k.value().1));
            }
        }
    }
    Ok(ErasurePlan { written })
}

/// Turns every text message the person wrote into a tombstone — the other member sees a
/// deleted message where it was — in the timeline and in its `chat_message` event
/// (`own_events`: the events indexed under the person). Gift and call records stay: they
/// carry no text, and the other member's history keeps its shape.
pub fn erase_tx(tx: &Tx, user_id: &str, plan: &ErasurePlan, own_events: &[Event]) -> AppResult<()> {
    let now = tx.now_ms();
    for (chat, seq) in &plan.written {
        let key = (chat.as_str(), *seq);
        let found: Option<Message> = get(&tx.read(MESSAGES)?, key)?;
        if let Some(mut msg) = found {
            msg.text = None;
            msg.client_message_id = None;
            msg.deleted_at_ms.get_or_insert(now);
            put(&mut tx.table(MESSAGES)?, key, &msg)?;
        }
    }
    let client_ids = crate::core::store::second_keys(&tx.read(CLIENT_MESSAGE_IDS)?, user_id)?;
    let mut t = tx.table(CLIENT_MESSAGE_IDS)?;
    for id in &client_ids {
        t.remove((user_id, id.as_str()))?;
    }
    drop(t);
    tx.table(SEND_THROTTLE)?.remove(user_id)?;
    for e in own_events {
        let Some(ChatEvent::Message {
            sender_id, kind, ..
        }) = e.decoded::<ChatEvent>()
        else {
            continue;
        };
        if sender_id.as_str() == user_id && kind == MessageKind::Text {
            crate::core::events::rewrite_tx(tx, e.seq, |data| {
                data["text"] = serde_json::Value::Null;
                data["clientMessageId"] = serde_json::Value::Null;
                data["deleted"] = serde_json::Value::Bool(true);
            })?;
        }
    }
    Ok(())
}
