//! The blocklist domain's events. None is delivered: the blocked person is not told.

use super::BlockReason;
use crate::core::ids::UserId;

crate::domain_events! {
    pub enum BlockEvent in "blocklist" {
        Blocked = "user_blocked" {
            blocker_id: UserId,
            blocked_id: UserId,
            reason: BlockReason,
        }
        Unblocked = "user_unblocked" {
            blocker_id: UserId,
            blocked_id: UserId,
        }
        /// A `nudity` block against a streamer recorded a penalty.
        Penalty = "block_penalty" {
            penalty_id: String,
            user_id: UserId,
            reason: BlockReason,
            by_user_id: UserId,
        }
    }
}
