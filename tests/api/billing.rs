use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

pub fn schedule(checkpoints: &[(u32, i64)], repeat: Option<(u32, i64)>) -> Value {
    json!({
        "checkpoints": checkpoints.iter().map(|(a, c)| json!({"atSeconds": a, "coins": c})).collect::<Vec<_>>(),
        "repeat": repeat.map(|(e, c)| json!({"everySeconds": e, "coins": c})),
    })
}

#[tokio::test]
async fn the_default_tariffs_bill_the_seed_schedule() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let user = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    for (seconds, cost, earned) in [(59, 69, 30), (60, 129, 60), (125, 189, 90)] {
        let r = t
            .get(
                &format!(
                    "/v1/tariffs/preview?kind=roulette&calleeId={}&seconds={seconds}",
                    streamer.user_id
                ),
                &user.access,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            (r.body["cost"].as_i64(), r.body["earnings"].as_i64()),
            (Some(cost), Some(earned)),
            "{seconds} s"
        );
        assert_eq!(r.body["platform"], cost - earned);
        assert_eq!(r.body["payer"], "caller");
    }
    // A streamer calling a user: the user (the callee) pays.
    let r = t
        .get(
            &format!(
                "/v1/tariffs/preview?kind=direct&calleeId={}&seconds=60",
                user.user_id
            ),
            &streamer.access,
        )
        .await;
    assert_eq!(
        (r.body["payer"].as_str(), r.body["cost"].as_i64()),
        (Some("callee"), Some(129))
    );
    // No tariff between two users: such calls are refused.
    let other = t.user().await;
    let r = t
        .get(
            &format!(
                "/v1/tariffs/preview?kind=direct&calleeId={}&seconds=60",
                other.user_id
            ),
            &user.access,
        )
        .await;
    assert_eq!(r.code(), "forbidden");
    let list = t.get("/v1/admin/tariffs", &admin.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn tariffs_are_versioned_validated_and_overridden_per_streamer() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let user = t.user().await;
    let star = t.with_role(&admin, "streamer").await;
    let plain = t.with_role(&admin, "streamer").await;
    let body = |scope: Value, payer: Value| {
        json!({"name": "Star pricing", "kind": "direct", "callerRole": "user", "calleeRole": "streamer", "payer": "caller",
               "scope": scope, "payerSchedule": payer, "earnerSchedule": schedule(&[(0, 10)], Some((30, 10)))})
    };
    let r = t
        .post(
            "/v1/admin/tariffs",
            Some(&admin.access),
            body(
                json!({"type": "streamer", "value": star.user_id}),
                schedule(&[(0, 20)], Some((30, 20))),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["version"], 1);
    let preview = async |callee: &str| {
        t.get(
            &format!("/v1/tariffs/preview?kind=direct&calleeId={callee}&seconds=65"),
            &user.access,
        )
        .await
    };
    let p = preview(&star.user_id).await;
    assert_eq!(
        (
            p.body["cost"].as_i64(),
            p.body["earnings"].as_i64(),
            p.body["tariffId"].as_str()
        ),
        (Some(60), Some(30), Some(id.as_str()))
    );
    assert_eq!(
        preview(&plain.user_id).await.body["cost"],
        129,
        "other streamers keep the default"
    );

    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/tariffs/{id}"),
            Some(&admin.access),
            Some(body(
                json!({"type": "streamer", "value": star.user_id}),
                schedule(&[(0, 25)], Some((30, 25))),
            )),
        )
        .await;
    assert_eq!(r.body["version"], 2);
    assert_eq!(preview(&star.user_id).await.body["cost"], 75);
    let v1 = t
        .get(&format!("/v1/admin/tariffs/{id}/versions/1"), &admin.access)
        .await;
    assert_eq!(
        v1.body["payerSchedule"]["checkpoints"][0]["coins"], 20,
        "old versions are kept"
    );
    assert_eq!(
        t.get(&format!("/v1/admin/tariffs/{id}/versions/9"), &admin.access)
            .await
            .code(),
        "not_found"
    );

    for bad in [
        body(
            json!({"type": "default"}),
            schedule(&[(20, 5), (10, 5)], None),
        ),
        body(json!({"type": "default"}), schedule(&[(0, -1)], None)),
        body(
            json!({"type": "default"}),
            schedule(&[(0, 1)], Some((0, 5))),
        ),
        body(json!({"type": "streamer"}), schedule(&[(0, 1)], None)),
    ] {
        let r = t
            .post("/v1/admin/tariffs", Some(&admin.access), bad.clone())
            .await;
        assert_eq!(r.code(), "validation_failed", "{bad}");
    }
    let audit = t.get("/v1/admin/audit?limit=2", &admin.access).await;
    assert_eq!(audit.body["items"][0]["action"], "tariff.save");
}
