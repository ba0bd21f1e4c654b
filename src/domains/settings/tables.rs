//! The settings domain's tables.

crate::tables! {
    /// platform → minimum app version (string).
    MIN_VERSIONS: &str => &str = "settings_min_version";
    /// flag key → FlagRecord.
    FEATURE_FLAGS: &str => &[u8] = "settings_feature_flag";
}
