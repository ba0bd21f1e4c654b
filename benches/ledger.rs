//! Ledger benchmark, one run, ratios against baselines measured in the same run:
//!
//! 1. durable transfers per second through the ledger with group commit (many writers);
//! 2. the same transfers with one commit each (one writer at a time), and the ratio;
//! 3. transfers per second through the HTTP API (`POST /v1/admin/balances/{id}/adjust`);
//! 4. where PostgreSQL is reachable (127.0.0.1:5432, database `test`), the classic
//!    implementation of the same transfer — update two balance rows and insert a journal row in
//!    one transaction — at the same concurrency, and Duet's ratio to it.
//!
//! Every transfer is durable before it is acknowledged, carries an idempotency key, and emits
//! its `balance_changed` event, as in production. `cargo bench --bench ledger` runs full sizes;
//! under `cargo test` it runs tiny ones.

mod common;

use std::sync::Arc;
use std::time::Instant;

use duet::app::App;
use duet::config::Config;
use duet::core::clock::{SharedClock, SystemClock};
use duet::core::idempotency::Idempotency;
use duet::core::metrics::Metrics;
use duet::core::store::Store;
use duet::domains::balance::{self, model::*};
use serde_json::json;

struct Sizes {
    /// Transfers per group-commit run.
    grouped: usize,
    single: usize,
    http: usize,
    /// Concurrent writers of each group-commit run.
    concurrency: Vec<usize>,
    /// Concurrent HTTP clients and PostgreSQL connections.
    clients: usize,
    accounts: usize,
}

fn main() {
    let full = common::full();
    let s = if full {
        Sizes {
            grouped: 150_000,
            single: 3_000,
            http: 20_000,
            concurrency: vec![64, 512, 2048],
            clients: 64,
            accounts: 10_000,
        }
    } else {
        Sizes {
            grouped: 300,
            single: 50,
            http: 50,
            concurrency: vec![2, 8],
            clients: 8,
            accounts: 20,
        }
    };
    common::run(run(s));
}

fn leg(i: usize, accounts: usize) -> Leg {
    Leg {
        debit: Account::system(SystemAccount::StorePurchases),
        credit: Account::wallet(&format!("user-{}", i % accounts)),
        amount: 1 + (i % 100) as i64,
        kind: TransferKind::Purchase,
        reference: format!("bench:{i}"),
    }
}

async fn transfer(store: &Store, i: usize, accounts: usize, run: &str) {
    let idem = Idempotency::new(Some(&format!("{run}-{i}")), "bench", &i).unwrap();
    let leg = leg(i, accounts);
    store
        .write(move |tx| {
            idem.run(tx, || {
                balance::post(tx, std::slice::from_ref(&leg), Some(&idem.key)).map(|t| t[0].seq)
            })
        })
        .await
        .unwrap();
}

async fn run(s: Sizes) {
    println!(
        "duet ledger benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("ledger.redb"),
        duet::domains::TABLES,
        Arc::new(SystemClock),
        Arc::new(Metrics::new()),
    )
    .unwrap();

    // 1. Group commit: many concurrent writers, at rising concurrency (each in-flight request
    //    is one writer); the acknowledgement latency shows what bigger groups cost.
    let mut grouped = 0.0;
    let mut rates = Vec::new();
    for (round, writers) in s.concurrency.iter().copied().enumerate() {
        let (rate, p50, p99) = grouped_run(
            &store,
            s.grouped,
            writers,
            s.accounts,
            &format!("grouped{round}"),
        )
        .await;
        println!(
            "ledger, group commit, {writers:>4} writers    {rate:>9.0} durable transfers/s  (ack p50 {p50:.1} ms, p99 {p99:.1} ms)"
        );
        grouped = f64::max(grouped, rate);
        rates.push((writers, rate));
    }

    // 2. One commit per transfer.
    let started = Instant::now();
    for i in 0..s.single {
        transfer(&store, i, s.accounts, "single").await;
    }
    let single = s.single as f64 / started.elapsed().as_secs_f64();
    println!(
        "ledger, one commit per transfer        {:>9.0} durable transfers/s",
        single
    );
    println!(
        "group commit / one commit per transfer {:>9.1}x",
        grouped / single
    );

    let report = store
        .read_blocking(|rtx| balance::verify::verify(rtx, |_, _| {}))
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    println!("ledger verify after {} entries: OK", report.entries);
    let closed = store.closed();
    drop(store);
    closed.await;

    // 3. Through the HTTP API.
    let http_rate = http(&s).await;
    println!(
        "HTTP POST .../adjust ({} clients)       {:>9.0} transfers/s  ({:.2} of the ledger's)",
        s.clients,
        http_rate,
        http_rate / grouped
    );

    // 4. PostgreSQL, the classic way, at the same concurrency.
    match postgres(&s).await {
        Ok(pg) => {
            println!(
                "PostgreSQL, one transaction each ({} conns) {:>9.0} transfers/s",
                s.clients, pg
            );
            // The same concurrency on both sides: Duet's run with as many writers as
            // PostgreSQL has connections.
            if let Some((_, same)) = rates.iter().find(|(w, _)| *w == s.clients) {
                println!(
                    "Duet ledger / PostgreSQL, {} each       {:>9.1}x",
                    s.clients,
                    same / pg
                );
            }
            println!(
                "Duet ledger at its best / PostgreSQL   {:>9.1}x",
                grouped / pg
            );
        }
        Err(e) => println!("PostgreSQL not reachable ({e}); comparison skipped"),
    }
}

/// `n` transfers from `writers` concurrent tasks; returns (transfers/s, ack p50 ms, p99 ms).
async fn grouped_run(
    store: &Store,
    n: usize,
    writers: usize,
    accounts: usize,
    run: &str,
) -> (f64, f64, f64) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..writers)
        .map(|_| {
            let (store, next, run) = (store.clone(), next.clone(), run.to_owned());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return lat;
                    }
                    let t = Instant::now();
                    transfer(&store, i, accounts, &run).await;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    for w in workers {
        lat.extend(w.await.unwrap());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (rate, pct(0.5), pct(0.99))
}

async fn http(s: &Sizes) -> f64 {
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
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let store = app.ctx.store.clone();
    let email = "bench-admin@example.com";
    tokio::task::spawn_blocking(move || {
        duet::domains::user::bootstrap_account(
            &store,
            email,
            "bench-password",
            duet::core::auth::Role::Admin,
        )
    })
    .await
    .unwrap()
    .unwrap();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let r: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": email, "password": "bench-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["accessToken"].as_str().unwrap().to_owned();
    let user = r["userId"].as_str().unwrap().to_owned();
    let clients = s.clients;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, user, next) = (
                http.clone(),
                base.clone(),
                token.clone(),
                user.clone(),
                next.clone(),
            );
            let n = s.http;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = http
                        .post(format!("{base}/v1/admin/balances/{user}/adjust"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", format!("http-{i}"))
                        .json(&json!({"amount": 1, "reason": "bench"}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let rate = s.http as f64 / started.elapsed().as_secs_f64();
    app.shutdown().await;
    rate
}

async fn postgres(s: &Sizes) -> Result<f64, String> {
    let conns = s.clients;
    let setup = common::postgres().await?;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS duet_bench_journal; DROP TABLE IF EXISTS duet_bench_balance;
             CREATE TABLE duet_bench_balance (account text PRIMARY KEY, balance bigint NOT NULL);
             CREATE TABLE duet_bench_journal (id bigserial PRIMARY KEY, debit text NOT NULL, credit text NOT NULL,
                 amount bigint NOT NULL CHECK (amount > 0), kind text NOT NULL, reference text NOT NULL,
                 idempotency_key text UNIQUE, created_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .map_err(|e| e.to_string())?;
    setup
        .execute(
            "INSERT INTO duet_bench_balance SELECT 'wallet:user-' || g, 0 FROM generate_series(0, $1::int - 1) g
             UNION ALL SELECT 'system:store_purchases', 0",
            &[&(s.accounts as i32)],
        )
        .await
        .map_err(|e| e.to_string())?;
    let n = s.grouped.min(50_000);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(common::postgres().await?);
    }
    let started = Instant::now();
    let workers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let next = next.clone();
            let accounts = s.accounts;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let l = leg(i, accounts);
                    let tx = c.transaction().await.unwrap();
                    tx.execute("UPDATE duet_bench_balance SET balance = balance - $1 WHERE account = $2", &[&l.amount, &l.debit.as_str()])
                        .await
                        .unwrap();
                    tx.execute("UPDATE duet_bench_balance SET balance = balance + $1 WHERE account = $2", &[&l.amount, &l.credit.as_str()])
                        .await
                        .unwrap();
                    tx.execute(
                        "INSERT INTO duet_bench_journal (debit, credit, amount, kind, reference, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[&l.debit.as_str(), &l.credit.as_str(), &l.amount, &"purchase", &l.reference, &format!("pg-{i}")],
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    setup
        .batch_execute("DROP TABLE duet_bench_journal; DROP TABLE duet_bench_balance;")
        .await
        .map_err(|e| e.to_string())?;
    Ok(rate)
}
