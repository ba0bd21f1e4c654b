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

/// A new user with coins who calls `streamer` (online on `streamer_ws`), talks, and hangs up:
/// someone who really met them.
async fn caller_who_met(t: &TestApp, admin: &Tokens, streamer: &Tokens) -> Tokens {
    let user = t.user().await;
    credit(t, admin, &user.user_id, 100, "wallet").await;
    let _online = t.ws_ready(&user.access).await;
    t.settle().await;
    let r = call(t, &user, &streamer.user_id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(act(t, streamer, &id, "accept").await.status, 200);
    assert_eq!(act(t, &user, &id, "joined").await.status, 200);
    let c = act(t, streamer, &id, "joined").await;
    assert_eq!(c.body["state"], "connected", "{:?}", c.body);
    t.clock.advance_ms(30_000);
    assert_eq!(act(t, &user, &id, "hangup").await.body["state"], "ended");
    user
}

async fn status_of(t: &TestApp, who: &Tokens) -> (u16, String) {
    let r = t.get("/v1/me/profile", &who.access).await;
    (
        r.status.as_u16(),
        r.body["detail"].as_str().unwrap_or("").to_owned(),
    )
}

async fn open_cases(t: &TestApp, staff: &Tokens) -> Vec<serde_json::Value> {
    let r = t.get("/v1/admin/moderation/cases", &staff.access).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// Security issue, defect 2, the other side: five real callers who were harassed still trigger
/// the rule — as a suspension and a case for moderators, not a ban — and a moderator decides.
#[tokio::test]
async fn harassment_reports_from_real_callers_suspend_and_open_a_case() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let moderator = t.with_role(&admin, "moderator").await;
    let streamer = t.with_role(&admin, "streamer").await;
    let _streamer_online = t.ws_ready(&streamer.access).await;

    let mut callers = Vec::new();
    for _ in 0..5 {
        callers.push(caller_who_met(&t, &admin, &streamer).await);
    }
    // Strangers' reports add nothing, however many.
    for _ in 0..5 {
        let stranger = t.user().await;
        assert_eq!(
            block(&t, &stranger, &streamer.user_id, "harassment")
                .await
                .status,
            200
        );
    }
    for caller in &callers[..4] {
        assert_eq!(
            block(&t, caller, &streamer.user_id, "harassment")
                .await
                .status,
            200
        );
    }
    t.caught_up().await;
    assert_eq!(
        status_of(&t, &streamer).await.0,
        200,
        "four reports of weight 1: not yet"
    );
    assert!(open_cases(&t, &moderator).await.is_empty());

    assert_eq!(
        block(&t, &callers[4], &streamer.user_id, "harassment")
            .await
            .status,
        200
    );
    t.caught_up().await;
    let (status, detail) = status_of(&t, &streamer).await;
    assert_eq!(status, 403);
    assert!(detail.starts_with("account suspended until"), "{detail}");
    let cases = open_cases(&t, &moderator).await;
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    assert_eq!(case["userId"], streamer.user_id.as_str());
    assert_eq!(
        (case["rule"].as_str(), case["state"].as_str()),
        (Some("harassment"), Some("open"))
    );
    assert_eq!(
        (case["action"].as_str(), case["weight"].as_u64()),
        (Some("suspend"), Some(5))
    );
    assert_eq!(
        case["reporters"].as_array().unwrap().len(),
        5,
        "only the callers"
    );
    let audit = t.get("/v1/admin/audit", &admin.access).await;
    let auto = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "user.auto_suspend")
        .expect("the suspension is audited")
        .clone();
    assert_eq!(auto["actor"], "system:moderation");

    // The suspension ends by itself; the case stays for a moderator.
    t.clock
        .advance_ms(t.config.moderation.suspension_secs as i64 * 1000 + 1);
    let streamer = t.refresh(&streamer).await;
    let moderator = t.refresh(&moderator).await;
    let caller = t.refresh(&callers[0]).await;
    assert_eq!(
        status_of(&t, &streamer).await.0,
        200,
        "the suspension is over"
    );
    assert_eq!(open_cases(&t, &moderator).await.len(), 1);

    // A user cannot decide; a moderator upholds it as a ban.
    let path = format!(
        "/v1/admin/moderation/cases/{}/decision",
        case["id"].as_str().unwrap()
    );
    let r = t
        .post(&path, Some(&caller.access), json!({"decision": "uphold"}))
        .await;
    assert_eq!(r.status, 403);
    let r = t
        .post(
            &path,
            Some(&moderator.access),
            json!({"decision": "uphold", "note": "confirmed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "upheld");
    assert_eq!(r.body["decidedBy"], moderator.user_id.as_str());
    let (status, detail) = status_of(&t, &streamer).await;
    assert_eq!(status, 403);
    assert!(detail.starts_with("account banned"), "{detail}");
    let again = t
        .post(&path, Some(&moderator.access), json!({"decision": "lift"}))
        .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "conflict"));
    assert!(open_cases(&t, &moderator).await.is_empty());
}

/// Reports weigh by standing: established accounts weigh 2, so three callers suffice; nudity
/// reports need a connected call and record penalties; a lifted case lets the user back in.
#[tokio::test]
async fn nudity_penalties_need_a_call_and_weigh_by_standing() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let _streamer_online = t.ws_ready(&streamer.access).await;
    let mut callers = Vec::new();
    for _ in 0..3 {
        callers.push(caller_who_met(&t, &admin, &streamer).await);
    }
    // A month later the callers' accounts are established.
    t.clock.advance_ms(31 * 86_400_000);
    let admin = t.refresh(&admin).await;
    let streamer = t.refresh(&streamer).await;
    let callers: Vec<Tokens> = {
        let mut fresh = Vec::new();
        for c in &callers {
            fresh.push(t.refresh(c).await);
        }
        fresh
    };
    // A nudity report against a plain user, or from a stranger, is no penalty.
    let stranger = t.user().await;
    assert_eq!(
        block(&t, &stranger, &streamer.user_id, "nudity")
            .await
            .status,
        200
    );
    assert_eq!(
        block(&t, &streamer, &callers[0].user_id, "nudity")
            .await
            .status,
        200
    );
    assert_eq!(
        block(&t, &callers[0], &streamer.user_id, "nudity")
            .await
            .status,
        200
    );
    t.caught_up().await;
    let p = t
        .get(
            &format!("/v1/admin/penalties?userId={}", streamer.user_id),
            &admin.access,
        )
        .await;
    let items = p.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["byUserId"], callers[0].user_id.as_str());
    assert_eq!(items[0]["weight"], 2, "an established account weighs 2");
    assert_eq!(
        t.get("/v1/admin/penalties", &admin.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(status_of(&t, &streamer).await.0, 200, "weight 2 of 3");
    // Blocking again for the same reason counts once.
    assert_eq!(
        block(&t, &callers[0], &streamer.user_id, "nudity")
            .await
            .status,
        200
    );
    t.caught_up().await;
    assert_eq!(status_of(&t, &streamer).await.0, 200, "still weight 2 of 3");
    assert_eq!(
        block(&t, &callers[1], &streamer.user_id, "nudity")
            .await
            .status,
        200
    );
    t.caught_up().await;
    let p = t.get("/v1/admin/penalties", &admin.access).await;
    assert_eq!(
        p.body["items"].as_array().unwrap().len(),
        2,
        "one penalty per caller"
    );
    assert_eq!(
        status_of(&t, &streamer).await.0,
        200,
        "weight 4 of 3, but only 2 of the 3 reporters a rule needs"
    );
    assert_eq!(
        block(&t, &callers[2], &streamer.user_id, "nudity")
            .await
            .status,
        200
    );
    t.caught_up().await;
    assert_eq!(
        status_of(&t, &streamer).await.0,
        403,
        "weight 6 from 3 reporters: suspended"
    );
    let cases = open_cases(&t, &admin).await;
    assert_eq!(
        (cases.len(), cases[0]["rule"].as_str()),
        (1, Some("nudity"))
    );
    let r = t
        .post(
            &format!(
                "/v1/admin/moderation/cases/{}/decision",
                cases[0]["id"].as_str().unwrap()
            ),
            Some(&admin.access),
            json!({"decision": "lift", "note": "the stream was fine"}),
        )
        .await;
    assert_eq!(r.body["state"], "lifted", "{:?}", r.body);
    assert_eq!(status_of(&t, &streamer).await.0, 200, "lifted at once");
    // The same reports do not suspend again, even unblocked and made anew.
    for caller in &callers {
        let path = format!("/v1/blocks/{}", streamer.user_id);
        let r = t
            .call(Method::DELETE, &path, Some(&caller.access), None)
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        assert_eq!(
            block(&t, caller, &streamer.user_id, "nudity").await.status,
            200
        );
    }
    t.caught_up().await;
    assert_eq!(status_of(&t, &streamer).await.0, 200);
    assert!(open_cases(&t, &admin).await.is_empty());
    // Users cannot read penalties or cases.
    assert_eq!(
        t.get("/v1/admin/penalties", &callers[0].access)
            .await
            .status,
        403
    );
    assert_eq!(
        t.get("/v1/admin/moderation/cases", &callers[0].access)
            .await
            .status,
        403
    );
}

/// `automatic_action = "ban"` bans at once (with a case all the same).
#[tokio::test]
async fn the_automatic_action_can_be_a_ban() {
    let t = TestApp::spawn_with(|c| {
        c.moderation.automatic_action = duet::config::AutomaticAction::Ban;
        c.moderation.harassment_threshold = 2;
        c.moderation.min_reporters = 2;
    })
    .await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let _streamer_online = t.ws_ready(&streamer.access).await;
    for _ in 0..2 {
        let caller = caller_who_met(&t, &admin, &streamer).await;
        assert_eq!(
            block(&t, &caller, &streamer.user_id, "harassment")
                .await
                .status,
            200
        );
    }
    t.caught_up().await;
    let (status, detail) = status_of(&t, &streamer).await;
    assert_eq!(status, 403);
    assert!(detail.starts_with("account banned"), "{detail}");
    let cases = open_cases(&t, &admin).await;
    assert_eq!(cases[0]["action"], "ban");
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
    store
        .write(move |tx| {
            duet::domains::blocklist::block_tx(
                tx,
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

/// Security issue, defect 2: five free anonymous accounts, who never met the target, each
/// block them for harassment. Nobody is banned, suspended or put in the moderators' queue.
#[tokio::test]
async fn five_strangers_blocking_for_harassment_ban_nobody() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let plain = t.user().await;
    for target in [&streamer, &plain] {
        for _ in 0..5 {
            let stranger = t.user().await;
            // Nudity first: blocking again replaces the reason, and harassment is the one
            // that bans.
            assert_eq!(
                block(&t, &stranger, &target.user_id, "nudity").await.status,
                200
            );
            assert_eq!(
                block(&t, &stranger, &target.user_id, "harassment")
                    .await
                    .status,
                200
            );
        }
    }
    t.caught_up().await;
    for target in [&streamer, &plain] {
        let r = t.get("/v1/me/profile", &target.access).await;
        assert_eq!(r.status, 200, "not banned: {:?}", r.body);
    }
    let penalties = t.get("/v1/admin/penalties", &admin.access).await;
    assert_eq!(
        penalties.body["items"].as_array().unwrap().len(),
        0,
        "strangers record no penalty"
    );
    let cases = t.get("/v1/admin/moderation/cases", &admin.access).await;
    assert_eq!(
        cases.body["items"].as_array().unwrap().len(),
        0,
        "no case for moderators"
    );
}
