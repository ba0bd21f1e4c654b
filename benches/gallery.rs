//! Gallery benchmark: a real server in this process with `profiles` accounts (20% streamers,
//! 10% of everyone online), 200 blocks for each of a tenth of the viewers, and presence churning
//! at `churn_per_sec` changes a second throughout. Prints, under that churn:
//! - feed requests per second and p50/p99 over HTTP (`GET /v1/gallery`) at a fixed concurrency;
//! - the engine path alone (`gallery::feed`, no HTTP);
//! - the freshness lag: from a streamer coming online to the first feed that shows them;
//! - the same feed query on PostgreSQL (127.0.0.1:5432, database `test`) with the same data,
//!   the same churn and the same concurrency, and the ratios.
//!
//! `cargo bench --bench gallery` runs 100,000 profiles; under `cargo test` it runs 1,000 for a
//! second, so CI proves the benchmark still works.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use duet::app::App;
use duet::config::Config;
use duet::core::auth::{Principal, Role};
use duet::core::clock::{SharedClock, SystemClock};
use duet::domains::{gallery, user};
use rand::{Rng, SeedableRng};

struct Sizes {
    profiles: usize,
    viewers: usize,
    blocks_per_viewer: usize,
    churn_per_sec: usize,
    concurrency: usize,
    measure: Duration,
}

fn main() {
    let s = if common::full() {
        Sizes {
            profiles: 100_000,
            viewers: 1_000,
            blocks_per_viewer: 200,
            churn_per_sec: 1_000,
            concurrency: 32,
            measure: Duration::from_secs(10),
        }
    } else {
        Sizes {
            profiles: 1_000,
            viewers: 50,
            blocks_per_viewer: 20,
            churn_per_sec: 100,
            concurrency: 4,
            measure: Duration::from_secs(1),
        }
    };
    common::run(run(s));
}

async fn run(s: Sizes) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.path().to_path_buf();
    config.server.connections.per_address_max = 100_000;
    // 20,000 streamers would each need an uploaded, approved avatar to be shown. The rule is
    // one more term of the same index query, so the feed costs the same with it off.
    config.gallery.streamers_need_approved_photo = false;
    config.auth.throttle.signups_per_address_max = u32::MAX;
    config.rate_limits.user_writes.max = u32::MAX;
    config.rate_limits.address_writes.max = u32::MAX;
    // People go offline as their (simulated) connection drops: the churn is real transitions.
    config.presence.offline_grace_secs = 0;
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let ctx = app.ctx.clone();

    // Accounts: every fifth a streamer.
    let started = Instant::now();
    let ids = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(s.profiles)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..256 {
        let (ctx, ids, next, n) = (ctx.clone(), ids.clone(), next.clone(), s.profiles);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let t = user::sign_in_device(
                    &ctx,
                    &format!("bench-device-{i}"),
                    "bench-secret-0123456789",
                    duet::core::platform::Platform::Web,
                    user::ClientMeta::default(),
                )
                .await
                .unwrap();
                ids.lock().push((i, t.user_id));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let mut ids = Arc::try_unwrap(ids).unwrap().into_inner();
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    let streamers: Vec<String> = ids.iter().step_by(5).cloned().collect();
    let users: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, id)| id.clone())
        .collect();
    for chunk in streamers.chunks(1_000) {
        let chunk = chunk.to_vec();
        ctx.store
            .write(move |tx| {
                for id in &chunk {
                    user::set_role_tx(tx, id, Role::Streamer)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    println!(
        "{} accounts ({} streamers) in {:.1} s",
        ids.len(),
        streamers.len(),
        started.elapsed().as_secs_f64()
    );

    // 10% of everyone online.
    let mut rng = rand::rng();
    let mut online: Vec<String> = ids
        .iter()
        .filter(|_| rng.random_bool(0.1))
        .cloned()
        .collect();
    for id in &online {
        ctx.presence.connected(id).await;
    }
    ctx.presence.flush().await;

    // The viewers: users; a tenth of them with blocks.
    let viewers: Vec<String> = users.iter().take(s.viewers).cloned().collect();
    let mut blocks = Vec::new();
    for v in viewers.iter().take(s.viewers / 10) {
        for _ in 0..s.blocks_per_viewer {
            let target = &streamers[rng.random_range(0..streamers.len())];
            blocks.push((v.clone(), target.clone()));
        }
    }
    let queue = Arc::new(parking_lot::Mutex::new(blocks.clone()));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (ctx, queue) = (ctx.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some((a, b)) = queue.lock().pop() else {
                    return;
                };
                // A repeated pair is refused as already blocked; that is fine here.
                let _ = duet::domains::blocklist::block(
                    &ctx,
                    &a,
                    &b,
                    duet::domains::blocklist::BlockReason::Other,
                    None,
                )
                .await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    app.consumers_caught_up(Duration::from_secs(600))
        .await
        .unwrap();
    println!(
        "{} online, {} blocks; index ready after {:.1} s",
        online.len(),
        blocks.len(),
        started.elapsed().as_secs_f64()
    );

    // The churn: presence changes at a steady rate, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (ctx, stop, ids) = (ctx.clone(), stop.clone(), ids.clone());
        let mut online = std::mem::take(&mut online);
        let per_sec = s.churn_per_sec;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = (per_sec / 100).max(1);
            let mut rng = rand::rngs::StdRng::from_os_rng();
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..per_tick {
                    if rng.random_bool(0.5) && !online.is_empty() {
                        let i = rng.random_range(0..online.len());
                        let id = online.swap_remove(i);
                        ctx.presence.disconnected(&id).await;
                    } else {
                        let id = ids[rng.random_range(0..ids.len())].clone();
                        ctx.presence.connected(&id).await;
                        online.push(id);
                    }
                }
                ctx.presence.sweep().await;
            }
        })
    };

    // Tokens for HTTP: sign each viewer in again by device.
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for v in viewers.iter().take(s.concurrency * 4) {
        let i = ids.iter().position(|id| id == v).unwrap();
        let t = user::sign_in_device(
            &ctx,
            &format!("bench-device-{i}"),
            "bench-secret-0123456789",
            duet::core::platform::Platform::Web,
            user::ClientMeta::default(),
        )
        .await
        .unwrap();
        tokens.push(t.access_token);
    }

    let (http_rate, http_p50, http_p99) = measure(s.concurrency, s.measure, {
        let tokens = Arc::new(tokens);
        move |w, i| {
            let (http, base, tokens) = (http.clone(), base.clone(), tokens.clone());
            async move {
                let r = http
                    .get(format!("{base}/v1/gallery"))
                    .bearer_auth(&tokens[(w * 7 + i) % tokens.len()])
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.unwrap();
            }
        }
    })
    .await;
    println!(
        "GET /v1/gallery under churn      {http_rate:>9.0} req/s  p50 {http_p50:.2} ms  p99 {http_p99:.2} ms"
    );

    let principals: Arc<Vec<Principal>> = Arc::new(
        viewers
            .iter()
            .map(|v| Principal {
                user_id: v.clone().into(),
                session_id: String::new(),
                role: Role::User,
            })
            .collect(),
    );
    let (engine_rate, engine_p50, engine_p99) = measure(s.concurrency, s.measure, {
        let ctx = ctx.clone();
        move |w, i| {
            let (ctx, principals) = (ctx.clone(), principals.clone());
            async move {
                let who = &principals[(w * 7 + i) % principals.len()];
                gallery::feed(&ctx, who, Default::default(), None, 20)
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    println!(
        "engine path (no HTTP)            {engine_rate:>9.0} req/s  p50 {engine_p50:.2} ms  p99 {engine_p99:.2} ms"
    );

    // Freshness: a streamer comes online; how long until a feed shows them.
    let mut lags = Vec::new();
    let viewer = Principal {
        user_id: viewers[viewers.len() - 1].clone().into(),
        session_id: String::new(),
        role: Role::User,
    };
    for target in streamers.iter().rev().take(10) {
        ctx.presence.disconnected(target).await;
        ctx.presence.sweep().await;
        ctx.presence.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        ctx.presence.connected(target).await;
        loop {
            let page = gallery::feed(&ctx, &viewer, Default::default(), None, 50)
                .await
                .unwrap();
            let mut cursor = page.next_cursor.clone();
            let mut found = page.items.iter().any(|c| c.user_id == *target);
            while !found && let Some(c) = cursor.take() {
                let next = gallery::feed(&ctx, &viewer, Default::default(), Some(&c), 50)
                    .await
                    .unwrap();
                found = next.items.iter().any(|c| c.user_id == *target);
                cursor = next.next_cursor;
            }
            if found || t0.elapsed() > Duration::from_secs(5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let each: Vec<String> = lags.iter().map(|l| format!("{l:.0}")).collect();
    lags.sort_by(f64::total_cmp);
    println!(
        "freshness (online -> in a feed)  p50 {:.0} ms  max {:.0} ms  (each, ms: {})",
        common::percentile(&lags, 0.5),
        lags.last().copied().unwrap_or(0.0),
        each.join(" ")
    );

    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();

    match postgres(&s, &ids, &streamers, &viewers, &blocks).await {
        Ok((rate, p50, p99)) => {
            println!(
                "PostgreSQL, same feed and churn  {rate:>9.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms"
            );
            println!(
                "Duet HTTP / PostgreSQL           {:>9.1}x",
                http_rate / rate
            );
            println!(
                "Duet engine / PostgreSQL         {:>9.1}x",
                engine_rate / rate
            );
        }
        Err(e) => println!("PostgreSQL not measured: {e}"),
    }
    app.shutdown().await;
}

/// Runs `make(worker, i)` on `concurrency` workers for `time`; requests per second, and the
/// latency p50 and p99 in milliseconds.
async fn measure<F, Fut>(concurrency: usize, time: Duration, make: F) -> (f64, f64, f64)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while started.elapsed() < time {
                let t0 = Instant::now();
                make(w, i).await;
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                // The engine path never waits: without a yield its workers would starve the
                // churn and the index consumer, and it would no longer be measured under churn.
                tokio::task::yield_now().await;
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (
        rate,
        common::percentile(&all, 0.5),
        common::percentile(&all, 0.99),
    )
}

/// The same feed on PostgreSQL: the profiles with the columns the feed needs, the best index
/// for it (partial, in the feed's order), blocks indexed both ways, the same churn.
async fn postgres(
    s: &Sizes,
    ids: &[String],
    streamers: &[String],
    viewers: &[String],
    blocks: &[(String, String)],
) -> Result<(f64, f64, f64), String> {
    let setup = common::postgres().await?;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS duet_bench_profile; DROP TABLE IF EXISTS duet_bench_block;
             CREATE TABLE duet_bench_profile (id text PRIMARY KEY, role smallint NOT NULL,
                 online boolean NOT NULL, online_since bigint NOT NULL, listed boolean NOT NULL,
                 busy boolean NOT NULL);
             CREATE TABLE duet_bench_block (blocker text NOT NULL, blocked text NOT NULL,
                 PRIMARY KEY (blocker, blocked));
             CREATE INDEX duet_bench_block_back ON duet_bench_block (blocked, blocker);",
        )
        .await
        .map_err(|e| e.to_string())?;
    let is_streamer: std::collections::HashSet<&String> = streamers.iter().collect();
    let mut rng = rand::rng();
    for chunk in ids.chunks(5_000) {
        let mut sql = String::from(
            "INSERT INTO duet_bench_profile (id, role, online, online_since, listed, busy) VALUES ",
        );
        for (n, id) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            let role = i16::from(is_streamer.contains(id));
            let on = rng.random_bool(0.1);
            sql.push_str(&format!(
                "('{id}', {role}, {on}, {}, true, false)",
                rng.random_range(0..1_000_000i64)
            ));
        }
        setup.batch_execute(&sql).await.map_err(|e| e.to_string())?;
    }
    for chunk in blocks.chunks(5_000) {
        let mut sql = String::from("INSERT INTO duet_bench_block VALUES ");
        for (n, (a, b)) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("('{a}', '{b}')"));
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        setup.batch_execute(&sql).await.map_err(|e| e.to_string())?;
    }
    setup
        .batch_execute(
            "CREATE INDEX duet_bench_feed ON duet_bench_profile (role, online_since)
                 WHERE online AND listed;
             ANALYZE duet_bench_profile; ANALYZE duet_bench_block;",
        )
        .await
        .map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, ids) = (stop.clone(), ids.to_vec());
        let client = common::postgres().await?;
        let per_sec = s.churn_per_sec;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = (per_sec / 100).max(1);
            let mut rng = rand::rngs::StdRng::from_os_rng();
            let update = client
                .prepare(
                    "UPDATE duet_bench_profile SET online = $2, online_since = $3 WHERE id = $1",
                )
                .await
                .unwrap();
            let mut t = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..per_tick {
                    t += 1;
                    let id = &ids[rng.random_range(0..ids.len())];
                    client
                        .execute(&update, &[id, &rng.random_bool(0.5), &t])
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut clients = Vec::new();
    for _ in 0..s.concurrency {
        let c = common::postgres().await?;
        let q = c
            .prepare(
                "SELECT p.id, p.busy FROM duet_bench_profile p
                 WHERE p.role = 1 AND p.online AND p.listed AND p.id <> $1
                   AND NOT EXISTS (SELECT 1 FROM duet_bench_block b
                                   WHERE (b.blocker = $1 AND b.blocked = p.id)
                                      OR (b.blocker = p.id AND b.blocked = $1))
                 ORDER BY p.online_since ASC LIMIT 20",
            )
            .await
            .map_err(|e| e.to_string())?;
        clients.push(Arc::new((c, q)));
    }
    let clients = Arc::new(clients);
    let viewers = Arc::new(viewers.to_vec());
    let result = measure(s.concurrency, s.measure, move |w, i| {
        let (clients, viewers) = (clients.clone(), viewers.clone());
        async move {
            let (c, q) = &*clients[w];
            let v = &viewers[(w * 7 + i) % viewers.len()];
            c.query(q, &[v]).await.unwrap();
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();
    Ok(result)
}
