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
            /// `device`, `password`, `external` (Firebase-compatible), `apple`, `google`,
            /// `facebook` or `phone`.
            method: String,
            platform: Option<Platform>,
        }
        /// An existing account got an email address and password.
        EmailLinked = "user_email_linked" {}
        /// A way of signing in was added to the account (its first one at sign-up included).
        IdentityLinked = "user_identity_linked" {
            user_id: UserId,
            /// `device`, `email`, `phone`, `apple`, `google`, `facebook` or `firebase`.
            provider: String,
        }
        /// A way of signing in was removed from the account.
        IdentityUnlinked = "user_identity_unlinked" {
            user_id: UserId,
            provider: String,
        }
        /// The password was set through a reset link; every session was revoked.
        PasswordReset = "user_password_reset" {
            user_id: UserId,
        }
        /// The account will be deleted at `dueMs` unless its owner signs in before.
        DeletionScheduled = "user_deletion_scheduled" {
            user_id: UserId,
            /// Unix ms.
            due_ms: i64,
            /// `owner` or `admin`.
            by: String,
        }
        /// The owner signed in again before the deletion was due.
        DeletionCancelled = "user_deletion_cancelled" {
            user_id: UserId,
        }
        /// The account's personal data is erased everywhere in Duet. Every consumer that keeps a
        /// copy (the replica, ad networks) erases its own on this event.
        Erased = "user_erased" {
            user_id: UserId,
        }
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
