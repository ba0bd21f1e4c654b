//! The mission_control domain's events.

use super::payouts::PayoutState;

crate::domain_events! {
    pub enum PayoutEvent in "mission_control" {
        /// A payout request was made or moved on.
        Status = "payout_status" on "account" to "the streamer" {
            payout_id: String,
            state: PayoutState,
            amount: i64,
            reason: Option<String>,
        }
    }
}
