//! The user domain's events.

use crate::core::auth::Role;
use crate::core::ids::UserId;
use crate::core::platform::Platform;

crate::domain_events! {
    /// Accounts, sessions, devices, roles, bans and presence.
    pub enum UserEvent in "user" {
        /// A new account exists (any sign-in method).
        SignedUp = "user_signed_up" {
            user_id: UserId,
            /// `device`, `password`, `external` (Firebase-compatible), `apple`, `google` or
            /// `facebook`.
            method: String,
            platform: Option<Platform>,
        }
        /// An existing account got an email address and password.
        EmailLinked = "user_email_linked" {}
        /// A session ended early: signed out, revoked, or its refresh token was reused.
        SessionRevoked = "session_revoked" {
            session_id: String,
            reason: String,
        }
        /// A push token was dropped because its provider said it is no longer registered.
        PushTokenRemoved = "push_token_removed" {
            user_id: UserId,
            device_id: String,
            reason: String,
        }
        RoleChanged = "user_role_changed" {
            user_id: UserId,
            from: Role,
            to: Role,
        }
        /// The account is banned, or suspended until `untilMs`; its connections are closed.
        Banned = "user_banned" on "account" to "the banned user" {
            user_id: UserId,
            reason: String,
            /// For a suspension: when it ends (unix ms). Absent: until lifted.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            until_ms: Option<i64>,
        }
        Unbanned = "user_unbanned" {
            user_id: UserId,
        }
        /// The first connection came up, or the last one went away past the grace period.
        PresenceChanged = "presence_changed" {
            user_id: UserId,
            online: bool,
            /// Unix ms of the change.
            at: i64,
        }
    }
}
