//! Roulette: matching order, recent partners, no double booking, refusals.

use serde_json::json;

use crate::coins::credit;
use crate::support::*;

pub async fn available(t: &TestApp, s: &Tokens) {
    let r = t
        .call(
            reqwest::Method::PUT,
            "/v1/roulette/availability",
            Some(&s.access),
            Some(json!({"available": true})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

pub async fn join(t: &TestApp, u: &Tokens) -> Reply {
    t.post("/v1/roulette/join", Some(&u.access), json!({}))
        .await
}

async fn funded(t: &TestApp, admin: &Tokens) -> Tokens {
    let u = t.user().await;
    credit(t, admin, &u.user_id, 1000, "wallet").await;
    u
}

#[tokio::test]
async fn the_longest_waiting_streamer_is_matched_and_recent_partners_are_skipped() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let first = t.with_role(&admin, "streamer").await;
    let second = t.with_role(&admin, "streamer").await;
    available(&t, &first).await;
    t.clock.advance_ms(1000);
    available(&t, &second).await;
    let u = funded(&t, &admin).await;
    let r = join(&t, &u).await;
    assert_eq!(r.body["status"], "matched", "{:?}", r.body);
    let call = &r.body["call"];
    assert_eq!(
        (call["kind"].as_str(), call["state"].as_str()),
        (Some("roulette"), Some("connecting"))
    );
    assert_eq!(call["calleeId"], first.user_id.as_str(), "waited longest");
    let id = call["id"].as_str().unwrap().to_owned();
    t.post(
        &format!("/v1/calls/{id}/joined"),
        Some(&u.access),
        json!({}),
    )
    .await;
    let c = t
        .post(
            &format!("/v1/calls/{id}/joined"),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (c.body["state"].as_str(), c.body["charged"].as_i64()),
        (Some("connected"), Some(9))
    );
    let log = t
        .get("/v1/admin/events?type=roulette_matched", &admin.access)
        .await;
    assert_eq!(
        log.body["items"][0]["data"]["streamerId"],
        first.user_id.as_str()
    );

    // `next` ends this call; the second streamer (waiting) is the next partner.
    let r = t
        .post("/v1/roulette/next", Some(&u.access), json!({}))
        .await;
    assert_eq!(r.body["status"], "matched", "{:?}", r.body);
    assert_eq!(r.body["call"]["calleeId"], second.user_id.as_str());
    let ended = t.get(&format!("/v1/calls/{id}"), &u.access).await;
    assert_eq!(ended.body["state"], "ended");
    assert_eq!(ended.body["endReason"], "hangup");
}

#[tokio::test]
async fn a_recent_partner_is_not_matched_again() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let first = t.with_role(&admin, "streamer").await;
    let second = t.with_role(&admin, "streamer").await;
    available(&t, &first).await;
    let u = funded(&t, &admin).await;
    let r = join(&t, &u).await;
    assert_eq!(r.body["call"]["calleeId"], first.user_id.as_str());
    // The call ends; the first streamer is free again but was this user's last partner.
    let r = t
        .post("/v1/roulette/next", Some(&u.access), json!({}))
        .await;
    assert_eq!(r.body["status"], "waiting", "{:?}", r.body);
    available(&t, &second).await;
    let calls = t.get("/v1/me/calls?limit=1", &u.access).await;
    assert_eq!(
        calls.body["items"][0]["calleeId"],
        second.user_id.as_str(),
        "matched as soon as another streamer was free"
    );
    // Another user is matched with the first streamer, who is back in the queue.
    let other = funded(&t, &admin).await;
    assert_eq!(
        join(&t, &other).await.body["call"]["calleeId"],
        first.user_id.as_str()
    );
}

#[tokio::test]
async fn concurrent_joins_never_double_book_a_streamer() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s1 = t.with_role(&admin, "streamer").await;
    let s2 = t.with_role(&admin, "streamer").await;
    available(&t, &s1).await;
    available(&t, &s2).await;
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(funded(&t, &admin).await);
    }
    let joins: Vec<_> = users.iter().map(|u| join(&t, u)).collect();
    let results = futures_util::future::join_all(joins).await;
    let matched: Vec<String> = results
        .iter()
        .filter(|r| r.body["status"] == "matched")
        .map(|r| r.body["call"]["calleeId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(matched.len(), 2, "two streamers, two matches");
    assert_ne!(matched[0], matched[1], "never the same streamer twice");
    assert_eq!(
        results
            .iter()
            .filter(|r| r.body["status"] == "waiting")
            .count(),
        3
    );
}

#[tokio::test]
async fn roulette_is_refused_with_clear_codes() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s = t.with_role(&admin, "streamer").await;
    let broke = t.user().await;
    assert_eq!(join(&t, &broke).await.code(), "insufficient_balance");
    assert_eq!(
        join(&t, &s).await.code(),
        "forbidden",
        "streamers do not join the queue"
    );
    let u = funded(&t, &admin).await;
    let r = t
        .call(
            reqwest::Method::PUT,
            "/v1/roulette/availability",
            Some(&u.access),
            Some(json!({"available": true})),
        )
        .await;
    assert_eq!(r.code(), "forbidden");
    assert_eq!(join(&t, &u).await.body["status"], "waiting");
    assert_eq!(
        t.post("/v1/roulette/leave", Some(&u.access), json!({}))
            .await
            .status,
        204
    );
    // Having left, a streamer becoming available matches nobody.
    available(&t, &s).await;
    let c = t.get("/v1/me/calls", &u.access).await;
    assert_eq!(c.body["items"], json!([]));
}

#[tokio::test]
async fn a_user_left_waiting_is_offered_an_approved_clip_of_an_online_streamer() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s = t.with_role(&admin, "streamer").await;
    let media = "01900000-0000-7000-8000-000000000001";
    let bad = t
        .post(
            "/v1/me/clips",
            Some(&s.access),
            json!({"mediaId": media, "durationSeconds": 0}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let bad = t
        .post(
            "/v1/me/clips",
            Some(&s.access),
            json!({"mediaId": "x", "durationSeconds": 30}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let clip = t
        .post(
            "/v1/me/clips",
            Some(&s.access),
            json!({"mediaId": media, "durationSeconds": 30}),
        )
        .await;
    assert_eq!(clip.body["state"], "pending");
    let clip_id = clip.body["id"].as_str().unwrap().to_owned();
    let _online = t.ws_ready(&s.access).await;
    t.settle().await;

    let u = funded(&t, &admin).await;
    assert_eq!(
        join(&t, &u).await.body["status"],
        "waiting",
        "the streamer is online but not in roulette"
    );
    t.clock.advance_ms(10_000);
    assert_eq!(
        t.get("/v1/roulette/clip", &u.access).await.body["clip"],
        serde_json::Value::Null,
        "not approved yet"
    );
    let r = t
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/clips/{clip_id}/moderation"),
            Some(&admin.access),
            Some(json!({"state": "approved"})),
        )
        .await;
    assert_eq!(r.body["state"], "approved");
    let offer = t.get("/v1/roulette/clip", &u.access).await;
    assert_eq!(offer.body["clip"]["streamerId"], s.user_id.as_str());
    assert_eq!(offer.body["clip"]["mediaId"], media);
    // The user calls that streamer directly.
    let call = t
        .post("/v1/calls", Some(&u.access), json!({"calleeId": s.user_id}))
        .await;
    assert_eq!(call.body["state"], "ringing");
    let other = funded(&t, &admin).await;
    assert_eq!(
        t.get("/v1/roulette/clip", &other.access).await.code(),
        "conflict",
        "only for users waiting in roulette"
    );
}

#[tokio::test]
async fn a_streamer_who_speaks_the_users_language_is_preferred() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let english = t.with_role(&admin, "streamer").await;
    let german = t.with_role(&admin, "streamer").await;
    for (s, lang) in [(&english, "en-US"), (&german, "de")] {
        speaks(&t, s, lang).await;
    }
    available(&t, &english).await;
    t.clock.advance_ms(1000);
    available(&t, &german).await;

    let u = funded(&t, &admin).await;
    let r = t
        .post(
            "/v1/roulette/join",
            Some(&u.access),
            json!({"languages": ["de-AT"]}),
        )
        .await;
    assert_eq!(r.body["status"], "matched", "{:?}", r.body);
    assert_eq!(r.body["call"]["calleeId"], german.user_id.as_str());

    // A user who names no language gets the longest-waiting streamer.
    let v = funded(&t, &admin).await;
    let r = join(&t, &v).await;
    assert_eq!(r.body["call"]["calleeId"], english.user_id.as_str());
}

async fn speaks(t: &TestApp, s: &Tokens, lang: &str) {
    let r = t
        .call(
            reqwest::Method::PATCH,
            "/v1/me/profile",
            Some(&s.access),
            Some(json!({"languages": [lang]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn next_keeps_the_languages_asked_for_at_join() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let english = t.with_role(&admin, "streamer").await;
    let german = t.with_role(&admin, "streamer").await;
    let german2 = t.with_role(&admin, "streamer").await;
    for (s, lang) in [(&english, "en"), (&german, "de"), (&german2, "de")] {
        speaks(&t, s, lang).await;
        available(&t, s).await;
        t.clock.advance_ms(1000);
    }
    let u = funded(&t, &admin).await;
    let r = t
        .post(
            "/v1/roulette/join",
            Some(&u.access),
            json!({"languages": ["de"]}),
        )
        .await;
    assert_eq!(r.body["call"]["calleeId"], german.user_id.as_str());
    let r = t
        .post("/v1/roulette/next", Some(&u.access), json!({}))
        .await;
    assert_eq!(r.body["status"], "matched", "{:?}", r.body);
    assert_eq!(
        r.body["call"]["calleeId"],
        german2.user_id.as_str(),
        "the other German speaker, not the longest-waiting English one"
    );
}

#[tokio::test]
async fn a_waiting_user_is_matched_as_soon_as_a_streamer_frees_up() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s = t.with_role(&admin, "streamer").await;
    available(&t, &s).await;
    let first = funded(&t, &admin).await;
    let r = join(&t, &first).await;
    assert_eq!(r.body["status"], "matched");
    let call = r.body["call"]["id"].as_str().unwrap().to_owned();
    let second = funded(&t, &admin).await;
    assert_eq!(join(&t, &second).await.body["status"], "waiting");
    // The first call ends; nobody else joins or switches availability.
    let r = t
        .post(
            &format!("/v1/calls/{call}/hangup"),
            Some(&first.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    duet::domains::video::tick(&t.app().ctx).await.unwrap();
    let log = t
        .get("/v1/admin/events?type=roulette_matched", &admin.access)
        .await;
    let matched: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["userId"].as_str().unwrap())
        .collect();
    assert!(
        matched.contains(&second.user_id.as_str()),
        "the waiting user got the freed streamer: {matched:?}"
    );
}
