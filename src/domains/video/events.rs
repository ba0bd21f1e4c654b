//! The video domain's events.

use super::model::{CallState, EndReason};
use crate::domains::billing::model::CallKind;

crate::domain_events! {
    pub enum CallEvent in "video" {
        /// A call changed state.
        State = "call_state" on "calls" to "both participants" {
            call_id: String,
            state: CallState,
            kind: CallKind,
            caller_id: String,
            callee_id: String,
            charged: i64,
            earned: i64,
            end_reason: Option<EndReason>,
        }
        /// Someone is calling the callee.
        Incoming = "incoming_call" on "calls" to "the callee" {
            call_id: String,
            caller_id: String,
            kind: CallKind,
        }
        /// The payer's wallet cannot cover the next checkpoint: the call ends there.
        BalanceLow = "balance_low" on "calls" to "the payer" {
            call_id: String,
            at_seconds: u64,
            coins: i64,
            balance: i64,
        }
        /// The roulette matcher paired a user with a streamer.
        RouletteMatched = "roulette_matched" on "calls" to "both participants" {
            call_id: String,
            user_id: String,
            streamer_id: String,
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
    pub call_id: String,
    pub kind: CallKind,
    pub caller_id: String,
    pub callee_id: String,
    pub state: CallState,
    pub duration_seconds: i64,
    pub charged: i64,
    pub earned: i64,
    pub reason: Option<EndReason>,
    /// Whether both sides ever joined.
    pub connected: bool,
}
