//! The panel's events: cohorts saved and removed, people joining and leaving them.

use crate::core::ids::UserId;

crate::domain_events! {
    pub enum CohortEvent in "panel" {
        /// An admin created or changed a cohort.
        Saved = "cohort_saved" {
            cohort_id: String,
            tag: String,
        }
        /// An admin removed a cohort (its members left it first, each with `cohort_left`).
        Deleted = "cohort_deleted" {
            cohort_id: String,
            tag: String,
        }
        Joined = "cohort_joined" {
            cohort_id: String,
            tag: String,
            user_id: UserId,
        }
        Left = "cohort_left" {
            cohort_id: String,
            tag: String,
            user_id: UserId,
        }
    }
}
