use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

async fn rename(t: &TestApp, who: &Tokens, name: &str) {
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&who.access),
            Some(json!({"displayName": name})),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn auth_by_header_or_first_frame_and_nothing_before_it() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let mut by_header = t.ws(Some(&u.access)).await;
    assert_eq!(by_header.recv().await["userId"], u.user_id.as_str());

    let mut by_frame = t.ws(None).await;
    by_frame
        .send(json!({"type": "subscribe", "topic": "account"}))
        .await;
    assert_eq!(by_frame.recv().await["code"], "unauthorized");
    by_frame
        .send(json!({"type": "auth", "token": u.access}))
        .await;
    let ready = by_frame.recv_type("ready").await;
    assert_eq!(ready["userId"], u.user_id.as_str());
    by_frame.send(json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(by_frame.recv_type("pong").await["nonce"], 7);

    let mut bad = t.ws(None).await;
    bad.send(json!({"type": "auth", "token": "nope"})).await;
    assert_eq!(bad.recv().await["code"], "unauthorized");
    assert_eq!(bad.closed().await, "unauthorized");
}

#[tokio::test]
async fn a_connection_that_never_authenticates_is_closed_at_the_deadline() {
    let t = TestApp::spawn_with(|c| c.ws.auth_deadline_secs = 1).await;
    let mut ws = t.ws(None).await;
    assert_eq!(ws.closed().await, "auth_timeout");
}

#[tokio::test]
async fn topics_are_checked_for_existence_and_role() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "nope"})).await;
    assert_eq!(ws.recv().await["code"], "validation_failed");
    ws.send(json!({"type": "subscribe", "topic": "admin"}))
        .await;
    assert_eq!(ws.recv().await["code"], "forbidden");

    let mut staff = t.ws_ready(&admin.access).await;
    staff
        .send(json!({"type": "subscribe", "topic": "admin"}))
        .await;
    staff.recv_type("subscribed").await;
    rename(&t, &u, "Seen by staff").await;
    // Staff see every event (presence changes included), in order; the rename is among them.
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"profile_updated".to_owned()) {
        let e = staff.recv_type("event").await;
        assert_eq!(e["topic"], "admin");
        kinds.push(e["eventType"].as_str().unwrap().to_owned());
        assert!(kinds.len() < 20, "{kinds:?}");
    }
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_continues_live_without_gap_or_duplicate() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let other = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "account"}))
        .await;
    ws.recv_type("subscribed").await;
    rename(&t, &u, "one").await;
    let last_seen = ws.recv_type("event").await["seq"].as_u64().unwrap();
    drop(ws);

    // Missed while away; someone else's events are not ours to see.
    for name in ["two", "three", "four"] {
        rename(&t, &u, name).await;
        rename(&t, &other, name).await;
    }
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "account", "fromSeq": last_seen}))
        .await;
    ws.recv_type("subscribed").await;
    let mut names = Vec::new();
    let mut seqs = vec![last_seen];
    for _ in 0..3 {
        let e = ws.recv_type("event").await;
        names.push(
            e["data"]["profile"]["displayName"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        seqs.push(e["seq"].as_u64().unwrap());
    }
    rename(&t, &u, "five").await;
    let live = ws.recv_type("event").await;
    names.push(
        live["data"]["profile"]["displayName"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    seqs.push(live["seq"].as_u64().unwrap());
    assert_eq!(names, ["two", "three", "four", "five"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    ws.expect_quiet().await;
}

#[tokio::test]
async fn resume_under_concurrent_writes_loses_and_repeats_nothing() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let writer = {
        let (base, token) = (t.base.clone(), u.access.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..60 {
                http.patch(format!("{base}/v1/me/profile"))
                    .bearer_auth(&token)
                    .json(&json!({"displayName": format!("n{i}")}))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    // Subscribe from 0 in the middle of the storm: replay and live must join exactly.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "account", "fromSeq": 0}))
        .await;
    ws.recv_type("subscribed").await;
    writer.await.unwrap();
    let mut names = Vec::new();
    while names.len() < 60 {
        let e = ws.recv_type("event").await;
        names.push(
            e["data"]["profile"]["displayName"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (0..60).map(|i| format!("n{i}")).collect();
    assert_eq!(names, expected);
    ws.expect_quiet().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_too_many_close_the_connection() {
    let t = TestApp::spawn_with(|c| {
        c.ws.bad_frames_max = 3;
        c.ws.frame_bytes_max = 1024;
    })
    .await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send_raw(Message::Binary(vec![0xc1, 0x00].into())).await;
    assert_eq!(ws.recv().await["code"], "malformed_json");
    ws.send_raw(Message::Binary(vec![0x80; 2000].into())).await;
    assert_eq!(ws.recv().await["code"], "payload_too_large");
    ws.send_raw(Message::Text("{\"type\":\"ping\"}".into()))
        .await;
    assert_eq!(ws.recv().await["code"], "validation_failed");
    ws.send(json!({"type": "subscribe"})).await;
    assert_eq!(ws.recv().await["code"], "malformed_json");
    assert_eq!(ws.closed().await, "too_many_bad_frames");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_and_does_not_slow_others() {
    let t = TestApp::spawn_with(|c| c.ws.outbound_queue_max = 8).await;
    let slow = t.user().await;
    let fast = t.user().await;
    let mut slow_ws = t.ws_ready(&slow.access).await;
    slow_ws
        .send(json!({"type": "subscribe", "topic": "settings"}))
        .await;
    slow_ws.recv_type("subscribed").await;
    let mut fast_ws = t.ws_ready(&fast.access).await;
    fast_ws
        .send(json!({"type": "subscribe", "topic": "account"}))
        .await;
    fast_ws.recv_type("subscribed").await;

    // A burst of 5,000 broadcast events in one commit: far more than the slow client's queue.
    t.app()
        .ctx
        .store
        .write(|tx| {
            for i in 0..5000 {
                tx.emit(
                    duet::core::events::NewEvent::new(
                        duet::domains::settings::events::SettingsEvent::Changed {
                            what: "flag".into(),
                            key: format!("k{i}"),
                        },
                    )
                    .to(duet::core::events::Audience::Everyone),
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    rename(&t, &fast, "still fast").await;
    let e = fast_ws.recv_type("event").await;
    assert_eq!(e["data"]["profile"]["displayName"], "still fast");
    assert_eq!(slow_ws.closed().await, "slow_consumer");
}

#[tokio::test]
async fn presence_follows_connections_with_a_grace_period() {
    let t = TestApp::spawn().await;
    let u = t.user().await;
    let viewer = t.user().await;
    let path = format!("/v1/profiles/{}", u.user_id);
    let profile = || t.get(&path, &viewer.access);
    assert_eq!(profile().await.body["online"], false);

    let ws1 = t.ws_ready(&u.access).await;
    let ws2 = t.ws_ready(&u.access).await;
    t.settle().await;
    let p = profile().await;
    assert_eq!(p.body["online"], true);
    assert!(p.body["onlineSince"].is_string());

    drop(ws1);
    drop(ws2);
    // Wait until the server noticed both closes.
    tokio::time::timeout(PATIENCE, async {
        while t.app().ctx.hub.connection_count() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    t.clock.advance_ms(19_000);
    t.app().ctx.presence.sweep().await;
    t.settle().await;
    assert_eq!(
        profile().await.body["online"],
        true,
        "still within the 20 s grace"
    );
    t.clock.advance_ms(1_000);
    t.app().ctx.presence.sweep().await;
    t.settle().await;
    let p = profile().await;
    assert_eq!(p.body["online"], false);
    assert!(p.body["lastSeen"].is_string());

    let admin = t.admin().await;
    let log = t
        .get(
            &format!(
                "/v1/admin/events?type=presence_changed&userId={}",
                u.user_id
            ),
            &admin.access,
        )
        .await;
    let states: Vec<bool> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["online"].as_bool().unwrap())
        .collect();
    assert_eq!(states, [true, false], "one transition each way, no flicker");
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_heartbeat_deadline() {
    let t = TestApp::spawn_with(|c| c.ws.heartbeat_timeout_secs = 1).await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    assert_eq!(ws.closed().await, "heartbeat_timeout");
}

#[tokio::test]
async fn a_gap_larger_than_the_replay_limit_gets_a_reset() {
    let t = TestApp::spawn_with(|c| c.ws.replay_events_max = 3).await;
    let u = t.user().await;
    for i in 0..5 {
        rename(&t, &u, &format!("n{i}")).await;
    }
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "account", "fromSeq": 0}))
        .await;
    let subscribed = ws.recv_type("subscribed").await;
    let reset = ws.recv().await;
    assert_eq!(reset["type"], "reset");
    assert_eq!(reset["headSeq"], subscribed["headSeq"]);
    // Live events still flow after the reset.
    rename(&t, &u, "after").await;
    assert_eq!(
        ws.recv_type("event").await["data"]["profile"]["displayName"],
        "after"
    );
}

/// A resume on a topic with nothing for the user looks through a bounded number of their other
/// events and then answers `reset`, instead of reading their whole history for a 20-byte frame;
/// a replay that finds its events within the bound is served whole.
#[tokio::test]
async fn replay_work_is_bounded_by_what_it_returns() {
    let t = TestApp::spawn_with(|c| c.ws.replay_skip_max = 5).await;
    let u = t.user().await;
    for i in 0..12 {
        rename(&t, &u, &format!("name {i}")).await;
    }
    let mut ws = t.ws_ready(&u.access).await;
    // `calls` has nothing for them: twelve profile events and more are in the way.
    ws.send(json!({"type": "subscribe", "topic": "calls", "fromSeq": 0}))
        .await;
    ws.recv_type("subscribed").await;
    let r = ws.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["topic"].as_str()),
        (Some("reset"), Some("calls"))
    );
    // `account` has them all, with only a few other events of theirs between.
    ws.send(json!({"type": "subscribe", "topic": "account", "fromSeq": 0}))
        .await;
    ws.recv_type("subscribed").await;
    for i in 0..12 {
        let e = ws.recv_type("event").await;
        assert_eq!(e["data"]["profile"]["displayName"], format!("name {i}"));
    }
}

/// One connection may not subscribe without end: past `ws.subscribes_max` its subscribes are
/// refused with `rate_limited`, and enough refusals close it.
#[tokio::test]
async fn subscribe_frames_per_connection_are_limited() {
    let t = TestApp::spawn_with(|c| {
        c.ws.subscribes_max = 3;
        c.ws.bad_frames_max = 2;
    })
    .await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    for _ in 0..3 {
        ws.send(json!({"type": "subscribe", "topic": "account"}))
            .await;
        ws.recv_type("subscribed").await;
    }
    for _ in 0..3 {
        ws.send(json!({"type": "subscribe", "topic": "account"}))
            .await;
        let r = ws.recv().await;
        assert_eq!(r["code"], "rate_limited", "{r:?}");
    }
    assert_eq!(ws.closed().await, "too_many_bad_frames");
}

/// Security issue, defect 10: a frame's `type` must be a string — an integer is not taken as
/// the number of a kind — and a frame must be a map; each field must have its type.
#[tokio::test]
async fn frames_with_wrong_types_are_refused() {
    let t = TestApp::spawn_with(|c| c.ws.bad_frames_max = 20).await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    let wrong = [
        // Index 5 is `ping`: answered with `pong` before the fix.
        json!({"type": 5}),
        json!({"type": 5, "nonce": 1}),
        json!({"type": true}),
        json!(["ping"]),
        json!({"type": "subscribe", "topic": 7}),
        json!({"type": "subscribe", "topic": "account", "fromSeq": "3"}),
        json!({"type": "ack", "seq": "1"}),
        json!({"type": "typing", "chatId": 1}),
    ];
    for frame in wrong {
        ws.send(frame.clone()).await;
        let answer = ws.recv().await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("malformed_json")),
            "{frame} -> {answer}"
        );
    }
    ws.send(json!({"type": "ping", "nonce": 9})).await;
    assert_eq!(
        ws.recv_type("pong").await["nonce"],
        9,
        "well-typed frames still work"
    );
}

/// One account cannot hold the server's connections: past `ws.connections_per_user_max`, a new
/// connection closes the user's oldest.
#[tokio::test]
async fn a_user_holds_a_bounded_number_of_connections_the_newest_winning() {
    let t = TestApp::spawn_with(|c| c.ws.connections_per_user_max = 2).await;
    let u = t.user().await;
    let mut first = t.ws_ready(&u.access).await;
    let mut second = t.ws_ready(&u.access).await;
    let mut third = t.ws_ready(&u.access).await;
    assert_eq!(first.closed().await, "too_many_connections");
    for ws in [&mut second, &mut third] {
        ws.send(json!({"type": "ping", "nonce": 1})).await;
        assert_eq!(
            ws.recv_type("pong").await["nonce"],
            1,
            "the newer ones stay"
        );
    }
}
