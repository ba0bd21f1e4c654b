//! The agency domain's tables.

crate::tables! {
    /// agency id → Agency.
    AGENCIES: &str => &[u8] = "agency_by_id";
    /// streamer id → agency id: at most one agency per streamer.
    AGENCY_OF_STREAMER: &str => &str = "agency_of_streamer";
    /// (agency id, streamer id) → joined at ms: an agency's streamers.
    AGENCY_STREAMERS: (&str, &str) => i64 = "agency_streamer";
    /// manager user id → agency id.
    AGENCY_BY_MANAGER: &str => &str = "agency_by_manager";
}
