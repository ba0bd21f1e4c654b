//! Direct calls over real HTTP, billed through the real ledger, on the injected clock.

use serde_json::{Value, json};

use crate::coins::credit;
use crate::support::*;

pub struct Pair {
    pub user: Tokens,
    pub streamer: Tokens,
    /// Both stay connected: a participant without a live WebSocket loses the call.
    pub online: Vec<Ws>,
}

pub async fn pair(t: &TestApp, admin: &Tokens, coins: i64) -> Pair {
    let user = t.user().await;
    let streamer = t.with_role(admin, "streamer").await;
    if coins > 0 {
        credit(t, admin, &user.user_id, coins, "wallet").await;
    }
    let online = vec![
        t.ws_ready(&user.access).await,
        t.ws_ready(&streamer.access).await,
    ];
    t.settle().await;
    Pair {
        user,
        streamer,
        online,
    }
}

pub async fn call(t: &TestApp, from: &Tokens, to: &str) -> Reply {
    t.post("/v1/calls", Some(&from.access), json!({"calleeId": to}))
        .await
}

pub async fn act(t: &TestApp, who: &Tokens, id: &str, action: &str) -> Reply {
    t.post(
        &format!("/v1/calls/{id}/{action}"),
        Some(&who.access),
        json!({}),
    )
    .await
}

/// Rings, accepts and connects a call; returns its id.
pub async fn connect(t: &TestApp, p: &Pair) -> String {
    let r = call(t, &p.user, &p.streamer.user_id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "ringing");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        act(t, &p.streamer, &id, "accept").await.body["state"],
        "connecting"
    );
    assert_eq!(
        act(t, &p.user, &id, "joined").await.body["state"],
        "connecting"
    );
    let c = act(t, &p.streamer, &id, "joined").await;
    assert_eq!(c.body["state"], "connected");
    assert_eq!(c.body["charged"], 9, "9 coins on connect");
    id
}

pub async fn run_timers(t: &TestApp) {
    duet::domains::video::tick(&t.app().ctx).await.unwrap();
}

async fn coins(t: &TestApp, who: &Tokens) -> i64 {
    t.get("/v1/me/balance", &who.access).await.body["coins"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_seed_tariff_is_billed_exactly_through_the_ledger() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let mut wallet = 1000;
    let mut earnings = 0;
    for (seconds, cost, earned) in [(59, 69, 30), (60, 129, 60), (125, 189, 90)] {
        let id = connect(&t, &p).await;
        // Walk the clock second by second so every checkpoint is billed by its own timer.
        for _ in 0..seconds {
            t.clock.advance_ms(1000);
            run_timers(&t).await;
        }
        let live = t.get(&format!("/v1/calls/{id}"), &p.user.access).await;
        assert_eq!(
            (live.body["charged"].as_i64(), live.body["earned"].as_i64()),
            (Some(cost), Some(earned)),
            "{seconds} s live"
        );
        let end = act(&t, &p.user, &id, "hangup").await;
        assert_eq!(end.body["state"], "ended");
        assert_eq!(end.body["endReason"], "hangup");
        assert_eq!(end.body["durationSeconds"], seconds);
        assert_eq!(
            (end.body["charged"].as_i64(), end.body["earned"].as_i64()),
            (Some(cost), Some(earned)),
            "{seconds} s"
        );
        wallet -= cost;
        earnings += earned;
        assert_eq!(coins(&t, &p.user).await, wallet);
        assert_eq!(
            t.get("/v1/me/earnings", &p.streamer.access).await.body["coins"],
            earnings
        );
    }
    let history = t.get("/v1/me/calls", &p.user.access).await;
    assert_eq!(history.body["items"].as_array().unwrap().len(), 3);
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_hang_up_bills_what_was_due_even_if_the_engine_lagged() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let id = connect(&t, &p).await;
    t.clock.advance_ms(125_000);
    let end = act(&t, &p.streamer, &id, "hangup").await;
    assert_eq!(
        (end.body["charged"].as_i64(), end.body["earned"].as_i64()),
        (Some(189), Some(90))
    );
}

#[tokio::test]
async fn ringing_ends_in_missed_declined_or_cancelled() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let mut ws = t.ws_ready(&p.streamer.access).await;
    ws.send(json!({"type": "subscribe", "topic": "calls"}))
        .await;
    ws.recv_type("subscribed").await;

    let r = call(&t, &p.user, &p.streamer.user_id).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let incoming = ws.recv_type("event").await;
    assert_eq!(
        (
            incoming["eventType"].as_str(),
            incoming["data"]["callId"].as_str()
        ),
        (Some("incoming_call"), Some(id.as_str()))
    );
    t.clock.advance_ms(29_000);
    run_timers(&t).await;
    assert_eq!(
        t.get(&format!("/v1/calls/{id}"), &p.user.access).await.body["state"],
        "ringing"
    );
    t.clock.advance_ms(1_000);
    run_timers(&t).await;
    assert_eq!(
        t.get(&format!("/v1/calls/{id}"), &p.user.access).await.body["state"],
        "missed"
    );
    let missed = t
        .get(
            &format!(
                "/v1/admin/events?type=call_missed&userId={}",
                p.user.user_id
            ),
            &admin.access,
        )
        .await;
    assert_eq!(missed.body["items"].as_array().unwrap().len(), 1);

    let id = call(&t, &p.user, &p.streamer.user_id).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        act(&t, &p.streamer, &id, "decline").await.body["state"],
        "declined"
    );
    let id = call(&t, &p.user, &p.streamer.user_id).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        act(&t, &p.user, &id, "accept").await.code(),
        "conflict",
        "only the callee answers"
    );
    assert_eq!(
        act(&t, &p.user, &id, "hangup").await.body["state"],
        "cancelled"
    );
    assert_eq!(
        coins(&t, &p.user).await,
        1000,
        "unconnected calls cost nothing"
    );
    let stranger = t.user().await;
    assert_eq!(act(&t, &stranger, &id, "hangup").await.code(), "not_found");
}

#[tokio::test]
async fn calls_are_refused_with_clear_codes() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let broke = t.user().await;
    let offline = t.with_role(&admin, "streamer").await;
    assert_eq!(
        call(&t, &p.user, &offline.user_id).await.code(),
        "unavailable"
    );
    assert_eq!(
        call(&t, &broke, &p.streamer.user_id).await.code(),
        "insufficient_balance"
    );
    let other_user = t.user().await;
    let _online = t.ws_ready(&other_user.access).await;
    t.settle().await;
    assert_eq!(
        call(&t, &p.user, &other_user.user_id).await.code(),
        "forbidden",
        "no tariff between two users"
    );
    assert_eq!(
        call(&t, &p.user, &p.user.user_id).await.code(),
        "validation_failed"
    );
    let _ringing = call(&t, &p.user, &p.streamer.user_id).await;
    let second = pair(&t, &admin, 1000).await;
    assert_eq!(
        call(&t, &second.user, &p.streamer.user_id).await.code(),
        "busy"
    );
}

#[tokio::test]
async fn two_callers_racing_for_one_streamer_one_wins() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let rival = t.user().await;
    credit(&t, &admin, &rival.user_id, 1000, "wallet").await;
    let (a, b) = tokio::join!(
        call(&t, &p.user, &p.streamer.user_id),
        call(&t, &rival, &p.streamer.user_id)
    );
    let mut codes = vec![
        a.body["state"].as_str().unwrap_or(a.code()).to_owned(),
        b.body["state"].as_str().unwrap_or(b.code()).to_owned(),
    ];
    codes.sort();
    assert_eq!(codes, ["busy", "ringing"]);
}

#[tokio::test]
async fn a_payer_who_runs_out_is_warned_then_cut_at_the_checkpoint() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 100).await;
    let mut ws = t.ws_ready(&p.user.access).await;
    ws.send(json!({"type": "subscribe", "topic": "calls"}))
        .await;
    ws.recv_type("subscribed").await;
    let id = connect(&t, &p).await;
    t.clock.advance_ms(20_000);
    run_timers(&t).await;
    // 9 + 60 paid, 31 left: the 60 due at 60 s cannot be paid.
    let mut warned: Option<Value> = None;
    while warned.is_none() {
        let e = ws.recv_type("event").await;
        if e["eventType"] == "balance_low" {
            warned = Some(e);
        }
    }
    assert_eq!(warned.unwrap()["data"]["atSeconds"], 60);
    t.clock.advance_ms(40_000);
    run_timers(&t).await;
    let c = t.get(&format!("/v1/calls/{id}"), &p.user.access).await;
    assert_eq!(
        (c.body["state"].as_str(), c.body["endReason"].as_str()),
        (Some("ended"), Some("insufficient_balance"))
    );
    assert_eq!(c.body["charged"], 69);
    assert_eq!(coins(&t, &p.user).await, 31);
}

#[tokio::test]
async fn a_restart_mid_call_bills_every_due_checkpoint_once() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let id = connect(&t, &p).await;
    t.clock.advance_ms(30_000);
    run_timers(&t).await;
    t.restart().await;
    // The apps reconnect to the new server.
    let _back = (
        t.ws_ready(&p.user.access).await,
        t.ws_ready(&p.streamer.access).await,
    );
    t.settle().await;
    // Down for a while: the checkpoints at 60 s and 120 s fell due meanwhile.
    t.clock.advance_ms(95_000);
    run_timers(&t).await;
    run_timers(&t).await;
    let c = t.get(&format!("/v1/calls/{id}"), &p.user.access).await;
    assert_eq!(
        (
            c.body["state"].as_str(),
            c.body["charged"].as_i64(),
            c.body["earned"].as_i64()
        ),
        (Some("connected"), Some(189), Some(90))
    );
    let end = act(&t, &p.user, &id, "hangup").await;
    assert_eq!(end.body["charged"], 189);
    assert_eq!(coins(&t, &p.user).await, 1000 - 189);
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_lost_connection_or_a_moderator_ends_the_call() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let mut p = pair(&t, &admin, 1000).await;
    let id = connect(&t, &p).await;
    // The user's app loses its connection; the streamer's stays.
    drop(p.online.remove(0));
    tokio::time::timeout(PATIENCE, async {
        while t.app().ctx.hub.connection_count() > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    t.clock.advance_ms(14_000);
    run_timers(&t).await;
    assert_eq!(
        t.get(&format!("/v1/calls/{id}"), &p.streamer.access)
            .await
            .body["state"],
        "connected",
        "within the limit"
    );
    t.clock.advance_ms(1_000);
    run_timers(&t).await;
    let c = t.get(&format!("/v1/calls/{id}"), &p.streamer.access).await;
    assert_eq!(
        (c.body["state"].as_str(), c.body["endReason"].as_str()),
        (Some("ended"), Some("connection_lost"))
    );
    assert_eq!(
        c.body["charged"], 9,
        "billed up to 15 s: the connect charge only"
    );

    p.online.insert(0, t.ws_ready(&p.user.access).await);
    t.settle().await;
    let id = connect(&t, &p).await;
    let ended = duet::domains::video::end_call(
        &t.app().ctx,
        &id,
        duet::domains::video::model::EndReason::Moderation,
    )
    .await
    .unwrap();
    assert_eq!(
        ended.end_reason,
        Some(duet::domains::video::model::EndReason::Moderation)
    );
    assert!(
        call(&t, &p.user, &p.streamer.user_id)
            .await
            .status
            .is_success(),
        "both are free again"
    );
}

async fn media_app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.video.agora.app_id = "970CA35de60c44645bbae8a215061b33".into();
        c.video.agora.app_certificate = "5CFd2fd1755d40ecb72977518be15d3b".into();
        c.video.twilio.account_sid = "ACtest".into();
        c.video.twilio.api_key_sid = "SKtest".into();
        c.video.twilio.api_key_secret = "twilio-secret".into();
    })
    .await
}

async fn media(t: &TestApp, who: &Tokens, id: &str) -> Reply {
    t.get(&format!("/v1/calls/{id}/media"), &who.access).await
}

#[tokio::test]
async fn participants_get_provider_tokens_and_failures_fail_over_to_twilio() {
    let t = media_app().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 5000).await;
    let id = connect(&t, &p).await;
    let m = media(&t, &p.user, &id).await;
    assert_eq!(
        (
            m.body["provider"].as_str(),
            m.body["channel"].as_str(),
            m.body["uid"].as_str()
        ),
        (Some("agora"), Some(id.as_str()), Some("1"))
    );
    assert!(m.body["token"].as_str().unwrap().starts_with("007"));
    assert_eq!(media(&t, &p.streamer, &id).await.body["uid"], "2");
    let stranger = t.user().await;
    assert_eq!(media(&t, &stranger, &id).await.code(), "not_found");

    // The user's client cannot reach Agora: this call moves to Twilio at once.
    let r = t
        .post(
            &format!("/v1/calls/{id}/provider-failure"),
            Some(&p.user.access),
            json!({"provider": "agora"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let m = media(&t, &p.streamer, &id).await;
    assert_eq!(m.body["provider"], "twilio");
    assert_eq!(
        m.body["token"].as_str().unwrap().split('.').count(),
        3,
        "a JWT"
    );
    act(&t, &p.user, &id, "hangup").await;

    // Two more failures within the window: new calls start on Twilio.
    for _ in 0..2 {
        let id = connect(&t, &p).await;
        t.post(
            &format!("/v1/calls/{id}/provider-failure"),
            Some(&p.user.access),
            json!({"provider": "agora"}),
        )
        .await;
        act(&t, &p.user, &id, "hangup").await;
    }
    let id = connect(&t, &p).await;
    assert_eq!(media(&t, &p.user, &id).await.body["provider"], "twilio");
    act(&t, &p.user, &id, "hangup").await;
    let list = t.get("/v1/admin/video/providers", &admin.access).await;
    assert_eq!(
        list.body["items"][0],
        json!({"name": "agora", "enabled": true, "failing": true})
    );

    // After the window Agora is back; an admin can still switch it off.
    t.clock.advance_ms(61_000);
    let r = t
        .call(
            reqwest::Method::PUT,
            "/v1/admin/video/providers/agora",
            Some(&admin.access),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, 204);
    let id = connect(&t, &p).await;
    assert_eq!(media(&t, &p.user, &id).await.body["provider"], "twilio");
    act(&t, &p.user, &id, "hangup").await;
    t.call(
        reqwest::Method::PUT,
        "/v1/admin/video/providers/twilio",
        Some(&admin.access),
        Some(json!({"enabled": false})),
    )
    .await;
    let id = connect(&t, &p).await;
    assert_eq!(
        media(&t, &p.user, &id).await.code(),
        "unavailable",
        "every provider off"
    );
    let unknown = t
        .call(
            reqwest::Method::PUT,
            "/v1/admin/video/providers/zoom",
            Some(&admin.access),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(unknown.code(), "not_found");
}
