//! Property test of the ledger: random concurrent sequences of transfers, holds, settlements,
//! releases, refunds and retried requests keep every invariant, and replaying the journal gives
//! exactly the projected balances, which equal a model that applies each acknowledged
//! operation once.

use std::collections::HashMap;
use std::sync::Arc;

use duet::core::clock::ManualClock;
use duet::core::error::AppResult;
use duet::core::idempotency::Idempotency;
use duet::core::metrics::Metrics;
use duet::core::store::Store;
use duet::domains::balance::{self, model::*};
use parking_lot::Mutex;
use proptest::prelude::*;

const USER_COUNT: u8 = 4;

#[derive(Debug, Clone)]
enum Op {
    Purchase { user: u8, amount: i64 },
    Gift { from: u8, to: u8, amount: i64 },
    Hold { user: u8, amount: i64 },
    Settle { hold: u8, amount: i64 },
    Release { hold: u8 },
    Refund { user: u8, amount: i64 },
    Retry { op: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USER_COUNT;
    let amount = 1i64..300;
    prop_oneof![
        3 => (user.clone(), amount.clone()).prop_map(|(user, amount)| Op::Purchase { user, amount }),
        3 => (user.clone(), user.clone(), amount.clone()).prop_map(|(from, to, amount)| Op::Gift { from, to, amount }),
        2 => (user.clone(), amount.clone()).prop_map(|(user, amount)| Op::Hold { user, amount }),
        2 => (any::<u8>(), amount.clone()).prop_map(|(hold, amount)| Op::Settle { hold, amount }),
        1 => any::<u8>().prop_map(|hold| Op::Release { hold }),
        1 => (user, amount).prop_map(|(user, amount)| Op::Refund { user, amount }),
        2 => any::<u8>().prop_map(|op| Op::Retry { op }),
    ]
}

fn uid(u: u8) -> String {
    format!("user-{u}")
}

/// Balance changes an acknowledged operation made.
type Deltas = Vec<(Account, i64)>;

struct World {
    store: Store,
    holds: Mutex<Vec<String>>,
    /// What the acknowledged operations changed.
    model: Mutex<HashMap<Account, i64>>,
    /// The first result seen per key, to compare retries with.
    results: Mutex<HashMap<String, i64>>,
}

fn legs_of(op: &Op, hold_ids: &[String]) -> Option<Vec<Leg>> {
    let leg = |debit, credit, amount, kind| Leg {
        debit,
        credit,
        amount,
        kind,
        reference: "prop".into(),
    };
    Some(match *op {
        Op::Purchase { user, amount } => vec![leg(
            Account::system(SystemAccount::StorePurchases),
            Account::wallet(&uid(user)),
            amount,
            TransferKind::Purchase,
        )],
        Op::Gift { from, to, amount } if from != to => vec![leg(
            Account::wallet(&uid(from)),
            Account::earnings(&uid(to)),
            amount,
            TransferKind::Gift,
        )],
        Op::Refund { user, amount } => vec![leg(
            Account::wallet(&uid(user)),
            Account::system(SystemAccount::Refunds),
            amount,
            TransferKind::Refund,
        )],
        _ => {
            let _ = hold_ids;
            return None;
        }
    })
}

/// Runs one operation with its idempotency key; returns its result (a number that identifies
/// the effect) or the refusal.
async fn execute(w: &Arc<World>, index: usize, op: &Op) -> AppResult<i64> {
    let key = format!("op-{index}");
    let hold_ids = w.holds.lock().clone();
    let idem = Idempotency::new(Some(&key), "prop", &format!("{op:?}"))?;
    let op2 = op.clone();
    let (result, deltas): (i64, Deltas) = w
        .store
        .write(move |tx| {
            let mut deltas: Deltas = Vec::new();
            let r = idem.run(tx, || {
                if let Some(legs) = legs_of(&op2, &hold_ids) {
                    let posted = balance::post(tx, &legs, Some(&idem.key))?;
                    for t in &posted {
                        deltas.push((t.debit.clone(), -t.amount));
                        deltas.push((t.credit.clone(), t.amount));
                    }
                    return Ok(posted[0].seq as i64);
                }
                match op2 {
                    Op::Hold { user, amount } => {
                        let h = balance::hold(tx, &uid(user), amount, "prop", None)?;
                        deltas.push((Account::wallet(&uid(user)), -amount));
                        deltas.push((Account::held(&uid(user)), amount));
                        Ok(h.created_at_ms + h.amount)
                    }
                    Op::Settle { hold, amount } => {
                        let id = hold_ids
                            .get(hold as usize % hold_ids.len().max(1))
                            .cloned()
                            .unwrap_or_default();
                        let h = balance::settle(
                            tx,
                            &id,
                            amount,
                            Account::earnings(&uid(0)),
                            TransferKind::CallEarning,
                            "prop",
                        )?;
                        deltas.push((Account::held(&h.user_id), -amount));
                        deltas.push((Account::earnings(&uid(0)), amount));
                        Ok(h.settled)
                    }
                    Op::Release { hold } => {
                        let id = hold_ids
                            .get(hold as usize % hold_ids.len().max(1))
                            .cloned()
                            .unwrap_or_default();
                        let h = balance::release(tx, &id)?;
                        let released = h.released;
                        if released > 0 {
                            deltas.push((Account::held(&h.user_id), -released));
                            deltas.push((Account::wallet(&h.user_id), released));
                        }
                        Ok(released)
                    }
                    _ => Err(duet::core::error::AppError::validation("not an effect")),
                }
            });
            // A replayed result made no change now.
            r.map(|v| (v, deltas))
        })
        .await?;
    if let Op::Hold { .. } = op {
        // The hold's id is what later settle/release ops pick from.
        let id = w.store.read(balance::open_hold_ids);
        let ids = id.await?;
        let mut holds = w.holds.lock();
        for i in ids {
            if !holds.contains(&i) {
                holds.push(i);
            }
        }
    }
    // A replayed request ran no effect, so its deltas are empty: summing every execution's
    // deltas applies each acknowledged operation exactly once.
    let mut model = w.model.lock();
    for (a, d) in deltas {
        *model.entry(a).or_default() += d;
    }
    let mut results = w.results.lock();
    match results.get(&key) {
        Some(first) => assert_eq!(*first, result, "a retry returned another result"),
        None => {
            results.insert(key, result);
        }
    }
    Ok(result)
}

fn run_case(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("p.redb"),
            duet::domains::TABLES,
            Arc::new(ManualClock::new(1_000_000)),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let w = Arc::new(World {
            store: store.clone(),
            holds: Mutex::new(Vec::new()),
            model: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
        });
        // Concurrent chunks: the operations of a chunk race each other.
        for (c, chunk) in ops.chunks(6).enumerate() {
            let tasks: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(j, op)| {
                    let w = w.clone();
                    let index = c * 6 + j;
                    let (index, op) = match op {
                        Op::Retry { op: target } if index > 0 => {
                            let t = *target as usize % index;
                            (t, ops[t].clone())
                        }
                        other => (index, other.clone()),
                    };
                    tokio::spawn(async move { execute(&w, index, &op).await })
                })
                .collect();
            for t in tasks {
                let _ = t.await.unwrap();
            }
        }
        let report = store
            .read(|rtx| balance::verify::verify(rtx, |_, _| {}))
            .await
            .unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        if ops.iter().any(|o| matches!(o, Op::Purchase { .. })) {
            assert!(
                report.entries > 0,
                "purchases always succeed, so the journal has entries"
            );
        }
        let ledger: HashMap<Account, i64> = store
            .read(|rtx| {
                Ok(balance::all_balances(rtx)?
                    .into_iter()
                    .collect::<HashMap<_, _>>())
            })
            .await
            .unwrap();
        let model = w.model.lock().clone();
        for (a, b) in &ledger {
            assert_eq!(
                model.get(a).copied().unwrap_or(0),
                *b,
                "{} differs from the model",
                a.as_str()
            );
            if a.kind() == AccountKind::Wallet && *b < 0 {
                let flagged = store.read({
                    let u = a.owner().unwrap().to_owned();
                    move |rtx| balance::in_debt(rtx, &u)
                });
                assert!(flagged.await.unwrap(), "a negative wallet is flagged");
            }
        }
        for (a, b) in &model {
            assert_eq!(
                ledger.get(a).copied().unwrap_or(0),
                *b,
                "{} is missing from the ledger",
                a.as_str()
            );
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_concurrent_ledger_operations_keep_every_invariant(ops in proptest::collection::vec(op(), 1..80)) {
        run_case(ops);
    }
}
