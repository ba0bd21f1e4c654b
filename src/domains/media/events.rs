//! The media domain's events: uploads, moderation decisions and deletions, delivered to the
//! owner on the `account` topic and read by the gallery (an approved photo is what makes a
//! streamer showable), notifications and the replica.

use super::model::{MediaKind, MediaStatus};
use crate::core::ids::UserId;

crate::domain_events! {
    pub enum MediaEvent in "media" {
        /// A file was stored; photos and clips wait for moderation (`pending`).
        Uploaded = "media_uploaded" on "account" to "the owner" {
            media_id: String,
            owner_id: UserId,
            kind: MediaKind,
            status: MediaStatus,
        }
        /// Moderation decided (or handed the item to people: `queued`). `by` is `classifier`
        /// or the moderator's user id.
        Moderated = "media_moderated" on "account" to "the owner" {
            media_id: String,
            owner_id: UserId,
            kind: MediaKind,
            status: MediaStatus,
            reason: Option<String>,
            by: String,
        }
        /// The owner (or a moderator) deleted the item.
        Deleted = "media_deleted" on "account" to "the owner" {
            media_id: String,
            owner_id: UserId,
            kind: MediaKind,
        }
    }
}
