//! The gallery's live signal.

use crate::core::ids::UserId;

crate::domain_events! {
    /// What changed among the profiles feeds show.
    pub enum GalleryEvent in "gallery" {
        /// At most once a second, to every connection subscribed to `gallery` (never in the
        /// log): shown profiles that went offline, became busy or free, and those newly
        /// available (a client refreshes its first page to see them where they rank).
        Changed = "gallery_changed" on "gallery" to "everyone", ephemeral {
            offline: Vec<UserId>,
            busy: Vec<UserId>,
            free: Vec<UserId>,
            available: Vec<UserId>,
            /// More changed than one signal lists: refresh the feed.
            refresh: bool,
        }
    }
}
