//! Chat benchmark: a real server in this process and 1,000 pairs of real clients. Each pair is
//! two WebSocket connections subscribed to `chat`; one side sends messages over REST
//! (`POST /v1/chats/{userId}/messages`), each waiting for the previous one's answer, and the
//! other side receives them live. Prints messages per second end to end (sent until the last
//! one is received) and the delivery latency (send started → received on the other side's
//! socket) at p50/p99. Clients and server share the machine's cores.
//!
//! `cargo bench --bench chat` runs 1,000 pairs × 20 messages; under `cargo test` it runs
//! 10 pairs × 3 messages, so CI proves the benchmark still works.

use std::sync::Arc;
use std::time::Instant;

use duet::app::App;
use duet::config::Config;
use duet::core::clock::{SharedClock, SystemClock};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

// The same allocator as the `duet` binary, so figures match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (pairs, messages) = if full { (1_000, 20) } else { (10, 3) };
    duet::cli::tune_process();
    duet::cli::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(pairs, messages));
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    user_id: String,
    token: String,
    ws: Socket,
}

async fn client(http: &reqwest::Client, base: &str, device: String) -> Client {
    let r: Value = http
        .post(format!("{base}/v1/auth/device"))
        .json(&json!({"deviceId": device, "deviceSecret": "bench-secret-0123", "platform": "web"}))
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
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let sub = rmp_serde::to_vec_named(&json!({"type": "subscribe", "topic": "chat"})).unwrap();
    ws.send(Message::Binary(sub.into())).await.unwrap();
    loop {
        let Some(Ok(Message::Binary(b))) = ws.next().await else {
            continue;
        };
        let f: Value = rmp_serde::from_slice(&b).unwrap();
        if f["type"] == "subscribed" {
            break;
        }
    }
    Client {
        user_id: r["userId"].as_str().unwrap().to_owned(),
        token,
        ws,
    }
}

async fn run(pairs: usize, messages: usize) {
    println!(
        "duet chat benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.path().to_path_buf();
    config.log.level = "warn".into();
    config.auth.throttle.signups_per_address_max = u32::MAX;
    config.chat.messages_per_minute = u32::MAX;
    // Nobody is greeted: the benchmark measures messages, not sign-up side effects.
    config.chat.auto_add_streamers = 0;
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(pairs)
        .build()
        .unwrap();

    let setup = Instant::now();
    let mut joins = Vec::new();
    for i in 0..pairs {
        let (http, base) = (http.clone(), base.clone());
        joins.push(tokio::spawn(async move {
            let a = client(&http, &base, format!("chat-a-{i}")).await;
            let b = client(&http, &base, format!("chat-b-{i}")).await;
            (a, b)
        }));
    }
    let mut clients = Vec::with_capacity(pairs);
    for j in joins {
        clients.push(j.await.unwrap());
    }
    println!(
        "{} pairs signed in and subscribed in {:.1} s",
        pairs,
        setup.elapsed().as_secs_f64()
    );

    let epoch = Instant::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (a, b)) in clients.into_iter().enumerate() {
        let (http, base) = (http.clone(), base.clone());
        let receiver = b.user_id.clone();
        // The receiving side: every message from its peer, with its latency.
        let mut b_ws = b.ws;
        let recv = tokio::spawn(async move {
            let mut lat = Vec::with_capacity(messages);
            while lat.len() < messages {
                let Some(Ok(Message::Binary(bytes))) = b_ws.next().await else {
                    continue;
                };
                let f: Value = rmp_serde::from_slice(&bytes).unwrap();
                if f["eventType"] == "chat_message" {
                    let sent: u128 = f["data"]["text"].as_str().unwrap().parse().unwrap();
                    lat.push(epoch.elapsed().as_micros() - sent);
                }
            }
            lat
        });
        // The sending side's socket stays open (and drained) so it counts as online.
        let mut a_ws = a.ws;
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = a_ws.next().await {} });
        let send = tokio::spawn(async move {
            for m in 0..messages {
                let text = epoch.elapsed().as_micros().to_string();
                let r = http
                    .post(format!("{base}/v1/chats/{receiver}/messages"))
                    .bearer_auth(&a.token)
                    .json(&json!({"clientMessageId": format!("{i}-{m}"), "text": text}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        });
        tasks.push((send, recv, drain));
    }
    let mut lat: Vec<u128> = Vec::with_capacity(pairs * messages);
    let mut drains = Vec::new();
    for (send, recv, drain) in tasks {
        send.await.unwrap();
        lat.extend(recv.await.unwrap());
        drains.push(drain);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "{} messages between {} pairs in {:.2} s: {:.0} messages/s end to end, delivery latency p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        pairs,
        elapsed,
        lat.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    assert_eq!(lat.len(), pairs * messages, "every message was delivered");
    for d in drains {
        d.abort();
    }
    app.shutdown().await;
}
