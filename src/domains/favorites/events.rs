//! The favorites domain's events.

use crate::core::ids::UserId;

crate::domain_events! {
    pub enum FavoriteEvent in "favorites" {
        Added = "favorite_added" {
            user_id: UserId,
            favorite_id: UserId,
        }
        Removed = "favorite_removed" {
            user_id: UserId,
            favorite_id: UserId,
        }
    }
}
