//! The notification domain's events.

use super::model::Kind;
use crate::core::ids::UserId;

crate::domain_events! {
    pub enum NotificationEvent in "notification" {
        /// An in-app notification; the app answers with `ack {seq}`.
        Notification = "notification" on "notifications" to "the recipient" {
            id: String,
            kind: Kind,
            title: String,
            body: String,
            data: serde_json::Value,
            /// Unix ms.
            at: i64,
        }
        EmailUnsubscribed = "email_unsubscribed" {
            user_id: UserId,
        }
    }
}
