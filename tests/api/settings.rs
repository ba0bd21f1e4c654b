use reqwest::Method;
use serde_json::json;

use crate::support::*;

async fn put(t: &TestApp, admin: &Tokens, path: &str, body: serde_json::Value) -> Reply {
    t.call(Method::PUT, path, Some(&admin.access), Some(body))
        .await
}

async fn get(t: &TestApp, who: &Tokens, query: &str) -> Reply {
    t.get(&format!("/v1/settings?{query}"), &who.access).await
}

#[tokio::test]
async fn min_version_and_flags_per_platform_with_stable_rollout() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    assert_eq!(
        put(
            &t,
            &admin,
            "/v1/admin/settings/min-version/ios",
            json!({"version": "2.0"})
        )
        .await
        .status,
        204
    );
    let r = put(
        &t,
        &admin,
        "/v1/admin/settings/flags/video_calls",
        json!({"description": "Calls", "platforms": {"ios": {"enabled": true}, "android": {"enabled": false}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    put(
        &t,
        &admin,
        "/v1/admin/settings/flags/new_gallery",
        json!({"platforms": {"ios": {"enabled": true, "rolloutPercent": 50}}}),
    )
    .await;

    let old = get(&t, &u, "platform=ios&appVersion=1.9.9").await;
    assert_eq!(old.body["updateRequired"], true);
    assert_eq!(old.body["minVersion"], "2.0");
    assert_eq!(
        get(&t, &u, "platform=ios&appVersion=2.0.0").await.body["updateRequired"],
        false
    );
    assert_eq!(
        get(&t, &u, "platform=ios&appVersion=10.0%2B77").await.body["updateRequired"],
        false
    );
    let android = get(&t, &u, "platform=android&appVersion=0.1").await;
    assert_eq!(android.body["updateRequired"], false, "{:?}", android.body);
    assert_eq!(android.body["flags"]["video_calls"], false);
    assert_eq!(old.body["flags"]["video_calls"], true);

    // Rollout: stable per user, and close to the percentage over many users.
    let mut on = 0;
    for _ in 0..40 {
        let who = t.user().await;
        let a =
            get(&t, &who, "platform=ios&appVersion=3.0").await.body["flags"]["new_gallery"].clone();
        let b =
            get(&t, &who, "platform=ios&appVersion=3.0").await.body["flags"]["new_gallery"].clone();
        assert_eq!(a, b, "the same user always lands in the same bucket");
        if a == true {
            on += 1;
        }
    }
    assert!((8..=32).contains(&on), "{on}/40 users got a 50% flag");

    let all = t.get("/v1/admin/settings", &admin.access).await;
    assert_eq!(all.body["minVersions"]["ios"], "2.0");
    assert_eq!(all.body["flags"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_settings_input_is_refused_and_changes_reach_connected_clients() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "settings"}))
        .await;
    ws.recv_type("subscribed").await;

    assert_eq!(
        put(
            &t,
            &admin,
            "/v1/admin/settings/min-version/ios",
            json!({"version": "one"})
        )
        .await
        .code(),
        "validation_failed"
    );
    assert_eq!(
        put(
            &t,
            &admin,
            "/v1/admin/settings/min-version/symbian",
            json!({"version": "1.0"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        put(
            &t,
            &admin,
            "/v1/admin/settings/flags/Bad Key",
            json!({"platforms": {}})
        )
        .await
        .code(),
        "validation_failed"
    );
    let over = put(
        &t,
        &admin,
        "/v1/admin/settings/flags/ok",
        json!({"platforms": {"web": {"enabled": true, "rolloutPercent": 101}}}),
    )
    .await;
    assert_eq!(over.code(), "validation_failed");
    let missing = t
        .call(
            Method::DELETE,
            "/v1/admin/settings/flags/none",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(missing.code(), "not_found");
    assert_eq!(
        t.get("/v1/settings?platform=ios&appVersion=x", &u.access)
            .await
            .code(),
        "validation_failed"
    );
    assert_eq!(
        t.get("/v1/settings?platform=ios", &u.access).await.status,
        400
    );

    let r = put(
        &t,
        &admin,
        "/v1/admin/settings/flags/chat_gifts",
        json!({"platforms": {"web": {"enabled": true}}}),
    )
    .await;
    assert_eq!(r.status, 200);
    let e = ws.recv_type("event").await;
    assert_eq!(
        (e["topic"].as_str(), e["eventType"].as_str()),
        (Some("settings"), Some("settings_changed"))
    );
    assert_eq!(e["data"]["key"], "chat_gifts");
    let del = t
        .call(
            Method::DELETE,
            "/v1/admin/settings/flags/chat_gifts",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(ws.recv_type("event").await["data"]["key"], "chat_gifts");
    let audit = t.get("/v1/admin/audit", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["settings.flag_delete", "settings.flag_put"]);
}
