//! Accounts (issue 12): phone sign-in by SMS code against a fake Twilio, verified emails that an
//! unverified claim never blocks, password reset by link, linked identities, and answers that
//! never tell whether an email or number is registered.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{GOOGLE_CLIENT, fixture, id_token, link_mailed_to, spawn_with_mail};
use crate::notifications::{Fake, Got, fake_provider};
use crate::support::*;

/// The fields of a form body a fake recorded.
fn form(got: &Got) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    got.body
        .as_str()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn field(got: &Got, name: &str) -> Option<String> {
    form(got)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The code in the newest SMS sent to `phone`.
fn sms_code(twilio: &Fake, phone: &str) -> String {
    let sent = twilio.sends();
    let sms = sent
        .iter()
        .rev()
        .find(|g| field(g, "To").as_deref() == Some(phone))
        .expect("an SMS to the number");
    let body = field(sms, "Body").unwrap();
    body.split_whitespace()
        .find_map(|w| {
            let w = w.trim_end_matches('.');
            (w.len() == 6 && w.chars().all(|c| c.is_ascii_digit())).then(|| w.to_owned())
        })
        .expect("a 6-digit code in the SMS")
}

async fn phone_app(
    verify: bool,
    adjust: impl FnOnce(&mut duet::config::Config),
) -> (TestApp, Arc<Fake>) {
    let (twilio, base) = fake_provider().await;
    let t = TestApp::spawn_with(|c| {
        let p = &mut c.auth.phone;
        p.enabled = true;
        p.account_sid = "AC-test".into();
        p.auth_token = "tw-token".into();
        if verify {
            p.provider = duet::config::SmsProvider::TwilioVerify;
            p.verify_service_sid = "VA-test".into();
        } else {
            p.provider = duet::config::SmsProvider::TwilioMessaging;
            p.messaging_service_sid = "MG-test".into();
        }
        p.verify_base_url = base.clone();
        p.api_base_url = base;
        c.server.client_ip_header = "x-forwarded-for".into();
        adjust(c);
    })
    .await;
    (t, twilio)
}

async fn start(t: &TestApp, phone: &str) -> Reply {
    t.post("/v1/auth/phone/start", None, json!({"phone": phone}))
        .await
}

async fn verify(t: &TestApp, phone: &str, code: &str) -> Reply {
    t.post(
        "/v1/auth/phone/verify",
        None,
        json!({"phone": phone, "code": code}),
    )
    .await
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('9') { '1' } else { '9' };
    format!("{first}{}", &code[1..])
}

#[tokio::test]
async fn phone_sign_in_with_our_own_codes() {
    let (t, twilio) = phone_app(false, |_| {}).await;
    let phone = "+15550100001";
    let r = start(&t, "+1 555 010-0001").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body, json!({"expiresIn": 600, "resendIn": 30}));
    let sent = twilio.sends();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/2010-04-01/Accounts/AC-test/Messages.json");
    // HTTP basic auth with the account sid and auth token.
    assert_eq!(
        sent[0].header("authorization"),
        Some("Basic QUMtdGVzdDp0dy10b2tlbg==")
    );
    assert_eq!(field(&sent[0], "To").as_deref(), Some(phone));
    assert_eq!(
        field(&sent[0], "MessagingServiceSid").as_deref(),
        Some("MG-test")
    );
    let code = sms_code(&twilio, phone);

    let bad = verify(&t, phone, &wrong(&code)).await;
    assert_eq!((bad.status.as_u16(), bad.code()), (401, "invalid_code"));
    let ok = verify(&t, phone, &code).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let first = tokens(&ok.body);
    let used = verify(&t, phone, &code).await;
    assert_eq!(used.code(), "invalid_code", "a code works once");
    let ids = t.get("/v1/me/identities", &first.access).await;
    assert_eq!(ids.body["items"][0]["provider"], "phone");
    assert_eq!(ids.body["items"][0]["subject"], phone);
    assert_eq!(ids.body["items"][0]["verified"], true);

    // The same number again is the same account.
    t.clock.advance_ms(31_000);
    assert_eq!(start(&t, phone).await.status, 202);
    let again = verify(&t, phone, &sms_code(&twilio, phone)).await;
    assert_eq!(again.body["userId"], first.user_id.as_str());

    // Malformed numbers and codes.
    for bad in ["5550100001", "+0555", "+1555abc0001"] {
        assert_eq!(start(&t, bad).await.code(), "validation_failed", "{bad}");
    }
    assert_eq!(
        verify(&t, phone, "12ab56").await.code(),
        "validation_failed"
    );
}

#[tokio::test]
async fn phone_codes_expire_and_run_out_of_attempts() {
    let (t, twilio) = phone_app(false, |_| {}).await;
    // Attempts: five wrong codes, then even the right one is refused.
    let phone = "+15550100002";
    start(&t, phone).await;
    let code = sms_code(&twilio, phone);
    for i in 0..5 {
        let r = verify(&t, phone, &wrong(&code)).await;
        assert_eq!(r.code(), "invalid_code", "try {i}: {:?}", r.body);
        // Past three failures the number's sign-in waits a little longer each time.
        t.clock.advance_ms(60_000);
    }
    let r = verify(&t, phone, &code).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "code_attempts_exhausted")
    );
    // A new code works again.
    start(&t, phone).await;
    let r = verify(&t, phone, &sms_code(&twilio, phone)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Expiry: ten minutes.
    let phone = "+15550100003";
    start(&t, phone).await;
    let code = sms_code(&twilio, phone);
    t.clock.advance_ms(600_001);
    assert_eq!(verify(&t, phone, &code).await.code(), "invalid_code");
}

#[tokio::test]
async fn phone_sends_are_throttled_per_number_per_address_and_by_the_daily_ceiling() {
    let (t, twilio) = phone_app(false, |c| {
        c.auth.phone.sends_per_number_max = 2;
        c.auth.phone.sends_per_address_max = 3;
        c.auth.phone.sends_per_day_max = 4;
    })
    .await;
    let from = |addr: &'static str, phone: &'static str| {
        let t = &t;
        async move {
            let r = t
                .http
                .post(format!("{}/v1/auth/phone/start", t.base))
                .header("x-forwarded-for", addr)
                .json(&json!({"phone": phone}))
                .send()
                .await
                .unwrap();
            Reply::from(r).await
        }
    };
    // One code per resend interval.
    assert_eq!(from("198.51.100.1", "+15550100010").await.status, 202);
    let r = from("198.51.100.1", "+15550100010").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    let wait: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait));
    // Per number: two an hour.
    t.clock.advance_ms(31_000);
    assert_eq!(from("198.51.100.2", "+15550100010").await.status, 202);
    t.clock.advance_ms(31_000);
    assert_eq!(
        from("198.51.100.3", "+15550100010").await.code(),
        "rate_limited"
    );
    // Per address: three an hour, whatever the numbers.
    assert_eq!(from("198.51.100.1", "+15550100011").await.status, 202);
    assert_eq!(from("198.51.100.1", "+15550100012").await.status, 202);
    assert_eq!(
        from("198.51.100.1", "+15550100013").await.code(),
        "rate_limited"
    );
    // The daily ceiling over everyone: four SMS in 24 hours, then nothing goes out.
    assert_eq!(
        from("198.51.100.9", "+15550100014").await.code(),
        "rate_limited"
    );
    assert_eq!(twilio.sends().len(), 4, "refused sends cost nothing");
    t.clock.advance_ms(24 * 3_600_000);
    assert_eq!(from("198.51.100.9", "+15550100014").await.status, 202);
}

#[tokio::test]
async fn phone_sign_in_through_twilio_verify() {
    let (t, twilio) = phone_app(true, |_| {}).await;
    let phone = "+447700900123";
    let r = start(&t, phone).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let sent = twilio.sends();
    assert_eq!(sent[0].path, "/v2/Services/VA-test/Verifications");
    assert_eq!(field(&sent[0], "To").as_deref(), Some(phone));
    assert_eq!(field(&sent[0], "Channel").as_deref(), Some("sms"));

    twilio
        .answers
        .lock()
        .push_back((200, json!({"status": "pending", "valid": false})));
    let r = verify(&t, phone, "111111").await;
    assert_eq!(r.code(), "invalid_code");
    let check = twilio.sends().pop().unwrap();
    assert_eq!(check.path, "/v2/Services/VA-test/VerificationCheck");
    assert_eq!(field(&check, "Code").as_deref(), Some("111111"));
    assert_eq!(field(&check, "To").as_deref(), Some(phone));

    // No pending verification at Twilio: 404 there, invalid_code here.
    twilio
        .answers
        .lock()
        .push_back((404, json!({"code": 20404, "status": 404})));
    assert_eq!(verify(&t, phone, "222222").await.code(), "invalid_code");

    twilio
        .answers
        .lock()
        .push_back((200, json!({"status": "approved", "valid": true})));
    let r = verify(&t, phone, "424242").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Used up: Twilio is not asked again.
    let before = twilio.sends().len();
    assert_eq!(verify(&t, phone, "424242").await.code(), "invalid_code");
    assert_eq!(twilio.sends().len(), before);

    // Twilio down: provider_failed, and the number may ask again at once.
    t.clock.advance_ms(31_000);
    twilio
        .answers
        .lock()
        .push_back((500, json!({"message": "down"})));
    let r = start(&t, "+447700900124").await;
    assert_eq!((r.status.as_u16(), r.code()), (502, "provider_failed"));
    assert_eq!(start(&t, "+447700900124").await.status, 202);
}

#[tokio::test]
async fn phone_sign_in_is_unavailable_until_configured() {
    let t = TestApp::spawn().await;
    let r = start(&t, "+15550100001").await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
    let r = verify(&t, "+15550100001", "123456").await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
}

/// Someone who registers another person's email only claims it: the owner still registers
/// it, verifies it from their mailbox, and the claim is released; an unverified claim also
/// lapses by itself.
#[tokio::test]
async fn an_unverified_claim_never_blocks_the_owner() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    let register = |email: &'static str| {
        t.post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "password-1"}),
        )
    };
    let squatter = tokens(&register("victim@example.com").await.body);
    let squatters_link = link_mailed_to(&mail, "victim@example.com").await;
    let owner = register("victim@example.com").await;
    assert_eq!(owner.status, 200, "{:?}", owner.body);
    let owner = tokens(&owner.body);
    let owners_link = until("a second link", || async {
        let bodies: Vec<Value> = mail.sends().into_iter().map(|g| g.body).collect();
        mailed_link_token(&bodies, "victim@example.com").filter(|l| *l != squatters_link)
    })
    .await;
    let r = t
        .post("/v1/auth/email/verify", None, json!({"token": owners_link}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // The squatter's link (had they had it) no longer makes them the owner.
    let r = t
        .post(
            "/v1/auth/email/verify",
            None,
            json!({"token": squatters_link}),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
    let squat = t.get("/v1/me/profile", &squatter.access).await;
    assert_eq!(
        squat.body["private"]["email"],
        Value::Null,
        "claim released"
    );
    let login = t.login("victim@example.com", "password-1").await;
    assert_eq!(login.body["userId"], owner.user_id.as_str());

    // A claim lapses: after claim_ttl_days the link and resending are refused.
    let lapsing = tokens(&register("later@example.com").await.body);
    let link = link_mailed_to(&mail, "later@example.com").await;
    t.clock.advance_ms(8 * 86_400_000);
    let r = t
        .post("/v1/auth/email/verify", None, json!({"token": link}))
        .await;
    assert_eq!(r.code(), "invalid_token");
    let lapsing = t.refresh(&lapsing).await;
    let r = t
        .post(
            "/v1/me/email/verification",
            Some(&lapsing.access),
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "conflict");
}

#[tokio::test]
async fn verification_emails_can_be_sent_again_within_limits() {
    let (t, mail) = spawn_with_mail(|c| c.auth.email.resends_per_hour_max = 2).await;
    let r = t
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "again@example.com", "password": "password-1"}),
        )
        .await;
    let who = tokens(&r.body);
    let first = link_mailed_to(&mail, "again@example.com").await;
    for _ in 0..2 {
        let r = t
            .post("/v1/me/email/verification", Some(&who.access), json!({}))
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = t
        .post("/v1/me/email/verification", Some(&who.access), json!({}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    let newest = until("three emails", || async {
        let bodies: Vec<Value> = mail.sends().into_iter().map(|g| g.body).collect();
        (bodies.len() == 3).then(|| mailed_link_token(&bodies, "again@example.com").unwrap())
    })
    .await;
    assert_ne!(newest, first);
    let r = t
        .post("/v1/auth/email/verify", None, json!({"token": newest}))
        .await;
    assert_eq!(r.status, 204);
    let r = t
        .post("/v1/me/email/verification", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.code(), "conflict", "nothing left to verify");
}

#[tokio::test]
async fn password_reset_by_link_revokes_every_session_and_reveals_nothing() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    let a = t.email_account("reset@example.com", "old-password").await;
    let b = t.email_account("reset@example.com", "old-password").await;
    // A claim that was never verified gets no reset link either.
    t.post(
        "/v1/auth/register",
        None,
        json!({"email": "pending@example.com", "password": "password-1"}),
    )
    .await;
    link_mailed_to(&mail, "pending@example.com").await;

    let mut answers = Vec::new();
    for email in [
        "reset@example.com",
        "nobody@example.com",
        "pending@example.com",
    ] {
        let r = t
            .post("/v1/auth/password/forgot", None, json!({"email": email}))
            .await;
        answers.push((r.status.as_u16(), r.body.clone()));
    }
    assert_eq!(answers[0], (202, Value::Null));
    assert_eq!(
        answers[0], answers[1],
        "unknown emails are answered the same"
    );
    assert_eq!(answers[0], answers[2]);
    let token = link_mailed_to(&mail, "reset@example.com").await;
    let to: Vec<String> = mail
        .sends()
        .iter()
        .map(|g| {
            g.body["personalizations"][0]["to"][0]["email"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        to,
        ["pending@example.com", "reset@example.com"],
        "only the verified email got a reset link"
    );

    let short = t
        .post(
            "/v1/auth/password/reset",
            None,
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(short.code(), "validation_failed");
    let r = t
        .post(
            "/v1/auth/password/reset",
            None,
            json!({"token": token, "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    for s in [&a, &b] {
        assert_eq!(t.get("/v1/me/profile", &s.access).await.status, 401);
        let r = t
            .post("/v1/auth/refresh", None, json!({"refreshToken": s.refresh}))
            .await;
        assert_eq!(r.status, 401, "sessions are revoked: {:?}", r.body);
    }
    let again = t
        .post(
            "/v1/auth/password/reset",
            None,
            json!({"token": token, "password": "other-password"}),
        )
        .await;
    assert_eq!(again.code(), "invalid_token");
    let old = t.login("reset@example.com", "old-password").await;
    assert_eq!(old.code(), "invalid_credentials");
    let new = t.login("reset@example.com", "new-password").await;
    assert_eq!(new.body["userId"], a.user_id.as_str());
    // Expired links are refused.
    t.post(
        "/v1/auth/password/forgot",
        None,
        json!({"email": "reset@example.com"}),
    )
    .await;
    let late = until("a second reset link", || async {
        let bodies: Vec<Value> = mail.sends().into_iter().map(|g| g.body).collect();
        mailed_link_token(&bodies, "reset@example.com").filter(|l| *l != token)
    })
    .await;
    t.clock.advance_ms(3_600_001);
    let r = t
        .post(
            "/v1/auth/password/reset",
            None,
            json!({"token": late, "password": "third-password"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_token");
}

async fn google_app() -> TestApp {
    let jwks = format!(
        "{}/tests/fixtures/idp-jwks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    TestApp::spawn_with(|c| {
        c.auth.google.enabled = true;
        c.auth.google.audiences = vec![GOOGLE_CLIENT.into()];
        c.auth.google.jwks_file = jwks;
    })
    .await
}

fn google_token(t: &TestApp, sub: &str, email: &str, verified: bool) -> String {
    let now = t.now_ms() / 1000;
    id_token(
        &fixture("idp-private.pem"),
        "test-key-1",
        json!({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": sub,
               "iat": now - 5, "exp": now + 3600, "email": email, "email_verified": verified}),
    )
}

async fn identities(t: &TestApp, who: &Tokens) -> Vec<Value> {
    let r = t.get("/v1/me/identities", &who.access).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn identities_are_linked_listed_and_unlinked_never_the_last() {
    let t = google_app().await;
    let admin = t.admin().await;
    let anon = t.user().await;
    let ids = identities(&t, &anon).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["provider"], "device");
    let device_id = ids[0]["id"].as_str().unwrap().to_owned();

    // A second device links as a way in too.
    let r = t
        .post(
            "/v1/me/identities/device",
            Some(&anon.access),
            json!({"deviceId": "tablet-1", "deviceSecret": "tablet-secret-123456"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let tablet = t.sign_in_device("tablet-1", "tablet-secret-123456").await;
    assert_eq!(tablet.body["userId"], anon.user_id.as_str());

    let token = google_token(&t, "g-1", "anon@gmail.com", true);
    let r = t
        .post(
            "/v1/me/identities/google",
            Some(&anon.access),
            json!({"idToken": token}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let providers: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["device", "device", "google"]);
    // Google now signs in to the same account.
    let g = t
        .post("/v1/auth/google", None, json!({"idToken": token}))
        .await;
    assert_eq!(g.body["userId"], anon.user_id.as_str());
    let g = tokens(&g.body);
    // From now on a device sign-in is not enough to change the ways in: whoever holds the
    // unlocked phone could sign in by device again.
    let r = t
        .post(
            "/v1/me/identities/device",
            Some(&anon.access),
            json!({"deviceId": "thief-1", "deviceSecret": "thief-secret-123456"}),
        )
        .await;
    assert_eq!(r.code(), "reauthentication_required");
    // Another account cannot take it.
    let other = t.user().await;
    let r = t
        .post(
            "/v1/me/identities/google",
            Some(&other.access),
            json!({"idToken": token}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "identity_in_use"));
    // A proof missing its field, and a bad token.
    let r = t
        .post("/v1/me/identities/google", Some(&g.access), json!({}))
        .await;
    assert_eq!(r.code(), "validation_failed");
    let r = t
        .post(
            "/v1/me/identities/google",
            Some(&g.access),
            json!({"idToken": "x.y.z"}),
        )
        .await;
    assert_eq!(r.code(), "unauthorized");
    let anon = g;

    // Unlinking: down to one, never zero.
    let ids = identities(&t, &anon).await;
    for i in &ids[1..] {
        let r = t
            .call(
                Method::DELETE,
                &format!(
                    "/v1/me/identities/{}/{}",
                    i["provider"].as_str().unwrap(),
                    i["id"].as_str().unwrap()
                ),
                Some(&anon.access),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/me/identities/device/{device_id}"),
            Some(&anon.access),
            None,
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "last_identity"));
    let r = t
        .call(
            Method::DELETE,
            "/v1/me/identities/google/nope",
            Some(&anon.access),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // Google is no longer a way into this account: it makes a new one.
    let g = t
        .post("/v1/auth/google", None, json!({"idToken": token}))
        .await;
    assert_ne!(g.body["userId"], anon.user_id.as_str());

    // Admins see a user's identities; others do not.
    let r = t
        .get(
            &format!("/v1/admin/users/{}/identities", anon.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{:?}", r.body);
    let r = t
        .get(
            &format!("/v1/admin/users/{}/identities", anon.user_id),
            &other.access,
        )
        .await;
    assert_eq!(r.status, 403);

    // Every change is on the log, naming the provider and never the subject.
    let events = t
        .get(
            &format!(
                "/v1/admin/events?type=user_identity_unlinked&userId={}",
                anon.user_id
            ),
            &admin.access,
        )
        .await;
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{:?}", events.body);
    assert!(!events.body.to_string().contains("g-1"));
}

/// A provider vouching for an email that another account owns is asked to link, never merged
/// silently; an email the provider does not vouch for makes a separate account.
#[tokio::test]
async fn a_providers_verified_email_of_an_existing_account_asks_for_linking() {
    let t = google_app().await;
    let known = t.email_account("known@example.com", "password-1").await;
    let token = google_token(&t, "g-2", "known@example.com", true);
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": token}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "link_required"));
    let r = t
        .post(
            "/v1/me/identities/google",
            Some(&known.access),
            json!({"idToken": token}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": token}))
        .await;
    assert_eq!(r.body["userId"], known.user_id.as_str());

    let unverified = google_token(&t, "g-3", "known@example.com", false);
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": unverified}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_ne!(r.body["userId"], known.user_id.as_str());

    // A new account from a provider takes its verified email.
    let fresh = google_token(&t, "g-4", "Fresh@Gmail.com", true);
    let r = t
        .post("/v1/auth/google", None, json!({"idToken": fresh}))
        .await;
    let me = t
        .get("/v1/me/profile", r.body["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(me.body["private"]["email"], "fresh@gmail.com");
    assert_eq!(me.body["private"]["emailVerified"], true);
}

/// Every table of the store, every key and value as stored: which of `needles` appear where.
async fn leftovers(t: &TestApp, needles: &[&str]) -> Vec<(String, String)> {
    let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
    t.app()
        .ctx
        .store
        .read(move |rtx| {
            let mut found = Vec::new();
            duet::core::store::scan_every_table(rtx, duet::domains::TABLES, &mut |table, k, v| {
                for n in &needles {
                    let hit = |b: &[u8]| b.windows(n.len()).any(|w| w == n.as_bytes());
                    if hit(k) || hit(v) {
                        found.push((
                            table.to_owned(),
                            format!("{n} in {}", String::from_utf8_lossy(k)),
                        ));
                    }
                }
            })?;
            Ok(found)
        })
        .await
        .unwrap()
}

/// Account deletion end to end: the export before it holds the person's profile, messages,
/// transfers and calls; deleting needs a fresh sign-in and signing in again cancels it; after
/// the grace period nothing that identifies them is left in any table, the ledger still
/// verifies, and the other side of their chat sees tombstones.
#[tokio::test]
async fn deletion_erases_everything_personal_after_the_grace_period() {
    let (t, twilio) = phone_app(false, |_| {}).await;
    let admin = t.admin().await;
    let email = "zelda.quimby@example.com";
    let phone = "+15550199999";
    let z = t.email_account(email, "zelda-password").await;
    assert_eq!(start(&t, phone).await.status, 202);
    let r = t
        .post(
            "/v1/me/identities/phone",
            Some(&z.access),
            json!({"phone": phone, "code": sms_code(&twilio, phone)}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&z.access),
            Some(json!({
                "displayName": "Zelda Quimby",
                "phone": phone,
                "bio": "Orchids and jazz",
                "payoutDetails": {"method": "bank_transfer", "account": "DE89370400440532013000",
                                  "holderName": "Zelda Quimby"}
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    crate::coins::credit(&t, &admin, &z.user_id, 1000, "wallet").await;
    let bob = t.with_role(&admin, "streamer").await;
    let said = "Meet me by the moonlit orchids";
    for (from, to, text) in [
        (&z, &bob.user_id, said),
        (&bob, &z.user_id, "See you there"),
    ] {
        let r = t
            .post(
                &format!("/v1/chats/{to}/messages"),
                Some(&from.access),
                json!({"clientMessageId": duet::core::ids::new_id(), "text": text}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let pair = crate::calls::Pair {
        online: vec![t.ws_ready(&z.access).await, t.ws_ready(&bob.access).await],
        user: z.clone(),
        streamer: bob.clone(),
    };
    t.settle().await;
    let call = crate::calls::connect(&t, &pair).await;
    t.clock.advance_ms(30_000);
    crate::calls::run_timers(&t).await;
    crate::calls::act(&t, &z, &call, "hangup").await;
    drop(pair);
    t.caught_up().await;
    let told = t.get("/v1/me/notifications", &bob.access).await;
    assert!(
        told.body.to_string().contains("Zelda Quimby"),
        "bob was told about her: {:?}",
        told.body
    );

    // A photo of hers: in the export, and gone with her.
    let photo = crate::gallery::approved_photo(&t, &z).await;

    // The export before deletion.
    let export = t.get("/v1/me/export", &z.access).await;
    assert_eq!(export.status, 200, "{:?}", export.body);
    let x = &export.body;
    assert_eq!(x["format"], "duet-export/1");
    assert_eq!(x["truncated"], false);
    assert_eq!(x["userId"], z.user_id.as_str());
    assert_eq!(x["profile"]["display_name"], "Zelda Quimby");
    assert_eq!(x["profile"]["phone"], phone);
    assert_eq!(x["account"]["email"], email);
    assert!(x["account"].get("password_hash").is_none());
    let providers: Vec<&str> = x["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["email", "phone"]);
    let texts: Vec<&str> = x["conversations"][0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, [said, "See you there"], "oldest first");
    let wallet = x["transfers"]["wallet"].as_array().unwrap();
    assert!(wallet.len() >= 2, "the credit and the call: {wallet:?}");
    assert_eq!(x["calls"].as_array().unwrap().len(), 1);
    assert_eq!(x["calls"][0]["id"], call.as_str());
    assert_eq!(x["media"][0]["id"], photo.as_str(), "{:?}", x["media"]);
    // An admin can take the same export; it is audited.
    let r = t
        .get(
            &format!("/v1/admin/users/{}/export", z.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(r.body["profile"], x["profile"]);

    // Deleting needs a fresh sign-in.
    t.clock.advance_ms(10 * 60_000);
    let z = t.refresh(&z).await;
    let r = t
        .call(Method::DELETE, "/v1/me", Some(&z.access), None)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (403, "reauthentication_required")
    );
    let login = || async {
        let r = t.login(email, "zelda-password").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokens(&r.body)
    };
    let fresh = login().await;
    let r = t
        .call(Method::DELETE, "/v1/me", Some(&fresh.access), None)
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["deleteAt"], "2026-03-15T12:10:30Z");
    assert_eq!(
        t.get("/v1/me/profile", &fresh.access).await.status,
        401,
        "signed out everywhere"
    );
    // Signing in again cancels it; asking again schedules it again.
    let again = login().await;
    let cancelled = t
        .get(
            &format!(
                "/v1/admin/events?type=user_deletion_cancelled&userId={}",
                z.user_id
            ),
            &admin.access,
        )
        .await;
    assert_eq!(cancelled.body["items"].as_array().unwrap().len(), 1);
    let r = t
        .call(Method::DELETE, "/v1/me", Some(&again.access), None)
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let ctx = t.app().ctx.clone();
    assert_eq!(
        duet::domains::privacy::run_due(&ctx).await.unwrap(),
        0,
        "not yet"
    );

    t.clock.advance_ms(14 * 86_400_000 + 1_000);
    assert_eq!(duet::domains::privacy::run_due(&ctx).await.unwrap(), 1);

    let left = leftovers(
        &t,
        &[
            email,
            phone,
            "Zelda",
            "Quimby",
            "Orchids and jazz",
            "moonlit orchids",
            "DE89370400440532013000",
        ],
    )
    .await;
    assert!(left.is_empty(), "personal data left behind: {left:?}");

    // The other side sees a tombstone where her message was; their own stays.
    let bob = t.refresh(&bob).await;
    let chats = t.get("/v1/chats", &bob.access).await;
    let chat = chats.body["items"][0]["id"].as_str().unwrap().to_owned();
    let timeline = t
        .get(&format!("/v1/chats/{chat}/messages"), &bob.access)
        .await;
    let items = timeline.body["items"].as_array().unwrap();
    let hers = items
        .iter()
        .find(|m| m["senderId"] == z.user_id.as_str() && m["kind"] == "text")
        .unwrap();
    assert_eq!(hers["deleted"], true);
    assert!(hers.get("text").is_none_or(Value::is_null));
    assert!(
        items.iter().any(|m| m["text"] == "See you there"),
        "{items:?}"
    );
    assert_eq!(
        t.get(&format!("/v1/profiles/{}", z.user_id), &bob.access)
            .await
            .status,
        404
    );
    // Nothing signs in to it any more, and the records that must stay still add up.
    let r = t.login(email, "zelda-password").await;
    assert_eq!(r.code(), "invalid_credentials");
    assert_eq!(t.get("/v1/me/profile", &again.access).await.status, 401);
    let report = ctx
        .store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let admin = t.refresh(&admin).await;
    let erased = t
        .get(
            &format!("/v1/admin/events?type=user_erased&userId={}", z.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(erased.body["items"].as_array().unwrap().len(), 1);
    // Her media went with her (an admin, who sees everything, finds nothing).
    let r = t.get(&format!("/v1/media/{photo}"), &admin.access).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

/// An admin deletes an account at once; it is audited, and the account is gone.
#[tokio::test]
async fn an_admin_deletes_an_account_at_once() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.email_account("gone@example.com", "password-1").await;
    let path = format!(
        "/v1/admin/users/{}?reason=asked+by+email%2C+ticket+42",
        u.user_id
    );
    let r = t.call(Method::DELETE, &path, Some(&u.access), None).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = t
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(t.get("/v1/me/profile", &u.access).await.status, 401);
    assert!(leftovers(&t, &["gone@example.com"]).await.is_empty());
    let audit = t.get("/v1/admin/audit", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.delete") && actions.contains(&"user.erase"),
        "{actions:?}"
    );
    let r = t
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(r.status, 404, "already erased");
    // Nobody reaches an erased account: no message, no gift, no call lands in it.
    let other = t.user().await;
    let r = t
        .post(
            &format!("/v1/chats/{}/messages", u.user_id),
            Some(&other.access),
            json!({"clientMessageId": "m-1", "text": "hello?"}),
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = t
        .post(
            "/v1/calls",
            Some(&other.access),
            json!({"calleeId": u.user_id}),
        )
        .await;
    assert_eq!(r.code(), "unavailable", "never online again: {:?}", r.body);
}

/// Erasure rewrites only the person's own fields: someone whose device id and name read like
/// the log's own words ("wallet", "userId", "gift") leaves every other event as it was, every
/// event still decodes, and the ledger still verifies.
#[tokio::test]
async fn erasing_someone_named_like_a_field_leaves_everyone_elses_events_alone() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let r = t.sign_in_device("wallet", "wallet-secret-0123456789").await;
    let odd = tokens(&r.body);
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&odd.access),
            Some(json!({"displayName": "userId", "bio": "gift"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let other = t.user().await;
    for who in [&odd, &other] {
        crate::coins::credit(&t, &admin, &who.user_id, 100, "wallet").await;
    }
    let before = t.get("/v1/me/balance/transactions", &other.access).await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let store = t.app().ctx.store.clone();
    let log_before = store
        .read(|rtx| duet::core::events::read_after(rtx, 0, 100_000))
        .await
        .unwrap();

    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/admin/users/{}?reason=test", odd.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let log_after = store
        .read(|rtx| duet::core::events::read_after(rtx, 0, 100_000))
        .await
        .unwrap();
    for (a, b) in log_before.iter().zip(&log_after) {
        if !a.is_for(&odd.user_id) && a.subject.as_deref() != Some(odd.user_id.as_str()) {
            assert_eq!(a, b, "an event not about them changed");
        }
    }
    for e in &log_after {
        duet::domains::decode_any(e)
            .unwrap_or_else(|err| panic!("{} no longer decodes: {err}", e.seq));
    }
    assert_eq!(
        t.get("/v1/me/balance/transactions", &other.access)
            .await
            .body,
        before.body
    );
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// A token that outlived its sign-in (refreshed, or taken from a log) cannot change how the
/// account signs in or delete it; a session that continues one (adding an email) is no
/// fresher than the sign-in it continues; and the account's email hears of every change.
#[tokio::test]
async fn changing_how_an_account_signs_in_needs_a_fresh_sign_in_and_is_told() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    let owner = t.email_account("owner@example.com", "password-1").await;
    let r = t
        .post(
            "/v1/me/identities/device",
            Some(&owner.access),
            json!({"deviceId": "phone-1", "deviceSecret": "phone-secret-0123456789"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    until("the owner is told", || async {
        mail.sends()
            .iter()
            .any(|g| {
                g.body["personalizations"][0]["to"][0]["email"] == "owner@example.com"
                    && g.body["content"][0]["value"]
                        .as_str()
                        .is_some_and(|t| t.contains("(device) was added"))
            })
            .then_some(())
    })
    .await;

    t.clock.advance_ms(6 * 60_000);
    let stale = t.refresh(&owner).await;
    let attempts = [
        (
            Method::POST,
            "/v1/me/identities/device".to_owned(),
            Some(json!({"deviceId": "thief-1", "deviceSecret": "thief-secret-0123456789"})),
        ),
        (
            Method::DELETE,
            format!(
                "/v1/me/identities/device/{}",
                identities(&t, &owner).await[1]["id"].as_str().unwrap()
            ),
            None,
        ),
        (Method::DELETE, "/v1/me".to_owned(), None),
    ];
    for (method, path, body) in attempts {
        let r = t.call(method, &path, Some(&stale.access), body).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "reauthentication_required"),
            "{path}: {:?}",
            r.body
        );
    }
    // An anonymous account adding an email continues its device sign-in: the session that
    // answers is as old as that sign-in, so it cannot delete the account either.
    let anon = t.user().await;
    t.clock.advance_ms(4 * 60_000);
    let r = t
        .post(
            "/v1/me/credentials",
            Some(&anon.access),
            json!({"email": "later@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let continued = tokens(&r.body);
    t.clock.advance_ms(2 * 60_000);
    let r = t
        .call(Method::DELETE, "/v1/me", Some(&continued.access), None)
        .await;
    assert_eq!(r.code(), "reauthentication_required");
}

/// Asking for a verification link again answers the same whether or not another account owns
/// the address meanwhile; its owner gets the note that someone tried, never a link.
#[tokio::test]
async fn resending_a_verification_never_tells_whether_the_email_is_taken() {
    let (t, mail) = spawn_with_mail(|_| {}).await;
    t.email_account("taken@example.com", "password-1").await;
    let mut answers = Vec::new();
    for email in ["taken@example.com", "free@example.com"] {
        let who = t.user().await;
        let r = t
            .post(
                "/v1/me/identities/email",
                Some(&who.access),
                json!({"email": email, "password": "password-1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t
            .post("/v1/me/email/verification", Some(&who.access), json!({}))
            .await;
        answers.push((r.status.as_u16(), r.body.clone()));
    }
    assert_eq!(answers[0], (202, Value::Null));
    assert_eq!(answers[0], answers[1]);
    let to_owner: Vec<String> = until("two notes to the owner", || async {
        let notes: Vec<String> = mail
            .sends()
            .iter()
            .filter(|g| g.body["personalizations"][0]["to"][0]["email"] == "taken@example.com")
            .map(|g| g.body["content"][0]["value"].as_str().unwrap().to_owned())
            .collect();
        (notes.len() == 2).then_some(notes)
    })
    .await;
    assert!(
        to_owner
            .iter()
            .all(|n| n.contains("tried") && !n.contains("token="))
    );
}

/// A number can be tried only so often a day whatever codes it was sent, and numbers outside
/// the served countries are refused before any SMS goes out.
#[tokio::test]
async fn phone_codes_are_tried_a_bounded_number_of_times_a_day_and_only_where_served() {
    let (t, twilio) = phone_app(false, |c| {
        c.auth.phone.code_tries_per_day_max = 3;
        c.auth.phone.allowed_prefixes = vec!["+1".into()];
    })
    .await;
    let phone = "+15550100020";
    start(&t, phone).await;
    let code = sms_code(&twilio, phone);
    for _ in 0..3 {
        assert_eq!(
            verify(&t, phone, &wrong(&code)).await.code(),
            "invalid_code"
        );
        t.clock.advance_ms(60_000);
    }
    t.clock.advance_ms(60_000);
    start(&t, phone).await;
    let fresh = sms_code(&twilio, phone);
    let r = verify(&t, phone, &fresh).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (429, "rate_limited"),
        "{:?}",
        r.body
    );
    t.clock.advance_ms(24 * 3_600_000);
    start(&t, phone).await;
    let r = verify(&t, phone, &sms_code(&twilio, phone)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let sent = twilio.sends().len();
    let r = start(&t, "+447700900999").await;
    assert_eq!(r.code(), "validation_failed");
    assert_eq!(twilio.sends().len(), sent, "no SMS to a country not served");
}
