//! The video domain's tables.

crate::tables! {
    /// call id → Call.
    CALLS: &str => &[u8] = "call_by_id";
    /// (user id, call id): a user's calls, for their history.
    CALLS_BY_USER: (&str, &str) => () = "call_by_user";
    /// user id → the call they are in: one call per person at a time.
    ACTIVE_CALLS: &str => &str = "call_active";
    /// user id → the languages they last asked roulette for (reused by `next`).
    ROULETTE_LANGUAGES: &str => &[u8] = "roulette_language";
    /// user id → Waiting: users waiting for a roulette partner.
    ROULETTE_USERS: &str => &[u8] = "roulette_user";
    /// streamer id → Waiting: available streamers not in a call, and since when (the queue).
    ROULETTE_STREAMERS: &str => &[u8] = "roulette_streamer";
    /// streamer id → (): streamers who switched roulette on; they rejoin the queue after each
    /// roulette call.
    ROULETTE_AVAILABLE: &str => () = "roulette_available";
    /// clip id → Clip: streamers' prerecorded videos.
    CLIPS: &str => &[u8] = "video_clip";
    /// provider name → enabled: the admin's switches (absent = enabled).
    PROVIDER_SWITCHES: &str => bool = "video_provider_switch";
    /// (due at ms, `<call id>:<timer>`): durable deadlines of ringing and connected calls.
    CALL_TIMERS: (i64, &str) => () = "call_timer";
}
