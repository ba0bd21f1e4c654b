//! `duet ledger verify`: replays the whole journal and proves the projection matches it.
//!
//! Checked: sequence numbers run 1..n without a gap; every entry's hash is recomputed and its
//! `prev_hash` is the previous entry's hash (nothing changed, inserted or dropped); amounts are
//! positive and accounts differ; no account other than a system account ever went below zero,
//! except a wallet through a refund; the replayed balances equal the stored ones, account by
//! account; the balances sum to zero; every account's postings index lists exactly its
//! transfers; every user's `held` balance equals what their open holds have left.

use std::collections::{BTreeMap, HashMap};

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::core::error::AppResult;
use crate::core::store::dec;

use super::events::BalanceEvent;

use super::model::*;
use super::tables::*;

#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub accounts: usize,
    /// Sum of all user wallets.
    pub wallet_coins: i64,
    pub head_hash: String,
    /// Wallets below zero through refunds (allowed, flagged).
    pub wallets_in_debt: usize,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Problems listed at most; past that only the count grows.
const PROBLEMS_SHOWN_MAX: usize = 100;

/// What is wrong with an agency commission, if anything: it must follow the earning it splits
/// (a call earning or a gift to a streamer's earnings, from the same account, with the reference
/// its own names) into the agency's account named by its reference, and be exactly that
/// earning's share at the percent its reference names (rounded down).
fn commission_problem(t: &Transfer, earning: Option<&Transfer>) -> Option<String> {
    let Some((agency, percent, reference)) = parse_commission_reference(&t.reference) else {
        return Some("an agency commission whose reference names no split".into());
    };
    if t.credit != Account::agency(agency) {
        return Some(format!(
            "an agency commission paid to {}",
            t.credit.as_str()
        ));
    }
    let Some(e) = earning.filter(|e| {
        matches!(e.kind, TransferKind::CallEarning | TransferKind::Gift)
            && e.seq + 1 == t.seq
            && e.reference == reference
            && e.debit == t.debit
            && e.credit.kind() == AccountKind::Earnings
    }) else {
        return Some("an agency commission that follows no earning of its own".into());
    };
    let (streamer, commission) = commission_split(e.amount + t.amount, percent);
    (streamer != e.amount || commission != t.amount).then(|| {
        format!(
            "an agency commission of {} on {} coins at {percent}% (expected {commission})",
            t.amount,
            e.amount + t.amount
        )
    })
}

fn problem(r: &mut Report, p: String) {
    if r.problems.len() < PROBLEMS_SHOWN_MAX {
        r.problems.push(p);
    } else if r.problems.len() == PROBLEMS_SHOWN_MAX {
        r.problems.push("… more problems not shown".into());
    }
}

/// Replays the journal in `rtx` (a consistent snapshot). `progress(done, total)` is called every
/// few thousand entries.
pub fn verify(rtx: &ReadTransaction, mut progress: impl FnMut(u64, u64)) -> AppResult<Report> {
    let journal = rtx.open_table(JOURNAL)?;
    let total = journal.len()?;
    let mut r = Report {
        head_hash: GENESIS_HASH.to_owned(),
        ..Report::default()
    };
    // i128: a tampered journal must be reported, not overflow.
    let mut balances: HashMap<Account, i128> = HashMap::new();
    let mut postings: HashMap<Account, u64> = HashMap::new();
    let mut expected_seq = 1u64;
    let mut previous: Option<Transfer> = None;
    for row in journal.iter()? {
        let (k, v) = row?;
        let seq = k.value();
        let t: Transfer = match dec(v.value()) {
            Ok(t) => t,
            Err(e) => {
                problem(&mut r, format!("entry {seq}: unreadable: {}", e.detail));
                continue;
            }
        };
        if seq != expected_seq || t.seq != seq {
            problem(
                &mut r,
                format!("entry {seq}: expected sequence {expected_seq}"),
            );
        }
        expected_seq = seq + 1;
        if t.prev_hash != r.head_hash {
            problem(
                &mut r,
                format!("entry {seq}: prev_hash does not match the previous entry"),
            );
        }
        if t.compute_hash() != t.hash {
            problem(
                &mut r,
                format!("entry {seq}: hash does not match its content"),
            );
        }
        r.head_hash = t.hash.clone();
        if t.kind == TransferKind::AgencyCommission
            && let Some(why) = commission_problem(&t, previous.as_ref())
        {
            problem(&mut r, format!("entry {seq}: {why}"));
        }
        if t.amount <= 0 || t.debit == t.credit {
            problem(
                &mut r,
                format!(
                    "entry {seq}: amount {} between {} and {}",
                    t.amount,
                    t.debit.as_str(),
                    t.credit.as_str()
                ),
            );
        }
        let d = balances.entry(t.debit.clone()).or_default();
        *d -= i128::from(t.amount);
        if *d < 0 && !may_go_negative(&t.debit, t.kind) {
            problem(
                &mut r,
                format!(
                    "entry {seq}: {} went to {} by a {} transfer",
                    t.debit.as_str(),
                    d,
                    t.kind.as_str()
                ),
            );
        }
        *balances.entry(t.credit.clone()).or_default() += i128::from(t.amount);
        // System accounts are listed in the postings index; user accounts by their events.
        *postings.entry(t.debit.clone()).or_default() += 1;
        *postings.entry(t.credit.clone()).or_default() += 1;
        r.entries += 1;
        previous = Some(t);
        if r.entries.is_multiple_of(4096) {
            progress(r.entries, total);
        }
    }
    progress(r.entries, total);

    // The projection, both ways.
    let stored = rtx.open_table(BALANCES)?;
    let mut seen = 0usize;
    for row in stored.iter()? {
        let (k, v) = row?;
        seen += 1;
        let Ok(account) = Account::parse(k.value()) else {
            problem(
                &mut r,
                format!("{}: a balance row that names no account", k.value()),
            );
            continue;
        };
        let replayed = balances.get(&account).copied().unwrap_or(0);
        if replayed != i128::from(v.value()) {
            problem(
                &mut r,
                format!(
                    "{}: stored balance {} but the journal gives {replayed}",
                    k.value(),
                    v.value()
                ),
            );
        }
    }
    for (account, b) in &balances {
        if stored.get(account.as_str())?.is_none() && *b != 0 {
            problem(
                &mut r,
                format!(
                    "{}: the journal gives {b} but no balance is stored",
                    account.as_str()
                ),
            );
        }
    }
    r.accounts = seen.max(balances.len());
    let sum: i128 = balances.values().sum();
    if sum != 0 {
        problem(&mut r, format!("balances sum to {sum}, not zero"));
    }
    let wallets: i128 = balances
        .iter()
        .filter(|(a, _)| a.kind() == AccountKind::Wallet)
        .map(|(_, b)| *b)
        .sum();
    r.wallet_coins = i64::try_from(wallets).unwrap_or(i64::MAX);
    // Debt flags: a wallet is flagged exactly while it is below zero.
    let flags = rtx.open_table(DEBT_FLAGS)?;
    for (account, b) in balances
        .iter()
        .filter(|(a, _)| a.kind() == AccountKind::Wallet)
    {
        let flagged = flags.get(account.owner().unwrap_or_default())?.is_some();
        if (*b < 0) != flagged {
            let state = if flagged { "set" } else { "missing" };
            problem(
                &mut r,
                format!(
                    "{}: balance {b} but the debt flag is {state}",
                    account.as_str()
                ),
            );
        }
    }
    for row in flags.iter()? {
        let (owner, _) = row?;
        if balances
            .get(&Account::wallet(owner.value()))
            .copied()
            .unwrap_or(0)
            >= 0
        {
            problem(
                &mut r,
                format!(
                    "wallet:{}: flagged in debt but not below zero",
                    owner.value()
                ),
            );
        }
    }
    r.wallets_in_debt = balances
        .iter()
        .filter(|(a, b)| a.kind() == AccountKind::Wallet && **b < 0)
        .count();

    // The history indexes: postings for system accounts, `balance_changed` events (one per
    // user account a transfer touched) for user accounts.
    let index = rtx.open_table(POSTINGS)?;
    let mut counted: HashMap<String, u64> = HashMap::new();
    for row in index.iter()? {
        *counted.entry(row?.0.value().0.to_owned()).or_default() += 1;
    }
    let log = rtx.open_table(crate::core::events::EVENT_LOG)?;
    for row in log.iter()? {
        let e: crate::core::events::Event = dec(row?.1.value())?;
        if let Some(BalanceEvent::Changed { account: label, .. }) = e.decode()?
            && let Some(owner) = e.subject.as_deref()
        {
            *counted.entry(format!("{label}:{owner}")).or_default() += 1;
        }
    }
    for (account, n) in &postings {
        let c = counted.remove(account.as_str()).unwrap_or(0);
        if c != *n {
            problem(
                &mut r,
                format!(
                    "{}: {n} transfers but {c} history entries",
                    account.as_str()
                ),
            );
        }
    }
    for (account, c) in counted {
        problem(
            &mut r,
            format!("{account}: {c} history entries of no transfer"),
        );
    }

    // Holds against held balances.
    let holds = rtx.open_table(HOLDS)?;
    let mut open: BTreeMap<String, i64> = BTreeMap::new();
    for row in holds.iter()? {
        let h: Hold = dec(row?.1.value())?;
        *open.entry(h.user_id.clone()).or_default() += h.remaining();
    }
    for (account, b) in &balances {
        if account.kind() == AccountKind::Held {
            let owner = account.owner().unwrap_or_default();
            let left = open.remove(owner).unwrap_or(0);
            if i128::from(left) != *b {
                problem(
                    &mut r,
                    format!(
                        "{}: balance {b} but open holds have {left} left",
                        account.as_str()
                    ),
                );
            }
        }
    }
    for (user, left) in open {
        if left != 0 {
            problem(
                &mut r,
                format!("held:{user}: open holds have {left} left but no balance"),
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod commission_tests {
    use super::*;

    fn transfer(
        seq: u64,
        credit: Account,
        amount: i64,
        kind: TransferKind,
        reference: &str,
    ) -> Transfer {
        Transfer {
            seq,
            id: format!("t{seq}"),
            debit: Account::wallet("payer"),
            credit,
            amount,
            kind,
            reference: reference.to_owned(),
            idempotency_key: None,
            created_at_ms: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_commission_must_follow_its_earning_and_be_its_exact_share() {
        let earning = transfer(
            7,
            Account::earnings("s"),
            35,
            TransferKind::Gift,
            "gift:g:-",
        );
        let reference = commission_reference("a1", 30, "gift:g:-");
        let good = transfer(
            8,
            Account::agency("a1"),
            15,
            TransferKind::AgencyCommission,
            &reference,
        );
        assert_eq!(commission_problem(&good, Some(&earning)), None);
        // One coin too many for the agency.
        let greedy = transfer(
            8,
            Account::agency("a1"),
            16,
            TransferKind::AgencyCommission,
            &reference,
        );
        assert!(commission_problem(&greedy, Some(&earning)).is_some());
        // Paid to another agency than its reference names.
        let elsewhere = transfer(
            8,
            Account::agency("a2"),
            15,
            TransferKind::AgencyCommission,
            &reference,
        );
        assert!(commission_problem(&elsewhere, Some(&earning)).is_some());
        // Not right after its earning, or after another earning.
        let late = transfer(
            9,
            Account::agency("a1"),
            15,
            TransferKind::AgencyCommission,
            &reference,
        );
        assert!(commission_problem(&late, Some(&earning)).is_some());
        let other = transfer(
            7,
            Account::earnings("s"),
            35,
            TransferKind::Gift,
            "gift:h:-",
        );
        assert!(commission_problem(&good, Some(&other)).is_some());
        assert!(commission_problem(&good, None).is_some());
        // A reference that names no split.
        let bare = transfer(
            8,
            Account::agency("a1"),
            15,
            TransferKind::AgencyCommission,
            "gift:g:-",
        );
        assert!(commission_problem(&bare, Some(&earning)).is_some());
    }

    #[test]
    fn the_split_rounds_in_the_streamers_favour_and_adds_up() {
        assert_eq!(commission_split(50, 30), (35, 15));
        assert_eq!(commission_split(1, 90), (1, 0));
        assert_eq!(commission_split(99, 33), (67, 32));
        for amount in 1..500 {
            for percent in 0..=90 {
                let (s, a) = commission_split(amount, percent);
                assert_eq!(s + a, amount);
                assert!(s >= 1 && a >= 0);
            }
        }
    }
}
