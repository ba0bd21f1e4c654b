//! Notifications: in-app delivery with ack, the push fallback, VoIP pushes for calls, the
//! outbox's retries and dead letters, unregistered tokens, the email digest and unsubscribe —
//! against local fake FCM, APNs (HTTP/2), OneSignal and SendGrid servers that record what they
//! got, on the injected clock.

use std::collections::VecDeque;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// One request a fake provider got.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A fake provider: records every request; answers `/token` with an OAuth access token and
/// everything else with the next scripted answer (200 `{}` when none is left).
#[derive(Default)]
pub struct Fake {
    pub got: Mutex<Vec<Got>>,
    pub answers: Mutex<VecDeque<(u16, Value)>>,
    /// Answer every request with this from now on.
    pub always: Mutex<Option<(u16, Value)>>,
}

impl Fake {
    pub fn sends(&self) -> Vec<Got> {
        self.got
            .lock()
            .iter()
            .filter(|g| g.path != "/token")
            .cloned()
            .collect()
    }
}

pub async fn fake_provider() -> (Arc<Fake>, String) {
    use poem::{EndpointExt, Response, Route, handler, web::Data};
    #[handler]
    async fn any(req: &poem::Request, body: String, state: Data<&Arc<Fake>>) -> Response {
        let got = Got {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            version: format!("{:?}", req.version()),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        };
        let is_token = got.path == "/token";
        state.got.lock().push(got);
        let (status, answer) = if is_token {
            (
                200,
                json!({"access_token": "fcm-access-1", "expires_in": 3600, "token_type": "Bearer"}),
            )
        } else if let Some(a) = state.always.lock().clone() {
            a
        } else {
            state
                .answers
                .lock()
                .pop_front()
                .unwrap_or((200, json!({"name": "ok"})))
        };
        Response::builder()
            .status(poem::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/json")
            .body(answer.to_string())
    }
    let state = Arc::new(Fake::default());
    let app = Route::new().at("/*path", any).data(state.clone());
    let addr = serve_fake(app).await;
    (state, format!("http://{addr}"))
}

pub struct Providers {
    pub fcm: Arc<Fake>,
    pub apns: Arc<Fake>,
    pub onesignal: Arc<Fake>,
    pub sendgrid: Arc<Fake>,
    /// The APNs signing key's public half, to check provider tokens.
    pub apns_public_pem: String,
    _dir: tempfile::TempDir,
}

/// A server whose notifications go to fake providers.
pub async fn app_with_providers(
    adjust: impl FnOnce(&mut duet::config::Config),
) -> (TestApp, Providers) {
    let (fcm, fcm_base) = fake_provider().await;
    let (apns, apns_base) = fake_provider().await;
    let (onesignal, onesignal_base) = fake_provider().await;
    let (sendgrid, sendgrid_base) = fake_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("fcm-service-account.json");
    let key = std::fs::read_to_string(format!(
        "{}/tests/fixtures/idp-private.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    std::fs::write(&sa, json!({"type": "service_account", "client_email": "fcm@duet-test.iam.gserviceaccount.com", "private_key": key}).to_string()).unwrap();
    let apns_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p8 = dir.path().join("AuthKey_KEY123.p8");
    std::fs::write(&p8, apns_key.serialize_pem()).unwrap();
    let apns_public_pem = apns_key.public_key_pem();
    let t = TestApp::spawn_with(|c| {
        let n = &mut c.notifications;
        n.fcm.project_id = "duet-test".into();
        n.fcm.service_account_file = sa.to_string_lossy().into();
        n.fcm.token_url = format!("{fcm_base}/token");
        n.fcm.base_url = fcm_base.clone();
        n.apns.team_id = "TEAM123".into();
        n.apns.key_id = "KEY123".into();
        n.apns.private_key_file = p8.to_string_lossy().into();
        n.apns.bundle_id = "com.duet.app".into();
        n.apns.base_url = apns_base.clone();
        n.onesignal.app_id = "os-app".into();
        n.onesignal.api_key = "os-key".into();
        n.onesignal.base_url = onesignal_base.clone();
        n.sendgrid.api_key = "sg-key".into();
        n.sendgrid.base_url = sendgrid_base.clone();
        n.public_base_url = "https://duet.example".into();
        adjust(c);
    })
    .await;
    (
        t,
        Providers {
            fcm,
            apns,
            onesignal,
            sendgrid,
            apns_public_pem,
            _dir: dir,
        },
    )
}

pub async fn device(
    t: &TestApp,
    who: &Tokens,
    id: &str,
    platform: &str,
    provider: &str,
    token: &str,
) {
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/me/devices/{id}"),
            Some(&who.access),
            Some(json!({"platform": platform, "provider": provider, "token": token})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
}

pub async fn deliver(t: &TestApp) {
    duet::domains::notification::delivery::tick(&t.app().ctx)
        .await
        .unwrap();
}

async fn system(t: &TestApp, admin: &Tokens, to: &str, title: &str) -> Value {
    let r = t
        .post(
            "/v1/admin/notifications",
            Some(&admin.access),
            json!({"userId": to, "title": title, "body": "Hello from Duet"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn subscribed(t: &TestApp, who: &Tokens) -> Ws {
    let mut ws = t.ws_ready(&who.access).await;
    ws.send(json!({"type": "subscribe", "topic": "notifications"}))
        .await;
    ws.recv_type("subscribed").await;
    ws
}

#[tokio::test]
async fn online_and_acknowledged_means_no_push() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "phone", "android", "fcm", "fcm-token-1").await;
    let mut ws = subscribed(&t, &u).await;
    system(&t, &admin, &u.user_id, "Welcome").await;
    let e = ws.recv_type("event").await;
    assert_eq!(
        (e["eventType"].as_str(), e["data"]["title"].as_str()),
        (Some("notification"), Some("Welcome"))
    );
    ws.send(json!({"type": "ack", "seq": e["seq"]})).await;
    ws.expect_quiet().await; // the ack is handled before the pong
    t.clock.advance_ms(60_000);
    deliver(&t).await;
    assert!(p.fcm.sends().is_empty(), "{:?}", p.fcm.sends());
    let list = t.get("/v1/me/notifications", &u.access).await;
    assert_eq!(list.body["unreadCount"], 1);
    assert_eq!(list.body["items"][0]["kind"], "system");
}

#[tokio::test]
async fn online_without_an_ack_gets_a_push_after_the_timeout() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "phone", "android", "fcm", "fcm-token-1").await;
    let mut ws = subscribed(&t, &u).await;
    let n = system(&t, &admin, &u.user_id, "Welcome").await;
    ws.recv_type("event").await;
    t.clock.advance_ms(9_000);
    deliver(&t).await;
    assert!(p.fcm.sends().is_empty(), "not before the timeout");
    t.clock.advance_ms(1_000);
    deliver(&t).await;
    let sends = p.fcm.sends();
    assert_eq!(sends.len(), 1);
    let s = &sends[0];
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/v1/projects/duet-test/messages:send")
    );
    assert_eq!(s.header("authorization"), Some("Bearer fcm-access-1"));
    let m = &s.body["message"];
    assert_eq!(m["token"], "fcm-token-1");
    assert_eq!(
        m["notification"],
        json!({"title": "Welcome", "body": "Hello from Duet"})
    );
    assert_eq!(
        (
            m["data"]["kind"].as_str(),
            m["data"]["notificationId"].as_str()
        ),
        (Some("system"), n["id"].as_str())
    );
    // The token exchange was a service-account JWT for the FCM scope.
    let token_req = p
        .fcm
        .got
        .lock()
        .iter()
        .find(|g| g.path == "/token")
        .cloned()
        .unwrap();
    let form = token_req.body.as_str().unwrap().to_owned();
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    // A later tick sends nothing more: at most once per device.
    t.clock.advance_ms(60_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 1);
}

#[tokio::test]
async fn offline_people_get_the_push_at_once_on_every_device() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "android-phone", "android", "fcm", "fcm-token-1").await;
    device(&t, &u, "iphone", "ios", "apns", "apns-token-1").await;
    device(&t, &u, "web", "web", "onesignal", "os-sub-1").await;
    system(&t, &admin, &u.user_id, "News").await;
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 1);
    let apns = p.apns.sends();
    assert_eq!(apns.len(), 1);
    let a = &apns[0];
    assert_eq!(a.path, "/3/device/apns-token-1");
    assert_eq!(a.version, "HTTP/2.0", "APNs speaks HTTP/2 only");
    assert_eq!(a.header("apns-push-type"), Some("alert"));
    assert_eq!(a.header("apns-topic"), Some("com.duet.app"));
    assert_eq!(
        a.body["aps"]["alert"],
        json!({"title": "News", "body": "Hello from Duet"})
    );
    let os = p.onesignal.sends();
    assert_eq!(os.len(), 1);
    assert_eq!(os[0].header("authorization"), Some("Key os-key"));
    assert_eq!(os[0].body["include_subscription_ids"], json!(["os-sub-1"]));
    assert_eq!(os[0].body["app_id"], "os-app");

    // A chat message to someone offline becomes a `new_message` push.
    let friend = t.user().await;
    let r = t
        .post(
            &format!("/v1/chats/{}/messages", u.user_id),
            Some(&friend.access),
            json!({"clientMessageId": "1", "text": "are you there?"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let got = until("the new_message push", || async {
        deliver(&t).await;
        p.fcm
            .sends()
            .into_iter()
            .find(|s| s.body["message"]["data"]["kind"] == "new_message")
    })
    .await;
    assert_eq!(
        got.body["message"]["notification"]["body"],
        "are you there?"
    );
}

#[tokio::test]
async fn an_incoming_call_to_ios_gets_a_voip_push_at_once() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    device(
        &t,
        &streamer,
        "iphone-voip",
        "ios",
        "apns_voip",
        "voip-token-1",
    )
    .await;
    device(&t, &streamer, "iphone", "ios", "apns", "apns-token-1").await;
    let _online = t.ws_ready(&streamer.access).await;
    t.settle().await;
    let caller = t.user().await;
    crate::coins::credit(&t, &admin, &caller.user_id, 100, "wallet").await;
    let r = t
        .post(
            "/v1/calls",
            Some(&caller.access),
            json!({"calleeId": streamer.user_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let voip = until("the VoIP push", || async {
        deliver(&t).await;
        p.apns.sends().into_iter().next()
    })
    .await;
    assert_eq!(voip.path, "/3/device/voip-token-1");
    assert_eq!(voip.version, "HTTP/2.0");
    assert_eq!(voip.header("apns-push-type"), Some("voip"));
    assert_eq!(voip.header("apns-topic"), Some("com.duet.app.voip"));
    assert_eq!(voip.body["kind"], "incoming_call");
    assert_eq!(voip.body["callId"], r.body["id"]);
    // The provider token: ES256, our key id, our team, signed by the configured key.
    let jwt = voip
        .header("authorization")
        .unwrap()
        .strip_prefix("bearer ")
        .unwrap()
        .to_owned();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::ES256, Some("KEY123"))
    );
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(
        &jwt,
        &DecodingKey::from_ec_pem(p.apns_public_pem.as_bytes()).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(claims.claims["iss"], "TEAM123");
    // The streamer is online: the alert device waits for the ack timeout.
    assert_eq!(p.apns.sends().len(), 1);
    assert_eq!(unread_count(&t, &streamer).await, Some(1));
    // Answered in time: the notification is read and the alert push is not sent.
    let id = r.body["id"].as_str().unwrap();
    let a = t
        .post(
            &format!("/v1/calls/{id}/accept"),
            Some(&streamer.access),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    until("the incoming call to be read", || async {
        (unread_count(&t, &streamer).await == Some(0)).then_some(())
    })
    .await;
    t.clock.advance_ms(10_000);
    deliver(&t).await;
    assert_eq!(
        p.apns.sends().len(),
        1,
        "no alert for a call already answered"
    );
}

#[tokio::test]
async fn an_unregistered_token_is_removed() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "old-phone", "android", "fcm", "stale-token").await;
    device(&t, &u, "iphone", "ios", "apns", "gone-token").await;
    p.fcm.answers.lock().push_back((404, json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})));
    p.apns
        .answers
        .lock()
        .push_back((410, json!({"reason": "Unregistered", "timestamp": 1})));
    system(&t, &admin, &u.user_id, "Hi").await;
    deliver(&t).await;
    let devices = t.get("/v1/me/devices", &u.access).await;
    assert_eq!(devices.body["items"], json!([]), "{:?}", devices.body);
    let log = t
        .get("/v1/admin/events?type=push_token_removed", &admin.access)
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 2);
    // Nothing is dead-lettered for a token that is simply gone.
    let dead = t
        .get("/v1/admin/notifications/dead-letters", &admin.access)
        .await;
    assert_eq!(dead.body["items"], json!([]));
}

#[tokio::test]
async fn a_provider_down_is_retried_then_dead_lettered_and_nothing_is_lost() {
    let (t, p) = app_with_providers(|c| {
        c.notifications.attempts_max = 3;
        c.notifications.retry_base_secs = 5;
    })
    .await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "phone", "android", "fcm", "fcm-token-1").await;
    *p.fcm.always.lock() = Some((
        503,
        json!({"error": {"code": 503, "status": "UNAVAILABLE"}}),
    ));
    system(&t, &admin, &u.user_id, "Hi").await;
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 1);
    t.clock.advance_ms(4_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 1, "the first retry waits 5 s");
    t.clock.advance_ms(1_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 2);
    t.clock.advance_ms(10_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 3, "then 10 s");
    t.clock.advance_ms(600_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 3, "dead after 3 attempts");
    let dead = t
        .get("/v1/admin/notifications/dead-letters", &admin.access)
        .await;
    let items = dead.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["state"].as_str(), items[0]["attempts"].as_u64()),
        (Some("dead"), Some(3))
    );
    assert!(items[0]["lastError"].as_str().unwrap().contains("503"));

    // The provider is back: an admin retries the dead letter and it goes out.
    *p.fcm.always.lock() = None;
    let id = items[0]["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/v1/admin/notifications/dead-letters/{id}/retry"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 4);
    assert_eq!(
        t.get("/v1/admin/notifications/dead-letters", &admin.access)
            .await
            .body["items"],
        json!([])
    );
    let r = t
        .post(
            &format!("/v1/admin/notifications/dead-letters/{id}/retry"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn missed_calls_are_mailed_in_a_digest_until_unsubscribed() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let streamer = t.email_account("star@example.com", "password-1").await;
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", streamer.user_id),
            Some(&admin.access),
            Some(json!({"role": "streamer"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let mut online = t.ws_ready(&streamer.access).await;
    t.settle().await;
    let caller = t.user().await;
    crate::coins::credit(&t, &admin, &caller.user_id, 1000, "wallet").await;
    for _ in 0..2 {
        let r = t
            .post(
                "/v1/calls",
                Some(&caller.access),
                json!({"calleeId": streamer.user_id}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        t.clock.advance_ms(31_000);
        crate::calls::run_timers(&t).await;
    }
    until("two missed-call notifications", || async {
        (count_of(&t, &streamer, "missed_call").await == 2).then_some(())
    })
    .await;
    let ctx = t.app().ctx.clone();
    assert_eq!(
        duet::domains::notification::digest::run(&ctx)
            .await
            .unwrap(),
        1
    );
    deliver(&t).await;
    let mails = p.sendgrid.sends();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.path, "/v3/mail/send");
    assert_eq!(m.header("authorization"), Some("Bearer sg-key"));
    assert_eq!(
        m.body["personalizations"][0]["to"][0]["email"],
        "star@example.com"
    );
    assert_eq!(m.body["subject"], "You missed 2 calls");
    let link = m.body["headers"]["List-Unsubscribe"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    assert!(
        link.starts_with("https://duet.example/v1/email/unsubscribe?token="),
        "{link}"
    );
    assert!(
        m.body["content"][0]["value"]
            .as_str()
            .unwrap()
            .contains(&link)
    );
    // Nothing new: no second digest.
    assert_eq!(
        duet::domains::notification::digest::run(&ctx)
            .await
            .unwrap(),
        0
    );

    // The link shows a confirmation (a mail scanner opening it changes nothing); the
    // confirmation, or a one-click POST, unsubscribes without signing in.
    let path = link.strip_prefix("https://duet.example").unwrap();
    let r = t.call(Method::GET, path, None, None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.as_str().unwrap().contains("<form method=\"post\""),
        "{:?}",
        r.body
    );
    let prefs = t
        .get("/v1/me/notification-preferences", &streamer.access)
        .await;
    assert_eq!(prefs.body["emailUnsubscribed"], false);
    let r = t.call(Method::POST, path, None, None).await;
    assert_eq!(
        (r.status.as_u16(), r.body["unsubscribed"].as_bool()),
        (200, Some(true))
    );
    // A forged token is refused by the page and by the POST; an access token is no
    // unsubscribe token.
    let access_link = format!("/v1/email/unsubscribe?token={}", streamer.access);
    for (method, path) in [
        (Method::GET, "/v1/email/unsubscribe?token=forged"),
        (Method::POST, "/v1/email/unsubscribe?token=forged"),
        (Method::POST, access_link.as_str()),
    ] {
        let r = t.call(method.clone(), path, None, None).await;
        assert_eq!(r.status, 401, "{method} {path}");
    }
    let prefs = t
        .get("/v1/me/notification-preferences", &streamer.access)
        .await;
    assert_eq!(prefs.body["emailUnsubscribed"], true);
    let r = t
        .post(
            "/v1/calls",
            Some(&caller.access),
            json!({"calleeId": streamer.user_id}),
        )
        .await;
    assert_eq!(r.status, 200);
    t.clock.advance_ms(31_000);
    crate::calls::run_timers(&t).await;
    until("the third missed call", || async {
        (count_of(&t, &streamer, "missed_call").await == 3).then_some(())
    })
    .await;
    assert_eq!(
        duet::domains::notification::digest::run(&ctx)
            .await
            .unwrap(),
        0
    );
    drop(ctx);
    online.expect_quiet().await;
}

#[tokio::test]
async fn muted_kinds_are_not_pushed_and_reading_cancels_the_push() {
    let (t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "phone", "android", "fcm", "fcm-token-1").await;
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/notification-preferences",
            Some(&u.access),
            Some(json!({"mutedPush": ["system"], "emailUnsubscribed": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // What a change leaves out stays as it was.
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/notification-preferences",
            Some(&u.access),
            Some(json!({"mutedEmail": ["missed_call"]})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"mutedPush": ["system"], "mutedEmail": ["missed_call"], "emailUnsubscribed": true})
    );
    system(&t, &admin, &u.user_id, "Muted").await;
    deliver(&t).await;
    assert!(p.fcm.sends().is_empty());
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/notification-preferences",
            Some(&u.access),
            Some(json!({"mutedPush": []})),
        )
        .await;
    assert_eq!(r.body["mutedPush"], json!([]));

    // Online, read over REST before the timeout: no push either.
    let mut ws = subscribed(&t, &u).await;
    let n = system(&t, &admin, &u.user_id, "Read me").await;
    ws.recv_type("event").await;
    let r = t
        .post(
            "/v1/me/notifications/read",
            Some(&u.access),
            json!({"ids": [n["id"]]}),
        )
        .await;
    assert_eq!(r.body["unreadCount"], 1, "the muted one is still unread");
    t.clock.advance_ms(60_000);
    deliver(&t).await;
    assert!(p.fcm.sends().is_empty());
    let r = t
        .post("/v1/me/notifications/read", Some(&u.access), json!({}))
        .await;
    assert_eq!(r.body["unreadCount"], 0);
}

#[tokio::test]
async fn followers_hear_a_favorite_came_online_once_per_period() {
    let (t, _p) = app_with_providers(|c| {
        c.notifications.favorite_online_period_secs = 3600;
        // Followers are told two per write: five followers take three chunks.
        c.notifications.fanout_chunk = 2;
    })
    .await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let fan = t.user().await;
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/favorites/{}", streamer.user_id),
            Some(&fan.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let mut others = Vec::new();
    for _ in 0..4 {
        let f = t.user().await;
        let r = t
            .call(
                Method::PUT,
                &format!("/v1/favorites/{}", streamer.user_id),
                Some(&f.access),
                None,
            )
            .await;
        assert_eq!(r.status, 204);
        others.push(f);
    }
    for round in 0..3 {
        let ws = t.ws_ready(&streamer.access).await;
        t.settle().await;
        fanned_out(&t).await;
        if round == 0 {
            for f in others.iter().chain([&fan]) {
                assert_eq!(
                    count_of(&t, f, "favorite_online").await,
                    1,
                    "every follower, over three chunks"
                );
            }
        }
        go_offline(&t, ws, &streamer.user_id).await;
    }
    // Three times online within the hour: told once. After the period, told again.
    for f in others.iter().chain([&fan]) {
        assert_eq!(count_of(&t, f, "favorite_online").await, 1);
    }
    t.clock.advance_ms(3_600_000);
    let refresh = |who: &Tokens| {
        t.post(
            "/v1/auth/refresh",
            None,
            json!({"refreshToken": who.refresh}),
        )
    };
    let streamer = tokens(&refresh(&streamer).await.body);
    let fan = tokens(&refresh(&fan).await.body);
    let _ws = t.ws_ready(&streamer.access).await;
    t.settle().await;
    until("a second favorite_online", || async {
        (count_of(&t, &fan, "favorite_online").await == 2).then_some(())
    })
    .await;
}

/// How many of `who`'s notifications are of `kind`.
async fn count_of(t: &TestApp, who: &Tokens, kind: &str) -> usize {
    let r = t.get("/v1/me/notifications", &who.access).await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == kind)
        .count()
}

/// Closes the connection and waits until presence has marked the user offline.
async fn go_offline(t: &TestApp, mut ws: Ws, user_id: &str) {
    ws.stream.close(None).await.unwrap();
    let ctx = t.app().ctx.clone();
    until("the server to see the close", || async {
        (!ctx.live.is_connected(user_id)).then_some(())
    })
    .await;
    t.clock.advance_ms(30_000);
    ctx.presence.sweep().await;
    t.settle().await;
}

#[tokio::test]
async fn a_push_is_sent_once_per_device_across_a_restart() {
    let (mut t, p) = app_with_providers(|_| {}).await;
    let admin = t.admin().await;
    let u = t.user().await;
    device(&t, &u, "phone", "android", "fcm", "fcm-token-1").await;
    let mut ws = subscribed(&t, &u).await;
    system(&t, &admin, &u.user_id, "Before the restart").await;
    ws.recv_type("event").await;
    drop(ws);
    // Unacknowledged; the server restarts before the fallback is due.
    t.restart().await;
    t.clock.advance_ms(10_000);
    deliver(&t).await;
    assert_eq!(
        p.fcm.sends().len(),
        1,
        "the durable fallback fired after the restart"
    );
    t.restart().await;
    t.clock.advance_ms(60_000);
    deliver(&t).await;
    assert_eq!(p.fcm.sends().len(), 1, "and never again");
}

/// Waits until the notifier consumer has seen every event so far and the delivery worker has
/// no fan-out left.
async fn fanned_out(t: &TestApp) {
    let ctx = t.app().ctx.clone();
    until("the notifier and the fan-out to finish", || async {
        let head = ctx.store.head_seq();
        let seen = duet::core::events::cursor(&ctx.store, "notifier")
            .await
            .unwrap();
        deliver(t).await;
        let idle = ctx
            .store
            .read(|rtx| Ok(duet::domains::notification::fanouts_pending(rtx)? == 0))
            .await
            .unwrap();
        (seen >= head && idle).then_some(())
    })
    .await;
}

async fn unread_count(t: &TestApp, who: &Tokens) -> Option<u64> {
    t.get("/v1/me/notifications", &who.access).await.body["unreadCount"].as_u64()
}
