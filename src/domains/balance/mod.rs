//! The balance domain: coins as a double-entry, hash-chained, append-only journal with balances
//! as its projection.
//!
//! Every coin movement is a [`Leg`] posted by [`post`] inside the caller's write transaction, so
//! a gift, a purchase or a call checkpoint moves coins and records its own rows and events in
//! one commit. `post` checks everything before it writes (amounts, accounts, the non-negative
//! rule), then appends journal entries, updates balances and postings, and emits a
//! `balance_changed` event to each user whose account moved (topic `balance`).
//!
//! The write-ahead property comes from the store: a transfer is acknowledged only after the
//! group commit that holds it is durable, and [`verify::verify`] rebuilds every balance from the
//! journal alone.

pub mod api;
pub mod events;
pub mod model;
mod tables;
pub use tables::TABLES;
pub mod verify;

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::idempotency::Idempotency;
use crate::core::ids::new_id;
use crate::core::store::{Reads, Tx, dec, get, put};
use crate::core::text::Text;
use crate::domains::{audit, user};
use events::BalanceEvent;
use model::*;
use tables::*;

/// Longest transfer reference, in characters.
pub const REFERENCE_CHARS_MAX: usize = 200;

/// A transfer's reference or an adjustment's reason: 1–[`REFERENCE_CHARS_MAX`] characters.
pub type Reference = Text<1, REFERENCE_CHARS_MAX>;
/// Largest amount of one transfer: far above any real price, low enough that no sum of a
/// realistic number of transfers can overflow an i64.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000;
/// Legs in one ledger operation.
pub const LEGS_MAX: usize = 16;
/// Hold lifetime when the caller gives none.
pub const HOLD_TTL_DEFAULT_MS: i64 = 2 * 60 * 60 * 1000;

/// The one field of the last journal entry that the next one needs; decoding only it skips
/// the allocations of a whole `Transfer` on every posting.
#[derive(serde::Deserialize)]
struct ChainLink {
    hash: String,
}

fn balance_of(t: &impl ReadableTable<&'static str, i64>, account: &Account) -> AppResult<i64> {
    Ok(t.get(account.as_str())?.map(|v| v.value()).unwrap_or(0))
}

/// Posts `legs` atomically in the caller's transaction: all of them or none.
pub fn post(tx: &Tx, legs: &[Leg], idempotency_key: Option<&str>) -> AppResult<Vec<Transfer>> {
    if legs.is_empty() || legs.len() > LEGS_MAX {
        return Err(AppError::internal(format!(
            "a ledger operation has 1–{LEGS_MAX} legs"
        )));
    }
    // Check phase: nothing is written until every leg is known to be valid.
    let mut before: HashMap<Account, i64> = HashMap::new();
    let mut after: HashMap<Account, i64> = HashMap::new();
    {
        let balances = tx.read(BALANCES)?;
        for leg in legs {
            if leg.amount <= 0 || leg.amount > AMOUNT_MAX {
                return Err(AppError::validation(format!(
                    "amounts are whole coins, 1–{AMOUNT_MAX}"
                )));
            }
            if leg.debit == leg.credit {
                return Err(AppError::internal(
                    "a transfer needs two different accounts",
                ));
            }
            if leg.reference.chars().count() > REFERENCE_CHARS_MAX {
                return Err(AppError::validation(format!(
                    "references are at most {REFERENCE_CHARS_MAX} characters"
                )));
            }
            for account in [&leg.debit, &leg.credit] {
                if !after.contains_key(account) {
                    let b = balance_of(&balances, account)?;
                    before.insert(account.clone(), b);
                    after.insert(account.clone(), b);
                }
            }
            let overflow =
                || AppError::validation("the balance would leave the representable range");
            let debit = after.get_mut(&leg.debit).expect("inserted above");
            *debit = debit.checked_sub(leg.amount).ok_or_else(overflow)?;
            if *debit < 0 && !may_go_negative(&leg.debit, leg.kind) {
                return Err(AppError::new(
                    Code::InsufficientBalance,
                    format!("{} cannot cover {} coins", describe(&leg.debit), leg.amount),
                ));
            }
            let credit = after.get_mut(&leg.credit).expect("inserted above");
            *credit = credit.checked_add(leg.amount).ok_or_else(overflow)?;
        }
    }

    // Write phase.
    let mut journal = tx.table(JOURNAL)?;
    let (mut seq, mut prev_hash) = match journal.last()? {
        Some((k, v)) => (k.value(), dec::<ChainLink>(v.value())?.hash),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let now = tx.now_ms();
    let mut posted = Vec::with_capacity(legs.len());
    let mut postings = tx.table(POSTINGS)?;
    for leg in legs {
        seq += 1;
        let mut t = Transfer {
            seq,
            id: new_id(),
            debit: leg.debit.clone(),
            credit: leg.credit.clone(),
            amount: leg.amount,
            kind: leg.kind,
            reference: leg.reference.clone(),
            idempotency_key: idempotency_key.map(str::to_owned),
            created_at_ms: now,
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        t.hash = t.compute_hash();
        prev_hash = t.hash.clone();
        put(&mut journal, seq, &t)?;
        // User accounts find their history through their `balance_changed` events (indexed
        // by user already); only system accounts need a postings index of their own. A second
        // per-user index would dirty another random page per transfer.
        for account in [&t.debit, &t.credit] {
            if account.kind() == AccountKind::System {
                postings.insert((account.as_str(), seq), ())?;
            }
        }
        posted.push(t);
    }
    drop((journal, postings));
    let mut balances = tx.table(BALANCES)?;
    for (account, value) in &after {
        balances.insert(account.as_str(), *value)?;
    }
    drop(balances);
    update_debt_flags(tx, &before, &after)?;
    for t in &posted {
        for (account, delta) in [(&t.debit, -t.amount), (&t.credit, t.amount)] {
            if let Some(owner) = account.owner() {
                let balance = running_balance(&posted, &after, account, t.seq);
                tx.emit(
                    NewEvent::about(
                        owner,
                        BalanceEvent::Changed {
                            transfer_id: t.id.clone(),
                            seq: t.seq,
                            account: account_label(account).to_owned(),
                            delta,
                            balance,
                            kind: t.kind,
                            reference: t.reference.clone(),
                        },
                    )
                    .to(Audience::Users(vec![owner.to_owned().into()])),
                )?;
            }
        }
    }
    Ok(posted)
}

/// The balance of `account` right after transfer `seq`, from its final value in this operation.
fn running_balance(
    posted: &[Transfer],
    after: &HashMap<Account, i64>,
    account: &Account,
    seq: u64,
) -> i64 {
    let mut b = after[account];
    for t in posted.iter().rev().take_while(|t| t.seq > seq) {
        if &t.debit == account {
            b += t.amount;
        }
        if &t.credit == account {
            b -= t.amount;
        }
    }
    b
}

/// What the user calls an account.
pub fn account_label(account: &Account) -> &'static str {
    match account.kind() {
        AccountKind::Wallet => "wallet",
        AccountKind::Earnings => "earnings",
        AccountKind::Held => "held",
        AccountKind::PayoutHold => "payout_hold",
        AccountKind::Agency => "agency",
        AccountKind::System => "system",
    }
}

fn describe(account: &Account) -> String {
    match account.kind() {
        AccountKind::Wallet => "the wallet".into(),
        AccountKind::Earnings => "the earnings".into(),
        _ => account.as_str().to_owned(),
    }
}

/// A wallet below zero (only a refund can do that) is flagged until it is back at zero or
/// above; the next purchase pays the debt first simply by landing on the negative balance.
/// A flag exists exactly while the wallet is negative, so crossing zero is all there is to see:
/// no read is needed.
fn update_debt_flags(
    tx: &Tx,
    before: &HashMap<Account, i64>,
    after: &HashMap<Account, i64>,
) -> AppResult<()> {
    for (account, balance) in after {
        if account.kind() != AccountKind::Wallet {
            continue;
        }
        let owner = account.owner().unwrap_or_default();
        let was_negative = before.get(account).is_some_and(|b| *b < 0);
        if *balance < 0 && !was_negative {
            put(
                &mut tx.table(DEBT_FLAGS)?,
                owner,
                &DebtFlag {
                    since_ms: tx.now_ms(),
                },
            )?;
            tx.emit(NewEvent::about(
                owner,
                BalanceEvent::WalletInDebt {
                    user_id: owner.to_owned().into(),
                    balance: *balance,
                },
            ))?;
        } else if *balance >= 0 && was_negative {
            tx.table(DEBT_FLAGS)?.remove(owner)?;
            tx.emit(NewEvent::about(
                owner,
                BalanceEvent::WalletDebtSettled {
                    user_id: owner.to_owned().into(),
                },
            ))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Holds.

/// Reserves `amount` coins of the user's wallet until settled, released or expired.
pub fn hold(
    tx: &Tx,
    user_id: &str,
    amount: i64,
    reference: &str,
    ttl_ms: Option<i64>,
) -> AppResult<Hold> {
    let now = tx.now_ms();
    let hold = Hold {
        id: new_id(),
        user_id: user_id.to_owned(),
        amount,
        settled: 0,
        released: 0,
        reference: reference.to_owned(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl_ms.unwrap_or(HOLD_TTL_DEFAULT_MS)),
    };
    post(
        tx,
        &[Leg {
            debit: Account::wallet(user_id),
            credit: Account::held(user_id),
            amount,
            kind: TransferKind::Hold,
            reference: format!("hold:{}", hold.id),
        }],
        None,
    )?;
    put(&mut tx.table(HOLDS)?, hold.id.as_str(), &hold)?;
    tx.table(HOLDS_BY_EXPIRY)?
        .insert((hold.expires_at_ms, hold.id.as_str()), ())?;
    Ok(hold)
}

pub fn find_hold(tx: &Tx, hold_id: &str) -> AppResult<Hold> {
    get(&tx.read(HOLDS)?, hold_id)?
        .ok_or_else(|| AppError::not_found(format!("no open hold {hold_id}")))
}

/// Moves `amount` of a hold to `credit` (e.g. an earnings or revenue account).
pub fn settle(
    tx: &Tx,
    hold_id: &str,
    amount: i64,
    credit: Account,
    kind: TransferKind,
    reference: &str,
) -> AppResult<Hold> {
    let mut h = find_hold(tx, hold_id)?;
    // Between expiry and the sweeper's next pass the hold still exists; it may not be charged.
    if tx.now_ms() >= h.expires_at_ms {
        return Err(AppError::conflict(format!("hold {hold_id} has expired")));
    }
    if amount <= 0 || amount > h.remaining() {
        return Err(AppError::new(
            Code::InsufficientBalance,
            format!("the hold has {} coins left, not {amount}", h.remaining()),
        ));
    }
    post(
        tx,
        &[Leg {
            debit: Account::held(&h.user_id),
            credit,
            amount,
            kind,
            reference: reference.to_owned(),
        }],
        None,
    )?;
    h.settled += amount;
    store_hold(tx, &h)?;
    Ok(h)
}

/// Gives what is left of a hold back to the wallet and closes it.
pub fn release(tx: &Tx, hold_id: &str) -> AppResult<Hold> {
    let mut h = find_hold(tx, hold_id)?;
    let left = h.remaining();
    if left > 0 {
        post(
            tx,
            &[Leg {
                debit: Account::held(&h.user_id),
                credit: Account::wallet(&h.user_id),
                amount: left,
                kind: TransferKind::HoldRelease,
                reference: format!("hold:{}", h.id),
            }],
            None,
        )?;
        h.released += left;
    }
    store_hold(tx, &h)?;
    Ok(h)
}

/// Writes a hold back; a hold with nothing left is removed from the open set.
fn store_hold(tx: &Tx, h: &Hold) -> AppResult<()> {
    if h.remaining() == 0 {
        tx.table(HOLDS)?.remove(h.id.as_str())?;
        tx.table(HOLDS_BY_EXPIRY)?
            .remove((h.expires_at_ms, h.id.as_str()))?;
    } else {
        put(&mut tx.table(HOLDS)?, h.id.as_str(), h)?;
    }
    Ok(())
}

/// How many expired holds one sweep releases at most (one commit).
const EXPIRED_HOLDS_PER_SWEEP: usize = 500;

/// Releases holds whose time is up; returns how many. Runs periodically.
pub async fn release_expired(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let due: Vec<String> = ctx
        .store
        .read(move |rtx| {
            let t = rtx.open_table(HOLDS_BY_EXPIRY)?;
            let mut out = Vec::new();
            for row in t.range(..(now + 1, ""))?.take(EXPIRED_HOLDS_PER_SWEEP) {
                out.push(row?.0.value().1.to_owned());
            }
            Ok(out)
        })
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    ctx.store
        .write(move |tx| {
            let mut n = 0;
            for id in &due {
                // Settled or released since the read: nothing to do.
                if get::<&str, Hold>(&tx.read(HOLDS)?, id.as_str())?.is_some() {
                    release(tx, id)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Reads.

/// Journal entries from `from_seq` on, in order, at most `limit` (tools and benchmarks).
pub fn journal_from(
    rtx: &ReadTransaction,
    from_seq: u64,
    limit: usize,
) -> AppResult<Vec<Transfer>> {
    let mut out = Vec::new();
    for row in rtx.open_table(JOURNAL)?.range(from_seq..)?.take(limit) {
        out.push(dec(row?.1.value())?);
    }
    Ok(out)
}

/// The ids of every open hold.
pub fn open_hold_ids(rtx: &ReadTransaction) -> AppResult<Vec<String>> {
    let mut out = Vec::new();
    for row in rtx.open_table(HOLDS)?.iter()? {
        out.push(row?.0.value().to_owned());
    }
    Ok(out)
}

/// Every account's stored balance (the projection `ledger verify` checks).
pub fn all_balances(rtx: &ReadTransaction) -> AppResult<Vec<(Account, i64)>> {
    let mut out = Vec::new();
    for row in rtx.open_table(BALANCES)?.iter()? {
        let (k, v) = row?;
        out.push((Account::parse(k.value())?, v.value()));
    }
    Ok(out)
}

/// The balance of `account` inside a write (0 for an account never used).
pub fn balance_tx(tx: &Tx, account: &Account) -> AppResult<i64> {
    Ok(tx
        .read(BALANCES)?
        .get(account.as_str())?
        .map_or(0, |v| v.value()))
}

pub fn balance(r: &impl Reads, account: &Account) -> AppResult<i64> {
    let b = r
        .read_table(BALANCES)?
        .get(account.as_str())?
        .map(|v| v.value())
        .unwrap_or(0);
    // The invariant, checked after read: only a flagged wallet is below zero.
    if b < 0 && account.kind() != AccountKind::System {
        let flagged = account.kind() == AccountKind::Wallet
            && r.read_table(DEBT_FLAGS)?
                .get(account.owner().unwrap_or_default())?
                .is_some();
        if !flagged {
            return Err(AppError::internal(format!(
                "ledger invariant broken: {} is {b}",
                account.as_str()
            )));
        }
    }
    Ok(b)
}

pub fn in_debt(rtx: &ReadTransaction, user_id: &str) -> AppResult<bool> {
    Ok(rtx.open_table(DEBT_FLAGS)?.get(user_id)?.is_some())
}

/// Rows one history page may scan in a user's event index before it returns what it found.
const HISTORY_SCAN_MAX: usize = 5_000;

/// One page of an account's transfers, newest first, and the cursor of the next page.
///
/// System accounts page through their postings index (the cursor is a journal seq). User
/// accounts page through their `balance_changed` events (the cursor is an event seq): each
/// names the journal entry it came from.
pub fn history(
    rtx: &ReadTransaction,
    account: &Account,
    before: Option<u64>,
    limit: usize,
) -> AppResult<(Vec<Transfer>, Option<u64>)> {
    let journal = rtx.open_table(JOURNAL)?;
    let upto = before.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut last_scanned = None;
    let mut scanned = 0;
    match account.owner() {
        None => {
            let postings = rtx.open_table(POSTINGS)?;
            let a = account.as_str();
            for row in postings.range((a, 0)..(a, upto))?.rev().take(limit) {
                let seq = row?.0.value().1;
                last_scanned = Some(seq);
                if let Some(t) = get::<u64, Transfer>(&journal, seq)? {
                    out.push(t);
                }
            }
        }
        Some(owner) => {
            let label = account_label(account);
            let index = rtx.open_table(crate::core::events::EVENT_BY_USER)?;
            let log = rtx.open_table(crate::core::events::EVENT_LOG)?;
            for row in index.range((owner, 0)..(owner, upto))?.rev() {
                if out.len() >= limit || scanned >= HISTORY_SCAN_MAX {
                    break;
                }
                let event_seq = row?.0.value().1;
                last_scanned = Some(event_seq);
                scanned += 1;
                let Some(e) = get::<u64, crate::core::events::Event>(&log, event_seq)? else {
                    continue;
                };
                if e.subject.as_deref() != Some(owner) {
                    continue;
                }
                let Some(BalanceEvent::Changed { account, seq, .. }) = e.decode()? else {
                    continue;
                };
                if account != label {
                    continue;
                }
                if let Some(t) = get::<u64, Transfer>(&journal, seq)? {
                    out.push(t);
                }
            }
        }
    }
    // A full page, or a scan stopped at its bound, may have more behind it.
    let more = out.len() >= limit || scanned >= HISTORY_SCAN_MAX;
    Ok((out, last_scanned.filter(|_| more)))
}

/// [`history`] in its own read.
pub async fn history_page(
    ctx: &Ctx,
    account: &Account,
    before: Option<u64>,
    limit: usize,
) -> AppResult<(Vec<Transfer>, Option<u64>)> {
    let account = account.clone();
    ctx.store
        .read(move |rtx| history(rtx, &account, before, limit))
        .await
}

/// A user's spendable side: the wallet, what calls hold of it, and the debt flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletBalances {
    pub wallet: i64,
    pub held: i64,
    pub in_debt: bool,
}

/// A user's wallet balances, in one read.
pub async fn wallet_of(ctx: &Ctx, user_id: &str) -> AppResult<WalletBalances> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            Ok(WalletBalances {
                wallet: balance(rtx, &Account::wallet(&uid))?,
                held: balance(rtx, &Account::held(&uid))?,
                in_debt: in_debt(rtx, &uid)?,
            })
        })
        .await
}

/// A streamer's earned side: earnings available for a payout and those held by payout requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarningsBalances {
    pub earnings: i64,
    pub payout_hold: i64,
}

/// A user's earnings balances, in one read.
pub async fn earnings_of(ctx: &Ctx, user_id: &str) -> AppResult<EarningsBalances> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            Ok(EarningsBalances {
                earnings: balance(rtx, &Account::earnings(&uid))?,
                payout_hold: balance(rtx, &Account::payout_hold(&uid))?,
            })
        })
        .await
}

/// Every balance of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    pub wallet: i64,
    pub held: i64,
    pub earnings: i64,
    pub payout_hold: i64,
    pub in_debt: bool,
}

/// Every balance of an existing user, in one read (`not_found` when there is no such user).
pub async fn balances_of(ctx: &Ctx, user_id: &str) -> AppResult<Balances> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            user::find_user(rtx, &uid)?.ok_or_else(|| AppError::not_found("no such user"))?;
            Ok(Balances {
                wallet: balance(rtx, &Account::wallet(&uid))?,
                held: balance(rtx, &Account::held(&uid))?,
                earnings: balance(rtx, &Account::earnings(&uid))?,
                payout_hold: balance(rtx, &Account::payout_hold(&uid))?,
                in_debt: in_debt(rtx, &uid)?,
            })
        })
        .await
}

/// What an admin adjustment did (also what an idempotent retry returns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adjusted {
    pub transfer_id: String,
    /// The account's balance right after the adjustment.
    pub balance: i64,
}

/// An admin credits (positive `amount`) or debits a user's wallet or `earnings`: one transfer
/// with the adjustments account, audited, once per idempotency key.
pub async fn adjust(
    ctx: &Ctx,
    actor: &str,
    user_id: &str,
    earnings: bool,
    amount: i64,
    reason: Reference,
    idem: Idempotency,
) -> AppResult<Adjusted> {
    let reason = reason.into_string();
    let leg = adjust_legs(user_id, earnings, amount, &reason)?;
    let (actor, uid) = (actor.to_owned(), user_id.to_owned());
    ctx.store
        .write(move |tx| {
            idem.run(tx, || {
                user::find_user_tx(tx, &uid)?.ok_or_else(|| AppError::not_found("no such user"))?;
                let posted = post(tx, std::slice::from_ref(&leg), Some(&idem.key))?;
                let account = if leg.credit.owner().is_some() {
                    &leg.credit
                } else {
                    &leg.debit
                };
                let balance = balance_tx(tx, account)?;
                audit::record_tx(
                    tx,
                    &actor,
                    "balance.adjust",
                    &uid,
                    json!({"amount": amount, "account": account_label(account), "reason": reason, "transferId": posted[0].id}),
                )?;
                Ok(Adjusted {
                    transfer_id: posted[0].id.clone(),
                    balance,
                })
            })
        })
        .await
}

/// Adjusts a user's wallet or earnings by an admin (positive credits, negative debits).
pub fn adjust_legs(user_id: &str, earnings: bool, amount: i64, reason: &str) -> AppResult<Leg> {
    if amount == 0 || amount.unsigned_abs() > AMOUNT_MAX as u64 {
        return Err(AppError::validation(format!(
            "amount must be non-zero, at most {AMOUNT_MAX} either way"
        )));
    }
    let user = if earnings {
        Account::earnings(user_id)
    } else {
        Account::wallet(user_id)
    };
    let system = Account::system(SystemAccount::Adjustments);
    let (debit, credit) = if amount > 0 {
        (system, user)
    } else {
        (user, system)
    };
    Ok(Leg {
        debit,
        credit,
        amount: amount.abs(),
        kind: TransferKind::Adjustment,
        reference: reason.to_owned(),
    })
}
