//! The interaction domain's tables.

crate::tables! {
    /// (person, other) → Stats: what the person did toward the other.
    INTERACTIONS: (&str, &str) => &[u8] = "interaction";
    /// (person, last interaction ms, other): someone's interactions, most recent last.
    INTERACTIONS_BY_TIME: (&str, i64, &str) => () = "interaction_by_time";
}
