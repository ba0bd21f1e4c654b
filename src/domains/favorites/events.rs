//! The favorites domain's events.

crate::domain_events! {
    pub enum FavoriteEvent in "favorites" {
        Added = "favorite_added" {
            user_id: String,
            favorite_id: String,
        }
        Removed = "favorite_removed" {
            user_id: String,
            favorite_id: String,
        }
    }
}
