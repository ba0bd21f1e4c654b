//! The settings domain's events.

crate::domain_events! {
    pub enum SettingsEvent in "settings" {
        /// A minimum app version or a feature flag changed: read settings again.
        Changed = "settings_changed" on "settings" to "everyone" {
            /// `min_version` or `flag`.
            what: String,
            /// The platform or the flag key.
            key: String,
        }
    }
}
