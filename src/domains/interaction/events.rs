//! The interaction domain's events.

use crate::core::ids::UserId;

crate::domain_events! {
    pub enum InteractionEvent in "interaction" {
        /// `viewer_id` looked at `user_id`'s profile `count` times since the last batch.
        ProfileViewed = "profile_viewed" {
            viewer_id: UserId,
            user_id: UserId,
            count: u64,
        }
    }
}
