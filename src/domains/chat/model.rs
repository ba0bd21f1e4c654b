//! What the chat domain stores.

use serde::{Deserialize, Serialize};

use crate::core::ids::{ChatId, UserId};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Gift,
    Call,
    System,
}

/// A gift as recorded in the timeline (stored, and in `chat_message` events; the REST shape
/// is `api::GiftView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GiftRecord {
    pub gift_id: String,
    pub name: String,
    pub icon_media_id: Option<String>,
    pub price: i64,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CallOutcome {
    /// A roulette match: the call is starting.
    Matched,
    /// Connected and over: `durationSeconds` says how long.
    Ended,
    Missed,
    Declined,
    Cancelled,
}

/// A call as recorded in the timeline (stored, and in `chat_message` events; the REST shape
/// is `api::CallView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub call_id: String,
    /// `direct` or `roulette`.
    pub kind: String,
    pub outcome: CallOutcome,
    pub duration_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub chat_id: ChatId,
    pub seq: u64,
    /// Who sent it; for gifts the giver, for calls the caller.
    pub sender_id: UserId,
    pub kind: MessageKind,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub gift: Option<GiftRecord>,
    #[serde(default)]
    pub call: Option<CallRecord>,
    #[serde(default)]
    pub client_message_id: Option<String>,
    pub at_ms: i64,
    #[serde(default)]
    pub deleted_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ChatId,
    /// The two members, lower id first.
    pub members: [UserId; 2],
    pub created_at_ms: i64,
    /// The seq of the newest message (0: none yet).
    pub last_seq: u64,
    pub last_at_ms: i64,
}

impl Conversation {
    pub fn other(&self, user_id: &str) -> &str {
        if self.members[0] == user_id {
            &self.members[1]
        } else {
            &self.members[0]
        }
    }

    pub fn has(&self, user_id: &str) -> bool {
        self.members.iter().any(|m| m == user_id)
    }
}

/// One member's view of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    /// Messages up to this seq are read.
    pub read_upto: u64,
    /// Messages from the other side after `read_upto`, not deleted.
    pub unread: u64,
    /// The conversation's last activity as indexed in the inbox.
    pub inbox_ms: i64,
}
