//! The blocklist's tables.

crate::tables! {
    /// (blocker, blocked) → Block.
    BLOCKS: (&str, &str) => &[u8] = "block_by_blocker";
    /// (blocked, blocker) → Block: who blocked someone, for the penalty rules.
    BLOCKED_BY: (&str, &str) => &[u8] = "block_by_blocked";
    /// penalty id (time-ordered) → Penalty: what moderators review.
    PENALTIES: &str => &[u8] = "block_penalty";
    /// (user, penalty id): one person's penalties.
    PENALTIES_BY_USER: (&str, &str) => () = "block_penalty_by_user";
}
