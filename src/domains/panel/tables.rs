//! The panel domain's tables.

crate::tables! {
    /// cohort id → Cohort.
    COHORTS: &str => &[u8] = "panel_cohort";
    /// (cohort id, user id) → joined at ms: a cohort's members.
    MEMBERS: (&str, &str) => i64 = "panel_member";
    /// (user id, cohort id): the cohorts someone is in (their tags).
    USER_COHORTS: (&str, &str) => () = "panel_user_cohort";
    /// user id → coins spent on calls and gifts, ever (fed by the `panel` consumer from the
    /// ledger's events, each applied once).
    COINS_SPENT: &str => i64 = "panel_coins_spent";
}
