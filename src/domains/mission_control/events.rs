//! The mission_control domain's events.

use super::kyc::KycState;
use super::payouts::PayoutState;
use super::reports::TargetKind;
use crate::core::ids::UserId;
use crate::domains::blocklist::BlockReason;

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

crate::domain_events! {
    pub enum ReportEvent in "mission_control" {
        /// Someone reported an item (the log only: the reported person is not told).
        Filed = "report_filed" {
            report_id: String,
            target_kind: TargetKind,
            target_id: String,
            owner_id: UserId,
            reason: BlockReason,
        }
        /// A moderator warned the owner of a reported item.
        Warned = "user_warned" on "account" to "the warned user" {
            user_id: UserId,
            target_kind: TargetKind,
            target_id: String,
            note: String,
        }
    }
}

crate::domain_events! {
    pub enum KycEvent in "mission_control" {
        /// A KYC case was submitted, verified or rejected.
        Status = "kyc_status" on "account" to "the streamer" {
            case_id: String,
            streamer_id: UserId,
            state: KycState,
            reason: Option<String>,
        }
    }
}
