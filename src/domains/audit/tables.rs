//! The audit domain's tables.

crate::tables! {
    /// audit id (time-ordered) → AuditRecord.
    AUDIT_LOG: &str => &[u8] = "audit_log";
}
