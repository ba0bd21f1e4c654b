//! Cohorts over real HTTP: rules and hand lists, incremental membership, and every consumer of
//! their tags (gallery, tariffs, feature flags, chat auto-add, broadcasts).

use reqwest::Method;
use serde_json::{Value, json};

use crate::billing::schedule;
use crate::calls::{act, call};
use crate::coins::{credit, make_gift, post_idem};
use crate::gallery::{feed, names, online};
use crate::payments::{apple_app, chain, intent, product, sign, transaction};
use crate::support::*;

async fn cohort(t: &TestApp, admin: &Tokens, body: Value) -> Value {
    let r = t.post("/v1/admin/cohorts", Some(&admin.access), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn profile(t: &TestApp, who: &Tokens, patch: Value) {
    let r = t
        .call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&who.access),
            Some(patch),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn add(t: &TestApp, admin: &Tokens, cohort_id: &str, ids: &[&str]) -> Reply {
    t.post(
        &format!("/v1/admin/cohorts/{cohort_id}/members"),
        Some(&admin.access),
        json!({ "userIds": ids }),
    )
    .await
}

async fn members(t: &TestApp, admin: &Tokens, cohort_id: &str) -> Vec<String> {
    let r = t
        .get(
            &format!("/v1/admin/cohorts/{cohort_id}/members"),
            &admin.access,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut ids: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn tags(t: &TestApp, admin: &Tokens, user_id: &str) -> Value {
    let r = t
        .get(&format!("/v1/admin/users/{user_id}"), &admin.access)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["tags"].clone()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_rule_cohort_holds_whom_it_matches_and_a_hand_list_whom_an_admin_lists() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let de = t.user().await;
    let de_young = t.user().await;
    let fr = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    profile(&t, &de, json!({"country": "DE", "birthDate": "1980-01-01"})).await;
    profile(
        &t,
        &de_young,
        json!({"country": "DE", "birthDate": "2000-01-01"}),
    )
    .await;
    profile(&t, &fr, json!({"country": "FR"})).await;
    profile(&t, &streamer, json!({"country": "DE"})).await;
    t.caught_up().await;

    let rule = json!({"role": "user", "countries": ["de"], "maxAge": 40});
    let preview = t
        .post(
            "/v1/admin/cohorts/preview",
            Some(&admin.access),
            json!({ "rule": rule }),
        )
        .await;
    assert_eq!(preview.status, 200, "{:?}", preview.body);
    assert_eq!(preview.body["size"], 1);
    assert_eq!(preview.body["sample"], json!([de_young.user_id]));

    let c = cohort(
        &t,
        &admin,
        json!({"name": "Young Germans", "tag": "young-de", "kind": "rule", "rule": rule}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    assert_eq!(
        (&c["members"], &c["rule"]["countries"]),
        (&json!(1), &json!(["DE"])),
        "{c:?}"
    );
    assert_eq!(members(&t, &admin, id).await, [de_young.user_id.as_str()]);
    assert_eq!(
        tags(&t, &admin, &de_young.user_id).await,
        json!(["young-de"])
    );
    assert_eq!(tags(&t, &admin, &de.user_id).await, json!([]));
    let listed = t.get("/v1/admin/cohorts", &admin.access).await;
    assert_eq!(listed.body["items"][0]["tag"], "young-de");

    // Editing the rule judges everyone again.
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/cohorts/{id}"),
            Some(&admin.access),
            Some(json!({"name": "Germans", "tag": "de", "kind": "rule", "rule": {"countries": ["DE"]}})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body["members"]),
        (200, &json!(3)),
        "{:?}",
        r.body
    );
    assert_eq!(
        members(&t, &admin, id).await,
        sorted(vec![
            de.user_id.clone(),
            de_young.user_id.clone(),
            streamer.user_id.clone()
        ])
    );
    assert_eq!(tags(&t, &admin, &de_young.user_id).await, json!(["de"]));
    assert_eq!(
        add(&t, &admin, id, &[&fr.user_id]).await.code(),
        "conflict",
        "a rule cohort's list is its rule's"
    );

    // A hand-made list.
    let hand = cohort(
        &t,
        &admin,
        json!({"name": "Friends", "tag": "friends", "kind": "hand"}),
    )
    .await;
    let hand_id = hand["id"].as_str().unwrap();
    assert_eq!(hand["rule"], Value::Null);
    let r = add(
        &t,
        &admin,
        hand_id,
        &[&fr.user_id, &de.user_id, &fr.user_id],
    )
    .await;
    assert_eq!(r.body["added"], 2, "{:?}", r.body);
    assert_eq!(
        add(&t, &admin, hand_id, &[&fr.user_id]).await.body["added"],
        0
    );
    assert_eq!(
        add(&t, &admin, hand_id, &["nobody"]).await.code(),
        "not_found"
    );
    assert_eq!(
        tags(&t, &admin, &de.user_id).await,
        json!(["de", "friends"])
    );
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/admin/cohorts/{hand_id}/members/{}", fr.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(members(&t, &admin, hand_id).await, [de.user_id.as_str()]);

    // Bad input is refused with its code and changes nothing.
    for bad in [
        json!({"name": "x", "tag": "Not A Tag", "kind": "hand"}),
        json!({"name": "", "tag": "ok", "kind": "hand"}),
        json!({"name": "x", "tag": "ok", "kind": "rule"}),
        json!({"name": "x", "tag": "ok", "kind": "hand", "rule": {}}),
        json!({"name": "x", "tag": "ok", "kind": "rule", "rule": {"minCoinSpent": 5}}),
        json!({"name": "x", "tag": "ok", "kind": "rule", "rule": {"minAge": 50, "maxAge": 20}}),
        json!({"name": "x", "tag": "ok", "kind": "rule", "rule": {"registeredWithinDays": 0}}),
        json!({"name": "x", "tag": "ok", "kind": "rule", "rule": {"countries": ["Germany"]}}),
    ] {
        let r = t.post("/v1/admin/cohorts", Some(&admin.access), bad).await;
        assert_eq!(r.code(), "validation_failed", "{:?}", r.body);
    }
    assert_eq!(
        t.get("/v1/admin/cohorts", &admin.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Removing a cohort takes its tag off everyone, each leaving it on the log.
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/admin/cohorts/{id}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(tags(&t, &admin, &de_young.user_id).await, json!([]));
    assert_eq!(tags(&t, &admin, &de.user_id).await, json!(["friends"]));
    let left = t
        .get("/v1/admin/events?type=cohort_left&limit=50", &admin.access)
        .await;
    assert!(
        left.body["items"].as_array().unwrap().len() >= 4,
        "{:?}",
        left.body
    );
    assert_eq!(
        t.get(&format!("/v1/admin/cohorts/{id}"), &admin.access)
            .await
            .code(),
        "not_found"
    );
}

#[tokio::test]
async fn members_join_and_leave_as_they_buy_spend_and_change_their_profile() {
    let c = chain(true);
    let (t, _dir) = apple_app(&c).await;
    let admin = t.admin().await;
    let buyer = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let payers = cohort(
        &t,
        &admin,
        json!({"name": "Payers", "tag": "payers", "kind": "rule", "rule": {"hasPurchased": true}}),
    )
    .await;
    cohort(
        &t,
        &admin,
        json!({"name": "Germans", "tag": "de", "kind": "rule", "rule": {"countries": ["DE"], "role": "user"}}),
    )
    .await;
    cohort(
        &t,
        &admin,
        json!({"name": "Spenders", "tag": "spenders", "kind": "rule", "rule": {"minCoinsSpent": 50}}),
    )
    .await;
    cohort(
        &t,
        &admin,
        json!({"name": "Rich", "tag": "rich", "kind": "rule", "rule": {"minWalletBalance": 100}}),
    )
    .await;
    assert_eq!(tags(&t, &admin, &buyer.user_id).await, json!([]));

    // A purchase: the buyer joins the payers (and, with 120 coins, the rich).
    let p = product(&t, &admin).await;
    let i = intent(&t, &buyer, &p, "ios").await;
    let r = t
        .post(
            "/v1/payments/apple",
            Some(&buyer.access),
            json!({"intentId": i, "signedTransaction": sign(&c, &transaction("2000000001", "coins_100"))}),
        )
        .await;
    assert_eq!(r.body["state"], "completed", "{:?}", r.body);
    t.caught_up().await;
    assert_eq!(
        tags(&t, &admin, &buyer.user_id).await,
        json!(["payers", "rich"])
    );
    let joined = t
        .get(
            "/v1/admin/events?type=cohort_joined&limit=50",
            &admin.access,
        )
        .await;
    assert!(
        joined.body["items"].as_array().unwrap().iter().any(|e| {
            e["data"]["cohortId"] == payers["id"] && e["data"]["userId"] == buyer.user_id.as_str()
        }),
        "{:?}",
        joined.body
    );

    // A profile change moves them in and out.
    profile(&t, &buyer, json!({"country": "DE"})).await;
    t.caught_up().await;
    assert_eq!(
        tags(&t, &admin, &buyer.user_id).await,
        json!(["de", "payers", "rich"])
    );
    profile(&t, &buyer, json!({"country": "FR"})).await;
    t.caught_up().await;
    assert_eq!(
        tags(&t, &admin, &buyer.user_id).await,
        json!(["payers", "rich"])
    );
    let left = t
        .get("/v1/admin/events?type=cohort_left", &admin.access)
        .await;
    assert_eq!(left.body["items"][0]["data"]["tag"], "de");

    // Spending 99 coins on a gift: a spender now, and no longer rich (21 coins left).
    let gift = make_gift(&t, &admin, 99, 60).await;
    let r = post_idem(
        &t,
        "/v1/gifts/send",
        &buyer.access,
        Some("gift-1"),
        json!({"giftId": gift, "toUserId": streamer.user_id}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.caught_up().await;
    assert_eq!(
        tags(&t, &admin, &buyer.user_id).await,
        json!(["payers", "spenders"])
    );

    // The periodic pass agrees with what the events did (nothing to change).
    let changed = duet::domains::panel::recompute_all(&t.app().ctx)
        .await
        .unwrap();
    assert_eq!(changed, 0);
}

#[tokio::test]
async fn conditions_that_move_with_time_are_caught_by_the_periodic_pass() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let newcomer = t.user().await;
    let c = cohort(
        &t,
        &admin,
        json!({"name": "New", "tag": "new", "kind": "rule", "rule": {"registeredWithinDays": 7, "role": "user"}}),
    )
    .await;
    assert_eq!(c["members"], 1);
    assert_eq!(tags(&t, &admin, &newcomer.user_id).await, json!(["new"]));
    t.clock.advance_ms(8 * 86_400_000);
    let admin = t.refresh(&admin).await;
    let changed = duet::domains::panel::recompute_all(&t.app().ctx)
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(tags(&t, &admin, &newcomer.user_id).await, json!([]));
}

#[tokio::test]
async fn a_tariff_for_a_cohort_tag_prices_calls_with_its_streamers() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let user = t.user().await;
    let star = t.with_role(&admin, "streamer").await;
    let plain = t.with_role(&admin, "streamer").await;
    credit(&t, &admin, &user.user_id, 1_000, "wallet").await;
    let stars = cohort(
        &t,
        &admin,
        json!({"name": "Stars", "tag": "stars", "kind": "hand"}),
    )
    .await;
    add(&t, &admin, stars["id"].as_str().unwrap(), &[&star.user_id]).await;
    let r = t
        .post(
            "/v1/admin/tariffs",
            Some(&admin.access),
            json!({"name": "Star pricing", "kind": "direct", "callerRole": "user", "calleeRole": "streamer", "payer": "caller",
                   "scope": {"type": "cohort", "value": "stars"},
                   "payerSchedule": schedule(&[(0, 25)], Some((30, 25))),
                   "earnerSchedule": schedule(&[(0, 10)], Some((30, 10)))}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let tariff_id = r.body["id"].as_str().unwrap().to_owned();

    let _ws = [
        t.ws_ready(&user.access).await,
        t.ws_ready(&star.access).await,
        t.ws_ready(&plain.access).await,
    ];
    t.settle().await;
    let r = call(&t, &user, &star.user_id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["tariffId"], tariff_id.as_str(), "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    act(&t, &user, &id, "hangup").await;
    let r = call(&t, &user, &plain.user_id).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_ne!(
        r.body["tariffId"],
        tariff_id.as_str(),
        "streamers outside the cohort keep the default"
    );
}

#[tokio::test]
async fn a_feature_flag_can_target_cohorts() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let tester = t.user().await;
    let other = t.user().await;
    let beta = cohort(
        &t,
        &admin,
        json!({"name": "Beta", "tag": "beta", "kind": "hand"}),
    )
    .await;
    add(&t, &admin, beta["id"].as_str().unwrap(), &[&tester.user_id]).await;
    let r = t
        .call(
            Method::PUT,
            "/v1/admin/settings/flags/new_feed",
            Some(&admin.access),
            Some(json!({"platforms": {"ios": {"enabled": true}}, "cohortTags": ["beta"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["cohortTags"], json!(["beta"]));
    let flag = async |who: &Tokens| {
        t.get("/v1/settings?platform=ios&appVersion=1.0.0", &who.access)
            .await
            .body["flags"]["new_feed"]
            .clone()
    };
    assert_eq!(flag(&tester).await, true);
    assert_eq!(flag(&other).await, false);
    let r = t
        .call(
            Method::PUT,
            "/v1/admin/settings/flags/bad",
            Some(&admin.access),
            Some(json!({"platforms": {}, "cohortTags": ["Not A Tag"]})),
        )
        .await;
    assert_eq!(r.code(), "validation_failed");
}

#[tokio::test]
async fn auto_add_picks_online_streamers_by_tag() {
    let t = TestApp::spawn_with(|c| {
        c.chat.auto_add_streamers = 3;
        c.chat.auto_add_tags = vec!["greeters".into()];
    })
    .await;
    let admin = t.admin().await;
    let mut sockets = Vec::new();
    let mut streamers = Vec::new();
    for _ in 0..3 {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(t.ws_ready(&s.access).await);
        streamers.push(s);
    }
    let greeters = cohort(
        &t,
        &admin,
        json!({"name": "Greeters", "tag": "greeters", "kind": "hand"}),
    )
    .await;
    add(
        &t,
        &admin,
        greeters["id"].as_str().unwrap(),
        &[&streamers[1].user_id],
    )
    .await;
    t.settle().await;
    let newcomer = t.user().await;
    t.caught_up().await;
    let chats = t.get("/v1/chats", &newcomer.access).await;
    let with: Vec<&str> = chats.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", chats.body))
        .iter()
        .map(|c| c["withUserId"].as_str().unwrap())
        .collect();
    assert_eq!(with, [streamers[1].user_id.as_str()]);
}

#[tokio::test]
async fn cohort_tags_filter_and_boost_the_gallery_and_show_on_cards_when_visible() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let viewer = t.user().await;
    let mut sockets = Vec::new();
    let mut ids = Vec::new();
    for name in ["Old", "Mid", "New", "Shy"] {
        let s = t.with_role(&admin, "streamer").await;
        sockets.push(online(&t, &s, name, "DE").await);
        ids.push(s);
        t.clock.advance_ms(1_000);
    }
    let vip = cohort(
        &t,
        &admin,
        json!({"name": "VIP", "tag": "vip", "visible": true, "kind": "hand"}),
    )
    .await;
    add(&t, &admin, vip["id"].as_str().unwrap(), &[&ids[2].user_id]).await;
    let quiet = cohort(
        &t,
        &admin,
        json!({"name": "Quiet", "tag": "quiet", "kind": "hand"}),
    )
    .await;
    add(
        &t,
        &admin,
        quiet["id"].as_str().unwrap(),
        &[&ids[1].user_id, &ids[2].user_id],
    )
    .await;
    // Shy hides from the gallery.
    profile(&t, &ids[3], json!({"hiddenFromGallery": true})).await;
    t.caught_up().await;

    let r = feed(&t, &viewer, "").await;
    assert_eq!(names(&r), ["Old", "Mid", "New"]);
    assert_eq!(r.body["items"][2]["tags"], json!(["vip"]), "{:?}", r.body);
    assert_eq!(
        r.body["items"][1]["tags"],
        json!([]),
        "an invisible tag is not shown"
    );
    assert_eq!(
        names(&feed(&t, &viewer, "?tag=quiet").await),
        ["Mid", "New"]
    );

    let put_rule = async |extra: Value| {
        let mut rule = json!({"viewer": "user", "shows": "streamer", "sort": "online_longest", "busy": "show"});
        rule.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t.call(
            Method::PUT,
            "/v1/admin/gallery/rules",
            Some(&admin.access),
            Some(json!({ "items": [rule] })),
        )
        .await
    };
    assert_eq!(put_rule(json!({"boostTags": ["vip"]})).await.status, 204);
    assert_eq!(names(&feed(&t, &viewer, "").await), ["New", "Old", "Mid"]);
    assert_eq!(put_rule(json!({"hiddenTags": ["quiet"]})).await.status, 204);
    assert_eq!(names(&feed(&t, &viewer, "").await), ["Old"]);
    assert_eq!(put_rule(json!({"onlyTags": ["quiet"]})).await.status, 204);
    assert_eq!(names(&feed(&t, &viewer, "").await), ["Mid", "New"]);
    let r = put_rule(json!({"boostTags": ["Bad Tag"]})).await;
    assert_eq!(r.code(), "validation_failed");

    // Leaving a cohort reaches the gallery through its event.
    let r = t
        .call(
            Method::DELETE,
            &format!(
                "/v1/admin/cohorts/{}/members/{}",
                quiet["id"].as_str().unwrap(),
                ids[1].user_id
            ),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    t.caught_up().await;
    assert_eq!(names(&feed(&t, &viewer, "").await), ["New"]);
    // Shown again.
    profile(&t, &ids[3], json!({"hiddenFromGallery": false})).await;
    t.caught_up().await;
    assert_eq!(names(&feed(&t, &viewer, "?tag=vip").await), ["New"]);
    assert_eq!(put_rule(json!({})).await.status, 204);
    assert_eq!(
        names(&feed(&t, &viewer, "").await),
        ["Old", "Mid", "New", "Shy"]
    );

    // A cohort renamed and hidden from clients: the cards follow (`cohort_saved`).
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/cohorts/{}", vip["id"].as_str().unwrap()),
            Some(&admin.access),
            Some(json!({"name": "VIP", "tag": "star", "visible": false, "kind": "hand"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), &r.body["members"]), (200, &json!(1)));
    t.caught_up().await;
    let r = feed(&t, &viewer, "?tag=star").await;
    assert_eq!(names(&r), ["New"]);
    assert_eq!(r.body["items"][0]["tags"], json!([]));
    assert_eq!(
        names(&feed(&t, &viewer, "?tag=vip").await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_admin_broadcast_reaches_every_member_of_a_cohort() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let a = t.user().await;
    let b = t.user().await;
    let outsider = t.user().await;
    let c = cohort(
        &t,
        &admin,
        json!({"name": "Everyone nice", "tag": "nice", "kind": "hand"}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    add(&t, &admin, id, &[&a.user_id, &b.user_id]).await;
    let r = t
        .post(
            &format!("/v1/admin/cohorts/{id}/broadcast"),
            Some(&admin.access),
            json!({"title": "Weekend bonus", "body": "Double coins all weekend"}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["members"], 2);
    for who in [&a, &b] {
        let list = until("the broadcast to arrive", || async {
            let r = t.get("/v1/me/notifications", &who.access).await;
            let items = r.body["items"].as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        })
        .await;
        assert_eq!(
            (list[0]["title"].as_str(), list[0]["kind"].as_str()),
            (Some("Weekend bonus"), Some("system"))
        );
    }
    let r = t.get("/v1/me/notifications", &outsider.access).await;
    assert_eq!(r.body["items"], json!([]));
    let r = t
        .post(
            "/v1/admin/cohorts/nope/broadcast",
            Some(&admin.access),
            json!({"title": "x", "body": "y"}),
        )
        .await;
    assert_eq!(r.code(), "not_found");
}
