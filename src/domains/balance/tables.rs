//! The balance domain's tables.

crate::tables! {
    /// journal seq → Transfer (append-only, hash-chained).
    JOURNAL: u64 => &[u8] = "ledger_journal";
    /// account → balance (the projection of the journal).
    BALANCES: &str => i64 = "ledger_balance";
    /// (account, journal seq): an account's postings, for its history.
    POSTINGS: (&str, u64) => () = "ledger_posting";
    /// hold id → Hold.
    HOLDS: &str => &[u8] = "ledger_hold";
    /// (expires at ms, hold id): open holds by expiry, for the sweeper.
    HOLDS_BY_EXPIRY: (i64, &str) => () = "ledger_hold_by_expiry";
    /// user id → DebtFlag: the wallet went below zero through a refund.
    DEBT_FLAGS: &str => &[u8] = "ledger_debt_flag";
}
