//! REST routes of chat. Live delivery is the WebSocket topic `chat`.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;

use super::Summary;
use super::model::*;

const CHATS_PAGE_MAX: u32 = 100;
const MESSAGES_PAGE_MAX: u32 = 200;

/// A gift as recorded in the timeline.
#[derive(Object)]
#[oai(rename = "GiftRecord", rename_all = "camelCase")]
pub struct GiftView {
    pub gift_id: String,
    pub name: String,
    pub icon_media_id: Option<String>,
    pub price: i64,
}

impl From<GiftRecord> for GiftView {
    fn from(g: GiftRecord) -> Self {
        GiftView {
            gift_id: g.gift_id,
            name: g.name,
            icon_media_id: g.icon_media_id,
            price: g.price,
        }
    }
}

/// A call as recorded in the timeline.
#[derive(Object)]
#[oai(rename = "CallRecord", rename_all = "camelCase")]
pub struct CallView {
    pub call_id: String,
    /// `direct` or `roulette`.
    pub kind: String,
    pub outcome: CallOutcome,
    pub duration_seconds: i64,
}

impl From<CallRecord> for CallView {
    fn from(c: CallRecord) -> Self {
        CallView {
            call_id: c.call_id,
            kind: c.kind,
            outcome: c.outcome,
            duration_seconds: c.duration_seconds,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MessageView {
    pub chat_id: String,
    /// Position in the conversation: 1, 2, 3, …
    pub seq: u64,
    pub sender_id: String,
    pub kind: MessageKind,
    /// Text and system messages; absent once deleted.
    pub text: Option<String>,
    pub gift: Option<GiftView>,
    pub call: Option<CallView>,
    pub client_message_id: Option<String>,
    pub sent_at: OffsetDateTime,
    pub deleted: bool,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            chat_id: m.chat_id.into(),
            seq: m.seq,
            sender_id: m.sender_id.into(),
            kind: m.kind,
            text: m.text,
            gift: m.gift.map(Into::into),
            call: m.call.map(Into::into),
            client_message_id: m.client_message_id,
            sent_at: to_datetime(m.at_ms),
            deleted: m.deleted_at_ms.is_some(),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ChatView {
    pub id: String,
    /// The other member.
    pub with_user_id: String,
    pub last_message: Option<MessageView>,
    pub unread_count: u64,
    /// Messages up to this seq are read by you.
    pub read_up_to_seq: u64,
    pub last_activity_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ChatPage {
    pub items: Vec<ChatView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MessagePage {
    /// Newest first.
    pub items: Vec<MessageView>,
    /// Pass as `before` for older messages; absent on the last page.
    pub next_before: Option<u64>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Chosen by the client, 1–100 characters: a retry with the same id returns the first
    /// message instead of sending a second.
    pub client_message_id: String,
    /// 1–2000 characters.
    pub text: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReadRequest {
    pub up_to_seq: u64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReadState {
    pub chat_id: String,
    pub read_up_to_seq: u64,
    pub unread_count: u64,
}

fn chat_view(user_id: &str, s: Summary) -> ChatView {
    ChatView {
        with_user_id: s.conversation.other(user_id).to_owned(),
        id: s.conversation.id.into(),
        last_message: s.last_message.map(Into::into),
        unread_count: s.membership.unread,
        read_up_to_seq: s.membership.read_upto,
        last_activity_at: to_datetime(s.membership.inbox_ms),
    }
}

pub struct ChatApi;

#[OpenApi(tag = "ApiTags::Social")]
impl ChatApi {
    /// Your conversations, most recent activity first, with the last message and your unread
    /// count. Any role.
    #[oai(path = "/v1/chats", method = "get", operation_id = "chats_list")]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<ChatPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 30, CHATS_PAGE_MAX)?;
        let before = Cursor::time(before.0)?;
        let items = super::inbox(&ctx, &who.user_id, before, limit).await?;
        let next_before = next_page(&items, limit, |s| {
            Cursor::Time(s.membership.inbox_ms, s.conversation.id.to_string())
        });
        Ok(Json(ChatPage {
            items: items
                .into_iter()
                .map(|s| chat_view(&who.user_id, s))
                .collect(),
            next_before,
        }))
    }

    /// A conversation's messages, newest first, before the seq `before`. Any role; members only.
    #[oai(
        path = "/v1/chats/:chat_id/messages",
        method = "get",
        operation_id = "chats_messages"
    )]
    async fn messages(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        chat_id: Path<String>,
        before: Query<Option<u64>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<MessagePage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 50, MESSAGES_PAGE_MAX)?;
        let items = super::messages(&ctx, &who.user_id, &chat_id, before.0, limit).await?;
        // Seqs start at 1: nothing is before the first message.
        let next_before = (items.len() == limit)
            .then(|| items.last().map(|m| m.seq))
            .flatten()
            .filter(|s| *s > 1);
        Ok(Json(MessagePage {
            items: items.into_iter().map(Into::into).collect(),
            next_before,
        }))
    }

    /// Send a text message to someone (the conversation starts with the first one). A retry
    /// with the same `clientMessageId` returns the first message. `blocked` when either blocked
    /// the other; `rate_limited` past `chat.messages_per_minute`. Any role.
    #[oai(
        path = "/v1/chats/:user_id/messages",
        method = "post",
        operation_id = "chats_send"
    )]
    async fn send(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        body: JsonBody<SendMessageRequest>,
    ) -> AppResult<Json<MessageView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let msg = super::send_text(
            &ctx,
            &who.user_id,
            &user_id.0,
            &body.0.client_message_id,
            &body.0.text,
        )
        .await?;
        Ok(Json(msg.into()))
    }

    /// Mark the conversation read up to `upToSeq` (never backwards); the other member gets a
    /// `chat_read` receipt. Any role; members only.
    #[oai(
        path = "/v1/chats/:chat_id/read",
        method = "post",
        operation_id = "chats_read"
    )]
    async fn read(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        chat_id: Path<String>,
        body: JsonBody<ReadRequest>,
    ) -> AppResult<Json<ReadState>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let m = super::mark_read(&ctx, &who.user_id, &chat_id.0, body.0.up_to_seq).await?;
        Ok(Json(ReadState {
            chat_id: chat_id.0,
            read_up_to_seq: m.read_upto,
            unread_count: m.unread,
        }))
    }

    /// Delete one of your own text messages: the text is gone for both, the message stays as
    /// `deleted`. Any role.
    #[oai(
        path = "/v1/chats/:chat_id/messages/:seq",
        method = "delete",
        operation_id = "chats_delete_message"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        chat_id: Path<String>,
        seq: Path<u64>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::delete_message(&ctx, &who.user_id, &chat_id.0, seq.0).await?;
        Ok(NoContent::Done)
    }
}
