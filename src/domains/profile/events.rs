//! The profile domain's events.

use super::api::PublicProfile;

crate::domain_events! {
    pub enum ProfileEvent in "profile" {
        /// The public profile changed; it carries the public shape only.
        Updated = "profile_updated" on "account" to "the profile's owner" {
            profile: PublicProfile,
        }
    }
}
