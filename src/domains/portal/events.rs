//! The portal domain's events.

use crate::core::ids::UserId;

crate::domain_events! {
    pub enum PortalEvent in "portal" {
        /// An admin published a new version of the rules for streamers.
        RulesPublished = "streamer_rules_published" on "account" to "everyone" {
            version: u64,
        }
        /// A streamer accepted a version of the rules.
        RulesAccepted = "streamer_rules_accepted" {
            streamer_id: UserId,
            version: u64,
        }
    }
}
