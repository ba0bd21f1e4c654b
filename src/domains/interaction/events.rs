//! The interaction domain's events.

crate::domain_events! {
    pub enum InteractionEvent in "interaction" {
        /// `viewer_id` looked at `user_id`'s profile `count` times since the last batch.
        ProfileViewed = "profile_viewed" {
            viewer_id: String,
            user_id: String,
            count: u64,
        }
    }
}
