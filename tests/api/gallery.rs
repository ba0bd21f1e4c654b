//! The gallery's feeds over real HTTP: each default feed's order, filters, exclusions, stable
//! paging while people come and go, cursors that expire, and an index rebuilt from scratch.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Someone online (a live WebSocket) from now, with a profile and an approved avatar (a
/// streamer without one is not shown).
pub async fn online(t: &TestApp, who: &Tokens, name: &str, country: &str) -> Ws {
    let avatar = approved_photo(t, who).await;
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&who.access),
            Some(json!({"displayName": name, "country": country, "avatarMediaId": avatar})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ws = t.ws_ready(&who.access).await;
    t.settle().await;
    ws
}

/// A photo of `who`'s, uploaded and approved by a moderator: its media id.
pub async fn approved_photo(t: &TestApp, who: &Tokens) -> String {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let r = t
        .http
        .post(format!("{}/v1/media?kind=photo", t.base))
        .bearer_auth(&who.access)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    duet::domains::media::moderation::moderate(&t.app().ctx, "moderator", &id, true, None)
        .await
        .unwrap();
    id
}

/// Someone goes offline: their socket closes and the presence grace period passes.
async fn offline(t: &TestApp, ws: Ws) {
    let before = t.app().ctx.hub.connection_count();
    drop(ws);
    until("the close to be noticed", || async {
        (t.app().ctx.hub.connection_count() < before).then_some(())
    })
    .await;
    t.clock.advance_ms(20_000);
    t.app().ctx.presence.sweep().await;
    t.settle().await;
}

pub async fn feed(t: &TestApp, who: &Tokens, query: &str) -> Reply {
    t.get(&format!("/v1/gallery{query}"), &who.access).await
}

pub fn names(r: &Reply) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", r.body))
        .iter()
        .map(|i| i["displayName"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn users_see_online_streamers_longest_first_and_streamers_see_payers_first() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let mut sockets = Vec::new();
    for (name, country) in [("Ada", "DE"), ("Bea", "FR"), ("Cleo", "DE")] {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(online(&t, &s, name, country).await);
        t.clock.advance_ms(1_000);
    }
    let offline = t.with_role(&admin, "streamer").await;
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&offline.access),
        Some(json!({"displayName": "Offline"})),
    )
    .await;
    let viewer = t.user().await;
    t.caught_up().await;
    let r = feed(&t, &viewer, "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(names(&r), ["Ada", "Bea", "Cleo"], "online longest first");
    let card = &r.body["items"][0];
    assert_eq!(card["busy"], false);
    assert_eq!(card["following"], false);
    assert_eq!(card["country"], "DE");
    assert!(card["onlineSince"].is_string());
    assert_eq!(
        names(&feed(&t, &viewer, "?country=de").await),
        ["Ada", "Cleo"]
    );

    // Streamers see users: who can pay for a call first, then the most recently online.
    let mut users = Vec::new();
    for name in ["Uno", "Duo", "Tre"] {
        let u = t.user().await;
        users.push(online(&t, &u, name, "IT").await);
        if name == "Uno" {
            crate::coins::credit(&t, &admin, &u.user_id, 100, "wallet").await;
        }
        t.clock.advance_ms(1_000);
    }
    let streamer = t.with_role(&admin, "streamer").await;
    t.caught_up().await;
    assert_eq!(
        names(&feed(&t, &streamer, "").await),
        ["Uno", "Tre", "Duo"],
        "the payer first, then the most recent"
    );
    drop(sockets);
    drop(users);
}

#[tokio::test]
async fn nobody_blocked_banned_or_offline_is_shown_and_a_block_made_while_paging_counts() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut streamers = Vec::new();
    let mut sockets = Vec::new();
    for name in ["S1", "S2", "S3", "S4", "S5"] {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(online(&t, &s, name, "DE").await);
        streamers.push(s);
        t.clock.advance_ms(1_000);
    }
    // S2 blocked the viewer; an admin banned S3.
    let r = t
        .post(
            "/v1/blocks",
            Some(&streamers[1].access),
            json!({"userId": viewer.user_id, "reason": "other"}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = t
        .post(
            &format!("/v1/admin/users/{}/ban", streamers[2].user_id),
            Some(&admin.access),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    t.caught_up().await;
    let first = feed(&t, &viewer, "?limit=1").await;
    assert_eq!(names(&first), ["S1"]);
    // The viewer blocks S4 while paging: the next page passes over them.
    let r = t
        .post(
            "/v1/blocks",
            Some(&viewer.access),
            json!({"userId": streamers[3].user_id, "reason": "other"}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let next = feed(&t, &viewer, &format!("?limit=5&cursor={cursor}")).await;
    assert_eq!(names(&next), ["S5"]);
    assert!(next.body["nextCursor"].is_null(), "{:?}", next.body);
    drop(sockets);
}

#[tokio::test]
async fn paging_is_stable_while_people_come_and_go_and_cursors_expire() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut sockets = Vec::new();
    for i in 0..6 {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(Some(online(&t, &s, &format!("P{i}"), "DE").await));
        t.clock.advance_ms(1_000);
    }
    t.caught_up().await;
    let first = feed(&t, &viewer, "?limit=2").await;
    assert_eq!(names(&first), ["P0", "P1"]);
    // Churn: P2 goes offline, a newcomer comes online, P0 goes offline.
    offline(&t, sockets[2].take().unwrap()).await;
    let late = t.with_role(&admin, "streamer").await;
    let _late_ws = online(&t, &late, "Late", "DE").await;
    offline(&t, sockets[0].take().unwrap()).await;
    t.caught_up().await;
    let mut seen = names(&first);
    let mut cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let r = feed(&t, &viewer, &format!("?limit=2&cursor={cursor}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        seen.extend(names(&r));
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["P0", "P1", "P2", "P3", "P4", "P5"],
        "the pinned list: no repeat, no skip"
    );
    // A new first page sees the churn.
    assert_eq!(
        names(&feed(&t, &viewer, "?limit=10").await),
        ["P1", "P3", "P4", "P5", "Late"]
    );
    // Cursors live gallery.cursor_ttl_secs.
    let again = feed(&t, &viewer, "?limit=1").await;
    t.clock.advance_ms(601_000);
    let cursor = again.body["nextCursor"].as_str().unwrap();
    let r = feed(&t, &viewer, &format!("?cursor={cursor}")).await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "cursor_expired"));
    let r = feed(&t, &viewer, "?cursor=junk").await;
    assert_eq!(r.code(), "validation_failed");
    let r = feed(&t, &viewer, "?limit=51").await;
    assert_eq!(r.code(), "validation_failed");
    drop(sockets);
}

#[tokio::test]
async fn an_index_rebuilt_from_scratch_gives_the_same_feeds() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut sockets = Vec::new();
    for name in ["R1", "R2", "R3"] {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(online(&t, &s, name, "DE").await);
        t.clock.advance_ms(1_000);
    }
    t.caught_up().await;
    let before: Value = feed(&t, &viewer, "").await.body;
    assert_eq!(names(&feed(&t, &viewer, "").await), ["R1", "R2", "R3"]);
    // From scratch, on the running server: the same feed.
    let ctx = t.app().ctx.clone();
    let n = duet::domains::gallery::rebuild(&ctx.store, &ctx.gallery, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        n, 5,
        "every account: the admin, the viewer, three streamers"
    );
    assert_eq!(feed(&t, &viewer, "").await.body, before);
    drop(ctx);
    // A server that finds no index (or an old one) builds it on start.
    let index_dir = t.config.server.data_dir.join("gallery");
    t.stop_for_offline().await;
    drop(sockets);
    std::fs::remove_dir_all(&index_dir).unwrap();
    t.restart().await;
    assert!(
        index_dir.join("duet-gallery-version").exists(),
        "rebuilt on start"
    );
    let viewer = t.refresh(&viewer).await;
    let r = feed(&t, &viewer, "").await;
    assert_eq!(
        r.body["items"],
        json!([]),
        "nobody is online after a restart"
    );
}

/// A client subscribed to `gallery` learns, in one signal a second, who went offline, who
/// became busy or free, and who is newly available.
#[tokio::test]
async fn the_live_gallery_topic_tells_what_changed() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut ws = t.ws_ready(&viewer.access).await;
    ws.send(json!({"type": "subscribe", "topic": "gallery"}))
        .await;
    ws.recv_type("subscribed").await;
    let ctx = t.app().ctx.clone();
    let s = t.with_role(&admin, "streamer").await;
    let s_ws = online(&t, &s, "Live", "DE").await;
    t.caught_up().await;
    assert!(duet::domains::gallery::send_signal(&ctx).unwrap());
    let e = ws.recv_type("event").await;
    assert_eq!(e["eventType"], "gallery_changed", "{e:?}");
    // The viewer came online too (users are shown to streamers).
    let available = e["data"]["available"].as_array().unwrap();
    assert!(available.contains(&json!(s.user_id)), "{e:?}");
    assert!(available.contains(&json!(viewer.user_id)), "{e:?}");
    assert_eq!(e["seq"], 0, "live only: never replayed");
    assert_eq!(e["data"]["offline"], json!([]));
    assert!(
        !duet::domains::gallery::send_signal(&ctx).unwrap(),
        "nothing new"
    );

    offline(&t, s_ws).await;
    t.caught_up().await;
    duet::domains::gallery::send_signal(&ctx).unwrap();
    let e = ws.recv_type("event").await;
    assert_eq!(e["data"]["offline"], json!([s.user_id]));
    assert_eq!(e["data"]["refresh"], false);
}

/// Feed rules are data: an admin's edit (order, people in a call hidden) takes effect on the
/// next first page, and is audited.
#[tokio::test]
async fn a_rule_edited_by_an_admin_takes_effect() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut sockets = Vec::new();
    let mut streamers = Vec::new();
    for name in ["Old", "Mid", "New"] {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(online(&t, &s, name, "DE").await);
        streamers.push(s);
        t.clock.advance_ms(1_000);
    }
    t.caught_up().await;
    assert_eq!(names(&feed(&t, &viewer, "").await), ["Old", "Mid", "New"]);
    let rules = t.get("/v1/admin/gallery/rules", &admin.access).await;
    assert_eq!(rules.status, 200, "{:?}", rules.body);
    assert!(
        rules.body["items"].as_array().unwrap().contains(
            &json!({"viewer": "streamer", "shows": "user", "sort": "payers_first", "busy": "show", "boostTags": [], "onlyTags": [], "hiddenTags": []})
        ),
        "{:?}",
        rules.body
    );
    let r = t
        .call(
            Method::PUT,
            "/v1/admin/gallery/rules",
            Some(&admin.access),
            Some(json!({"items": [{"viewer": "user", "shows": "streamer", "sort": "online_newest", "busy": "hide"}]})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(names(&feed(&t, &viewer, "").await), ["New", "Mid", "Old"]);
    // "Mid" enters a call: hidden now.
    let caller = t.user().await;
    crate::coins::credit(&t, &admin, &caller.user_id, 1000, "wallet").await;
    let _caller_ws = t.ws_ready(&caller.access).await;
    t.settle().await;
    let pair = crate::calls::Pair {
        online: Vec::new(),
        user: caller.clone(),
        streamer: streamers[1].clone(),
    };
    crate::calls::connect(&t, &pair).await;
    t.caught_up().await;
    assert_eq!(names(&feed(&t, &viewer, "").await), ["New", "Old"]);
    let audit = t.get("/v1/admin/audit", &admin.access).await;
    assert!(
        audit.body.to_string().contains("gallery.rule"),
        "{:?}",
        audit.body
    );
    drop(sockets);
}

#[tokio::test]
async fn with_kyc_required_only_verified_streamers_are_shown() {
    let t = TestApp::spawn_with(|c| c.gallery.streamers_need_kyc = true).await;
    let admin = t.admin().await;
    let (ada, bea) = (
        t.with_role(&admin, "streamer").await,
        t.with_role(&admin, "streamer").await,
    );
    let sockets = vec![
        online(&t, &ada, "Ada", "DE").await,
        online(&t, &bea, "Bea", "DE").await,
    ];
    let viewer = t.user().await;
    t.caught_up().await;
    assert!(
        names(&feed(&t, &viewer, "").await).is_empty(),
        "nobody verified yet"
    );
    crate::mission::verify_kyc(&t, &admin, &bea).await;
    t.caught_up().await;
    assert_eq!(names(&feed(&t, &viewer, "").await), ["Bea"]);
    drop(sockets);
}
