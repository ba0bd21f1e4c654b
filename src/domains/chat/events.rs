//! The chat domain's events.

use super::model::{CallRecord, GiftRecord, MessageKind};
use crate::core::ids::{ChatId, UserId};

crate::domain_events! {
    pub enum ChatEvent in "chat" {
        /// A message in a conversation (text, gift, call or system record).
        Message = "chat_message" on "chat" to "both members" {
            chat_id: ChatId,
            seq: u64,
            sender_id: UserId,
            kind: MessageKind,
            text: Option<String>,
            gift: Option<GiftRecord>,
            call: Option<CallRecord>,
            client_message_id: Option<String>,
            /// Unix ms.
            at: i64,
            deleted: bool,
        }
        /// A read receipt: `user_id` read everything up to `up_to_seq`.
        Read = "chat_read" on "chat" to "both members" {
            chat_id: ChatId,
            user_id: UserId,
            up_to_seq: u64,
        }
        MessageDeleted = "chat_message_deleted" on "chat" to "both members" {
            chat_id: ChatId,
            seq: u64,
        }
        /// Someone is typing: relayed to the other member's live connections, never stored.
        Typing = "typing" on "chat" to "the other member", ephemeral {
            chat_id: ChatId,
            user_id: UserId,
        }
    }
}
