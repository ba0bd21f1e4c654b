//! The balance domain's events.

use super::model::TransferKind;
use crate::core::ids::UserId;

crate::domain_events! {
    pub enum BalanceEvent in "balance" {
        /// One side of a journal transfer, to the owner of the account it moved.
        Changed = "balance_changed" on "balance" to "the account's owner" {
            transfer_id: String,
            /// The journal entry's sequence number.
            seq: u64,
            /// `wallet`, `earnings`, `held` or `payout_hold`.
            account: String,
            /// Signed: negative when coins left the account.
            delta: i64,
            /// The account's balance right after this transfer.
            balance: i64,
            kind: TransferKind,
            reference: String,
        }
        /// A refund took the wallet below zero: it cannot spend until a purchase pays the debt.
        WalletInDebt = "wallet_in_debt" {
            user_id: UserId,
            balance: i64,
        }
        WalletDebtSettled = "wallet_debt_settled" {
            user_id: UserId,
        }
    }
}
