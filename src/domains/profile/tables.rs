//! The profile domain's tables.

crate::tables! {
    /// user id → ProfileRecord (private and public parts together; views split them).
    PROFILES: &str => &[u8] = "profile_by_user";
}
