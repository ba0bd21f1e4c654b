//! Every route declares who may call it; this proves the others are refused, for every route
//! in the served OpenAPI document.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Public,
    Any,
    User,
    Streamer,
    Staff,
    Admin,
}

/// The contract: operation id → who may call it, and a valid body.
fn contract() -> Vec<(&'static str, Who, Value)> {
    let creds = json!({"email": "x@example.com", "password": "password-1"});
    vec![
        (
            "auth_device",
            Who::Public,
            json!({"deviceId": "d", "deviceSecret": "0123456789abcdef", "platform": "web"}),
        ),
        ("auth_register", Who::Public, creds.clone()),
        ("auth_login", Who::Public, creds.clone()),
        ("auth_external", Who::Public, json!({"idToken": "x"})),
        (
            "auth_apple",
            Who::Public,
            json!({"idToken": "x", "nonce": "n"}),
        ),
        ("auth_google", Who::Public, json!({"idToken": "x"})),
        ("auth_facebook", Who::Public, json!({"accessToken": "x"})),
        ("auth_refresh", Who::Public, json!({"refreshToken": "x"})),
        (
            "auth_phone_start",
            Who::Public,
            json!({"phone": "+15550109999"}),
        ),
        (
            "auth_phone_verify",
            Who::Public,
            json!({"phone": "+15550109999", "code": "123456"}),
        ),
        ("auth_email_verify", Who::Public, json!({"token": "x"})),
        (
            "auth_password_forgot",
            Who::Public,
            json!({"email": "x@example.com"}),
        ),
        (
            "auth_password_reset",
            Who::Public,
            json!({"token": "x", "password": "password-1"}),
        ),
        ("me_email_resend", Who::Any, Value::Null),
        ("me_identities", Who::Any, Value::Null),
        ("me_identity_link", Who::Any, json!({"idToken": "x"})),
        ("me_identity_unlink", Who::Any, Value::Null),
        ("admin_user_identities", Who::Admin, Value::Null),
        ("gallery_feed", Who::Any, Value::Null),
        ("admin_gallery_rules", Who::Admin, Value::Null),
        (
            "admin_gallery_rules_put",
            Who::Admin,
            json!({"items": [{"viewer": "user", "shows": "streamer", "sort": "online_longest", "busy": "show"}]}),
        ),
        ("admin_user_get", Who::Admin, Value::Null),
        ("media_upload", Who::Any, json!({"$raw": "image/png"})),
        ("media_list", Who::Any, Value::Null),
        ("media_get", Who::Any, Value::Null),
        ("media_url", Who::Any, Value::Null),
        ("media_delete", Who::Any, Value::Null),
        ("moderation_queue", Who::Staff, Value::Null),
        ("moderation_approve", Who::Staff, json!({})),
        ("moderation_reject", Who::Staff, json!({"reason": "r"})),
        ("admin_cohorts_list", Who::Admin, Value::Null),
        (
            "admin_cohorts_create",
            Who::Admin,
            json!({"name": "VIP", "tag": "vip", "kind": "hand"}),
        ),
        (
            "admin_cohorts_preview",
            Who::Admin,
            json!({"rule": {"role": "user"}}),
        ),
        ("admin_cohorts_get", Who::Admin, Value::Null),
        (
            "admin_cohorts_update",
            Who::Admin,
            json!({"name": "VIP", "tag": "vip", "kind": "hand"}),
        ),
        ("admin_cohorts_delete", Who::Admin, Value::Null),
        ("admin_cohorts_members", Who::Admin, Value::Null),
        (
            "admin_cohorts_members_add",
            Who::Admin,
            json!({"userIds": ["u-1"]}),
        ),
        ("admin_cohorts_members_remove", Who::Admin, Value::Null),
        (
            "admin_cohorts_broadcast",
            Who::Admin,
            json!({"title": "Hi", "body": "Hello"}),
        ),
        ("me_delete", Who::Any, Value::Null),
        ("me_export", Who::Any, Value::Null),
        ("admin_user_delete", Who::Admin, Value::Null),
        ("admin_user_export", Who::Admin, Value::Null),
        ("auth_logout", Who::Any, Value::Null),
        ("me_link_credentials", Who::Any, creds),
        ("me_sessions", Who::Any, Value::Null),
        ("me_revoke_session", Who::Any, Value::Null),
        ("me_revoke_other_sessions", Who::Any, Value::Null),
        (
            "me_put_device",
            Who::Any,
            json!({"platform": "ios", "provider": "fcm", "token": "t"}),
        ),
        ("me_delete_device", Who::Any, Value::Null),
        ("me_devices", Who::Any, Value::Null),
        ("me_profile_get", Who::Any, Value::Null),
        ("me_profile_patch", Who::Any, json!({})),
        ("profile_get", Who::Any, Value::Null),
        ("settings_get", Who::Any, Value::Null),
        ("admin_settings_get", Who::Admin, Value::Null),
        (
            "admin_settings_min_version",
            Who::Admin,
            json!({"version": "1.0.0"}),
        ),
        (
            "admin_settings_flag_put",
            Who::Admin,
            json!({"platforms": {}}),
        ),
        ("admin_settings_flag_delete", Who::Admin, Value::Null),
        ("admin_events", Who::Admin, Value::Null),
        ("admin_user_role", Who::Admin, json!({"role": "user"})),
        ("admin_user_ban", Who::Admin, json!({"reason": "r"})),
        ("admin_user_unban", Who::Admin, Value::Null),
        ("admin_audit", Who::Admin, Value::Null),
        ("me_balance", Who::Any, Value::Null),
        ("me_balance_transactions", Who::Any, Value::Null),
        ("me_earnings", Who::Streamer, Value::Null),
        ("me_earnings_transactions", Who::Streamer, Value::Null),
        ("admin_balances", Who::Staff, Value::Null),
        (
            "admin_balance_adjust",
            Who::Admin,
            json!({"amount": 10, "reason": "r"}),
        ),
        ("admin_account_transactions", Who::Admin, Value::Null),
        ("gifts_list", Who::Any, Value::Null),
        (
            "gifts_send",
            Who::Any,
            json!({"giftId": "g", "toUserId": "u"}),
        ),
        ("admin_gifts_list", Who::Admin, Value::Null),
        (
            "admin_gifts_create",
            Who::Admin,
            json!({"name": "Rose", "price": 10, "streamerSharePercent": 50, "platforms": []}),
        ),
        (
            "admin_gifts_update",
            Who::Admin,
            json!({"name": "Rose", "price": 10, "streamerSharePercent": 50, "platforms": []}),
        ),
        ("admin_gifts_delete", Who::Admin, Value::Null),
        ("me_payouts_request", Who::Streamer, json!({"amount": 1000})),
        ("me_payouts", Who::Streamer, Value::Null),
        ("admin_payouts", Who::Admin, Value::Null),
        ("admin_payout_approve", Who::Admin, Value::Null),
        ("admin_payout_reject", Who::Admin, json!({"reason": "r"})),
        ("admin_payout_paid", Who::Admin, Value::Null),
        (
            "report_create",
            Who::Any,
            json!({"targetKind": "profile", "targetId": "u", "reason": "spam"}),
        ),
        ("admin_reports", Who::Staff, Value::Null),
        (
            "admin_service_credential_create",
            Who::Admin,
            json!({"name": "pipeline"}),
        ),
        ("admin_service_credentials", Who::Admin, Value::Null),
        ("admin_service_credential_revoke", Who::Admin, Value::Null),
        // Authenticated by a service credential, not a person's token (tests/api/ml.rs).
        ("classifier_queue", Who::Public, Value::Null),
        ("classifier_score", Who::Public, json!({"score": 0.5})),
        ("me_reports", Who::Any, Value::Null),
        ("streamer_days", Who::Streamer, Value::Null),
        ("streamer_rules", Who::Any, Value::Null),
        (
            "streamer_rules_accept",
            Who::Streamer,
            json!({"version": 1}),
        ),
        ("admin_streamer_rules", Who::Admin, json!({"text": "rules"})),
        ("admin_agency_report", Who::Admin, Value::Null),
        ("agency_report", Who::Any, Value::Null),
        ("admin_tables", Who::Admin, Value::Null),
        ("admin_table_rows", Who::Admin, Value::Null),
        ("admin_user_search", Who::Admin, Value::Null),
        (
            "admin_agency_create",
            Who::Admin,
            json!({"name": "a", "commissionPercent": 10}),
        ),
        ("admin_agencies", Who::Admin, Value::Null),
        ("admin_agency", Who::Admin, Value::Null),
        (
            "admin_agency_update",
            Who::Admin,
            json!({"name": "a", "commissionPercent": 10}),
        ),
        ("admin_agency_assign", Who::Admin, Value::Null),
        ("admin_agency_unassign", Who::Admin, Value::Null),
        ("agency_mine", Who::Any, Value::Null),
        ("agency_payouts_request", Who::Any, json!({"amount": 1000})),
        ("agency_payouts", Who::Any, Value::Null),
        (
            "me_kyc_submit",
            Who::Streamer,
            json!({"idFront": "a", "idBack": "b", "selfie": "c"}),
        ),
        ("me_kyc", Who::Streamer, Value::Null),
        ("admin_kyc_cases", Who::Staff, Value::Null),
        ("admin_kyc_case", Who::Staff, Value::Null),
        ("admin_kyc_verify", Who::Staff, json!({})),
        ("admin_kyc_reject", Who::Staff, json!({"reason": "r"})),
        ("admin_report", Who::Staff, Value::Null),
        (
            "admin_report_resolve",
            Who::Staff,
            json!({"action": "dismiss"}),
        ),
        ("products_list", Who::Any, Value::Null),
        ("admin_products_list", Who::Admin, Value::Null),
        (
            "admin_products_create",
            Who::Admin,
            json!({"name": "p", "storeProductIds": {}, "coins": 1, "priceMinor": 1, "currency": "USD"}),
        ),
        (
            "admin_products_update",
            Who::Admin,
            json!({"name": "p", "storeProductIds": {}, "coins": 1, "priceMinor": 1, "currency": "USD"}),
        ),
        ("admin_products_delete", Who::Admin, Value::Null),
        (
            "payments_intent_create",
            Who::Any,
            json!({"productId": "p", "platform": "ios"}),
        ),
        ("payments_intent_get", Who::Any, Value::Null),
        (
            "payments_apple",
            Who::Any,
            json!({"intentId": "i", "signedTransaction": "x"}),
        ),
        (
            "payments_google",
            Who::Any,
            json!({"intentId": "i", "productId": "p", "purchaseToken": "t"}),
        ),
        // Authenticated by the store's signature, not a Duet token.
        ("webhooks_apple", Who::Public, json!({"signedPayload": "x"})),
        (
            "webhooks_google",
            Who::Public,
            json!({"message": {"data": "", "messageId": "m"}}),
        ),
        ("tariffs_preview", Who::Any, Value::Null),
        ("admin_tariffs_list", Who::Admin, Value::Null),
        (
            "admin_tariffs_create",
            Who::Admin,
            json!({"name": "t", "kind": "direct", "callerRole": "user", "calleeRole": "streamer", "payer": "caller", "scope": {"type": "default"}, "payerSchedule": {"checkpoints": []}, "earnerSchedule": {"checkpoints": []}}),
        ),
        (
            "admin_tariffs_update",
            Who::Admin,
            json!({"name": "t", "kind": "direct", "callerRole": "user", "calleeRole": "streamer", "payer": "caller", "scope": {"type": "default"}, "payerSchedule": {"checkpoints": []}, "earnerSchedule": {"checkpoints": []}}),
        ),
        ("admin_tariffs_version", Who::Admin, Value::Null),
        ("calls_start", Who::Any, json!({"calleeId": "u"})),
        ("calls_accept", Who::Any, Value::Null),
        ("calls_decline", Who::Any, Value::Null),
        ("calls_hangup", Who::Any, Value::Null),
        ("calls_joined", Who::Any, Value::Null),
        ("calls_get", Who::Any, Value::Null),
        ("me_calls", Who::Any, Value::Null),
        ("calls_media", Who::Any, Value::Null),
        (
            "calls_provider_failure",
            Who::Any,
            json!({"provider": "agora"}),
        ),
        ("admin_video_providers", Who::Admin, Value::Null),
        (
            "admin_video_provider_switch",
            Who::Admin,
            json!({"enabled": true}),
        ),
        ("roulette_join", Who::User, json!({})),
        ("roulette_leave", Who::User, Value::Null),
        ("roulette_next", Who::User, Value::Null),
        (
            "roulette_availability",
            Who::Streamer,
            json!({"available": true}),
        ),
        (
            "clips_add",
            Who::Streamer,
            json!({"mediaId": "01900000-0000-7000-8000-000000000001", "durationSeconds": 5}),
        ),
        (
            "admin_clip_moderate",
            Who::Staff,
            json!({"state": "approved"}),
        ),
        ("roulette_clip", Who::User, Value::Null),
        (
            "blocks_create",
            Who::Any,
            json!({"userId": "u-1", "reason": "spam"}),
        ),
        ("blocks_delete", Who::Any, Value::Null),
        ("blocks_list", Who::Any, Value::Null),
        ("admin_penalties_list", Who::Staff, Value::Null),
        ("admin_moderation_cases", Who::Staff, Value::Null),
        (
            "admin_moderation_case_decide",
            Who::Staff,
            json!({"decision": "lift"}),
        ),
        ("chats_list", Who::Any, Value::Null),
        ("chats_messages", Who::Any, Value::Null),
        (
            "chats_send",
            Who::Any,
            json!({"clientMessageId": "c", "text": "hi"}),
        ),
        ("chats_read", Who::Any, json!({"upToSeq": 1})),
        ("chats_delete_message", Who::Any, Value::Null),
        ("favorites_put", Who::Any, Value::Null),
        ("favorites_delete", Who::Any, Value::Null),
        ("favorites_list", Who::Any, Value::Null),
        ("me_followers", Who::Streamer, Value::Null),
        ("me_interactions", Who::Any, Value::Null),
        ("me_notifications", Who::Any, Value::Null),
        ("me_notifications_read", Who::Any, json!({})),
        ("me_notification_preferences_get", Who::Any, Value::Null),
        ("me_notification_preferences_patch", Who::Any, json!({})),
        ("email_unsubscribe", Who::Public, Value::Null),
        ("email_unsubscribe_post", Who::Public, Value::Null),
        (
            "admin_notifications_send",
            Who::Admin,
            json!({"userId": "u-1", "title": "t", "body": "b"}),
        ),
        ("admin_dead_letters", Who::Admin, Value::Null),
        ("admin_dead_letter_retry", Who::Admin, Value::Null),
    ]
}

/// Calls a route with its contract body: JSON, or for `{"$raw": type}` a few bytes declared
/// as that type (uploads take the file as the body).
async fn send(
    t: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let Some(raw) = body.as_ref().and_then(|b| b["$raw"].as_str()) else {
        return t.call(method, path, token, body).await;
    };
    let mut req = t
        .http
        .request(method, format!("{}{path}", t.base))
        .header("content-type", raw)
        .body(b"\x89PNG\r\n\x1a\n".to_vec());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    Reply::from(req.send().await.unwrap()).await
}

struct Route {
    method: Method,
    path: String,
    op: String,
}

async fn routes(t: &TestApp, user_id: &str) -> Vec<Route> {
    let spec: Value = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let path = path
                .replace("{user_id}", user_id)
                .replace("{session_id}", "s-1")
                .replace("{device_id}", "d-1")
                .replace("{platform}", "ios")
                .replace("{key}", "some_flag")
                .replace("{gift_id}", "g-1")
                .replace("{cohort_id}", "c-1")
                .replace("{payout_id}", "p-1")
                .replace("{account}", "system:payouts")
                .replace("{product_id}", "p-1")
                .replace("{intent_id}", "i-1")
                .replace("{tariff_id}", "t-1")
                .replace("{version}", "1")
                .replace("{call_id}", "c-1")
                .replace("{name}", "agora")
                .replace("{clip_id}", "clip-1")
                .replace("{chat_id}", "chat-1")
                .replace("{seq}", "1")
                .replace("{send_id}", "s-1")
                .replace("{provider}", "google")
                .replace("{identity_id}", "i-1")
                .replace("{media_id}", "m-1")
                .replace("{report_id}", "r-1")
                .replace("{case_id}", "k-1")
                .replace("{agency_id}", "a-1")
                .replace("{credential_id}", "sc-1");
            let query = match op["operationId"].as_str() {
                Some("settings_get") => "?platform=ios&appVersion=1.0.0",
                Some("products_list") => "?platform=ios",
                Some("admin_user_delete") => "?reason=r",
                Some("tariffs_preview") => "?kind=direct&calleeId=u&seconds=1",
                Some("media_upload") | Some("moderation_queue") | Some("classifier_queue") => {
                    "?kind=photo"
                }
                Some("admin_user_search") => "?q=someone",
                _ => "",
            };
            out.push(Route {
                method: method.to_uppercase().parse().unwrap(),
                path: format!("{path}{query}"),
                op: op["operationId"].as_str().unwrap().to_owned(),
            });
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_in_the_access_contract() {
    let t = TestApp::spawn().await;
    let ops: Vec<String> = routes(&t, "u").await.into_iter().map(|r| r.op).collect();
    let contract: Vec<&str> = contract().iter().map(|c| c.0).collect();
    for op in &ops {
        assert!(
            contract.contains(&op.as_str()),
            "route {op} has no access declaration in this test"
        );
    }
    for op in &contract {
        assert!(
            ops.iter().any(|o| o == op),
            "declared route {op} is not served"
        );
    }
}

#[tokio::test]
async fn every_protected_route_refuses_missing_bad_and_wrong_role_tokens() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let user = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let moderator = t.with_role(&admin, "moderator").await;
    let contract = contract();
    for route in routes(&t, &user.user_id).await {
        let (_, who, body) = contract.iter().find(|c| c.0 == route.op).unwrap();
        let body = (!body.is_null()).then(|| body.clone());
        if *who == Who::Public {
            continue;
        }
        for token in [
            None,
            Some("not-a-token"),
            Some("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
        ] {
            let r = send(&t, route.method.clone(), &route.path, token, body.clone()).await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (401, "unauthorized"),
                "{} with {token:?}",
                route.op
            );
        }
        let refused: Vec<(&str, &Tokens)> = match who {
            Who::Admin => vec![
                ("user", &user),
                ("streamer", &streamer),
                ("moderator", &moderator),
            ],
            Who::Staff => vec![("user", &user), ("streamer", &streamer)],
            Who::Streamer => vec![
                ("user", &user),
                ("moderator", &moderator),
                ("admin", &admin),
            ],
            Who::User => vec![
                ("streamer", &streamer),
                ("moderator", &moderator),
                ("admin", &admin),
            ],
            Who::Any | Who::Public => vec![],
        };
        for (role, who) in refused {
            let r = send(
                &t,
                route.method.clone(),
                &route.path,
                Some(&who.access),
                body.clone(),
            )
            .await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (403, "forbidden"),
                "{} as {role}",
                route.op
            );
        }
    }
}

#[tokio::test]
async fn a_banned_account_gets_account_banned_on_every_protected_route() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let banned = t.user().await;
    let r = t
        .post(
            &format!("/v1/admin/users/{}/ban", banned.user_id),
            Some(&admin.access),
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let contract = contract();
    for route in routes(&t, &admin.user_id).await {
        let (_, who, body) = contract.iter().find(|c| c.0 == route.op).unwrap();
        if *who == Who::Public {
            continue;
        }
        let body = (!body.is_null()).then(|| body.clone());
        let r = send(
            &t,
            route.method.clone(),
            &route.path,
            Some(&banned.access),
            body,
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "account_banned"),
            "{}",
            route.op
        );
    }
}

/// The WebSocket's topics are in the same contract as the routes: every topic × role is tried,
/// and a topic that serves what a route serves has that route's access (the `admin` topic is
/// the event log: moderators, refused `GET /v1/admin/events`, are refused it too).
#[tokio::test]
async fn every_topic_admits_exactly_the_roles_its_access_allows() {
    use duet::core::auth::{Access, Role};
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let user = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let moderator = t.with_role(&admin, "moderator").await;
    let roles = [
        (Role::User, &user),
        (Role::Streamer, &streamer),
        (Role::Moderator, &moderator),
        (Role::Admin, &admin),
    ];
    let as_access = |w: &Who| match w {
        Who::Admin => Access::Admin,
        Who::Staff => Access::Staff,
        Who::Streamer => Access::Streamer,
        Who::User => Access::User,
        Who::Any | Who::Public => Access::Any,
    };
    let contract = contract();
    let route_access = |op: &str| as_access(&contract.iter().find(|c| c.0 == op).unwrap().1);
    for (topic, access) in duet::api::ws::TOPICS {
        if *topic == "admin" {
            assert_eq!(
                *access,
                route_access("admin_events"),
                "admin topic vs event log"
            );
        }
        for (role, who) in &roles {
            let mut ws = t.ws_ready(&who.access).await;
            ws.send(json!({"type": "subscribe", "topic": topic, "fromSeq": 0}))
                .await;
            let answer = ws.recv().await;
            let expected = if access.allows(*role) {
                "subscribed"
            } else {
                "error"
            };
            assert_eq!(answer["type"], expected, "{topic} as {role:?}: {answer:?}");
            if expected == "error" {
                assert_eq!(answer["code"], "forbidden", "{topic} as {role:?}");
            }
        }
    }
}

/// Security issue, defect 4: writes are limited per caller. Before, one user wrote 4,000
/// profile updates in 5 s.
#[tokio::test]
async fn writes_are_rate_limited_per_user_with_retry_after() {
    let t = TestApp::spawn_with(|c| {
        c.rate_limits.user_writes.max = 20;
        c.rate_limits.user_writes.per_secs = 60;
    })
    .await;
    let u = t.user().await;
    let other = t.user().await;
    async fn patch(t: &TestApp, who: &Tokens, i: usize) -> Reply {
        t.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&who.access),
            Some(json!({"bio": format!("bio {i}")})),
        )
        .await
    }
    let mut codes = Vec::new();
    for i in 0..100 {
        codes.push(patch(&t, &u, i).await.status.as_u16());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 20, "{codes:?}");
    let limited = patch(&t, &u, 100).await;
    assert_eq!(
        (limited.status.as_u16(), limited.code()),
        (429, "rate_limited")
    );
    let wait: i64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&wait), "{wait}");
    // Reads are not counted, and another user is not affected.
    assert_eq!(t.get("/v1/me/profile", &u.access).await.status, 200);
    assert_eq!(patch(&t, &other, 0).await.status, 200);
    t.clock.advance_ms(wait * 1000);
    let u = t.refresh(&u).await;
    assert_eq!(
        patch(&t, &u, 101).await.status,
        200,
        "allowed after Retry-After"
    );
}

/// Every write route of the document counts: with a limit of one write, the second request to
/// any of them is `429`, whatever the route would have answered.
#[tokio::test]
async fn every_write_route_counts_toward_the_callers_limit() {
    let t = TestApp::spawn_with(|c| {
        c.rate_limits.user_writes.max = 1;
        c.rate_limits.address_writes.max = 1_000;
        c.auth.throttle.signups_per_address_max = 1_000;
    })
    .await;
    let spec: Value = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if !matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
                continue;
            }
            let url = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let who = t.user().await;
            let method: Method = method.to_uppercase().parse().unwrap();
            t.call(method.clone(), &url, Some(&who.access), Some(json!({})))
                .await;
            let second = t
                .call(method.clone(), &url, Some(&who.access), Some(json!({})))
                .await;
            assert_eq!(
                (second.status.as_u16(), second.code()),
                (429, "rate_limited"),
                "{method} {path}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} write routes");
}

/// Writes without a (valid) token are limited per client address, and a forged token counts
/// against the address rather than the user it names.
#[tokio::test]
async fn anonymous_writes_are_rate_limited_per_address() {
    let t = TestApp::spawn_with(|c| {
        c.server.client_ip_header = "x-forwarded-for".into();
        c.rate_limits.address_writes.max = 5;
    })
    .await;
    let device = |address: &'static str, i: usize| {
        let (http, base) = (t.http.clone(), t.base.clone());
        async move {
            http.post(format!("{base}/v1/auth/device"))
                .header("x-forwarded-for", address)
                .bearer_auth("not.a.token")
                .json(&json!({"deviceId": format!("d-{address}-{i}"), "deviceSecret": "0123456789abcdef", "platform": "ios"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(device("203.0.113.1", i).await);
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(
        device("203.0.113.2", 0).await,
        200,
        "another address is not affected"
    );
}
