//! The billing domain's events.

use super::model::CallKind;

crate::domain_events! {
    pub enum TariffEvent in "billing" {
        /// A tariff was created or got a new version.
        Changed = "tariff_changed" {
            tariff_id: String,
            version: u32,
            kind: CallKind,
            active: bool,
        }
    }
}
