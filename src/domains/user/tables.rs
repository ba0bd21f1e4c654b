//! The user domain's tables.

crate::tables! {
    /// user id → UserRecord.
    USERS: &str => &[u8] = "user_by_id";
    /// `email:<lowercased>` | `device:<deviceId>` | `firebase:<sub>` → Identity.
    IDENTITIES: &str => &[u8] = "user_identity";
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
