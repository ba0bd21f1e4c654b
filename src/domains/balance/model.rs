//! Ledger types: accounts, transfers, holds.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{AppError, AppResult};

/// The system accounts. Their balances are the counter-entries of user balances; they may be
/// negative (store purchases is where bought coins come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemAccount {
    StorePurchases,
    Bonuses,
    PlatformRevenue,
    Payouts,
    Refunds,
    Adjustments,
}

impl SystemAccount {
    pub const ALL: [SystemAccount; 6] = [
        SystemAccount::StorePurchases,
        SystemAccount::Bonuses,
        SystemAccount::PlatformRevenue,
        SystemAccount::Payouts,
        SystemAccount::Refunds,
        SystemAccount::Adjustments,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SystemAccount::StorePurchases => "store_purchases",
            SystemAccount::Bonuses => "bonuses",
            SystemAccount::PlatformRevenue => "platform_revenue",
            SystemAccount::Payouts => "payouts",
            SystemAccount::Refunds => "refunds",
            SystemAccount::Adjustments => "adjustments",
        }
    }
}

/// What an account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// A user's spendable coins.
    Wallet,
    /// A streamer's earned coins.
    Earnings,
    /// Coins reserved from a wallet (calls).
    Held,
    /// Earnings reserved for a payout request.
    PayoutHold,
    /// An agency's commissions on its streamers' earnings (owner: the agency id).
    Agency,
    System,
}

impl AccountKind {
    fn prefix(self) -> &'static str {
        match self {
            AccountKind::Wallet => "wallet",
            AccountKind::Earnings => "earnings",
            AccountKind::Held => "held",
            AccountKind::PayoutHold => "payout_hold",
            AccountKind::Agency => "agency",
            AccountKind::System => "system",
        }
    }
}

/// An account id: `<kind>:<owner>`, e.g. `wallet:<userId>` or `system:platform_revenue`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Account(String);

impl Account {
    fn of(kind: AccountKind, owner: &str) -> Account {
        Account(format!("{}:{owner}", kind.prefix()))
    }
    pub fn wallet(user_id: &str) -> Account {
        Self::of(AccountKind::Wallet, user_id)
    }
    pub fn earnings(user_id: &str) -> Account {
        Self::of(AccountKind::Earnings, user_id)
    }
    pub fn held(user_id: &str) -> Account {
        Self::of(AccountKind::Held, user_id)
    }
    pub fn payout_hold(user_id: &str) -> Account {
        Self::of(AccountKind::PayoutHold, user_id)
    }
    pub fn agency(agency_id: &str) -> Account {
        Self::of(AccountKind::Agency, agency_id)
    }
    pub fn system(s: SystemAccount) -> Account {
        Self::of(AccountKind::System, s.name())
    }

    pub fn parse(raw: &str) -> AppResult<Account> {
        let (prefix, owner) = raw
            .split_once(':')
            .ok_or_else(|| AppError::validation(format!("`{raw}` is not an account")))?;
        let kind = [
            AccountKind::Wallet,
            AccountKind::Earnings,
            AccountKind::Held,
            AccountKind::PayoutHold,
            AccountKind::Agency,
            AccountKind::System,
        ]
        .into_iter()
        .find(|k| k.prefix() == prefix)
        .ok_or_else(|| AppError::validation(format!("`{raw}` is not an account")))?;
        if owner.is_empty()
            || (kind == AccountKind::System
                && !SystemAccount::ALL.iter().any(|s| s.name() == owner))
        {
            return Err(AppError::validation(format!("`{raw}` is not an account")));
        }
        Ok(Account(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> AccountKind {
        let prefix = self.0.split(':').next().unwrap_or_default();
        match prefix {
            "wallet" => AccountKind::Wallet,
            "earnings" => AccountKind::Earnings,
            "held" => AccountKind::Held,
            "payout_hold" => AccountKind::PayoutHold,
            "agency" => AccountKind::Agency,
            _ => AccountKind::System,
        }
    }

    /// The user who owns it (none for system accounts).
    pub fn owner(&self) -> Option<&str> {
        match self.kind() {
            AccountKind::System => None,
            _ => self.0.split_once(':').map(|(_, o)| o),
        }
    }
}

/// Why coins moved.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum TransferKind {
    Purchase,
    PurchaseBonus,
    /// A purchase or bonus taken back by the store: the only kind that may make a wallet negative.
    Refund,
    Gift,
    GiftFee,
    Hold,
    HoldSettle,
    HoldRelease,
    CallCharge,
    CallEarning,
    Adjustment,
    PayoutRequest,
    PayoutReject,
    Payout,
    /// An agency's share of one of its streamers' earnings, posted right after the earning
    /// it splits; its reference is `agency:<agency id>:<percent>:<the earning's reference>`.
    AgencyCommission,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Purchase => "purchase",
            TransferKind::PurchaseBonus => "purchase_bonus",
            TransferKind::Refund => "refund",
            TransferKind::Gift => "gift",
            TransferKind::GiftFee => "gift_fee",
            TransferKind::Hold => "hold",
            TransferKind::HoldSettle => "hold_settle",
            TransferKind::HoldRelease => "hold_release",
            TransferKind::CallCharge => "call_charge",
            TransferKind::CallEarning => "call_earning",
            TransferKind::Adjustment => "adjustment",
            TransferKind::PayoutRequest => "payout_request",
            TransferKind::PayoutReject => "payout_reject",
            TransferKind::Payout => "payout",
            TransferKind::AgencyCommission => "agency_commission",
        }
    }
}

/// One leg of a ledger operation, as a domain asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// The account whose balance goes down.
    pub debit: Account,
    /// The account whose balance goes up.
    pub credit: Account,
    pub amount: i64,
    pub kind: TransferKind,
    pub reference: String,
}

/// The reference of an agency's commission on an earning: `agency:<agency id>:<percent>:
/// <the earning's reference>`, so `ledger verify` can check the split from the journal alone.
pub fn commission_reference(agency_id: &str, percent: u8, earning_reference: &str) -> String {
    format!("agency:{agency_id}:{percent}:{earning_reference}")
}

/// The agency, percent and earning reference of a commission's reference.
pub fn parse_commission_reference(reference: &str) -> Option<(&str, u8, &str)> {
    let rest = reference.strip_prefix("agency:")?;
    let (agency, rest) = rest.split_once(':')?;
    let (percent, earning) = rest.split_once(':')?;
    Some((agency, percent.parse().ok()?, earning))
}

/// An earning of `amount` coins split at `percent` for an agency: (the streamer's part, the
/// agency's part). The agency's part is rounded down, so rounding favours the streamer.
pub fn commission_split(amount: i64, percent: u8) -> (i64, i64) {
    let agency = (i128::from(amount) * i128::from(percent) / 100) as i64;
    (amount - agency, agency)
}

/// A journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub seq: u64,
    pub id: String,
    pub debit: Account,
    pub credit: Account,
    pub amount: i64,
    pub kind: TransferKind,
    pub reference: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    pub created_at_ms: i64,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and every field above.
    pub hash: String,
}

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Transfer {
    /// The hash of this entry's content chained to `prev_hash`. Fields are length-prefixed so
    /// no two different entries can serialise to the same bytes.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(self.prev_hash.as_bytes());
        field(&self.seq.to_be_bytes());
        field(self.id.as_bytes());
        field(self.debit.as_str().as_bytes());
        field(self.credit.as_str().as_bytes());
        field(&self.amount.to_be_bytes());
        field(self.kind.as_str().as_bytes());
        field(self.reference.as_bytes());
        // A missing key and an empty key must not hash alike.
        match &self.idempotency_key {
            None => field(&[0]),
            Some(k) => field(&[&[1u8][..], k.as_bytes()].concat()),
        }
        field(&self.created_at_ms.to_be_bytes());
        crate::core::ids::hex(&h.finalize())
    }
}

/// Whether `account` may end a transfer of `kind` below zero.
pub fn may_go_negative(account: &Account, kind: TransferKind) -> bool {
    match account.kind() {
        AccountKind::System => true,
        AccountKind::Wallet => kind == TransferKind::Refund,
        _ => false,
    }
}

/// A reservation of wallet coins (moved to the user's `held:` account) to settle or release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub user_id: String,
    pub amount: i64,
    pub settled: i64,
    pub released: i64,
    pub reference: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Hold {
    pub fn remaining(&self) -> i64 {
        self.amount - self.settled - self.released
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DebtFlag {
    pub since_ms: i64,
}
