//! The mission_control domain's tables.

crate::tables! {
    /// payout id → Payout.
    PAYOUTS: &str => &[u8] = "payout_by_id";
    /// (state, payout id): the admin's queues.
    PAYOUTS_BY_STATE: (&str, &str) => () = "payout_by_state";
    /// (streamer id, payout id): a streamer's requests.
    PAYOUTS_BY_STREAMER: (&str, &str) => () = "payout_by_streamer";
    /// (target, rule, blocker) → Signal: blocks that count toward a rule, with their weight.
    SIGNALS: (&str, &str, &str) => &[u8] = "moderation_signal";
    /// case id (time-ordered) → Case.
    CASES: &str => &[u8] = "moderation_case";
    /// (state, case id): the moderators' queue.
    CASES_BY_STATE: (&str, &str) => () = "moderation_case_by_state";
    /// (user, rule) → case id: at most one open case per user and rule.
    OPEN_CASES: (&str, &str) => &str = "moderation_open_case";
    /// report id (time-ordered) → Report.
    REPORTS: &str => &[u8] = "report_by_id";
    /// (state, report id): the moderators' report queue.
    REPORTS_BY_STATE: (&str, &str) => () = "report_by_state";
    /// (`<kind>:<target id>`, report id): every report on one item.
    REPORTS_BY_TARGET: (&str, &str) => () = "report_by_target";
    /// (reporter, filed at ms, report id): a reporter's reports, for the daily limit.
    REPORTS_BY_REPORTER: (&str, i64, &str) => () = "report_by_reporter";
    /// KYC case id (time-ordered) → KycCase.
    KYC_CASES: &str => &[u8] = "kyc_case";
    /// (state, case id): the moderators' KYC queue.
    KYC_BY_STATE: (&str, &str) => () = "kyc_case_by_state";
    /// streamer id → their latest case id.
    KYC_BY_STREAMER: &str => &str = "kyc_case_by_streamer";
    /// (documents due for deletion at ms, case id).
    KYC_RETENTION: (i64, &str) => () = "kyc_retention";
    /// credential id → ServiceCredential.
    SERVICE_CREDENTIALS: &str => &[u8] = "service_credential";
    /// SHA-256 of a service token → credential id.
    SERVICE_TOKENS: &str => &str = "service_token";
}
