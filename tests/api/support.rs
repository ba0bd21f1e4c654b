//! The harness: a real server on port 0 with its own temporary data directory and a manual
//! clock, spoken to over real HTTP and a real WebSocket.

use std::sync::Arc;
use std::time::Duration;

use duet::app::App;
use duet::config::Config;
use duet::core::auth::Role;
use duet::core::clock::{Clock, ManualClock, SharedClock};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// 2026-03-01T12:00:00Z: tests start here and move the clock by hand.
pub const T0_MS: i64 = 1_772_366_400_000;

/// How long a test waits for something that should happen at once (a frame, a close) before
/// it fails. It guards against hanging, it does not time behaviour.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestApp {
    app: Option<App>,
    /// Kept so the data directory lives as long as the app.
    _dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub base: String,
    pub http: reqwest::Client,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The problem `code` of an error reply.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        duet::cli::install_crypto_provider();
        // Server logs go to the test's captured output (shown when it fails).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("duet=warn"))
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.server.data_dir = dir.path().to_path_buf();
        config.server.shutdown_grace_secs = 2;
        // Feeds read the index every time, so a test sees a change as soon as it is indexed.
        config.gallery.ranked_cache_ms = 0;
        config.gallery.commit_interval_ms = 0;
        // The live gallery signal goes out when a test sends it (`gallery::send_signal`).
        config.gallery.signal_interval_ms = 3_600_000;
        // Models load in a second or so per worker: only the ML tests turn them on.
        config.ml.enabled = false;
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(T0_MS));
        let app = App::start(config.clone(), clock.clone() as SharedClock)
            .await
            .expect("start");
        let base = format!("http://{}", app.addr);
        TestApp {
            app: Some(app),
            _dir: dir,
            clock,
            config,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("running")
    }

    pub fn app_mut(&mut self) -> &mut App {
        self.app.as_mut().expect("running")
    }

    /// Stops the server and starts a new one on the same data directory and clock.
    pub async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        let mut config = self.config.clone();
        config.server.listen = "127.0.0.1:0".into();
        let app = App::start(config, self.clock.clone() as SharedClock)
            .await
            .expect("restart");
        self.base = format!("http://{}", app.addr);
        self.app = Some(app);
    }

    /// Stops the server and waits until its data directory is free for offline tools.
    pub async fn stop_for_offline(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn sign_in_device(&self, device_id: &str, secret: &str) -> Reply {
        self.post(
            "/v1/auth/device",
            None,
            json!({"deviceId": device_id, "deviceSecret": secret, "platform": "android"}),
        )
        .await
    }

    /// New tokens for the same session (after the injected clock outran the access token).
    pub async fn refresh(&self, tokens: &Tokens) -> Tokens {
        let r = self
            .post(
                "/v1/auth/refresh",
                None,
                json!({"refreshToken": tokens.refresh}),
            )
            .await;
        assert_eq!(r.status, 200, "refresh: {:?}", r.body);
        crate::support::tokens(&r.body)
    }

    /// A new anonymous user.
    pub async fn user(&self) -> Tokens {
        let id = duet::core::ids::new_id();
        let r = self.sign_in_device(&id, "secret-secret-secret").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokens(&r.body)
    }

    /// A new admin, made the way operators make the first one (offline bootstrap), then signed
    /// in over HTTP.
    pub async fn admin(&self) -> Tokens {
        let email = format!("admin-{}@duet.test", duet::core::ids::new_id());
        let store = self.app().ctx.store.clone();
        let e = email.clone();
        tokio::task::spawn_blocking(move || {
            duet::domains::user::bootstrap_account(&store, &e, "admin-password", Role::Admin)
        })
        .await
        .unwrap()
        .expect("bootstrap admin");
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "admin-password"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokens(&r.body)
    }

    /// A new user given `role` by an admin.
    pub async fn with_role(&self, admin: &Tokens, role: &str) -> Tokens {
        let t = self.user().await;
        let r = self
            .call(
                Method::PUT,
                &format!("/v1/admin/users/{}/role", t.user_id),
                Some(&admin.access),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        t
    }

    /// Opens a WebSocket, authenticated by header when `token` is given.
    pub async fn ws(&self, token: Option<&str>) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/v1/ws", self.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect");
        Ws { stream }
    }

    /// Connects and authenticates; consumes the `ready` frame.
    pub async fn ws_ready(&self, token: &str) -> Ws {
        let mut ws = self.ws(Some(token)).await;
        let ready = ws.recv().await;
        assert_eq!(ready["type"], "ready", "{ready:?}");
        ws
    }

    /// Waits until every event-log consumer has handled what is committed so far (a block's
    /// effects on calls and favorites, chat records, notifications).
    pub async fn caught_up(&self) {
        self.app().consumers_caught_up(PATIENCE).await.unwrap();
    }

    /// Waits until the presence worker has committed every transition handed to it.
    pub async fn settle(&self) {
        self.app().ctx.presence.flush().await;
    }
}

pub fn tokens(body: &Value) -> Tokens {
    Tokens {
        access: body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
        refresh: body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
        user_id: body["userId"].as_str().expect("userId").to_owned(),
    }
}

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    pub stream: WsStream,
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        let bytes = rmp_serde::to_vec_named(&frame).unwrap();
        self.stream
            .send(Message::Binary(bytes.into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.stream.send(msg).await.unwrap();
    }

    /// The next data frame, decoded.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("stream open")
                .expect("frame");
            match msg {
                Message::Binary(b) => return rmp_serde::from_slice(&b).expect("msgpack frame"),
                Message::Close(c) => {
                    return json!({"type": "__closed", "reason": c.map(|c| c.reason.to_string())});
                }
                _ => continue,
            }
        }
    }

    /// The next frame of `kind`, skipping others.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f["type"] == kind {
                return f;
            }
            assert_ne!(
                f["type"], "__closed",
                "closed while waiting for {kind}: {f:?}"
            );
        }
    }

    /// Waits for the server to close; returns the close reason.
    pub async fn closed(&mut self) -> String {
        loop {
            let f = self.recv().await;
            if f["type"] == "__closed" {
                return f["reason"].as_str().unwrap_or("").to_owned();
            }
        }
    }

    /// Asserts no data frame arrives before a ping round-trip: the server answers frames in
    /// order, so anything it had queued for us comes before the pong.
    pub async fn expect_quiet(&mut self) {
        self.send(json!({"type": "ping", "nonce": 4242})).await;
        let f = self.recv().await;
        assert_eq!(
            f["type"], "pong",
            "expected nothing before the pong, got {f:?}"
        );
    }
}

/// Polls `check` until it returns `Some`, for work done by background consumers; fails after
/// `PATIENCE`. Polling for an outcome, not sleeping for a guessed time.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Serves `app` (a fake outside provider) on a free local port; returns its address.
pub async fn serve_fake(app: impl poem::Endpoint + 'static) -> std::net::SocketAddr {
    let acceptor =
        poem::listener::Listener::into_acceptor(poem::listener::TcpListener::bind("127.0.0.1:0"))
            .await
            .unwrap();
    let addr = poem::listener::Acceptor::local_addr(&acceptor)[0]
        .as_socket_addr()
        .copied()
        .unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    addr
}

/// The token in the newest link of an email sent to `to`, among a fake SendGrid's requests
/// (`personalizations[0].to[0].email`, `content[0].value`).
pub fn mailed_link_token(mails: &[Value], to: &str) -> Option<String> {
    mails.iter().rev().find_map(|m| {
        if m["personalizations"][0]["to"][0]["email"] != to {
            return None;
        }
        let text = m["content"][0]["value"].as_str()?;
        let start = text.find("token=")? + "token=".len();
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        Some(token)
    })
}

impl TestApp {
    /// A password sign-in.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// An account with a verified email and a password, signed in over HTTP. The operator's
    /// bootstrap stands in for the verification link, which the email tests follow for real.
    pub async fn email_account(&self, email: &str, password: &str) -> Tokens {
        let store = self.app().ctx.store.clone();
        let (e, p) = (email.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            duet::domains::user::bootstrap_account(&store, &e, &p, Role::User)
        })
        .await
        .unwrap()
        .expect("bootstrap account");
        let r = self.login(email, password).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokens(&r.body)
    }
}
