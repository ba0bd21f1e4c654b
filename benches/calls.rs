//! Call billing benchmark: many concurrent connected calls billed on their schedules by the
//! call engine, on the real clock. Prints checkpoint lateness p50/p99 (when each charge was
//! committed against when it was due) and the coins billed against the coins the schedules
//! say are owed for the calls' durations (they must be equal).
//!
//! The calls use a bench tariff with a checkpoint every 2 s on both sides (installed as the
//! roulette default), so a short run bills many checkpoints: 30 times the seed tariff's rate
//! once calls pass their first minute. Calls connect spread over one 2 s period, as real calls
//! start at different moments. `cargo bench --bench calls` runs
//! 10,000 calls for 12 s; under `cargo test` it runs 20 calls for 3 s.

mod common;

use std::sync::Arc;
use std::time::Duration;

use duet::app::App;
use duet::config::Config;
use duet::core::auth::Role;
use duet::core::clock::{SharedClock, SystemClock};
use duet::domains::balance::{self, model::*};
use duet::domains::billing::{self, TariffInput, model::*};
use duet::domains::user::{self, ClientMeta, model::Platform};
use duet::domains::video::{self, Action, roulette};

fn main() {
    let full = common::full();
    let (calls, seconds) = if full { (10_000, 12) } else { (20, 3) };
    common::run(run(calls, seconds));
}

async fn people(ctx: &Arc<duet::app::Ctx>, prefix: &str, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let ctx = ctx.clone();
            let device = format!("{prefix}-{i}");
            tokio::spawn(async move {
                user::sign_in_device(
                    &ctx,
                    &device,
                    "bench-secret-0123456",
                    Platform::Android,
                    ClientMeta::default(),
                )
                .await
                .unwrap()
                .user_id
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

async fn each<F, Fut>(items: &[String], f: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = items.iter().map(|i| tokio::spawn(f(i.clone()))).collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn run(calls: usize, seconds: u64) {
    println!(
        "duet call billing benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // Throughput is measured here, not the per-caller limits (which would stop it at once).
    config.rate_limits.user_writes.max = u32::MAX;
    config.rate_limits.address_writes.max = u32::MAX;
    // Every client of a benchmark is on 127.0.0.1.
    config.server.connections.per_address_max = usize::MAX;
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.path().to_path_buf();
    config.log.level = "warn".into();
    config.auth.throttle.signups_per_address_max = u32::MAX;
    // Nobody holds a WebSocket in this benchmark: connection loss is not what it measures.
    config.calls.connection_lost_secs = 3600;
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let ctx = app.ctx.clone();

    let roulette_default = ctx
        .store
        .read(billing::list)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.kind == CallKind::Roulette && t.scope == Scope::Default)
        .unwrap();
    let every2 = |coins| Schedule {
        checkpoints: vec![],
        repeat: Some(Repeat {
            every_seconds: 2,
            coins,
        }),
    };
    let input = TariffInput {
        name: "Bench: every 2 s".into(),
        kind: CallKind::Roulette,
        caller_role: Role::User,
        callee_role: Role::Streamer,
        payer: Side::Caller,
        scope: Scope::Default,
        payer_schedule: Schedule {
            checkpoints: vec![Checkpoint {
                at_seconds: 0,
                coins: 3,
            }],
            repeat: Some(Repeat {
                every_seconds: 2,
                coins: 2,
            }),
        },
        earner_schedule: every2(1),
        active: true,
    };
    billing::save(&ctx, "bench", Some(roulette_default.id), input)
        .await
        .unwrap();

    let users = people(&ctx, "u", calls).await;
    let streamers = people(&ctx, "s", calls).await;
    let c = ctx.clone();
    each(&streamers, move |id| {
        let c = c.clone();
        async move {
            duet::domains::mission_control::set_role(&c, "bench", &id, Role::Streamer)
                .await
                .unwrap()
        }
    })
    .await;
    let c = ctx.clone();
    each(&users, move |id| {
        let c = c.clone();
        async move {
            let leg = Leg {
                debit: Account::system(SystemAccount::Adjustments),
                credit: Account::wallet(&id),
                amount: 100_000,
                kind: TransferKind::Adjustment,
                reference: "bench".into(),
            };
            c.store
                .write(move |tx| balance::post(tx, std::slice::from_ref(&leg), None).map(|_| ()))
                .await
                .unwrap();
        }
    })
    .await;
    let c = ctx.clone();
    each(&streamers, move |id| {
        let c = c.clone();
        async move { roulette::set_available(&c, &id, true).await.unwrap() }
    })
    .await;
    let matched = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (c, m) = (ctx.clone(), matched.clone());
    each(&users, move |id| {
        let (c, m) = (c.clone(), m.clone());
        async move {
            if let roulette::Outcome::Matched(call) =
                roulette::join(&c, &id, Some(vec![])).await.unwrap()
            {
                m.lock().push(*call);
            }
        }
    })
    .await;
    // Users who joined before a streamer was free were matched by a later join.
    let open: Vec<video::model::Call> = {
        let ids: Vec<String> = users.clone();
        ctx.store
            .read(move |rtx| {
                let mut out = Vec::new();
                for u in &ids {
                    out.extend(video::history(rtx, u, None, 1)?);
                }
                Ok(out)
            })
            .await
            .unwrap()
    };
    let max_ms = 3_600_000;
    let started = std::time::Instant::now();
    // Calls connect spread over one checkpoint period, as real calls start at different
    // moments: all are connected at once afterwards, and their checkpoints fall due evenly
    // rather than in one synchronised wave.
    let c = ctx.clone();
    let spread_ms = 2000u64;
    let n = open.len().max(1) as u64;
    let joins: Vec<_> = open
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let (c, caller, callee, id) = (
                c.clone(),
                call.caller_id.clone(),
                call.callee_id.clone(),
                call.id.clone(),
            );
            let delay = Duration::from_millis(i as u64 * spread_ms / n);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                video::act(&c, &caller, &id, Action::Joined, max_ms)
                    .await
                    .unwrap();
                video::act(&c, &callee, &id, Action::Joined, max_ms)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for j in joins {
        j.await.unwrap();
    }
    println!(
        "{} calls connected in {:.1} s",
        open.len(),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let c = ctx.clone();
    let hangups: Vec<_> = open
        .iter()
        .map(|call| {
            let (c, who, id) = (c.clone(), call.caller_id.clone(), call.id.clone());
            tokio::spawn(async move {
                video::act(&c, &who, &id, Action::Hangup, max_ms)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ended = Vec::with_capacity(hangups.len());
    for h in hangups {
        ended.push(h.await.unwrap());
    }

    // Lateness of every charge the engine made (hang-up settlements excluded: they are billed
    // at the hang-up, not at their due time).
    let ends: std::collections::HashMap<String, (i64, i64)> = ended
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                (c.connected_at_ms.unwrap(), c.ended_at_ms.unwrap()),
            )
        })
        .collect();
    let lateness: Vec<i64> = ctx
        .store
        .read(move |rtx| {
            let mut out = Vec::new();
            for t in balance::journal_from(rtx, 0, usize::MAX)? {
                let Some(key) = t.idempotency_key.as_deref() else {
                    continue;
                };
                let mut parts = key.split(':');
                let (Some("call"), Some(id), Some(_side), Some(at)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let (Some((connected, end)), Ok(at)) = (ends.get(id), at.parse::<i64>()) else {
                    continue;
                };
                let due = connected + at * 1000;
                if t.created_at_ms < *end {
                    out.push(t.created_at_ms - due);
                }
            }
            Ok(out)
        })
        .await
        .unwrap();
    let mut lat = lateness.clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))];
    let billed: i64 = ended.iter().map(|c| c.charged).sum();
    let expected: i64 = ended
        .iter()
        .map(|c| {
            c.payer_schedule
                .total_at(((c.ended_at_ms.unwrap() - c.connected_at_ms.unwrap()) / 1000) as u64)
        })
        .sum();
    let earned: i64 = ended.iter().map(|c| c.earned).sum();
    let expected_earned: i64 = ended
        .iter()
        .map(|c| {
            c.earner_schedule
                .total_at(((c.ended_at_ms.unwrap() - c.connected_at_ms.unwrap()) / 1000) as u64)
        })
        .sum();
    println!(
        "{} connected calls for ~{seconds} s: {} checkpoints billed by the engine, lateness p50 {} ms, p99 {} ms, max {} ms",
        ended.len(),
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
    println!(
        "coins billed {billed} vs expected {expected}; earned {earned} vs expected {expected_earned}"
    );
    assert_eq!(billed, expected, "billed coins equal the schedules");
    assert_eq!(earned, expected_earned, "earned coins equal the schedules");
    let report = ctx
        .store
        .read(|rtx| balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    drop(ctx);
    app.shutdown().await;
}
