//! The favorites domain's tables.

crate::tables! {
    /// (user, favorite) → since ms.
    FAVORITES: (&str, &str) => i64 = "favorite";
    /// (user, since ms, favorite): a user's favorites, newest last.
    FAVORITES_BY_TIME: (&str, i64, &str) => () = "favorite_by_time";
    /// (favorite, since ms, follower): who follows someone, newest last.
    FOLLOWERS_BY_TIME: (&str, i64, &str) => () = "favorite_follower";
    /// user → (followers, following): the counts on the public profile.
    FAVORITE_COUNTS: &str => (u64, u64) = "favorite_count";
}
