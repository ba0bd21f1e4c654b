use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_duet");

#[tokio::test]
async fn the_committed_openapi_document_matches_what_the_server_serves() {
    let t = TestApp::spawn().await;
    let served: serde_json::Value = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("{}/schema/openapi.json", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap_or_default();
    if committed != served {
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
        } else {
            panic!(
                "schema/openapi.json is stale: run `UPDATE_SCHEMA=1 cargo test openapi` and commit it"
            );
        }
    }
    let cli = Command::new(BIN).arg("openapi").output().unwrap();
    let from_cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(
        from_cli, served,
        "`duet openapi` prints the served document"
    );
    let docs = t.http.get(format!("{}/docs", t.base)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "the docs UI is served"
    );
}

#[test]
fn the_documented_config_file_is_the_default_config() {
    let path = format!("{}/config/duet.toml", env!("CARGO_MANIFEST_DIR"));
    let documented = duet::config::Config::load(Some(std::path::Path::new(&path)))
        .expect("config/duet.toml loads");
    assert_eq!(
        documented,
        duet::config::Config::default(),
        "config/duet.toml documents the defaults"
    );
}

#[test]
fn an_invalid_setting_stops_startup_naming_the_key() {
    let out = Command::new(BIN)
        .args(["serve", "--data-dir", "/nonexistent-never-created"])
        .env("DUET_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen"), "{err}");
    let out = Command::new(BIN)
        .arg("serve")
        .env("DUET_AUTH__ACCESS_TOKEN_TTL_SECS", "3600")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.access_token_ttl_secs"));
    let out = Command::new(BIN)
        .arg("serve")
        .env("DUET_WS__OUTBOUND_QUEUE_MAX", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws.outbound_queue_max"));
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("duet "));
}

#[tokio::test]
async fn health_metrics_and_request_ids() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    t.get("/v1/me/profile", &u.access).await;
    let health = t
        .http
        .get(format!("{}/healthz", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        t.http
            .get(format!("{}/readyz", t.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = t
        .http
        .get(format!("{}/v1/me/profile", t.base))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-123");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let m = t
        .http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "duet_http_requests_total{method=\"GET\",route=\"me_profile_get\",status=\"200\"} 1",
        "duet_http_requests_total{method=\"GET\",route=\"me_profile_get\",status=\"401\"} 1",
        "duet_http_request_duration_seconds_bucket",
        "duet_ws_connections",
        "duet_event_log_seq",
        "duet_store_commit_duration_seconds_count",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}");
    }
    let r = t
        .http
        .post(format!("{}/v1/auth/login", t.base))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");
    assert_eq!(body["type"], "urn:duet:error:malformed_json");
    assert_eq!(body["status"], 400);
    let big = "x".repeat(2 * 1024 * 1024);
    let r = t
        .http
        .post(format!("{}/v1/auth/login", t.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "payload_too_large"
    );
    let r = t
        .http
        .post(format!("{}/v1/auth/login", t.base))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );
    let r = t.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

#[tokio::test]
async fn everything_written_survives_a_restart_and_refresh_tokens_still_work() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&u.access),
        Some(json!({"displayName": "Durable", "phone": "+14155550123"})),
    )
    .await;
    t.call(
        Method::PUT,
        "/v1/me/devices/d1",
        Some(&u.access),
        Some(json!({"platform": "web", "provider": "fcm", "token": "tok"})),
    )
    .await;
    t.call(
        Method::PUT,
        "/v1/admin/settings/flags/kept",
        Some(&admin.access),
        Some(json!({"platforms": {"web": {"enabled": true}}})),
    )
    .await;
    // Someone online when the server stops is set offline on the next start.
    let online = t.ws_ready(&u.access).await;
    t.settle().await;
    let head = t.app().ctx.store.head_seq();

    drop(online);
    t.restart().await;
    let offline = t.app().ctx.store.head_seq();
    assert!(offline > head, "the restart wrote the presence reset");
    let r = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let u2 = tokens(&r.body);
    let me = t.get("/v1/me/profile", &u2.access).await;
    assert_eq!(me.body["public"]["displayName"], "Durable");
    assert_eq!(me.body["private"]["phone"], "+14155550123");
    assert_eq!(
        t.get("/v1/me/devices", &u2.access).await.body["items"][0]["token"],
        "tok"
    );
    assert_eq!(
        t.get("/v1/settings?platform=web&appVersion=1.0", &u2.access)
            .await
            .body["flags"]["kept"],
        true
    );
    // The old access token is signed by the same key, which was kept in the data directory.
    assert_eq!(t.get("/v1/me/profile", &u.access).await.status, 200);
    let again = t.post("/v1/auth/device", None, json!({"deviceId": "after-restart", "deviceSecret": "0123456789abcdef", "platform": "ios"})).await;
    assert_eq!(again.status, 200);
    let log = t.get("/v1/admin/events?limit=500", &admin.access).await;
    let seqs: Vec<u64> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "the sequence continues without a gap"
    );
}

#[tokio::test]
async fn the_admin_cli_bootstraps_the_first_admin_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["admin", "create", "--data-dir"])
        .arg(dir.path())
        .args([
            "--email",
            "root@duet.test",
            "--password",
            "root-password",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = Command::new(BIN)
        .args(["admin", "create", "--data-dir"])
        .arg(dir.path())
        .args([
            "--email",
            "x@duet.test",
            "--password",
            "root-password",
            "--role",
            "emperor",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let path = dir.path().to_path_buf();
    let t = TestApp::spawn_with(|c| c.server.data_dir = path).await;
    let r = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "root@duet.test", "password": "root-password"}),
        )
        .await;
    let admin = tokens(&r.body);
    assert_eq!(t.get("/v1/admin/events", &admin.access).await.status, 200);
}

#[test]
fn sigterm_closes_websockets_with_going_away_and_exits_zero() {
    duet::cli::install_crypto_provider();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("DUET_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reason = rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut up = false;
        for _ in 0..200 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "the server came up");
        let r: serde_json::Value = http
            .post(format!("{base}/v1/auth/device"))
            .json(&json!({"deviceId": "d", "deviceSecret": "0123456789abcdef", "platform": "web"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["accessToken"].as_str().unwrap().to_owned();
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://127.0.0.1:{port}/v1/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (stream, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut ws = Ws { stream };
        ws.recv_type("ready").await;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        ws.closed().await
    });
    assert_eq!(reason, "going_away");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    // JSON logs, one object a line, requests carrying their request id.
    let logs = String::from_utf8_lossy(&out.stderr);
    let requests: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert!(!requests.is_empty(), "no JSON request log lines in: {logs}");
    assert!(
        requests
            .iter()
            .all(|r| r["span"]["request_id"].is_string() && r["status"].is_number()),
        "{requests:?}"
    );
}

/// The data directory holds every account, session and coin: it is the owner's alone (0700,
/// the store and the signing key 0600) whatever the umask, and looser permissions found at
/// start are tightened.
#[tokio::test]
async fn the_data_directory_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut t = TestApp::spawn().await;
    let dir = t.config.server.data_dir.clone();
    let store = dir.join(duet::app::STORE_FILE);
    let key = t.config.signing_key_path();
    assert_eq!(
        (mode(&dir), mode(&store), mode(&key)),
        (0o700, 0o600, 0o600)
    );
    t.stop_for_offline().await;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    t.restart().await;
    assert_eq!((mode(&dir), mode(&store)), (0o700, 0o600));
}
