//! The user domain's tables.

crate::tables! {
    /// user id → UserRecord.
    USERS: &str => &[u8] = "user_by_id";
    /// `<kind>:<subject>` → Identity: `device:<deviceId>`, `email:<verified, lowercased>`,
    /// `phone:<E.164>`, `apple:<sub>`, `google:<sub>`, `facebook:<app-scoped id>`,
    /// `firebase:<sub>`.
    IDENTITIES: &str => &[u8] = "user_identity";
    /// (user id, identity key): an account's identities.
    IDENTITIES_BY_USER: (&str, &str) => () = "user_identity_by_user";
    /// (email, user id) → expiry (unix ms): accounts that added the email and have not verified
    /// it yet. Any number may claim one email; the first to verify it owns it.
    EMAIL_CLAIMS: (&str, &str) => i64 = "user_email_claim";
    /// SHA-256 of a link's token → LinkToken (email verification, password reset).
    EMAIL_TOKENS: &str => &[u8] = "user_email_token";
    /// (user id, SHA-256 of a link's token): an account's links, so they go with its claims.
    EMAIL_TOKENS_BY_USER: (&str, &str) => () = "user_email_token_by_user";
    /// E.164 number → PhoneChallenge: the one-time code sent to it.
    PHONE_CODES: &str => &[u8] = "user_phone_code";
    /// (due ms, user id): accounts whose deletion is scheduled.
    DELETIONS_DUE: (i64, &str) => () = "user_deletion_due";
    /// `identity_index` → 1 once every identity is in `user_identity_by_user`.
    USER_META: &str => u64 = "user_meta";
    /// session id → SessionRecord.
    SESSIONS: &str => &[u8] = "session_by_id";
    /// (user id, session id): a user's sessions.
    SESSIONS_BY_USER: (&str, &str) => () = "session_by_user";
    /// SHA-256 of a refresh token → RefreshRecord. Tokens themselves are never stored.
    REFRESH_TOKENS: &str => &[u8] = "refresh_token";
    /// (user id, device id) → PushDevice.
    PUSH_DEVICES: (&str, &str) => &[u8] = "push_device";
    /// SHA-256 of a push token → TokenOwner: a token belongs to one device of one user.
    PUSH_TOKEN_OWNERS: &str => &[u8] = "push_token_owner";
    /// user id → PresenceRecord.
    PRESENCE: &str => &[u8] = "user_presence";
    /// user id → (): who is online now (the index behind "online streamers" lists).
    ONLINE_USERS: &str => () = "user_online";
    /// streamer id → (): the streamers among them (chats auto-added for newcomers).
    ONLINE_STREAMERS: &str => () = "user_online_streamer";
    /// attempt id (time-ordered) → LoginAttempt.
    LOGIN_ATTEMPTS: &str => &[u8] = "login_attempt";
    /// `account:<key>` | `address:<ip>` → Throttle.
    LOGIN_THROTTLE: &str => &[u8] = "login_throttle";
    /// `<account>|<address>` → Backoff: failures of one account from one address, which make
    /// that pair (only) wait longer and longer.
    SIGN_IN_BACKOFF: &str => &[u8] = "login_backoff";
}
