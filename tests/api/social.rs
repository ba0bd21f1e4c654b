//! Favorites and interactions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::calls::{act, connect, pair};
use crate::coins::{make_gift, post_idem};
use crate::support::*;

async fn favorite(t: &TestApp, who: &Tokens, whom: &str, method: Method) -> u16 {
    t.call(
        method,
        &format!("/v1/favorites/{whom}"),
        Some(&who.access),
        None,
    )
    .await
    .status
    .as_u16()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["userId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn favorites_followers_and_profile_counts() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s = t.with_role(&admin, "streamer").await;
    let s2 = t.with_role(&admin, "streamer").await;
    let u = t.user().await;
    assert_eq!(favorite(&t, &u, &s.user_id, Method::PUT).await, 204);
    assert_eq!(
        favorite(&t, &u, &s.user_id, Method::PUT).await,
        204,
        "again: no change"
    );
    t.clock.advance_ms(1000);
    assert_eq!(favorite(&t, &u, &s2.user_id, Method::PUT).await, 204);

    let mine = t.get("/v1/favorites", &u.access).await;
    assert_eq!(
        ids(&mine.body),
        vec![s2.user_id.clone(), s.user_id.clone()],
        "newest first"
    );
    let page = t.get("/v1/favorites?limit=1", &u.access).await;
    let next = page.body["nextBefore"].as_str().unwrap().to_owned();
    let rest = t
        .get(&format!("/v1/favorites?limit=1&before={next}"), &u.access)
        .await;
    assert_eq!(ids(&rest.body), vec![s.user_id.clone()]);

    let followers = t.get("/v1/me/followers", &s.access).await;
    assert_eq!(ids(&followers.body), vec![u.user_id.clone()]);
    assert_eq!(
        t.get("/v1/me/followers", &u.access).await.status,
        403,
        "streamers only"
    );

    let p = t
        .get(&format!("/v1/profiles/{}", s.user_id), &u.access)
        .await;
    assert_eq!(
        (
            p.body["followersCount"].as_u64(),
            p.body["followingCount"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let me = t.get("/v1/me/profile", &u.access).await;
    assert_eq!(me.body["public"]["followingCount"], 2);

    assert_eq!(favorite(&t, &u, &s.user_id, Method::DELETE).await, 204);
    assert_eq!(
        favorite(&t, &u, &s.user_id, Method::DELETE).await,
        204,
        "again: no change"
    );
    let p = t
        .get(&format!("/v1/profiles/{}", s.user_id), &u.access)
        .await;
    assert_eq!(p.body["followersCount"], 0);
    assert!(ids(&t.get("/v1/me/followers", &s.access).await.body).is_empty());

    assert_eq!(favorite(&t, &u, &u.user_id, Method::PUT).await, 400);
    assert_eq!(favorite(&t, &u, "nobody", Method::PUT).await, 404);
}

#[tokio::test]
async fn interactions_count_views_calls_messages_gifts_and_favorites_both_ways() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = pair(&t, &admin, 1000).await;
    let (u, s) = (&p.user, &p.streamer);
    for _ in 0..2 {
        assert_eq!(
            t.get(&format!("/v1/profiles/{}", s.user_id), &u.access)
                .await
                .status,
            200
        );
    }
    for i in 0..2 {
        let r = t
            .post(
                &format!("/v1/chats/{}/messages", s.user_id),
                Some(&u.access),
                json!({"clientMessageId": format!("m{i}"), "text": "hi"}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let r = t
        .post(
            &format!("/v1/chats/{}/messages", u.user_id),
            Some(&s.access),
            json!({"clientMessageId": "r", "text": "hello"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let gift = make_gift(&t, &admin, 50, 60).await;
    let r = post_idem(
        &t,
        "/v1/gifts/send",
        &u.access,
        Some("g"),
        json!({"giftId": gift, "toUserId": s.user_id}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        t.call(
            Method::PUT,
            &format!("/v1/favorites/{}", s.user_id),
            Some(&u.access),
            None
        )
        .await
        .status,
        204
    );
    let id = connect(&t, &p).await;
    t.clock.advance_ms(61_000);
    act(&t, u, &id, "hangup").await;

    let expected = json!({"profileViews": 2, "calls": 1, "callSeconds": 61, "messages": 2, "giftCoins": 50, "favorite": true});
    let view = until("interaction counts", || async {
        let r = t
            .get(
                &format!("/v1/me/interactions?with={}", s.user_id),
                &u.access,
            )
            .await;
        let item = r.body["items"][0].clone();
        (item["mine"] == expected).then_some(item)
    })
    .await;
    assert_eq!(view["theirs"]["messages"], 1);
    assert_eq!(view["withUserId"], s.user_id.as_str());
    assert!(view["lastInteractionAt"].is_string());
    // The streamer sees the same pair from the other side, in their recent list.
    let theirs = t.get("/v1/me/interactions", &s.access).await;
    let first = &theirs.body["items"][0];
    assert_eq!(first["withUserId"], u.user_id.as_str());
    assert_eq!(first["theirs"], expected);
    // Someone never met: zeros, no time.
    let stranger = t.user().await;
    let r = t
        .get(
            &format!("/v1/me/interactions?with={}", stranger.user_id),
            &u.access,
        )
        .await;
    assert_eq!(r.body["items"][0]["mine"]["calls"], 0);
    assert!(r.body["items"][0]["lastInteractionAt"].is_null());
}
