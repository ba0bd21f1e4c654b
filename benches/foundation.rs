//! Foundation benchmark: a real server in this process, real HTTP and WebSocket clients.
//!
//! Prints requests per second for sign-in (new device, returning device, password) and for
//! `GET /v1/me/profile`, each with its ratio to `GET /healthz` measured in the same run (the
//! cost of the HTTP stack alone), then WebSocket fan-out: events per second delivered to 1,000
//! subscribers, with p50/p99 delivery latency.
//!
//! `cargo bench --bench foundation` runs the full sizes; under `cargo test` (no `--bench`) it
//! runs tiny sizes, so CI proves the benchmark still works without spending minutes on it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use duet::app::App;
use duet::config::Config;
use duet::core::clock::{SharedClock, SystemClock};
use duet::core::events::{Audience, NewEvent};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

struct Sizes {
    http_requests: usize,
    concurrency: usize,
    password_logins: usize,
    subscribers: usize,
    events: usize,
}

duet::domain_events! {
    /// The fan-out benchmark's own event: a settings-topic broadcast stamped with its send time.
    pub enum BenchEvent in "bench" {
        Tick = "bench_tick" on "settings" to "everyone" {
            key: String,
            /// Microseconds since the Unix epoch when it was committed.
            t: i64,
        }
    }
}

fn main() {
    let full = common::full();
    let sizes = if full {
        Sizes {
            http_requests: 20_000,
            concurrency: 64,
            password_logins: 200,
            subscribers: 1_000,
            events: 200,
        }
    } else {
        Sizes {
            http_requests: 200,
            concurrency: 8,
            password_logins: 4,
            subscribers: 20,
            events: 5,
        }
    };
    common::run(run(sizes));
}

async fn run(s: Sizes) {
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
    // A benchmark signs in far more than a person would from one address.
    config.auth.throttle.address_failures_max = u32::MAX;
    config.auth.throttle.signups_per_address_max = u32::MAX;
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(s.concurrency)
        .build()
        .unwrap();

    println!(
        "duet foundation benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let healthz = {
        let (http, base) = (http.clone(), base.clone());
        rate(s.http_requests, s.concurrency, move |_, _| {
            let (http, base) = (http.clone(), base.clone());
            async move { ok(http.get(format!("{base}/healthz")).send().await) }
        })
        .await
    };
    println!("GET /healthz (baseline)            {:>9.0} req/s", healthz);

    let new_device = {
        let (http, base) = (http.clone(), base.clone());
        rate(s.http_requests, s.concurrency, move |_, i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                ok(http
                    .post(format!("{base}/v1/auth/device"))
                    .json(&json!({"deviceId": format!("bench-{i}"), "deviceSecret": "bench-secret-0123", "platform": "ios"}))
                    .send()
                    .await)
            }
        })
        .await
    };
    println!(
        "POST /v1/auth/device (new account) {:>9.0} req/s  ({:.2} of baseline)",
        new_device,
        new_device / healthz
    );

    // Each worker signs its own ten devices in again, so no two requests claim one device.
    let returning = {
        let (http, base, concurrency) = (http.clone(), base.clone(), s.concurrency);
        rate(s.http_requests, s.concurrency, move |w, i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                ok(http
                    .post(format!("{base}/v1/auth/device"))
                    .json(&json!({"deviceId": format!("bench-{}", w + concurrency * (i % 10)), "deviceSecret": "bench-secret-0123", "platform": "ios"}))
                    .send()
                    .await)
            }
        })
        .await
    };
    println!(
        "POST /v1/auth/device (returning)   {:>9.0} req/s  ({:.2} of baseline)",
        returning,
        returning / healthz
    );

    // One account per password-login worker: concurrent sign-ins of one account are refused.
    // Made as operators make accounts (verified email), since password sign-in needs one.
    let login_workers = s.concurrency.min(8);
    let mut token = String::new();
    for w in 0..login_workers {
        let store = app.ctx.store.clone();
        tokio::task::spawn_blocking(move || {
            duet::domains::user::bootstrap_account(
                &store,
                &format!("bench{w}@example.com"),
                "bench-password",
                duet::core::auth::Role::User,
            )
        })
        .await
        .unwrap()
        .unwrap();
        let r: Value = http
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"email": format!("bench{w}@example.com"), "password": "bench-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token = r["accessToken"].as_str().unwrap().to_owned();
    }
    let password = {
        let (http, base) = (http.clone(), base.clone());
        rate(s.password_logins, login_workers, move |w, _| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                ok(http
                    .post(format!("{base}/v1/auth/login"))
                    .json(&json!({"email": format!("bench{w}@example.com"), "password": "bench-password"}))
                    .send()
                    .await)
            }
        })
        .await
    };
    println!(
        "POST /v1/auth/login (argon2id)     {:>9.0} req/s  ({:.4} of baseline)",
        password,
        password / healthz
    );

    let profile = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        rate(s.http_requests, s.concurrency, move |_, _| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            async move {
                ok(http
                    .get(format!("{base}/v1/me/profile"))
                    .bearer_auth(token)
                    .send()
                    .await)
            }
        })
        .await
    };
    println!(
        "GET /v1/me/profile                 {:>9.0} req/s  ({:.2} of baseline)",
        profile,
        profile / healthz
    );

    fan_out(&app, &base, &http, s.subscribers, s.events).await;
    app.shutdown().await;
}

fn ok(r: reqwest::Result<reqwest::Response>) {
    let r = r.expect("request");
    assert!(r.status().is_success(), "status {}", r.status());
}

/// Runs `n` requests with `concurrency` in flight; `make(worker, i)` makes request `i` on
/// worker `worker`. Returns requests per second.
async fn rate<F, Fut>(n: usize, concurrency: usize, make: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    make(worker, i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `subscribers` WebSockets on the `settings` topic; `events` broadcast events, one commit
/// each; every client records each event's delivery latency.
async fn fan_out(app: &App, base: &str, http: &reqwest::Client, subscribers: usize, events: usize) {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(subscribers * events)));
    let mut clients = Vec::new();
    let mut ready = Vec::new();
    for i in 0..subscribers {
        let r: Value = http
            .post(format!("{base}/v1/auth/device"))
            .json(&json!({"deviceId": format!("ws-{i}"), "deviceSecret": "bench-secret-0123", "platform": "web"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["accessToken"].as_str().unwrap().to_owned();
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("{}/v1/ws", base.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(ok) => ok,
            Err(e) => {
                let m = http
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                for l in m
                    .lines()
                    .filter(|l| l.contains("http_conn") || l.contains("ws_conn"))
                {
                    eprintln!("{l}");
                }
                panic!("ws {i}: {e}");
            }
        };
        use futures_util::SinkExt;
        let sub =
            rmp_serde::to_vec_named(&json!({"type": "subscribe", "topic": "settings"})).unwrap();
        ws.send(Message::Binary(sub.into())).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        let latencies = latencies.clone();
        clients.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut mine = Vec::with_capacity(events);
            while mine.len() < events {
                let Some(Ok(Message::Binary(b))) = ws.next().await else {
                    continue;
                };
                let f: Value = rmp_serde::from_slice(&b).unwrap();
                match f["type"].as_str() {
                    Some("subscribed") => {
                        if let Some(t) = tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Some("event") => mine.push(now_micros() - f["data"]["t"].as_i64().unwrap()),
                    _ => {}
                }
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for r in ready {
        r.await.unwrap();
    }
    let started = Instant::now();
    for i in 0..events {
        app.ctx
            .store
            .write(move |tx| {
                tx.emit(
                    NewEvent::new(BenchEvent::Tick {
                        key: format!("k{i}"),
                        t: now_micros(),
                    })
                    .to(Audience::Everyone),
                )
            })
            .await
            .unwrap();
        // Paced, as real changes are: about 1,000 events a second.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "WebSocket fan-out: {} events x {} subscribers = {} deliveries in {:.2} s: {:>9.0} deliveries/s, latency p50 {:.1} ms, p99 {:.1} ms",
        events,
        subscribers,
        lat.len(),
        elapsed,
        lat.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
