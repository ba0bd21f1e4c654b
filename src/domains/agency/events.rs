//! The agency domain's events.

use crate::core::ids::UserId;

crate::domain_events! {
    pub enum AgencyEvent in "agency" {
        /// An admin created or changed an agency.
        Saved = "agency_saved" {
            agency_id: String,
            name: String,
            commission_percent: u8,
            manager_id: Option<UserId>,
        }
        /// A streamer joined an agency (or left it: `agencyId` null).
        StreamerAssigned = "agency_streamer_assigned" on "account" to "the streamer" {
            streamer_id: UserId,
            agency_id: Option<String>,
        }
    }
}
