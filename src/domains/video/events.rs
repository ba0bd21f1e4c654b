//! The video domain's events.

use super::model::{CallState, EndReason};
use crate::core::ids::{CallId, UserId};
use crate::domains::billing::model::CallKind;

crate::domain_events! {
    pub enum CallEvent in "video" {
        /// A call changed state.
        State = "call_state" on "calls" to "both participants" {
            call_id: CallId,
            state: CallState,
            kind: CallKind,
            caller_id: UserId,
            callee_id: UserId,
            charged: i64,
            earned: i64,
            end_reason: Option<EndReason>,
        }
        /// Someone is calling the callee.
        Incoming = "incoming_call" on "calls" to "the callee" {
            call_id: CallId,
            caller_id: UserId,
            kind: CallKind,
        }
        /// The payer's wallet cannot cover the next checkpoint: the call ends there.
        BalanceLow = "balance_low" on "calls" to "the payer" {
            call_id: CallId,
            at_seconds: u64,
            coins: i64,
            balance: i64,
        }
        /// The roulette matcher paired a user with a streamer.
        RouletteMatched = "roulette_matched" on "calls" to "both participants" {
            call_id: CallId,
            user_id: UserId,
            streamer_id: UserId,
        }
        /// A call is over (any final state but missed).
        Ended = "call_ended" {
            #[serde(flatten)]
            summary: CallSummary,
        }
        /// Nobody answered before the ring timeout.
        Missed = "call_missed" {
            #[serde(flatten)]
            summary: CallSummary,
        }
    }
}

/// What a finished call was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    pub call_id: CallId,
    pub kind: CallKind,
    pub caller_id: UserId,
    pub callee_id: UserId,
    pub state: CallState,
    pub duration_seconds: i64,
    pub charged: i64,
    pub earned: i64,
    pub reason: Option<EndReason>,
    /// Whether both sides ever joined.
    pub connected: bool,
}
