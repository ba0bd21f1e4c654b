//! Calls as stored.

use serde::{Deserialize, Serialize};

use crate::core::ids::{CallId, UserId};
use crate::domains::billing::model::{CallKind, Schedule, Side};

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
pub enum CallState {
    Ringing,
    Connecting,
    Connected,
    Ended,
    Declined,
    Missed,
    Cancelled,
}

impl CallState {
    pub fn is_over(self) -> bool {
        matches!(
            self,
            CallState::Ended | CallState::Declined | CallState::Missed | CallState::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "ringing",
            CallState::Connecting => "connecting",
            CallState::Connected => "connected",
            CallState::Ended => "ended",
            CallState::Declined => "declined",
            CallState::Missed => "missed",
            CallState::Cancelled => "cancelled",
        }
    }
}

/// Why a call ended.
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
pub enum EndReason {
    Hangup,
    InsufficientBalance,
    MaxDuration,
    /// The server restarted before the call connected.
    ServerRestart,
    /// A participant's connection was gone longer than `calls.connection_lost_secs`.
    ConnectionLost,
    /// A moderator's decision ended it.
    Moderation,
    /// One blocked the other.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub id: CallId,
    pub kind: CallKind,
    pub caller_id: UserId,
    pub callee_id: UserId,
    pub payer_id: UserId,
    pub earner_id: UserId,
    pub state: CallState,
    pub tariff_id: String,
    pub tariff_version: u32,
    /// The tariff's schedules as the call connected with them.
    pub payer_schedule: Schedule,
    pub earner_schedule: Schedule,
    pub created_at_ms: i64,
    #[serde(default)]
    pub connected_at_ms: Option<i64>,
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    #[serde(default)]
    pub end_reason: Option<EndReason>,
    /// Participants who reported joining the media channel.
    #[serde(default)]
    pub joined: Vec<String>,
    /// Coins charged to the payer so far.
    pub charged: i64,
    /// Coins credited to the earner so far.
    pub earned: i64,
    /// The last payer / earner checkpoint billed, in seconds after connect.
    #[serde(default)]
    pub payer_billed_upto: Option<u64>,
    #[serde(default)]
    pub earner_billed_upto: Option<u64>,
    /// The video provider it uses, chosen when it is accepted.
    #[serde(default)]
    pub provider: Option<String>,
    /// The call's scheduled deadlines: (due at ms, timer key in `call_timer`).
    #[serde(default)]
    pub timers: Vec<(i64, String)>,
}

impl Call {
    pub fn other(&self, user_id: &str) -> &str {
        if self.caller_id == user_id {
            &self.callee_id
        } else {
            &self.caller_id
        }
    }

    pub fn payer_side(&self) -> Side {
        if self.payer_id == self.caller_id {
            Side::Caller
        } else {
            Side::Callee
        }
    }

    /// Seconds connected at `now`.
    pub fn seconds_at(&self, now_ms: i64) -> u64 {
        self.connected_at_ms
            .map_or(0, |c| ((now_ms - c).max(0) / 1000) as u64)
    }
}

/// A durable deadline of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The callee did not answer in time.
    Ring,
    /// The next checkpoint of the payer or the earner is due.
    Billing,
    /// The call reached the longest allowed duration.
    MaxDuration,
}

impl Timer {
    pub fn key(self, call_id: &str) -> String {
        let t = match self {
            Timer::Ring => "ring",
            Timer::Billing => "billing",
            Timer::MaxDuration => "max",
        };
        format!("{call_id}:{t}")
    }

    pub fn parse(key: &str) -> Option<(&str, Timer)> {
        let (id, t) = key.rsplit_once(':')?;
        let timer = match t {
            "ring" => Timer::Ring,
            "billing" => Timer::Billing,
            "max" => Timer::MaxDuration,
            _ => return None,
        };
        Some((id, timer))
    }
}
