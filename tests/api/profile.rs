use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const PRIVATE_KEYS: [&str; 6] = [
    "email",
    "phone",
    "birthDate",
    "kycStatus",
    "payoutDetails",
    "payout",
];

async fn patch(t: &TestApp, who: &Tokens, body: Value) -> Reply {
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&who.access),
        Some(body),
    )
    .await
}

fn assert_public_only(v: &Value, secrets: &[&str]) {
    let text = v.to_string();
    for k in PRIVATE_KEYS {
        assert!(
            !text.contains(&format!("\"{k}\"")),
            "private key {k} leaked: {text}"
        );
    }
    for s in secrets {
        assert!(!text.contains(s), "private value {s} leaked: {text}");
    }
}

#[tokio::test]
async fn profiles_split_private_and_public_and_nothing_private_leaks() {
    let t = TestApp::spawn().await;
    let anna = t.email_account("anna@example.com", "password-1").await;
    let bob = t.user().await;
    let mut ws = t.ws_ready(&anna.access).await;
    ws.send(json!({"type": "subscribe", "topic": "account"}))
        .await;
    ws.recv_type("subscribed").await;

    let r = patch(
        &t,
        &anna,
        json!({
            "displayName": "  Anna  ",
            "birthDate": "1996-03-02",
            "gender": "female",
            "country": "de",
            "languages": ["en", "de-DE", "en"],
            "bio": "Hi!",
            "phone": "+49 151 1234 5678",
            "payoutDetails": {"method": "bank_transfer", "account": "DE89370400440532013000", "holderName": "Anna A"}
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["public"]["displayName"], "Anna");
    assert_eq!(
        r.body["public"]["age"], 29,
        "born 1996-03-02, and today is 2026-03-01"
    );
    assert_eq!(r.body["public"]["country"], "DE");
    assert_eq!(r.body["public"]["languages"], json!(["en", "de-DE"]));
    assert_eq!(r.body["private"]["phone"], "+4915112345678");
    assert_eq!(r.body["private"]["email"], "anna@example.com");
    assert_eq!(r.body["private"]["kycStatus"], "none");

    let public = t
        .get(&format!("/v1/profiles/{}", anna.user_id), &bob.access)
        .await;
    assert_eq!(public.status, 200);
    assert_eq!(public.body["displayName"], "Anna");
    let secrets = [
        "+4915112345678",
        "DE89370400440532013000",
        "anna@example.com",
        "1996-03-02",
    ];
    assert_public_only(&public.body, &secrets);

    let event = ws.recv_type("event").await;
    assert_eq!(event["eventType"], "profile_updated");
    assert_eq!(event["topic"], "account");
    assert_public_only(&event["data"], &secrets);
    // And in the log itself, where consumers and admins read it.
    let admin = t.admin().await;
    let log = t
        .get(
            &format!(
                "/v1/admin/events?type=profile_updated&userId={}",
                anna.user_id
            ),
            &admin.access,
        )
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);
    assert_public_only(&log.body["items"], &secrets);

    // null clears, absent keeps.
    let r = patch(&t, &anna, json!({"bio": null, "phone": null})).await;
    assert_eq!(r.body["public"]["bio"], Value::Null);
    assert_eq!(r.body["private"]["phone"], Value::Null);
    assert_eq!(r.body["public"]["displayName"], "Anna");
    let missing = t
        .get(
            "/v1/profiles/01000000-0000-7000-8000-000000000000",
            &bob.access,
        )
        .await;
    assert_eq!(missing.code(), "not_found");
}

#[tokio::test]
async fn profile_fields_are_validated_with_clear_codes_and_nothing_changes() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    patch(&t, &u, json!({"displayName": "Kept"})).await;
    let bad = [
        json!({"displayName": ""}),
        json!({"displayName": "x".repeat(41)}),
        json!({"displayName": "a\u{0007}b"}),
        json!({"bio": "b".repeat(501)}),
        json!({"birthDate": "2010-01-01"}),
        json!({"birthDate": "2008-03-02"}),
        json!({"birthDate": "1990-02-30"}),
        json!({"birthDate": "01/02/1990"}),
        json!({"birthDate": "1890-01-01"}),
        json!({"country": "XX"}),
        json!({"country": "DEU"}),
        json!({"languages": ["not a tag"]}),
        json!({"languages": ["en", "de", "fr", "it", "es", "pt", "nl", "pl", "ru", "uk", "tr"]}),
        json!({"phone": "12345"}),
        json!({"avatarMediaId": "../etc/passwd"}),
        json!({"payoutDetails": {"method": "bank_transfer", "account": "", "holderName": "A"}}),
    ];
    for body in bad {
        let r = patch(&t, &u, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{body}"
        );
    }
    // A wrong type is invalid input, not broken JSON.
    let wrong_type = patch(&t, &u, json!({"displayName": {"first": "A"}})).await;
    assert_eq!(
        (wrong_type.status.as_u16(), wrong_type.code()),
        (400, "validation_failed")
    );
    let me = t.get("/v1/me/profile", &u.access).await;
    assert_eq!(me.body["public"]["displayName"], "Kept");
    // Exactly 18 today is allowed; 40 characters is allowed.
    let ok = patch(
        &t,
        &u,
        json!({"birthDate": "2008-03-01", "displayName": "n".repeat(40)}),
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["public"]["age"], 18);
}

/// Names that pass for someone else or for nothing are refused, and messages of invisible
/// characters only; names are stored in NFC.
#[tokio::test]
async fn invisible_and_direction_changing_text_is_refused() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let other = t.user().await;
    let patch = |name: &str| {
        t.call(
            reqwest::Method::PATCH,
            "/v1/me/profile",
            Some(&u.access),
            Some(serde_json::json!({"displayName": name})),
        )
    };
    for bad in [
        "ad\u{202E}nimda",
        "\u{200B}\u{200B}",
        "\u{FEFF}Anna",
        "Ann\u{E0041}a",
        "x\u{2066}y",
        // Unassigned, and private use.
        "Anna\u{0378}",
        "\u{E000}Anna",
    ] {
        let r = patch(bad).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{bad:?}"
        );
    }
    let r = patch("Jose\u{301}").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["public"]["displayName"], "Jos\u{e9}",
        "stored in NFC"
    );
    let r = t
        .post(
            &format!("/v1/chats/{}/messages", other.user_id),
            Some(&u.access),
            serde_json::json!({"clientMessageId": "z", "text": "\u{200B}\u{200C}\u{2060}"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
}

/// Security issue, defect 10: a wrong JSON type where a string is declared is refused with
/// `validation_failed`, never stored as its text.
#[tokio::test]
async fn wrong_json_types_for_strings_are_refused() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    for bad in [
        json!(123),
        json!(true),
        json!(1.5),
        json!(["a"]),
        json!({"a": 1}),
    ] {
        let r = t
            .call(
                reqwest::Method::PATCH,
                "/v1/me/profile",
                Some(&u.access),
                Some(json!({"displayName": bad})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "displayName {bad}: {:?}",
            r.body
        );
    }
    let profile = t.get("/v1/me/profile", &u.access).await;
    assert!(
        profile.body["public"]["displayName"].is_null(),
        "nothing was stored: {:?}",
        profile.body
    );
    // Bytes that are not JSON at all are still `malformed_json`.
    let r = t
        .http
        .patch(format!("{}/v1/me/profile", t.base))
        .bearer_auth(&u.access)
        .header("content-type", "application/json")
        .body("{\"displayName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::from(r).await.code(), "malformed_json");
}

/// The same for every route with a JSON body: each property the document declares as a string,
/// sent as a number, is `400 validation_failed`.
#[tokio::test]
async fn every_declared_string_refuses_a_number_on_every_route() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let spec: Value = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => spec["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => s.clone(),
        }
    };
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(schema) = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.iter().find(|(k, _)| k.starts_with("application/json")))
                .map(|(_, v)| resolve(&v["schema"]))
            else {
                continue;
            };
            let Some(props) = schema["properties"].as_object() else {
                continue;
            };
            for (name, prop) in props {
                let prop = match prop["allOf"].as_array() {
                    Some(all) if all.len() == 1 => resolve(&all[0]),
                    _ => resolve(prop),
                };
                if prop["type"] != "string" {
                    continue;
                }
                let url = path
                    .split('/')
                    .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                    .collect::<Vec<_>>()
                    .join("/");
                let r = t
                    .call(
                        method.to_uppercase().parse().unwrap(),
                        &url,
                        Some(&admin.access),
                        Some(json!({ name.as_str(): 8 })),
                    )
                    .await;
                assert_eq!(
                    (r.status.as_u16(), r.code()),
                    (400, "validation_failed"),
                    "{method} {path} with {name}: 8 -> {:?}",
                    r.body
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} string properties were found");
}
