//! A real `duet serve` process under a storm of concurrent transfers is killed with SIGKILL at
//! random moments, several times. After each kill `duet ledger verify` passes, and after each
//! restart every transfer a client saw acknowledged is in the journal exactly once.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_duet");
const ROUNDS: usize = 3;
const CLIENTS: usize = 24;

fn start(dir: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("DUET_LOG__LEVEL", "warn")
        // The storm is one admin token at full speed: far past the per-user write limit.
        .env("DUET_RATE_LIMITS__USER_WRITES__MAX", "100000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_up(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not come up");
}

async fn login(http: &reqwest::Client, base: &str) -> String {
    let r: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "crash@duet.test", "password": "crash-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["accessToken"].as_str().expect("admin token").to_owned()
}

fn verify(dir: &std::path::Path) {
    let out = Command::new(BIN)
        .args(["ledger", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ledger verify failed after a kill:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Idempotency keys of every journal entry of an account, with how often each appears.
async fn journal_keys(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    account: &str,
) -> HashMap<String, usize> {
    let mut keys = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/admin/accounts/{account}/transactions?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for t in page["items"].as_array().unwrap() {
            if let Some(k) = t["idempotencyKey"].as_str() {
                *keys.entry(k.to_owned()).or_default() += 1;
            }
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return keys,
        }
    }
}

#[test]
fn sigkill_under_a_transfer_storm_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(BIN)
        .args(["admin", "create", "--data-dir"])
        .arg(dir.path())
        .args(["--email", "crash@duet.test", "--password", "crash-password"])
        .output()
        .unwrap();
    assert!(made.status.success());
    duet::cli::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let (mut child, base) = start(dir.path());
        wait_up(&http, &base).await;
        let token = login(&http, &base).await;
        let user: Value = http
            .post(format!("{base}/v1/auth/device"))
            .json(&json!({"deviceId": "crash-user", "deviceSecret": "0123456789abcdef", "platform": "ios"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let user_id = user["userId"].as_str().unwrap().to_owned();
        let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut base = base;
        let mut token = token;
        for round in 0..ROUNDS {
            let storm: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let (http, base, token, user_id, acked) =
                        (http.clone(), base.clone(), token.clone(), user_id.clone(), acked.clone());
                    tokio::spawn(async move {
                        for i in 0.. {
                            let key = format!("r{round}-c{c}-{i}");
                            let sent = http
                                .post(format!("{base}/v1/admin/balances/{user_id}/adjust"))
                                .bearer_auth(&token)
                                .header("Idempotency-Key", &key)
                                .json(&json!({"amount": 1, "reason": "storm"}))
                                .send()
                                .await;
                            match sent {
                                Ok(r) if r.status().is_success() => {
                                    acked.lock().insert(key);
                                }
                                Ok(r) => panic!("refused: {}", r.status()),
                                // The server is gone: the storm is over.
                                Err(_) => return,
                            }
                        }
                    })
                })
                .collect();
            // Kill at a random moment once this round's storm is under way (some transfers of
            // the round acknowledged), however slow the machine is today.
            let before = acked.lock().len();
            while acked.lock().len() < before + CLIENTS {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let delay = rand::rng().random_range(50..600);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            for s in storm {
                s.await.unwrap();
            }
            verify(dir.path());

            let (c, b) = start(dir.path());
            child = c;
            base = b;
            wait_up(&http, &base).await;
            token = login(&http, &base).await;
            let keys = journal_keys(&http, &base, &token, &format!("wallet:{user_id}")).await;
            let acked = acked.lock().clone();
            assert!(!acked.is_empty(), "round {round}: some transfers were acknowledged before the kill");
            for k in &acked {
                assert_eq!(keys.get(k).copied(), Some(1), "round {round}: acknowledged transfer {k} is not in the journal exactly once");
            }
            assert!(keys.values().all(|n| *n == 1), "round {round}: a transfer is in the journal twice");
            let balance: Value = http
                .get(format!("{base}/v1/admin/balances/{user_id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(balance["wallet"].as_u64().unwrap() as usize, keys.len(), "round {round}: the balance is the journal's");
            eprintln!("round {round}: killed after {delay} ms; {} acknowledged, {} in the journal", acked.len(), keys.len());
        }
        child.kill().unwrap();
        child.wait().unwrap();
    });
}

fn media_cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("media")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "duet media {args:?} failed:\n{text}");
    text
}

/// New tokens for each (refresh, access) pair (refresh tokens rotate); the access tokens.
async fn refresh_all(
    http: &reqwest::Client,
    base: &str,
    people: &mut [(String, String)],
) -> Vec<String> {
    for (refresh, access) in people.iter_mut() {
        let r: Value = http
            .post(format!("{base}/v1/auth/refresh"))
            .json(&json!({"refreshToken": refresh}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        *refresh = r["refreshToken"].as_str().expect("refreshed").to_owned();
        *access = r["accessToken"].as_str().unwrap().to_owned();
    }
    people.iter().map(|(_, a)| a.clone()).collect()
}

/// A small PNG of random pixels: every one is different bytes.
fn noise_png() -> Vec<u8> {
    let mut rng = rand::rng();
    let img = image::RgbImage::from_fn(16, 16, |_, _| image::Rgb(rng.random()));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// SIGKILL during a burst of uploads: afterwards no record names a missing or damaged file,
/// every acknowledged upload is served with its bytes, and collection removes only what no
/// record names.
#[test]
fn sigkill_during_uploads_leaves_no_record_without_its_file() {
    const UPLOADERS: usize = 8;
    let clip: &[u8] = include_bytes!("../fixtures/media/clip.mp4");
    let dir = tempfile::tempdir().unwrap();
    duet::cli::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let (mut child, mut base) = start(dir.path());
        wait_up(&http, &base).await;
        let mut people = Vec::new();
        for c in 0..UPLOADERS {
            let r: Value = http
                .post(format!("{base}/v1/auth/device"))
                .json(&json!({"deviceId": format!("uploader-{c}"), "deviceSecret": "0123456789abcdef", "platform": "ios"}))
                .send().await.unwrap().json().await.unwrap();
            people.push((r["refreshToken"].as_str().unwrap().to_owned(), r["accessToken"].as_str().unwrap().to_owned()));
        }
        // Acknowledged uploads: media id → (owner's index, what was sent if a clip).
        let acked: Arc<Mutex<HashMap<String, (usize, bool)>>> = Arc::default();
        for round in 0..2 {
            let burst: Vec<_> = people
                .iter()
                .enumerate()
                .map(|(c, (_, token))| {
                    let (http, base, token, acked) = (http.clone(), base.clone(), token.clone(), acked.clone());
                    tokio::spawn(async move {
                        for i in 0.. {
                            let is_clip = i % 3 == 0;
                            let (ct, body) = if is_clip { ("video/mp4", clip.to_vec()) } else { ("image/png", noise_png()) };
                            let kind = if is_clip { "video" } else { "photo" };
                            let sent = http
                                .post(format!("{base}/v1/media?kind={kind}"))
                                .bearer_auth(&token)
                                .header("content-type", ct)
                                .body(body)
                                .send()
                                .await;
                            match sent {
                                Ok(r) if r.status().as_u16() == 201 => {
                                    let Ok(v) = r.json::<Value>().await else { return };
                                    acked.lock().insert(v["id"].as_str().unwrap().to_owned(), (c, is_clip));
                                }
                                Ok(r) => panic!("refused: {}", r.status()),
                                Err(_) => return,
                            }
                        }
                    })
                })
                .collect();
            let before = acked.lock().len();
            while acked.lock().len() < before + UPLOADERS {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let delay = rand::rng().random_range(20..300);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            for b in burst {
                b.await.unwrap();
            }
            // With the server down: no record names a missing or damaged file.
            let report = media_cli(dir.path(), &["verify"]);
            eprintln!("round {round}: killed after {delay} ms; {report}");

            let (c, b) = start(dir.path());
            child = c;
            base = b;
            wait_up(&http, &base).await;
            // Every acknowledged upload is there and served, to its owner.
            let tokens = refresh_all(&http, &base, &mut people).await;
            let acked_now = acked.lock().clone();
            for (id, (owner, is_clip)) in &acked_now {
                let m: Value = http.get(format!("{base}/v1/media/{id}")).bearer_auth(&tokens[*owner]).send().await.unwrap().json().await.unwrap();
                assert_eq!(m["id"], id.as_str(), "round {round}: acknowledged upload {id} is gone: {m}");
                let bytes = http.get(format!("{base}{}", m["urls"]["original"].as_str().unwrap())).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(bytes.len() as u64, m["bytes"].as_u64().unwrap());
                if *is_clip {
                    assert_eq!(&bytes[..], clip);
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Collection removes what no record names, and nothing a record names.
        let collected = media_cli(dir.path(), &["collect", "--grace-secs", "0"]);
        let report = media_cli(dir.path(), &["verify"]);
        assert!(report.contains(" 0 unreferenced"), "{collected}\n{report}");
        eprintln!("{collected}{report}");
        let (mut child, base) = start(dir.path());
        wait_up(&http, &base).await;
        let acked_now = acked.lock().clone();
        let tokens = refresh_all(&http, &base, &mut people).await;
        for (id, (owner, _)) in &acked_now {
            let m: Value = http.get(format!("{base}/v1/media/{id}")).bearer_auth(&tokens[*owner]).send().await.unwrap().json().await.unwrap();
            let r = http.get(format!("{base}{}", m["urls"]["thumb"].as_str().or(m["urls"]["original"].as_str()).unwrap())).send().await.unwrap();
            assert_eq!(r.status(), 200, "{id} after collection");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    });
}
