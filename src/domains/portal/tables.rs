//! The portal domain's tables.

crate::tables! {
    /// (account owner: a user or an agency, UTC day `YYYY-MM-DD`) → DayStats.
    DAYS: (&str, &str) => &[u8] = "portal_day";
    /// version → RulesVersion: the platform's rules for streamers, every version kept.
    RULES: u64 => &[u8] = "portal_rules";
    /// streamer id → Acceptance: the version they accepted last.
    ACCEPTED: &str => &[u8] = "portal_rules_accepted";
}
