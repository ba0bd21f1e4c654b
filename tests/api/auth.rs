use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn device_sign_in_creates_the_account_once_and_checks_the_secret() {
    let t = TestApp::spawn().await;
    let first = t.sign_in_device("phone-1", "a-very-secret-value").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["expiresIn"], 900);
    let again = t.sign_in_device("phone-1", "a-very-secret-value").await;
    assert_eq!(
        again.body["userId"], first.body["userId"],
        "same device, same account"
    );
    let wrong = t.sign_in_device("phone-1", "another-secret-value").await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (401, "invalid_credentials")
    );
    let short = t.sign_in_device("phone-2", "short").await;
    assert_eq!(
        (short.status.as_u16(), short.code()),
        (400, "validation_failed")
    );
    let bad_platform = t
        .post(
            "/v1/auth/device",
            None,
            json!({"deviceId": "x", "deviceSecret": "0123456789abcdef", "platform": "symbian"}),
        )
        .await;
    assert_eq!(
        (bad_platform.status.as_u16(), bad_platform.code()),
        (400, "validation_failed")
    );
    let signups = t.app().ctx.store.clone();
    let n = signups
        .read(|rtx| duet::core::events::query(rtx, Some("user_signed_up"), None, 0, 100, 1000))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(n, 1, "one sign-up event for one account");
}

/// An app with SendGrid configured: emails go to a fake that records them.
pub async fn spawn_with_mail(
    adjust: impl FnOnce(&mut duet::config::Config),
) -> (TestApp, std::sync::Arc<crate::notifications::Fake>) {
    let (sendgrid, base) = crate::notifications::fake_provider().await;
    let t = TestApp::spawn_with(|c| {
        c.notifications.sendgrid.api_key = "sg-key".into();
        c.notifications.sendgrid.base_url = base;
        c.notifications.sendgrid.from_email = "hello@duet.example".into();
        c.auth.email.verify_link = "https://duet.example/verify?token={token}".into();
        c.auth.email.reset_link = "https://duet.example/reset?token={token}".into();
        adjust(c);
    })
    .await;
    (t, sendgrid)
}

/// Waits for an email to `to` with a link, and returns the link's token.
pub async fn link_mailed_to(sendgrid: &crate::notifications::Fake, to: &str) -> String {
    until(&format!("a link mailed to {to}"), || async {
        let bodies: Vec<serde_json::Value> = sendgrid.sends().into_iter().map(|g| g.body).collect();
        mailed_link_token(&bodies, to)
    })
    .await
}

#[tokio::test]
async fn register_verify_then_login_with_password() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    let r = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "Anna@Example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let anna = tokens(&r.body);
    let weak = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "b@example.com", "password": "short"}),
        )
        .await;
    assert_eq!(weak.code(), "validation_failed");
    let bad_email = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "long enough"}),
        )
        .await;
    assert_eq!(bad_email.code(), "validation_failed");
    let me = t.get("/v1/me/profile", &anna.access).await;
    assert_eq!(me.body["private"]["email"], "anna@example.com");
    assert_eq!(me.body["private"]["emailVerified"], false);
    let early = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "anna@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(early.code(), "invalid_credentials", "not verified yet");

    let token = link_mailed_to(&mail, "anna@example.com").await;
    let sent = mail.sends();
    assert_eq!(sent[0].header("authorization"), Some("Bearer sg-key"));
    assert_eq!(sent[0].body["from"]["email"], "hello@duet.example");
    assert!(
        sent[0].body["headers"].is_null(),
        "no unsubscribe on account emails"
    );
    let r = t
        .post("/v1/auth/email/verify", None, json!({"token": token}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let again = t
        .post("/v1/auth/email/verify", None, json!({"token": token}))
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (400, "invalid_token")
    );

    let ok = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "anna@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["userId"], anna.user_id.as_str());
    let me = t
        .get("/v1/me/profile", ok.body["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(me.body["private"]["email"], "anna@example.com");
    assert_eq!(me.body["private"]["emailVerified"], true);
    let wrong = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "anna@example.com", "password": "wrong horse"}),
        )
        .await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (401, "invalid_credentials")
    );
    let unknown = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong horse"}),
        )
        .await;
    assert_eq!(unknown.code(), "invalid_credentials");
}

#[tokio::test]
async fn an_anonymous_account_can_link_email_and_password() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    let anon = t.user().await;
    let r = t
        .post(
            "/v1/me/credentials",
            Some(&anon.access),
            json!({"email": "c@example.com", "password": "linked-pass"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["userId"], anon.user_id.as_str());
    let token = link_mailed_to(&mail, "c@example.com").await;
    let r = t
        .post("/v1/auth/email/verify", None, json!({"token": token}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let login = t
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "c@example.com", "password": "linked-pass"}),
        )
        .await;
    assert_eq!(login.body["userId"], anon.user_id.as_str());
    // With a verified email, a device sign-in no longer changes how the account signs in.
    let again = t
        .post(
            "/v1/me/credentials",
            Some(&anon.access),
            json!({"email": "d@example.com", "password": "linked-pass"}),
        )
        .await;
    assert_eq!(again.code(), "reauthentication_required");
    let by_password = tokens(&login.body);
    let again = t
        .post(
            "/v1/me/credentials",
            Some(&by_password.access),
            json!({"email": "d@example.com", "password": "linked-pass"}),
        )
        .await;
    assert_eq!(again.code(), "conflict", "it has a verified email already");
}

/// A password sign-in from `address` (the test server trusts `x-forwarded-for`).
async fn login_from(t: &TestApp, address: &str, email: &str, password: &str) -> Reply {
    let r = t
        .http
        .post(format!("{}/v1/auth/login", t.base))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

fn retry_after(r: &Reply) -> u64 {
    r.headers["retry-after"].to_str().unwrap().parse().unwrap()
}

async fn spawn_behind_proxy() -> TestApp {
    TestApp::spawn_with(|c| c.server.client_ip_header = "x-forwarded-for".into()).await
}

/// Security issue, defect 5, the attacker's side: wrong passwords for an account from one
/// address make each further try from there wait, twice as long each time.
#[tokio::test]
async fn wrong_passwords_slow_the_guesser_exponentially() {
    let t = spawn_behind_proxy().await;
    let email = "t@example.com";
    t.email_account(email, "right-password").await;
    let attacker = "203.0.113.7";
    for _ in 0..3 {
        let r = login_from(&t, attacker, email, "wrong-password").await;
        assert_eq!(r.code(), "invalid_credentials");
    }
    let mut waits = Vec::new();
    for _ in 0..4 {
        let limited = login_from(&t, attacker, email, "wrong-password").await;
        assert_eq!(
            (limited.status.as_u16(), limited.code()),
            (429, "rate_limited")
        );
        let wait = retry_after(&limited);
        waits.push(wait);
        t.clock.advance_ms(wait as i64 * 1000);
        let r = login_from(&t, attacker, email, "wrong-password").await;
        assert_eq!(
            r.code(),
            "invalid_credentials",
            "allowed again after the wait"
        );
    }
    assert_eq!(waits, [1, 2, 4, 8], "the delay doubles");
    // Even the right password waits its turn from the guesser's address.
    let r = login_from(&t, attacker, email, "right-password").await;
    assert_eq!(r.code(), "rate_limited");
}

/// Security issue, defect 5, the owner's side: however many wrong passwords others try for
/// the account (the admin's included), the owner signs in with the right one from their own
/// address at once, and device sign-ins from the guessing address are not blocked.
#[tokio::test]
async fn the_owner_is_never_locked_out_by_someone_elses_guesses() {
    let t = spawn_behind_proxy().await;
    let email = "owner@example.com";
    t.email_account(email, "right-password").await;
    let attacker = "203.0.113.8";
    for _ in 0..10 {
        let r = login_from(&t, attacker, email, "wrong-password").await;
        assert!(
            matches!(r.code(), "invalid_credentials" | "rate_limited"),
            "{:?}",
            r.body
        );
    }
    let owner = login_from(&t, "198.51.100.20", email, "right-password").await;
    assert_eq!(owner.status, 200, "the owner signs in: {:?}", owner.body);

    // Thirty-odd password failures from one address, over many accounts: password sign-ins
    // from there are refused, but a new device sign-up from there is not.
    let t = spawn_behind_proxy().await;
    for i in 0..31 {
        let r = login_from(
            &t,
            attacker,
            &format!("nobody{i}@example.com"),
            "wrong-password",
        )
        .await;
        assert!(
            matches!(r.code(), "invalid_credentials" | "rate_limited"),
            "{:?}",
            r.body
        );
    }
    let r = login_from(&t, attacker, "another@example.com", "wrong-password").await;
    assert_eq!(
        r.code(),
        "rate_limited",
        "the address is limited for passwords"
    );
    let device = t
        .http
        .post(format!("{}/v1/auth/device", t.base))
        .header("x-forwarded-for", attacker)
        .json(&json!({"deviceId": "fresh-device", "deviceSecret": "0123456789abcdef", "platform": "ios"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        device.status(),
        200,
        "device sign-in is not blocked by password failures"
    );
}

/// A guess spread over many addresses still meets the per-account ceiling, which then refuses
/// new addresses — but not the owner's, where the account signed in before.
#[tokio::test]
async fn distributed_guessing_meets_the_per_account_ceiling_but_spares_the_owners_address() {
    let t = TestApp::spawn_with(|c| {
        c.server.client_ip_header = "x-forwarded-for".into();
        c.auth.throttle.account_failures_max = 6;
    })
    .await;
    let email = "d@example.com";
    t.email_account(email, "right-password").await;
    let home = "198.51.100.7";
    assert_eq!(
        login_from(&t, home, email, "right-password").await.status,
        200
    );
    for i in 0..6 {
        let r = login_from(&t, &format!("192.0.2.{i}"), email, "wrong-password").await;
        assert_eq!(r.code(), "invalid_credentials");
    }
    let r = login_from(&t, "192.0.2.100", email, "wrong-password").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    assert!((1..=901).contains(&retry_after(&r)));
    let owner = login_from(&t, home, email, "right-password").await;
    assert_eq!(
        owner.status, 200,
        "the owner's address is spared: {:?}",
        owner.body
    );
    // IPv6 addresses of one /64 are one client.
    for i in 1..=3 {
        let r = login_from(&t, &format!("2001:db8:5:6::{i}"), "v6@example.com", "wrong").await;
        assert_eq!(r.code(), "invalid_credentials");
    }
    let r = login_from(&t, "2001:db8:5:6::99", "v6@example.com", "wrong").await;
    assert_eq!(
        r.code(),
        "rate_limited",
        "the same /64 waits like one address"
    );
}

/// Registration never tells whether an email is registered: a taken address is answered like
/// a free one (a new account that has only claimed the address), so probing learns nothing.
/// Registrations from one address are still limited, like every sign-up.
#[tokio::test]
async fn registration_answers_the_same_for_taken_and_free_emails() {
    let t = TestApp::spawn_with(|c| c.auth.throttle.signups_per_address_max = 3).await;
    t.email_account("taken@example.com", "correct horse").await;
    let mut shapes = Vec::new();
    for email in ["taken@example.com", "free@example.com"] {
        let r = t
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": "guess-long-1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let mut keys: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        shapes.push(keys);
        // Neither signs in with the password until its email is verified.
        let login = t
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "guess-long-1"}),
            )
            .await;
        assert_eq!(login.code(), "invalid_credentials", "{email}");
    }
    assert_eq!(shapes[0], shapes[1]);
    let r = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "third@example.com", "password": "guess-long-1"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "fourth@example.com", "password": "guess-long-1"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let r1 = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(r1.status, 200);
    let t1 = tokens(&r1.body);
    assert_ne!(t1.refresh, u.refresh);
    assert_eq!(t.get("/v1/me/profile", &t1.access).await.status, 200);

    // The old one comes back after the reuse interval: someone copied it. The family ends.
    t.clock
        .advance_ms(t.config.auth.refresh_reuse_interval_secs as i64 * 1000 + 1);
    let reuse = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(
        (reuse.status.as_u16(), reuse.code()),
        (401, "refresh_token_reused")
    );
    let after = t
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refreshToken": t1.refresh}),
        )
        .await;
    assert_eq!(after.code(), "unauthorized");
    assert_eq!(
        t.get("/v1/me/profile", &t1.access).await.code(),
        "unauthorized"
    );
    let junk = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": "nope"}))
        .await;
    assert_eq!(junk.code(), "unauthorized");
}

/// Two app instances (or a retry racing its original) refresh with the same token at once:
/// within `auth.refresh_reuse_interval_secs` every one of them gets the same new refresh
/// token and nobody loses the session; the same token after the interval still revokes it.
#[tokio::test]
async fn parallel_refreshes_with_one_token_all_keep_the_session() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let answers = futures_util::future::join_all(
        (0..20).map(|_| t.post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))),
    )
    .await;
    let mut successors = std::collections::HashSet::new();
    for r in &answers {
        assert_eq!(r.status, 200, "{:?}", r.body);
        let pair = tokens(&r.body);
        assert_eq!(t.get("/v1/me/profile", &pair.access).await.status, 200);
        successors.insert(pair.refresh);
    }
    assert_eq!(successors.len(), 1, "one successor for every racer");
    let next = successors.into_iter().next().unwrap();
    assert_ne!(next, u.refresh);
    // The successor works on, once.
    let r = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": next}))
        .await;
    assert_eq!(r.status, 200);
    // The first token long after: reuse, and the session ends.
    t.clock
        .advance_ms(t.config.auth.refresh_reuse_interval_secs as i64 * 1000 + 1);
    let late = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(
        (late.status.as_u16(), late.code()),
        (401, "refresh_token_reused")
    );
    let after = tokens(&r.body);
    assert_eq!(
        t.get("/v1/me/profile", &after.access).await.code(),
        "unauthorized"
    );
}

#[tokio::test]
async fn access_tokens_expire_after_fifteen_minutes_and_logout_ends_the_session() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    t.clock.advance_ms(899_000);
    assert_eq!(t.get("/v1/me/profile", &u.access).await.status, 200);
    t.clock.advance_ms(2_000);
    assert_eq!(
        t.get("/v1/me/profile", &u.access).await.code(),
        "unauthorized"
    );
    let r = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    let fresh = tokens(&r.body);
    let out = t
        .call(Method::POST, "/v1/auth/logout", Some(&fresh.access), None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        t.get("/v1/me/profile", &fresh.access).await.code(),
        "unauthorized"
    );
    assert_eq!(
        t.post(
            "/v1/auth/refresh",
            None,
            json!({"refreshToken": fresh.refresh})
        )
        .await
        .code(),
        "unauthorized"
    );
}

#[tokio::test]
async fn sessions_are_listed_and_revoked() {
    let t = TestApp::spawn().await;
    t.email_account("s@example.com", "password-1").await;
    let login = || {
        t.post(
            "/v1/auth/login",
            None,
            json!({"email": "s@example.com", "password": "password-1"}),
        )
    };
    let a = tokens(&login().await.body);
    let b = tokens(&login().await.body);
    let c = tokens(&login().await.body);
    let list = t.get("/v1/me/sessions", &a.access).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "four logins");
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);

    let b_sid = session_id(&t, &b).await;
    let mut b_ws = t.ws_ready(&b.access).await;
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{b_sid}"),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        b_ws.closed().await,
        "session_revoked",
        "the revoked session's socket is closed"
    );
    assert_eq!(
        t.get("/v1/me/profile", &b.access).await.code(),
        "unauthorized"
    );
    let others = t
        .call(Method::DELETE, "/v1/me/sessions", Some(&a.access), None)
        .await;
    assert_eq!(others.body["revoked"], 2);
    assert_eq!(
        t.get("/v1/me/profile", &c.access).await.code(),
        "unauthorized"
    );
    assert_eq!(t.get("/v1/me/profile", &a.access).await.status, 200);
    let missing = t
        .call(
            Method::DELETE,
            "/v1/me/sessions/does-not-exist",
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(missing.code(), "not_found");
}

async fn session_id(t: &TestApp, who: &Tokens) -> String {
    let list = t.get("/v1/me/sessions", &who.access).await;
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn push_devices_are_registered_updated_and_removed() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let put = |token: &'static str| {
        t.call(
            Method::PUT,
            "/v1/me/devices/iphone-1",
            Some(&u.access),
            Some(json!({"platform": "ios", "provider": "apns_voip", "token": token, "appVersion": "2.4.1"})),
        )
    };
    assert_eq!(put("tok-1").await.status, 204);
    assert_eq!(put("tok-2").await.status, 204);
    let list = t.get("/v1/me/devices", &u.access).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["token"], "tok-2");
    assert_eq!(items[0]["provider"], "apns_voip");
    let bad = t
        .call(
            Method::PUT,
            "/v1/me/devices/x",
            Some(&u.access),
            Some(json!({"platform": "ios", "provider": "carrier-pigeon", "token": "t"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad_version = t
        .call(
            Method::PUT,
            "/v1/me/devices/x",
            Some(&u.access),
            Some(
                json!({"platform": "ios", "provider": "fcm", "token": "t", "appVersion": "latest"}),
            ),
        )
        .await;
    assert_eq!(bad_version.code(), "validation_failed");
    assert_eq!(
        t.call(
            Method::DELETE,
            "/v1/me/devices/iphone-1",
            Some(&u.access),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            "/v1/me/devices/iphone-1",
            Some(&u.access),
            None
        )
        .await
        .code(),
        "not_found"
    );
}

#[tokio::test]
async fn a_banned_account_is_refused_everywhere_until_unbanned() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    let r = t
        .post(
            &format!("/v1/admin/users/{}/ban", u.user_id),
            Some(&admin.access),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(r.status, 204);
    // The live connection is closed with the reason.
    let err = ws.recv_type("error").await;
    assert_eq!(err["code"], "account_banned");
    assert_eq!(ws.closed().await, "account_banned");

    let me = t.get("/v1/me/profile", &u.access).await;
    assert_eq!((me.status.as_u16(), me.code()), (403, "account_banned"));
    assert_eq!(
        t.get("/v1/me/sessions", &u.access).await.code(),
        "account_banned"
    );
    let refreshed = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(
        (refreshed.status.as_u16(), refreshed.code()),
        (403, "account_banned")
    );
    let device = t.sign_in_device("banned-phone", "0123456789abcdef").await;
    assert_eq!(device.status, 200, "another account is unaffected");
    let mut ws2 = t.ws(Some(&u.access)).await;
    assert_eq!(ws2.recv().await["code"], "account_banned");
    assert_eq!(ws2.closed().await, "account_banned");
    // Others no longer see the profile.
    let other = t.user().await;
    assert_eq!(
        t.get(&format!("/v1/profiles/{}", u.user_id), &other.access)
            .await
            .code(),
        "not_found"
    );

    let unban = t
        .call(
            Method::DELETE,
            &format!("/v1/admin/users/{}/ban", u.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(unban.status, 204);
    // The refresh token refused during the ban was not used up.
    let refreshed = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    let t2 = tokens(&refreshed.body);
    assert_eq!(t.get("/v1/me/profile", &t2.access).await.status, 200);
    let audit = t.get("/v1/admin/audit", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.unban", "user.ban"]);
}

#[tokio::test]
async fn roles_are_set_by_admins_and_take_effect_at_once() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    assert_eq!(
        t.get("/v1/admin/events", &u.access).await.code(),
        "forbidden"
    );
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", u.user_id),
            Some(&admin.access),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        t.get("/v1/admin/events", &u.access).await.status,
        200,
        "the same token, the new role"
    );
    let bad = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", u.user_id),
            Some(&admin.access),
            Some(json!({"role": "king"})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let missing = t
        .call(
            Method::PUT,
            "/v1/admin/users/nobody/role",
            Some(&admin.access),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(missing.code(), "not_found");
    let own = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", admin.user_id),
            Some(&admin.access),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(own.code(), "conflict");
}

// --- External identity provider (Firebase-compatible ID tokens) --------------------------

const PROJECT: &str = "duet-test";

pub fn id_token(key_pem: &str, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("rsa key");
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(now_s: i64, sub: &str) -> serde_json::Value {
    json!({
        "iss": format!("https://securetoken.google.com/{PROJECT}"),
        "aud": PROJECT,
        "sub": sub,
        "iat": now_s - 10,
        "exp": now_s + 3600,
        "auth_time": now_s - 20,
        "email": "ext@example.com",
    })
}

async fn external_app(jwks: impl FnOnce(&mut duet::config::Config)) -> TestApp {
    TestApp::spawn_with(|c| {
        c.auth.external.enabled = true;
        c.auth.external.project_id = PROJECT.into();
        jwks(c);
    })
    .await
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn external_id_tokens_sign_in_and_link_on_first_use() {
    let t = external_app(|c| {
        c.auth.external.jwks_file = format!(
            "{}/tests/fixtures/idp-jwks.json",
            env!("CARGO_MANIFEST_DIR")
        );
    })
    .await;
    let key = fixture("idp-private.pem");
    let now = t.now_ms() / 1000;
    let tok = id_token(&key, "test-key-1", claims(now, "firebase-uid-1"));
    let first = t
        .post("/v1/auth/external", None, json!({"idToken": tok}))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = t
        .post("/v1/auth/external", None, json!({"idToken": tok}))
        .await;
    assert_eq!(second.body["userId"], first.body["userId"]);

    let other_key = fixture("idp-other-private.pem");
    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims(now, "firebase-uid-2");
        c[field] = value;
        id_token(&key, "test-key-1", c)
    };
    let cases = [
        ("wrong audience", with("aud", json!("other-project"))),
        (
            "wrong issuer",
            with("iss", json!("https://securetoken.google.com/other")),
        ),
        ("expired", with("exp", json!(now - 3600))),
        ("issued in the future", with("iat", json!(now + 3600))),
        (
            "auth_time in the future",
            with("auth_time", json!(now + 3600)),
        ),
        ("empty subject", with("sub", json!(""))),
        ("subject too long", with("sub", json!("x".repeat(129)))),
        (
            "unknown kid",
            id_token(&key, "no-such-kid", claims(now, "u3")),
        ),
        (
            "signed by another key",
            id_token(&other_key, "test-key-1", claims(now, "u4")),
        ),
        ("not a jwt", "garbage".to_owned()),
    ];
    for (what, token) in cases {
        let r = t
            .post("/v1/auth/external", None, json!({"idToken": token}))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{what}: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn external_keys_come_from_a_jwks_url() {
    // A local HTTP server stands in for the provider's key endpoint and counts its fetches.
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let jwks = fixture("idp-jwks.json");
    let counter = fetches.clone();
    let app = poem::Route::new().at(
        "/jwks",
        poem::get(poem::endpoint::make(move |_| {
            let (jwks, counter) = (jwks.clone(), counter.clone());
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                poem::Response::builder()
                    .content_type("application/json")
                    .body(jwks)
            }
        })),
    );
    let addr = serve_fake(app).await;

    let t = external_app(|c| c.auth.external.jwks_url = format!("http://{addr}/jwks")).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched at start");
    let now = t.now_ms() / 1000;
    let tok = id_token(
        &fixture("idp-private.pem"),
        "test-key-1",
        claims(now, "url-user"),
    );
    let r = t
        .post("/v1/auth/external", None, json!({"idToken": tok}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");
    // After the refresh period the keys are fetched again.
    t.clock.advance_ms(3_601_000);
    let now = t.now_ms() / 1000;
    let tok = id_token(
        &fixture("idp-private.pem"),
        "test-key-1",
        claims(now, "url-user"),
    );
    let r = t
        .post("/v1/auth/external", None, json!({"idToken": tok}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn external_sign_in_is_refused_when_not_configured() {
    let t = TestApp::spawn().await;
    let r = t
        .post("/v1/auth/external", None, json!({"idToken": "x.y.z"}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
}

#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_throttle() {
    let t = TestApp::spawn().await;
    t.post(
        "/v1/auth/register",
        None,
        json!({"email": "p@example.com", "password": "right-password"}),
    )
    .await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (http, base) = (t.http.clone(), t.base.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/v1/auth/login"))
                    .json(&json!({"email": "p@example.com", "password": "wrong-password"}))
                    .send()
                    .await
                    .unwrap();
                r.json::<serde_json::Value>().await.unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut wrong = 0;
    for a in attempts {
        match a.await.unwrap().as_str() {
            "invalid_credentials" => wrong += 1,
            "rate_limited" => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(wrong <= 5, "{wrong} passwords were checked; the limit is 5");
}

#[tokio::test]
async fn account_creation_is_limited_per_address() {
    let t = TestApp::spawn_with(|c| c.auth.throttle.signups_per_address_max = 3).await;
    for i in 0..3 {
        assert_eq!(
            t.sign_in_device(&format!("new-{i}"), "0123456789abcdef")
                .await
                .status,
            200
        );
    }
    let r = t.sign_in_device("new-3", "0123456789abcdef").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    // Returning devices are not sign-ups.
    assert_eq!(
        t.sign_in_device("new-0", "0123456789abcdef").await.status,
        200
    );
    let reg = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "q@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(reg.code(), "rate_limited");
}

#[tokio::test]
async fn a_push_token_follows_the_phone_to_its_new_account() {
    let t = TestApp::spawn().await;
    let a = t.user().await;
    let b = t.user().await;
    let body = json!({"platform": "android", "provider": "fcm", "token": "shared-phone-token"});
    t.call(
        Method::PUT,
        "/v1/me/devices/phone",
        Some(&a.access),
        Some(body.clone()),
    )
    .await;
    t.call(
        Method::PUT,
        "/v1/me/devices/phone",
        Some(&b.access),
        Some(body),
    )
    .await;
    assert_eq!(
        t.get("/v1/me/devices", &a.access).await.body["items"],
        json!([]),
        "the old owner lost it"
    );
    assert_eq!(
        t.get("/v1/me/devices", &b.access).await.body["items"][0]["token"],
        "shared-phone-token"
    );
}

#[tokio::test]
async fn a_role_change_makes_live_connections_reconnect() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    // A second admin reads the admin topic, then is made a moderator (who may not: the topic
    // has the event log's access).
    let m = t.with_role(&admin, "admin").await;
    let mut ws = t.ws_ready(&m.access).await;
    ws.send(json!({"type": "subscribe", "topic": "admin"}))
        .await;
    ws.recv_type("subscribed").await;
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", m.user_id),
            Some(&admin.access),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(ws.closed().await, "role_changed");
    let mut again = t.ws_ready(&m.access).await;
    again
        .send(json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(again.recv().await["code"], "forbidden");
}

// --- Sign in with Apple and with Google (issue 12) ----------------------------------------

const APPLE_BUNDLE: &str = "com.duet.app";
pub const GOOGLE_CLIENT: &str = "1234-ios.apps.googleusercontent.com";

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn providers_app() -> TestApp {
    let jwks = format!(
        "{}/tests/fixtures/idp-jwks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    TestApp::spawn_with(|c| {
        c.auth.apple.enabled = true;
        c.auth.apple.audiences = vec![APPLE_BUNDLE.into(), "com.duet.web".into()];
        c.auth.apple.jwks_file = jwks.clone();
        c.auth.google.enabled = true;
        c.auth.google.audiences = vec![
            GOOGLE_CLIENT.into(),
            "5678-web.apps.googleusercontent.com".into(),
        ];
        c.auth.google.jwks_file = jwks;
    })
    .await
}

fn apple_claims(now_s: i64, sub: &str, nonce: &str) -> serde_json::Value {
    json!({
        "iss": "https://appleid.apple.com",
        "aud": APPLE_BUNDLE,
        "sub": sub,
        "iat": now_s - 10,
        "exp": now_s + 600,
        "nonce": sha256_hex(nonce),
        "email": "abc123@privaterelay.appleid.com",
        "email_verified": "true",
        "is_private_email": "true",
    })
}

#[tokio::test]
async fn sign_in_with_apple_checks_every_claim_and_keys_by_sub() {
    let t = providers_app().await;
    let key = fixture("idp-private.pem");
    let now = t.now_ms() / 1000;
    let apple = |token: String, nonce: &str| {
        t.post(
            "/v1/auth/apple",
            None,
            json!({"idToken": token, "nonce": nonce}),
        )
    };
    let tok = id_token(
        &key,
        "test-key-1",
        apple_claims(now, "001234.abcd", "raw-nonce-1"),
    );
    let first = apple(tok.clone(), "raw-nonce-1").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = apple(tok, "raw-nonce-1").await;
    assert_eq!(again.body["userId"], first.body["userId"], "keyed by sub");

    let mut refusals = Vec::new();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = apple_claims(now, "001234.abcd", "raw-nonce-1");
        f(&mut c);
        id_token(&key, "test-key-1", c)
    };
    refusals.push(("wrong nonce", apple(with(&|_| {}), "another-nonce").await));
    refusals.push((
        "wrong audience",
        apple(with(&|c| c["aud"] = json!("com.evil.app")), "raw-nonce-1").await,
    ));
    refusals.push((
        "wrong issuer",
        apple(
            with(&|c| c["iss"] = json!("https://accounts.google.com")),
            "raw-nonce-1",
        )
        .await,
    ));
    refusals.push((
        "expired",
        apple(with(&|c| c["exp"] = json!(now - 120)), "raw-nonce-1").await,
    ));
    let other = id_token(
        &fixture("idp-other-private.pem"),
        "test-key-1",
        apple_claims(now, "001234.abcd", "raw-nonce-1"),
    );
    refusals.push(("wrong signature", apple(other, "raw-nonce-1").await));
    for (why, r) in refusals {
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{why}: {:?}",
            r.body
        );
    }
    let empty = apple(with(&|_| {}), "").await;
    assert_eq!(empty.code(), "validation_failed");
}

#[tokio::test]
async fn sign_in_with_google_accepts_both_issuers_and_every_client_id() {
    let t = providers_app().await;
    let key = fixture("idp-private.pem");
    let now = t.now_ms() / 1000;
    let google = |claims: serde_json::Value| {
        let token = id_token(&key, "test-key-1", claims);
        t.post("/v1/auth/google", None, json!({"idToken": token}))
    };
    let claims = |iss: &str, aud: &str| {
        json!({"iss": iss, "aud": aud, "sub": "110169484474386276334", "iat": now - 5, "exp": now + 3600,
               "email": "someone@gmail.com", "email_verified": true})
    };
    let a = google(claims("https://accounts.google.com", GOOGLE_CLIENT)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let b = google(claims(
        "accounts.google.com",
        "5678-web.apps.googleusercontent.com",
    ))
    .await;
    assert_eq!(
        b.body["userId"], a.body["userId"],
        "the same Google account from the web client"
    );
    let wrong_aud = google(claims(
        "https://accounts.google.com",
        "9999-other.apps.googleusercontent.com",
    ))
    .await;
    assert_eq!(wrong_aud.code(), "unauthorized");
    let wrong_iss = google(claims("https://appleid.apple.com", GOOGLE_CLIENT)).await;
    assert_eq!(wrong_iss.code(), "unauthorized");
    // An Apple token is no Google token, nor the other way round: separate accounts per provider.
    let apple_tok = id_token(
        &key,
        "test-key-1",
        apple_claims(now, "110169484474386276334", "n"),
    );
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": apple_tok}))
        .await;
    assert_eq!(r.code(), "unauthorized");
}

#[tokio::test]
async fn providers_that_are_not_configured_are_unavailable() {
    let t = TestApp::spawn().await;
    let r = t
        .post(
            "/v1/auth/apple",
            None,
            json!({"idToken": "x.y.z", "nonce": "n"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": "x.y.z"}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
}

/// A fake Graph API: `debug_token` and `me` answer from a table of user tokens, and every
/// request's query is recorded.
async fn fake_graph() -> (
    std::net::SocketAddr,
    std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
) {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let record = |seen: std::sync::Arc<parking_lot::Mutex<Vec<String>>>, path: &'static str| {
        poem::endpoint::make(move |req: poem::Request| {
            let seen = seen.clone();
            async move {
                let query = req.uri().query().unwrap_or("").to_owned();
                seen.lock().push(format!("{path}?{query}"));
                let param = |k: &str| {
                    query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                        .unwrap_or("")
                        .to_owned()
                };
                let token = param(if path == "debug_token" {
                    "input_token"
                } else {
                    "access_token"
                });
                // user tokens: good (app 42, user 1001), other-app (app 7), dead (invalid),
                // liar (debug says 1001, me says 2002); anything else: Graph's 400.
                let (app, valid, user, me) = match token.as_str() {
                    "good" => ("42", true, "1001", "1001"),
                    "other-app" => ("7", true, "1001", "1001"),
                    "dead" => ("42", false, "1001", "1001"),
                    "liar" => ("42", true, "1001", "2002"),
                    _ => {
                        return poem::Response::builder()
                            .status(poem::http::StatusCode::BAD_REQUEST)
                            .body(
                                r#"{"error":{"message":"Invalid OAuth access token.","code":190}}"#,
                            );
                    }
                };
                let body = if path == "debug_token" {
                    json!({"data": {"app_id": app, "type": "USER", "application": "Duet",
                                    "is_valid": valid, "user_id": user, "expires_at": 0}})
                } else {
                    json!({"id": me, "email": "fb@example.com"})
                };
                poem::Response::builder()
                    .content_type("application/json")
                    .body(body.to_string())
            }
        })
    };
    let app = poem::Route::new()
        .at(
            "/v19.0/debug_token",
            poem::get(record(seen.clone(), "debug_token")),
        )
        .at("/v19.0/me", poem::get(record(seen.clone(), "me")));
    (serve_fake(app).await, seen)
}

#[tokio::test]
async fn facebook_login_checks_the_token_with_the_graph_api() {
    let (addr, seen) = fake_graph().await;
    let jwks = format!(
        "{}/tests/fixtures/idp-jwks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let t = TestApp::spawn_with(|c| {
        c.auth.facebook.enabled = true;
        c.auth.facebook.app_id = "42".into();
        c.auth.facebook.app_secret = "s3cret".into();
        c.auth.facebook.graph_base_url = format!("http://{addr}/v19.0");
        c.auth.facebook.jwks_file = jwks;
    })
    .await;
    let fb = |body: serde_json::Value| t.post("/v1/auth/facebook", None, body);
    let ok = fb(json!({"accessToken": "good"})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    {
        let seen = seen.lock();
        assert!(seen[0].starts_with("debug_token?"), "{seen:?}");
        assert!(seen[0].contains("input_token=good"), "{seen:?}");
        assert!(
            seen[0].contains("access_token=42%7Cs3cret"),
            "the app's token: {seen:?}"
        );
        assert!(
            seen[1].starts_with("me?") && seen[1].contains("fields=id%2Cemail"),
            "{seen:?}"
        );
    }
    for (token, why) in [
        ("other-app", "issued to another app"),
        ("dead", "not valid"),
        ("liar", "names another user"),
        ("garbage", "Graph refuses it"),
    ] {
        let r = fb(json!({"accessToken": token})).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "unauthorized"),
            "{why}: {:?}",
            r.body
        );
    }
    // Limited Login: an OIDC token for app 42 is the same Facebook user (app-scoped id).
    let now = t.now_ms() / 1000;
    let limited = |aud: &str| {
        id_token(
            &fixture("idp-private.pem"),
            "test-key-1",
            json!({"iss": "https://www.facebook.com", "aud": aud, "sub": "1001",
                   "iat": now - 5, "exp": now + 3600, "nonce": "x"}),
        )
    };
    let same = fb(json!({"idToken": limited("42")})).await;
    assert_eq!(same.body["userId"], ok.body["userId"], "{:?}", same.body);
    let wrong_app = fb(json!({"idToken": limited("7")})).await;
    assert_eq!(wrong_app.code(), "unauthorized");
    let both = fb(json!({"accessToken": "good", "idToken": limited("42")})).await;
    assert_eq!(both.code(), "validation_failed");
    let neither = fb(json!({})).await;
    assert_eq!(neither.code(), "validation_failed");
}

#[tokio::test]
async fn facebook_login_is_unavailable_until_configured() {
    let t = TestApp::spawn().await;
    let r = t
        .post("/v1/auth/facebook", None, json!({"accessToken": "good"}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
}
