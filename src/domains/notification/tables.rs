//! The notification domain's tables.

crate::tables! {
    /// (user, notification id) → Notification: the in-app list.
    NOTIFICATIONS: (&str, &str) => &[u8] = "notification";
    /// user → unread notifications.
    UNREAD: &str => u64 = "notification_unread";
    /// (user, notification id): the unread ones, so "read all" touches only those.
    UNREAD_IDS: (&str, &str) => () = "notification_unread_id";
    /// event seq of the in-app delivery → (user, notification id): what an `ack` confirms.
    BY_SEQ: u64 => (&str, &str) = "notification_by_seq";
    /// (due ms, user, notification id): in-app deliveries that become pushes unless acked.
    FALLBACK_DUE: (i64, &str, &str) => () = "notification_fallback";
    /// send id → Send: the outbox, every push and email ever queued.
    OUTBOX: &str => &[u8] = "notification_send";
    /// (due ms, send id): sends waiting for their (next) attempt.
    OUTBOX_DUE: (i64, &str) => () = "notification_send_due";
    /// send id: sends handed to a provider and not yet answered (crash recovery).
    SENDING: &str => () = "notification_sending";
    /// send id (time-ordered): dead letters, for admins.
    DEAD_LETTERS: &str => () = "notification_dead_letter";
    /// (notification id, device id): a notification goes to a device at most once.
    SENT_TO_DEVICE: (&str, &str) => () = "notification_device_sent";
    /// user → Preferences.
    PREFERENCES: &str => &[u8] = "notification_preference";
    /// (follower, favorite) → ms of the last `favorite_online` told.
    FAVORITE_ONLINE_TOLD: (&str, &str) => i64 = "notification_favorite_online";
    /// (due ms, job id) → Fanout: a favorite came online; followers are told in chunks.
    FANOUTS: (i64, &str) => &[u8] = "notification_fanout";
    /// call id → (callee, notification id): the `incoming_call` notification of a ringing call.
    CALL_NOTIFICATIONS: &str => (&str, &str) = "notification_by_call";
    /// (user, notification id): missed calls not yet in an email digest.
    DIGEST_PENDING: (&str, &str) => () = "notification_digest_pending";
    /// `digest` → ms of the last digest run.
    NOTIFY_META: &str => i64 = "notification_meta";
}
