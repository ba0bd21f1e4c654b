//! What the notification domain stores.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Kind {
    IncomingCall,
    MissedCall,
    NewMessage,
    GiftReceived,
    FavoriteOnline,
    PayoutStatus,
    /// A photo or clip was approved by a moderator, or rejected.
    MediaModerated,
    /// A moderator warned the person about something they posted or did (a report upheld).
    ModerationWarning,
    /// The KYC case was verified or rejected.
    KycStatus,
    System,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IncomingCall => "incoming_call",
            Kind::MissedCall => "missed_call",
            Kind::NewMessage => "new_message",
            Kind::GiftReceived => "gift_received",
            Kind::FavoriteOnline => "favorite_online",
            Kind::PayoutStatus => "payout_status",
            Kind::MediaModerated => "media_moderated",
            Kind::ModerationWarning => "moderation_warning",
            Kind::KycStatus => "kyc_status",
            Kind::System => "system",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub user_id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    /// For the app: ids to open (callId, chatId, …), as JSON text.
    pub data: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub read_at_ms: Option<i64>,
    /// When the app confirmed it showed it (`ack`).
    #[serde(default)]
    pub acked_at_ms: Option<i64>,
    /// The event seq it was delivered in-app with.
    pub seq: u64,
    /// When it becomes a push unless acked; `None` once decided.
    #[serde(default)]
    pub fallback_due_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Channel {
    Push,
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum SendState {
    Queued,
    Sending,
    Sent,
    /// The provider said the address is gone; it was removed.
    Unregistered,
    Dead,
}

/// One push to one device, or one email, with its attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Send {
    pub id: String,
    pub notification_id: String,
    pub user_id: String,
    pub channel: Channel,
    /// `fcm`, `apns`, `apns_voip`, `onesignal` or `sendgrid`.
    pub provider: String,
    #[serde(default)]
    pub device_id: Option<String>,
    /// The push token or the email address.
    pub address: String,
    pub kind: Kind,
    /// Push title, or email subject.
    pub title: String,
    /// Push body, or email text.
    pub body: String,
    pub data: String,
    #[serde(default)]
    pub unsubscribe_url: Option<String>,
    pub state: SendState,
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub next_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What someone does not want, per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Preferences {
    pub muted_push: Vec<Kind>,
    pub muted_email: Vec<Kind>,
    /// Unsubscribed from every email (the link in each email).
    pub email_unsubscribed: bool,
}

impl Preferences {
    pub fn wants(&self, channel: Channel, kind: Kind) -> bool {
        match channel {
            Channel::Push => !self.muted_push.contains(&kind),
            Channel::Email => !self.email_unsubscribed && !self.muted_email.contains(&kind),
        }
    }
}

/// One message to many people, a chunk per write: a streamer's followers told that they came
/// online, or an admin's broadcast to a cohort's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fanout {
    pub id: String,
    /// Whose followers are told (empty for a broadcast).
    pub streamer_id: String,
    /// When they came online (when the broadcast was asked for).
    pub at_ms: i64,
    /// The last person handled: `(since, follower)` (newest first) for followers,
    /// `(0, member)` (by id) for a cohort.
    #[serde(default)]
    pub after: Option<(i64, String)>,
    #[serde(default)]
    pub broadcast: Option<Broadcast>,
}

/// An admin's `system` notification to every member of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    pub cohort_id: String,
    pub title: String,
    pub body: String,
}
