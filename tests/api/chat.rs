//! Chat end to end: two real WebSocket clients, receipts, unread counts, typing, idempotent
//! sends, gift and call records written exactly once, blocks, limits and auto-add.

use reqwest::Method;
use serde_json::{Value, json};

use crate::calls::{act, connect, pair, run_timers};
use crate::coins::{make_gift, post_idem};
use crate::support::*;

async fn send(t: &TestApp, from: &Tokens, to: &str, client_id: &str, text: &str) -> Reply {
    t.post(
        &format!("/v1/chats/{to}/messages"),
        Some(&from.access),
        json!({"clientMessageId": client_id, "text": text}),
    )
    .await
}

async fn subscribed(t: &TestApp, who: &Tokens) -> Ws {
    let mut ws = t.ws_ready(&who.access).await;
    ws.send(json!({"type": "subscribe", "topic": "chat"})).await;
    ws.recv_type("subscribed").await;
    ws
}

/// The next event of `kind`, skipping others (the client's own echoes).
async fn next_event(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let e = ws.recv_type("event").await;
        if e["eventType"] == kind {
            return e;
        }
    }
}

async fn chats(t: &TestApp, who: &Tokens) -> Vec<Value> {
    let r = t.get("/v1/chats", &who.access).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

async fn timeline(t: &TestApp, who: &Tokens, chat: &str) -> Vec<Value> {
    let r = t
        .get(&format!("/v1/chats/{chat}/messages"), &who.access)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_conversation_with_receipts_unread_counts_and_typing_between_two_clients() {
    let t = TestApp::spawn().await;
    let a = t.user().await;
    let b = t.user().await;
    let mut wa = subscribed(&t, &a).await;
    let mut wb = subscribed(&t, &b).await;

    let first = send(&t, &a, &b.user_id, "m-1", "hello there").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["seq"], 1);
    assert_eq!(first.body["kind"], "text");
    let chat = first.body["chatId"].as_str().unwrap().to_owned();
    let live = wb.recv_type("event").await;
    assert_eq!(live["eventType"], "chat_message");
    assert_eq!(live["topic"], "chat");
    assert_eq!(live["data"]["text"], "hello there");
    assert_eq!(live["data"]["senderId"], a.user_id.as_str());
    assert_eq!(
        wa.recv_type("event").await["data"]["seq"],
        1,
        "the sender's other devices see it"
    );

    // A retry with the same client message id is the same message, and nothing new is sent.
    let again = send(&t, &a, &b.user_id, "m-1", "hello there").await;
    assert_eq!(
        (again.body["seq"].as_u64(), again.body["chatId"].as_str()),
        (Some(1), Some(chat.as_str()))
    );
    wb.expect_quiet().await;
    // The same client id for a message to someone else is a mistake, not a retry.
    let other = t.user().await;
    let r = send(&t, &a, &other.user_id, "m-1", "hello there").await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "conflict"));

    assert_eq!(
        send(&t, &a, &b.user_id, "m-2", "how are you?").await.body["seq"],
        2
    );
    assert_eq!(wb.recv_type("event").await["data"]["seq"], 2);
    let reply = send(&t, &b, &a.user_id, "r-1", "fine!").await;
    assert_eq!(
        (reply.body["seq"].as_u64(), reply.body["chatId"].as_str()),
        (Some(3), Some(chat.as_str())),
        "one conversation per pair"
    );

    let list = chats(&t, &b).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["withUserId"], a.user_id.as_str());
    assert_eq!(list[0]["lastMessage"]["text"], "fine!");
    assert_eq!(list[0]["unreadCount"], 0, "replying reads what came before");
    let list = chats(&t, &a).await;
    assert_eq!(list[0]["unreadCount"], 1);

    // Read receipts: a reads up to 3; b sees the receipt.
    let r = t
        .post(
            &format!("/v1/chats/{chat}/read"),
            Some(&a.access),
            json!({"upToSeq": 3}),
        )
        .await;
    assert_eq!(
        (
            r.body["readUpToSeq"].as_u64(),
            r.body["unreadCount"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let receipt = next_event(&mut wb, "chat_read").await;
    assert_eq!(receipt["data"]["upToSeq"], 3);
    assert_eq!(receipt["data"]["userId"], a.user_id.as_str());

    // Typing is relayed to the other member only, and never stored.
    wa.send(json!({"type": "typing", "chatId": chat})).await;
    let typing = wb.recv_type("typing").await;
    assert_eq!(
        (typing["chatId"].as_str(), typing["userId"].as_str()),
        (Some(chat.as_str()), Some(a.user_id.as_str()))
    );
    // A flood of typing frames (at most one a second is relayed) never costs the other side
    // its connection: it still answers a ping afterwards.
    for _ in 0..50 {
        wa.send(json!({"type": "typing", "chatId": chat})).await;
    }
    wb.send(json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(wb.recv_type("pong").await["nonce"], 7);
    wa.send(json!({"type": "typing", "chatId": "not-a-chat"}))
        .await;
    assert_eq!(wa.recv_type("error").await["code"], "not_found");

    // Deleting one's own message: the text is gone for both and it is no longer unread.
    assert_eq!(send(&t, &a, &b.user_id, "m-3", "oops").await.body["seq"], 4);
    assert_eq!(chats(&t, &b).await[0]["unreadCount"], 1);
    let path = format!("/v1/chats/{chat}/messages/4");
    assert_eq!(
        t.call(Method::DELETE, &path, Some(&b.access), None)
            .await
            .status,
        403
    );
    assert_eq!(
        t.call(Method::DELETE, &path, Some(&a.access), None)
            .await
            .status,
        204
    );
    assert_eq!(chats(&t, &b).await[0]["unreadCount"], 0);
    let msgs = timeline(&t, &b, &chat).await;
    assert_eq!(msgs.len(), 4);
    assert_eq!(
        (
            msgs[0]["seq"].as_u64(),
            msgs[0]["deleted"].as_bool(),
            msgs[0]["text"].is_null()
        ),
        (Some(4), Some(true), true)
    );

    // Paging back through the history.
    let page = t
        .get(&format!("/v1/chats/{chat}/messages?limit=2"), &a.access)
        .await;
    assert_eq!(page.body["nextBefore"], 3);
    let older = t
        .get(
            &format!("/v1/chats/{chat}/messages?limit=2&before=3"),
            &a.access,
        )
        .await;
    let seqs: Vec<u64> = older.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 1]);

    // Outsiders see nothing.
    let c = t.user().await;
    let r = t
        .get(&format!("/v1/chats/{chat}/messages"), &c.access)
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

#[tokio::test]
async fn gifts_and_calls_appear_in_the_chat_exactly_once() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let gift = make_gift(&t, &admin, 50, 60).await;
    let r = post_idem(
        &t,
        "/v1/gifts/send",
        &p.user.access,
        Some("g-1"),
        json!({"giftId": gift, "toUserId": p.streamer.user_id}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = connect(&t, &p).await;
    t.clock.advance_ms(61_000);
    run_timers(&t).await;
    act(&t, &p.user, &id, "hangup").await;
    // A missed call.
    let ring = t
        .post(
            "/v1/calls",
            Some(&p.user.access),
            json!({"calleeId": p.streamer.user_id}),
        )
        .await;
    assert_eq!(ring.status, 200, "{:?}", ring.body);
    t.clock.advance_ms(31_000);
    run_timers(&t).await;

    let kinds = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .rev()
            .map(|m| match m["kind"].as_str().unwrap() {
                "call" => format!(
                    "call:{}:{}",
                    m["call"]["outcome"].as_str().unwrap(),
                    m["call"]["durationSeconds"]
                ),
                k => k.to_owned(),
            })
            .collect()
    };
    let expected = vec![
        "gift".to_owned(),
        "call:ended:61".to_owned(),
        "call:missed:0".to_owned(),
    ];
    let chat = until("the gift and call records", || async {
        let list = chats(&t, &p.streamer).await;
        let chat = list.first()?["id"].as_str()?.to_owned();
        (kinds(&timeline(&t, &p.streamer, &chat).await) == expected).then_some(chat)
    })
    .await;
    let msgs = timeline(&t, &p.user, &chat).await;
    let gift_msg = &msgs[2];
    assert_eq!(
        (
            gift_msg["gift"]["price"].as_i64(),
            gift_msg["senderId"].as_str()
        ),
        (Some(50), Some(p.user.user_id.as_str()))
    );
    assert_eq!(msgs[1]["call"]["callId"], id.as_str());
    assert_eq!(chats(&t, &p.streamer).await[0]["unreadCount"], 3);

    // The consumer sees the same events again (as after a crash before its cursor moved):
    // nothing is written twice.
    let ctx = t.app().ctx.clone();
    let events = ctx
        .store
        .read(|rtx| duet::core::events::read_after(rtx, 0, 10_000))
        .await
        .unwrap();
    let records = duet::domains::chat::records::ChatRecords {
        store: ctx.store.clone(),
        config: ctx.config.chat.clone(),
    };
    duet::core::events::Consumer::handle(&records, events)
        .await
        .unwrap();
    assert_eq!(kinds(&timeline(&t, &p.streamer, &chat).await), expected);
    drop((records, ctx));

    // And across a restart.
    let mut t = t;
    drop(p.online);
    t.restart().await;
    let again = t
        .get(&format!("/v1/chats/{chat}/messages"), &p.user.access)
        .await;
    assert_eq!(kinds(again.body["items"].as_array().unwrap()), expected);
}

#[tokio::test]
async fn blocked_pairs_cannot_message_and_senders_are_rate_limited() {
    let t = TestApp::spawn_with(|c| c.chat.messages_per_minute = 3).await;
    let a = t.user().await;
    let b = t.user().await;
    assert_eq!(send(&t, &a, &b.user_id, "1", "hi").await.status, 200);
    let r = t
        .post(
            "/v1/blocks",
            Some(&b.access),
            json!({"userId": a.user_id, "reason": "spam"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = send(&t, &a, &b.user_id, "2", "hello?").await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    let r = send(&t, &b, &a.user_id, "3", "no").await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "blocked"));
    assert_eq!(chats(&t, &b).await.len(), 1, "the history stays");

    let c = t.user().await;
    for i in 0..2 {
        assert_eq!(
            send(&t, &a, &c.user_id, &format!("c{i}"), "hey")
                .await
                .status,
            200
        );
    }
    let r = send(&t, &a, &c.user_id, "c2", "hey").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    assert!(r.headers.get("retry-after").is_some());
    t.clock.advance_ms(120_000);
    assert_eq!(send(&t, &a, &c.user_id, "c3", "hey").await.status, 200);

    for (text, why) in [
        ("", "empty"),
        ("   ", "spaces"),
        (&"x".repeat(2001)[..], "too long"),
    ] {
        let r = send(&t, &a, &c.user_id, why, text).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{why}"
        );
    }
    let r = send(&t, &a, &a.user_id, "self", "me").await;
    assert_eq!(r.status, 400);
    let r = send(&t, &a, "nobody", "x", "hi").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

#[tokio::test]
async fn new_users_get_chats_with_online_streamers_who_greet_them() {
    let t = TestApp::spawn_with(|c| c.chat.auto_add_streamers = 2).await;
    let admin = t.admin().await;
    let mut online = Vec::new();
    let mut streamers = Vec::new();
    for _ in 0..3 {
        let s = t.with_role(&admin, "streamer").await;
        online.push(t.ws_ready(&s.access).await);
        streamers.push(s.user_id.clone());
    }
    let offline = t.with_role(&admin, "streamer").await;
    t.settle().await;
    let newcomer = t.user().await;
    let list = until("auto-added chats", || async {
        let list = chats(&t, &newcomer).await;
        (list.len() == 2).then_some(list)
    })
    .await;
    for chat in &list {
        let with = chat["withUserId"].as_str().unwrap();
        assert!(streamers.iter().any(|s| s == with) && with != offline.user_id);
        assert_eq!(chat["lastMessage"]["kind"], "system");
        assert_eq!(chat["lastMessage"]["senderId"], with);
        assert_eq!(
            chat["lastMessage"]["text"],
            "Hi! Nice to meet you. Say hello any time."
        );
        assert_eq!(chat["unreadCount"], 1);
    }
}
