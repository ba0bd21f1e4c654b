//! Chat benchmark: a real server in this process and 1,000 pairs of real clients. Each pair is
//! two WebSocket connections subscribed to `chat`; one side sends messages over REST
//! (`POST /v1/chats/{userId}/messages`), each waiting for the previous one's answer, and the
//! other side receives them live. Prints messages per second end to end (sent until the last
//! one is received) and the delivery latency (send started → received on the other side's
//! socket) at p50/p99, twice: saturated (each sender sends as soon as its previous message is
//! answered: the throughput) and paced at one message a second per sender (the latency a
//! realistic load sees). Clients and server share the machine's cores.
//!
//! `cargo bench --bench chat` runs 1,000 pairs × 20 messages; under `cargo test` it runs
//! 10 pairs × 3 messages, so CI proves the benchmark still works.

mod common;

use std::sync::Arc;
use std::time::Instant;

use duet::app::App;
use duet::config::Config;
use duet::core::clock::{SharedClock, SystemClock};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let full = common::full();
    let (pairs, messages) = if full { (1_000, 20) } else { (10, 3) };
    common::run(run(pairs, messages));
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    user_id: String,
    token: String,
    ws: Socket,
    /// The other member of the pair.
    peer: String,
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
        peer: String::new(),
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
    // Throughput is measured here, not the per-caller limits (which would stop it at once).
    config.rate_limits.user_writes.max = u32::MAX;
    config.rate_limits.address_writes.max = u32::MAX;
    // Every client of a benchmark is on 127.0.0.1.
    config.server.connections.per_address_max = usize::MAX;
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
            let mut a = client(&http, &base, format!("chat-a-{i}")).await;
            let mut b = client(&http, &base, format!("chat-b-{i}")).await;
            a.peer = b.user_id.clone();
            b.peer = a.user_id.clone();
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

    let (clients, saturated) = phase(clients, &http, &base, messages, None).await;
    report(
        "saturated (each sender sends as soon as its last message is answered)",
        pairs,
        &saturated,
    );
    // Realistic load: every sender sends one message a second, so the latency is the service
    // time rather than the queue a closed loop of 1,000 senders builds up.
    let (_clients, paced) = phase(
        clients,
        &http,
        &base,
        messages.min(5),
        // A tenth of the period under `cargo test`, to keep CI quick.
        Some(std::time::Duration::from_millis(if pairs >= 1000 {
            1000
        } else {
            100
        })),
    )
    .await;
    report("paced (one message a second per sender)", pairs, &paced);
    app.shutdown().await;
}

struct Phase {
    latencies_us: Vec<u128>,
    elapsed_s: f64,
}

fn report(what: &str, pairs: usize, p: &Phase) {
    let lat = &p.latencies_us;
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "{what}: {} messages between {} pairs in {:.2} s: {:.0} messages/s end to end, delivery latency p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        pairs,
        p.elapsed_s,
        lat.len() as f64 / p.elapsed_s,
        pct(0.50),
        pct(0.99)
    );
}

/// Every pair's sender sends `messages` messages (waiting `pace` between them, or for each
/// answer only); returns the clients for the next phase and what was measured.
async fn phase(
    clients: Vec<(Client, Client)>,
    http: &reqwest::Client,
    base: &str,
    messages: usize,
    pace: Option<std::time::Duration>,
) -> (Vec<(Client, Client)>, Phase) {
    let epoch = Instant::now();
    let started = Instant::now();
    let pairs = clients.len();
    let mut tasks = Vec::new();
    for (i, (a, b)) in clients.into_iter().enumerate() {
        let (http, base) = (http.clone(), base.to_owned());
        // The receiving side: every message from its peer, with its latency.
        let recv = tokio::spawn(async move {
            let mut b = b;
            let mut lat = Vec::with_capacity(messages);
            while lat.len() < messages {
                let Some(Ok(Message::Binary(bytes))) = b.ws.next().await else {
                    continue;
                };
                let f: Value = rmp_serde::from_slice(&bytes).unwrap();
                if f["eventType"] == "chat_message" && f["data"]["senderId"] != b.user_id.as_str() {
                    let sent: u128 = f["data"]["text"].as_str().unwrap().parse().unwrap();
                    lat.push(epoch.elapsed().as_micros() - sent);
                }
            }
            (b, lat)
        });
        // The sender's own socket gets an echo of each message: it stays drained and online.
        let send = tokio::spawn(async move {
            let mut a = a;
            let receiver_id = a.peer.clone();
            for m in 0..messages {
                if let Some(p) = pace {
                    // Spread the senders over the period instead of starting in one wave.
                    let offset = p.mul_f64(i as f64 / pairs as f64);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(
                        started + offset + p * m as u32,
                    ))
                    .await;
                }
                let text = epoch.elapsed().as_micros().to_string();
                let r = http
                    .post(format!("{base}/v1/chats/{receiver_id}/messages"))
                    .bearer_auth(&a.token)
                    .json(&json!({"clientMessageId": format!("{}-{i}-{m}", epoch.elapsed().as_nanos()), "text": text}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                // Drain the echo without waiting on it.
                while let Some(Some(Ok(_))) = futures_util::FutureExt::now_or_never(a.ws.next()) {}
            }
            a
        });
        tasks.push((send, recv));
    }
    let mut lat: Vec<u128> = Vec::with_capacity(pairs * messages);
    let mut back = Vec::with_capacity(pairs);
    for (send, recv) in tasks {
        let a = send.await.unwrap();
        let (b, l) = recv.await.unwrap();
        lat.extend(l);
        back.push((a, b));
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    assert_eq!(lat.len(), pairs * messages, "every message was delivered");
    lat.sort_unstable();
    (
        back,
        Phase {
            latencies_us: lat,
            elapsed_s,
        },
    )
}
