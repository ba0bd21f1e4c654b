//! The blocklist: immediate effect on calls and roulette, the moderation rules, validation.

use reqwest::Method;
use serde_json::json;

use crate::calls::{act, call, connect, pair};
use crate::coins::credit;
use crate::roulette::{available, join};
use crate::support::*;

async fn block(t: &TestApp, who: &Tokens, whom: &str, reason: &str) -> Reply {
    t.post(
        "/v1/blocks",
        Some(&who.access),
        json!({"userId": whom, "reason": reason}),
    )
    .await
}

#[tokio::test]
async fn a_block_ends_the_live_call_and_refuses_new_ones_until_lifted() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let id = connect(&t, &p).await;
    t.clock.advance_ms(30_000);

    let b = block(&t, &p.streamer, &p.user.user_id, "harassment").await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.body["userId"], p.user.user_id.as_str());
    assert_eq!(b.body["reason"], "harassment");
    let c = t.get(&format!("/v1/calls/{id}"), &p.user.access).await;
    assert_eq!(
        (c.body["state"].as_str(), c.body["endReason"].as_str()),
        (Some("ended"), Some("blocked"))
    );
    // What fell due before the block was billed: 9 on connect and 60 at 20 s.
    assert_eq!(c.body["charged"], 69);

    // Neither direction can call now.
    let r = call(&t, &p.user, &p.streamer.user_id).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    let r = call(&t, &p.streamer, &p.user.user_id).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));

    let list = t.get("/v1/blocks", &p.streamer.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(
        t.get("/v1/blocks", &p.user.access).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let path = format!("/v1/blocks/{}", p.user.user_id);
    let r = t
        .call(Method::DELETE, &path, Some(&p.streamer.access), None)
        .await;
    assert_eq!(r.status, 204);
    let r = t
        .call(Method::DELETE, &path, Some(&p.streamer.access), None)
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = call(&t, &p.user, &p.streamer.user_id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        act(&t, &p.user, r.body["id"].as_str().unwrap(), "hangup")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn roulette_never_matches_a_blocked_pair() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let blocked = t.with_role(&admin, "streamer").await;
    let other = t.with_role(&admin, "streamer").await;
    available(&t, &blocked).await;
    t.clock.advance_ms(1000);
    available(&t, &other).await;
    let u = t.user().await;
    credit(&t, &admin, &u.user_id, 1000, "wallet").await;
    assert_eq!(block(&t, &u, &blocked.user_id, "spam").await.status, 200);
    let r = join(&t, &u).await;
    assert_eq!(r.body["status"], "matched", "{:?}", r.body);
    assert_eq!(
        r.body["call"]["calleeId"],
        other.user_id.as_str(),
        "the longest-waiting streamer is blocked, so the next one is chosen"
    );
}

#[tokio::test]
async fn nudity_blocks_record_penalties_and_harassment_blocks_ban_past_the_threshold() {
    let t = TestApp::spawn_with(|c| {
        c.blocks.harassment_ban_threshold = 2;
        c.blocks.harassment_window_secs = 600;
    })
    .await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let a = t.user().await;
    let b = t.user().await;
    let c = t.user().await;

    assert_eq!(block(&t, &a, &streamer.user_id, "nudity").await.status, 200);
    let p = t
        .get(
            &format!("/v1/admin/penalties?userId={}", streamer.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let items = p.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["reason"].as_str(), items[0]["byUserId"].as_str()),
        (Some("nudity"), Some(a.user_id.as_str()))
    );
    // A nudity block against a user (not a streamer) is no penalty.
    assert_eq!(block(&t, &streamer, &a.user_id, "nudity").await.status, 200);
    let all = t.get("/v1/admin/penalties", &admin.access).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    let log = t
        .get("/v1/admin/events?type=block_penalty", &admin.access)
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);

    // Harassment: one block outside the window does not count; two inside ban.
    assert_eq!(block(&t, &a, &c.user_id, "harassment").await.status, 200);
    t.clock.advance_ms(601_000);
    assert_eq!(block(&t, &b, &c.user_id, "harassment").await.status, 200);
    assert_eq!(
        t.get("/v1/me/profile", &c.access).await.status,
        200,
        "not banned yet"
    );
    assert_eq!(
        block(&t, &streamer, &c.user_id, "harassment").await.status,
        200
    );
    let r = t.get("/v1/me/profile", &c.access).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "account_banned"));
    let log = t
        .get("/v1/admin/events?type=admin_action", &admin.access)
        .await;
    let auto = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["action"] == "user.auto_ban")
        .expect("the automatic ban is audited");
    assert_eq!(auto["data"]["actor"], "system:blocklist");
    assert_eq!(auto["data"]["target"], c.user_id.as_str());

    // Users cannot read penalties.
    let r = t.get("/v1/admin/penalties", &a.access).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn bad_blocks_are_refused_with_codes() {
    let t = TestApp::spawn().await;
    let a = t.user().await;
    let b = t.user().await;
    let r = block(&t, &a, &a.user_id, "spam").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    let r = block(&t, &a, &b.user_id, "rude").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = block(&t, &a, "no-such-user", "spam").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let r = t
        .post(
            "/v1/blocks",
            Some(&a.access),
            json!({"userId": b.user_id, "reason": "other", "comment": "x".repeat(501)}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    let r = t.get("/v1/blocks?limit=0", &a.access).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
}

#[tokio::test]
async fn a_block_removes_favorites_and_refuses_gifts_and_new_favorites() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let fan = t.user().await;
    credit(&t, &admin, &fan.user_id, 1000, "wallet").await;
    let fav = format!("/v1/favorites/{}", streamer.user_id);
    assert_eq!(
        t.call(Method::PUT, &fav, Some(&fan.access), None)
            .await
            .status,
        204
    );
    assert_eq!(block(&t, &streamer, &fan.user_id, "spam").await.status, 200);
    let p = t
        .get(&format!("/v1/profiles/{}", streamer.user_id), &fan.access)
        .await;
    assert_eq!(
        p.body["followersCount"], 0,
        "the block removed the favorite"
    );
    let r = t.call(Method::PUT, &fav, Some(&fan.access), None).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    let gift = crate::coins::make_gift(&t, &admin, 10, 50).await;
    let r = crate::coins::post_idem(
        &t,
        "/v1/gifts/send",
        &fan.access,
        Some("g"),
        json!({"giftId": gift, "toUserId": streamer.user_id}),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    assert_eq!(
        t.get("/v1/me/balance", &fan.access).await.body["coins"],
        1000,
        "nothing was charged"
    );

    // Blocking again for the same reason records no second penalty.
    for _ in 0..2 {
        assert_eq!(
            block(&t, &fan, &streamer.user_id, "nudity").await.status,
            200
        );
    }
    let p = t
        .get(
            &format!("/v1/admin/penalties?userId={}", streamer.user_id),
            &admin.access,
        )
        .await;
    assert_eq!(p.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn both_clients_see_a_block_end_their_call_and_their_chat_is_closed() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = crate::calls::pair(&t, &admin, 1000).await;
    let mut sockets = Vec::new();
    for who in [&p.user, &p.streamer] {
        let mut ws = t.ws_ready(&who.access).await;
        ws.send(json!({"type": "subscribe", "topic": "calls"}))
            .await;
        ws.recv_type("subscribed").await;
        sockets.push(ws);
    }
    let chat = t
        .post(
            &format!("/v1/chats/{}/messages", p.user.user_id),
            Some(&p.streamer.access),
            json!({"clientMessageId": "hi", "text": "hi!"}),
        )
        .await;
    assert_eq!(chat.status, 200);
    let id = connect(&t, &p).await;
    assert_eq!(
        block(&t, &p.user, &p.streamer.user_id, "harassment")
            .await
            .status,
        200
    );
    for ws in &mut sockets {
        let ended = loop {
            let e = ws.recv_type("event").await;
            if e["eventType"] == "call_state" && e["data"]["state"] == "ended" {
                break e;
            }
        };
        assert_eq!(
            (
                ended["data"]["callId"].as_str(),
                ended["data"]["endReason"].as_str()
            ),
            (Some(id.as_str()), Some("blocked"))
        );
    }
    for (from, to) in [(&p.user, &p.streamer), (&p.streamer, &p.user)] {
        let r = t
            .post(
                &format!("/v1/chats/{}/messages", to.user_id),
                Some(&from.access),
                json!({"clientMessageId": "after", "text": "hello?"}),
            )
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    }
}

/// The server dies right after a block's commit, before anything acted on it (a kill between
/// the block and the end of the call): after the restart the call ends as `blocked` all the
/// same, and the favorites go, because those effects follow the block's event durably.
#[tokio::test]
async fn a_block_ends_the_call_even_when_the_server_dies_right_after_committing_it() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let fav = format!("/v1/favorites/{}", p.streamer.user_id);
    let r = t.call(Method::PUT, &fav, Some(&p.user.access), None).await;
    assert_eq!(r.status, 204);
    let id = connect(&t, &p).await;
    t.clock.advance_ms(30_000);

    // The block commits on the data directory with no server (and so no consumer) running:
    // exactly what a kill leaves behind when it lands between the commit and its effects.
    t.stop_for_offline().await;
    let store = duet::app::open_store(
        &t.config,
        t.clock.clone() as duet::core::clock::SharedClock,
        std::sync::Arc::new(duet::core::metrics::Metrics::new()),
    )
    .unwrap();
    let (user, streamer) = (p.user.user_id.clone(), p.streamer.user_id.clone());
    let rules = t.config.blocks.clone();
    store
        .write(move |tx| {
            duet::domains::blocklist::block_tx(
                tx,
                &rules,
                &user,
                &streamer,
                duet::domains::blocklist::BlockReason::Spam,
                None,
            )
        })
        .await
        .unwrap();
    let closed = store.closed();
    drop(store);
    closed.await;

    t.restart().await;
    t.caught_up().await;
    let c = t.get(&format!("/v1/calls/{id}"), &p.user.access).await;
    assert_eq!(
        (c.body["state"].as_str(), c.body["endReason"].as_str()),
        (Some("ended"), Some("blocked"))
    );
    // What fell due before the block was billed: 9 on connect and 60 at 20 s.
    assert_eq!(c.body["charged"], 69);
    let p2 = t
        .get(
            &format!("/v1/profiles/{}", p.streamer.user_id),
            &p.user.access,
        )
        .await;
    assert_eq!(
        p2.body["followersCount"], 0,
        "the block removed the favorite"
    );
}
