use std::sync::Arc;

use duet::core::error::AppResult;
use duet::core::events::{Consumer, Event};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_admin_queries_the_event_log_by_type_user_and_sequence() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let a = t.user().await;
    let b = t.user().await;
    for name in ["A1", "A2", "A3"] {
        t.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&a.access),
            Some(json!({"displayName": name})),
        )
        .await;
    }
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&b.access),
        Some(json!({"displayName": "B"})),
    )
    .await;

    let all = t.get("/v1/admin/events?limit=500", &admin.access).await;
    let seqs: Vec<u64> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free and increasing"
    );
    assert_eq!(all.body["headSeq"], *seqs.last().unwrap());

    let mine = t
        .get(
            &format!("/v1/admin/events?type=profile_updated&userId={}", a.user_id),
            &admin.access,
        )
        .await;
    let names: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["profile"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A1", "A2", "A3"]);

    let page1 = t
        .get(
            &format!("/v1/admin/events?userId={}&limit=2", a.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(page1.body["items"].as_array().unwrap().len(), 2);
    let after = page1.body["nextAfterSeq"].as_u64().unwrap();
    let page2 = t
        .get(
            &format!(
                "/v1/admin/events?userId={}&limit=2&afterSeq={after}",
                a.user_id
            ),
            &admin.access,
        )
        .await;
    let first = page2.body["items"][0]["seq"].as_u64().unwrap();
    assert!(first > after);
    let types: Vec<&str> = page1.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "user_signed_up");

    assert_eq!(
        t.get("/v1/admin/events?limit=0", &admin.access)
            .await
            .code(),
        "validation_failed"
    );
    assert_eq!(
        t.get("/v1/admin/events?limit=501", &admin.access)
            .await
            .code(),
        "validation_failed"
    );
    assert_eq!(
        t.get("/v1/admin/events?afterSeq=-1", &admin.access)
            .await
            .status,
        400
    );
}

/// A consumer that remembers what it saw.
struct Recorder {
    seen: Mutex<Vec<u64>>,
    notify: tokio::sync::Notify,
}

impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        "test_recorder"
    }
    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        self.seen.lock().extend(events.iter().map(|e| e.seq));
        self.notify.notify_waiters();
        Ok(())
    }
}

async fn wait_until_seen(r: &Recorder, seq: u64) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let n = r.notify.notified();
            if r.seen.lock().iter().any(|s| *s >= seq) {
                return;
            }
            n.await;
        }
    })
    .await
    .expect("the consumer caught up");
}

#[tokio::test]
async fn durable_consumers_get_every_event_at_least_once_across_restarts() {
    let mut t = TestApp::spawn().await;
    let rec = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        notify: Default::default(),
    });
    t.app_mut().spawn_consumer(rec.clone());
    let u = t.user().await;
    for i in 0..5 {
        t.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&u.access),
            Some(json!({"displayName": format!("n{i}")})),
        )
        .await;
    }
    let head = t.app().ctx.store.head_seq();
    wait_until_seen(&rec, head).await;

    t.restart().await;
    // Events written while the consumer is not running.
    let r = t
        .post("/v1/auth/refresh", None, json!({"refreshToken": u.refresh}))
        .await;
    let u2 = tokens(&r.body);
    for i in 0..3 {
        t.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&u2.access),
            Some(json!({"displayName": format!("m{i}")})),
        )
        .await;
    }
    let rec2 = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        notify: Default::default(),
    });
    t.app_mut().spawn_consumer(rec2.clone());
    let head2 = t.app().ctx.store.head_seq();
    wait_until_seen(&rec2, head2).await;

    let mut all: Vec<u64> = rec.seen.lock().clone();
    all.extend(rec2.seen.lock().iter());
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all,
        (1..=head2).collect::<Vec<_>>(),
        "every event, none missing"
    );
    let resumed_from = *rec2.seen.lock().first().unwrap();
    assert!(
        resumed_from > 1,
        "the second run resumed from its cursor, not from the start"
    );
}

#[tokio::test]
async fn a_bounded_scan_still_pages_to_rare_events() {
    let t = TestApp::spawn_with(|c| c.events.query_scan_max = 3).await;
    let admin = t.admin().await;
    let u = t.user().await;
    for i in 0..6 {
        t.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&u.access),
            Some(json!({"displayName": format!("x{i}")})),
        )
        .await;
    }
    let target = t.user().await;
    t.post(
        &format!("/v1/admin/users/{}/ban", target.user_id),
        Some(&admin.access),
        json!({"reason": "r"}),
    )
    .await;
    // Walk the log three rows at a time until the one ban turns up.
    let mut after = 0;
    let mut found = Vec::new();
    for _ in 0..100 {
        let page = t
            .get(
                &format!("/v1/admin/events?type=user_banned&afterSeq={after}"),
                &admin.access,
            )
            .await;
        found.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["userId"].clone()),
        );
        match page.body["nextAfterSeq"].as_u64() {
            Some(n) => {
                assert!(n > after, "paging moves forward");
                after = n;
            }
            None => break,
        }
    }
    assert_eq!(found, vec![json!(target.user_id)]);
}
