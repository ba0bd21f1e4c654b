//! The blocklist domain's events. None is delivered: the blocked person is not told.

use super::BlockReason;

crate::domain_events! {
    pub enum BlockEvent in "blocklist" {
        Blocked = "user_blocked" {
            blocker_id: String,
            blocked_id: String,
            reason: BlockReason,
        }
        Unblocked = "user_unblocked" {
            blocker_id: String,
            blocked_id: String,
        }
        /// A `nudity` block against a streamer recorded a penalty.
        Penalty = "block_penalty" {
            penalty_id: String,
            user_id: String,
            reason: BlockReason,
            by_user_id: String,
        }
    }
}
