//! The gift domain's tables.

crate::tables! {
    /// gift id → Gift.
    GIFTS: &str => &[u8] = "gift_by_id";
}
