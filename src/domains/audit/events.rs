//! The audit domain's events.

crate::domain_events! {
    pub enum AuditEvent in "audit" {
        /// An admin (or automatic) action, as recorded in the audit log.
        AdminAction = "admin_action" {
            actor: String,
            /// e.g. `user.ban`, `tariff.save`.
            action: String,
            target: String,
            detail: serde_json::Value,
        }
    }
}
