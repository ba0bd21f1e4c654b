//! The mission_control domain's tables.

crate::tables! {
    /// payout id → Payout.
    PAYOUTS: &str => &[u8] = "payout_by_id";
    /// (state, payout id): the admin's queues.
    PAYOUTS_BY_STATE: (&str, &str) => () = "payout_by_state";
    /// (streamer id, payout id): a streamer's requests.
    PAYOUTS_BY_STREAMER: (&str, &str) => () = "payout_by_streamer";
}
