//! The media domain's tables.

crate::tables! {
    /// media id → MediaRecord.
    MEDIA: &str => &[u8] = "media_by_id";
    /// (owner id, uploaded at ms, media id): an owner's media, newest first.
    MEDIA_BY_OWNER: (&str, i64, &str) => () = "media_by_owner";
    /// owner id → Usage: the bytes and items an owner holds, against their quota.
    USAGE: &str => &[u8] = "media_usage";
    /// (kind, queued at ms, media id): items waiting for a moderator, oldest first.
    QUEUE: (&str, i64, &str) => () = "media_queue";
}
