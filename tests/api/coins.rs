use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// POSTs with an Idempotency-Key.
pub async fn post_idem(
    t: &TestApp,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> Reply {
    let mut req = t
        .http
        .post(format!("{}{}", t.base, path))
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

pub async fn credit(t: &TestApp, admin: &Tokens, user_id: &str, amount: i64, account: &str) {
    let r = post_idem(
        t,
        &format!("/v1/admin/balances/{user_id}/adjust"),
        &admin.access,
        Some(&duet::core::ids::new_id()),
        json!({"amount": amount, "reason": "test funds", "account": account}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn coins(t: &TestApp, who: &Tokens) -> i64 {
    t.get("/v1/me/balance", &who.access).await.body["coins"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn adjustments_are_idempotent_streamed_and_never_overdraw() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let mut ws = t.ws_ready(&u.access).await;
    ws.send(json!({"type": "subscribe", "topic": "balance"}))
        .await;
    ws.recv_type("subscribed").await;

    let path = format!("/v1/admin/balances/{}/adjust", u.user_id);
    let body = json!({"amount": 500, "reason": "welcome"});
    let first = post_idem(&t, &path, &admin.access, Some("k-1"), body.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["balance"], 500);
    let again = post_idem(&t, &path, &admin.access, Some("k-1"), body.clone()).await;
    assert_eq!(
        again.body, first.body,
        "a retry returns the original result"
    );
    assert_eq!(coins(&t, &u).await, 500, "and has no second effect");

    let e = ws.recv_type("event").await;
    assert_eq!(
        (e["topic"].as_str(), e["eventType"].as_str()),
        (Some("balance"), Some("balance_changed"))
    );
    assert_eq!(
        (e["data"]["delta"].as_i64(), e["data"]["balance"].as_i64()),
        (Some(500), Some(500))
    );

    let conflict = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-1"),
        json!({"amount": 501, "reason": "welcome"}),
    )
    .await;
    assert_eq!(
        (conflict.status.as_u16(), conflict.code()),
        (409, "idempotency_conflict")
    );
    let missing = post_idem(&t, &path, &admin.access, None, body.clone()).await;
    assert_eq!(
        (missing.status.as_u16(), missing.code()),
        (400, "idempotency_key_required")
    );
    let over = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-2"),
        json!({"amount": -501, "reason": "too much"}),
    )
    .await;
    assert_eq!(
        (over.status.as_u16(), over.code()),
        (402, "insufficient_balance")
    );
    let zero = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-3"),
        json!({"amount": 0, "reason": "nothing"}),
    )
    .await;
    assert_eq!(zero.code(), "validation_failed");
    let huge = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-8"),
        json!({"amount": i64::MIN, "reason": "overflow"}),
    )
    .await;
    assert_eq!(huge.code(), "validation_failed");
    let bad = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-4"),
        json!({"amount": "lots", "reason": "x"}),
    )
    .await;
    assert_eq!(
        bad.code(),
        "validation_failed",
        "a wrong type is invalid input"
    );
    let nobody = post_idem(
        &t,
        "/v1/admin/balances/nobody/adjust",
        &admin.access,
        Some("k-5"),
        body.clone(),
    )
    .await;
    assert_eq!(nobody.code(), "not_found");
    let as_user = post_idem(&t, &path, &u.access, Some("k-6"), body).await;
    assert_eq!(as_user.code(), "forbidden");
    assert_eq!(coins(&t, &u).await, 500, "no refused request moved a coin");

    let down = post_idem(
        &t,
        &path,
        &admin.access,
        Some("k-7"),
        json!({"amount": -200, "reason": "correction"}),
    )
    .await;
    assert_eq!(down.body["balance"], 300);
    let history = t
        .get("/v1/me/balance/transactions?limit=1", &u.access)
        .await;
    assert_eq!(history.body["items"][0]["delta"], -200);
    assert_eq!(history.body["items"][0]["kind"], "adjustment");
    let next = history.body["nextCursor"].as_str().unwrap().to_owned();
    let older = t
        .get(
            &format!("/v1/me/balance/transactions?limit=1&cursor={next}"),
            &u.access,
        )
        .await;
    assert_eq!(older.body["items"][0]["delta"], 500);
    assert_eq!(
        t.get("/v1/me/balance/transactions?cursor=abc", &u.access)
            .await
            .code(),
        "validation_failed"
    );
    let sys = t
        .get(
            "/v1/admin/accounts/system:adjustments/transactions",
            &admin.access,
        )
        .await;
    assert_eq!(sys.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        t.get("/v1/admin/accounts/system:nope/transactions", &admin.access)
            .await
            .code(),
        "validation_failed"
    );
    let all = t
        .get(&format!("/v1/admin/balances/{}", u.user_id), &admin.access)
        .await;
    assert_eq!(
        all.body,
        json!({"wallet": 300, "held": 0, "earnings": 0, "payoutHold": 0, "inDebt": false})
    );
}

pub async fn make_gift(t: &TestApp, admin: &Tokens, price: i64, share: u8) -> String {
    let r = t
        .post("/v1/admin/gifts", Some(&admin.access), json!({"name": "Rose", "price": price, "streamerSharePercent": share, "platforms": ["ios", "android"]}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_gift_moves_the_price_to_the_streamer_and_the_platform_exactly_once() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let sender = t.user().await;
    let streamer = t.with_role(&admin, "streamer").await;
    let plain = t.user().await;
    credit(&t, &admin, &sender.user_id, 150, "wallet").await;
    let gift = make_gift(&t, &admin, 99, 60).await;

    let send = |key: &'static str, to: String| {
        let t = &t;
        let token = sender.access.clone();
        let gift = gift.clone();
        async move {
            post_idem(
                t,
                "/v1/gifts/send",
                &token,
                Some(key),
                json!({"giftId": gift, "toUserId": to}),
            )
            .await
        }
    };
    let r = send("g-1", streamer.user_id.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // 60% of 99 is 59.4: the streamer gets 59, the platform keeps 40.
    assert_eq!(
        (r.body["streamerCoins"].as_i64(), r.body["balance"].as_i64()),
        (Some(59), Some(51))
    );
    let retry = send("g-1", streamer.user_id.clone()).await;
    assert_eq!(retry.body, r.body);
    assert_eq!(coins(&t, &sender).await, 51);
    let earnings = t.get("/v1/me/earnings", &streamer.access).await;
    assert_eq!(earnings.body["coins"], 59);
    let revenue = t
        .get(
            "/v1/admin/accounts/system:platform_revenue/transactions",
            &admin.access,
        )
        .await;
    assert_eq!(revenue.body["items"][0]["amount"], 40);

    let short = send("g-2", streamer.user_id.clone()).await;
    assert_eq!(
        (short.status.as_u16(), short.code()),
        (402, "insufficient_balance")
    );
    let to_user = send("g-3", plain.user_id.clone()).await;
    assert_eq!(to_user.code(), "forbidden");
    let to_self = send("g-4", sender.user_id.clone()).await;
    assert_eq!(to_self.code(), "validation_failed");
    let no_key = post_idem(
        &t,
        "/v1/gifts/send",
        &sender.access,
        None,
        json!({"giftId": gift, "toUserId": streamer.user_id}),
    )
    .await;
    assert_eq!(no_key.code(), "idempotency_key_required");
    let unknown = post_idem(
        &t,
        "/v1/gifts/send",
        &sender.access,
        Some("g-5"),
        json!({"giftId": "none", "toUserId": streamer.user_id}),
    )
    .await;
    assert_eq!(unknown.code(), "not_found");
    assert_eq!(coins(&t, &sender).await, 51, "no refused gift moved a coin");
    assert_eq!(
        t.get("/v1/me/earnings", &streamer.access).await.body["coins"],
        59
    );

    let log = t
        .get("/v1/admin/events?type=gift_sent", &admin.access)
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one event for one gift");
    assert_eq!(items[0]["data"]["price"], 99);

    // Catalog: per platform, inactive ones hidden from clients.
    t.post(
        "/v1/admin/gifts",
        Some(&admin.access),
        json!({"name": "Web only", "price": 5, "streamerSharePercent": 50, "platforms": ["web"]}),
    )
    .await;
    let r = t.call(Method::PUT, &format!("/v1/admin/gifts/{gift}"), Some(&admin.access), Some(json!({"name": "Rose", "price": 99, "streamerSharePercent": 60, "platforms": ["ios"], "active": false}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        t.get("/v1/gifts?platform=ios", &sender.access).await.body["items"],
        json!([])
    );
    assert_eq!(
        t.get("/v1/gifts?platform=web", &sender.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.get("/v1/admin/gifts", &admin.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bad = t
        .post(
            "/v1/admin/gifts",
            Some(&admin.access),
            json!({"name": "", "price": 5, "streamerSharePercent": 50, "platforms": []}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let bad = t
        .post(
            "/v1/admin/gifts",
            Some(&admin.access),
            json!({"name": "X", "price": -5, "streamerSharePercent": 50, "platforms": []}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let bad = t
        .post(
            "/v1/admin/gifts",
            Some(&admin.access),
            json!({"name": "X", "price": 5, "streamerSharePercent": 101, "platforms": []}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/v1/admin/gifts/{gift}"),
            Some(&admin.access),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/v1/admin/gifts/{gift}"),
            Some(&admin.access),
            None
        )
        .await
        .code(),
        "not_found"
    );
}

#[tokio::test]
async fn payouts_are_held_then_approved_rejected_or_paid() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let s = t.with_role(&admin, "streamer").await;
    crate::mission::verify_kyc(&t, &admin, &s).await;
    credit(&t, &admin, &s.user_id, 5000, "earnings").await;
    let ask = |key: &'static str, amount: i64| {
        let (t, token) = (&t, s.access.clone());
        async move {
            post_idem(
                t,
                "/v1/me/payouts",
                &token,
                Some(key),
                json!({"amount": amount}),
            )
            .await
        }
    };
    assert_eq!(
        ask("p-0", 2000).await.code(),
        "validation_failed",
        "payout details are needed first"
    );
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&s.access),
        Some(json!({"payoutDetails": {"method": "paypal", "account": "s@example.com", "holderName": "S"}})),
    )
    .await;
    assert_eq!(
        ask("p-1", 999).await.code(),
        "validation_failed",
        "below the minimum"
    );
    assert_eq!(ask("p-2", 5001).await.code(), "insufficient_balance");
    let p = ask("p-3", 2000).await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["state"], "requested");
    assert_eq!(
        ask("p-3", 2000).await.body["id"],
        p.body["id"],
        "idempotent"
    );
    assert_eq!(ask("p-3", 2500).await.code(), "idempotency_conflict");
    let no_key = post_idem(
        &t,
        "/v1/me/payouts",
        &s.access,
        None,
        json!({"amount": 2000}),
    )
    .await;
    assert_eq!(no_key.code(), "idempotency_key_required");
    let bad = post_idem(
        &t,
        "/v1/me/payouts",
        &s.access,
        Some("p-x"),
        json!({"amount": "all"}),
    )
    .await;
    assert_eq!(bad.code(), "validation_failed");
    let e = t.get("/v1/me/earnings", &s.access).await;
    assert_eq!(
        (e.body["coins"].as_i64(), e.body["pendingPayouts"].as_i64()),
        (Some(3000), Some(2000))
    );

    let id = p.body["id"].as_str().unwrap();
    let queue = t.get("/v1/admin/payouts", &admin.access).await;
    assert_eq!(queue.body["items"][0]["id"], id);
    assert_eq!(
        t.post(
            &format!("/v1/admin/payouts/{id}/paid"),
            Some(&admin.access),
            json!({})
        )
        .await
        .code(),
        "conflict"
    );
    let approved = t
        .post(
            &format!("/v1/admin/payouts/{id}/approve"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(
        t.post(
            &format!("/v1/admin/payouts/{id}/approve"),
            Some(&admin.access),
            json!({})
        )
        .await
        .code(),
        "conflict"
    );
    let paid = t
        .post(
            &format!("/v1/admin/payouts/{id}/paid"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(paid.body["state"], "paid");
    let e = t.get("/v1/me/earnings", &s.access).await;
    assert_eq!(
        (e.body["coins"].as_i64(), e.body["pendingPayouts"].as_i64()),
        (Some(3000), Some(0))
    );
    let out = t
        .get(
            "/v1/admin/accounts/system:payouts/transactions",
            &admin.access,
        )
        .await;
    assert_eq!(out.body["items"][0]["amount"], 2000);

    let p2 = ask("p-4", 1000).await;
    let id2 = p2.body["id"].as_str().unwrap();
    let rejected = t
        .post(
            &format!("/v1/admin/payouts/{id2}/reject"),
            Some(&admin.access),
            json!({"reason": "details wrong"}),
        )
        .await;
    assert_eq!(
        (
            rejected.body["state"].as_str(),
            rejected.body["reason"].as_str()
        ),
        (Some("rejected"), Some("details wrong"))
    );
    let e = t.get("/v1/me/earnings", &s.access).await;
    assert_eq!(
        (e.body["coins"].as_i64(), e.body["pendingPayouts"].as_i64()),
        (Some(3000), Some(0))
    );
    let mine = t.get("/v1/me/payouts", &s.access).await;
    let states: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["rejected", "paid"]);
    let audit = t.get("/v1/admin/audit?limit=3", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["payout.rejected", "payout.paid", "payout.approved"]
    );
}

#[tokio::test]
async fn holds_settle_release_and_expire_by_themselves() {
    use duet::domains::balance::{self, model::*};
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let s = t.with_role(&admin, "streamer").await;
    credit(&t, &admin, &u.user_id, 300, "wallet").await;
    let store = t.app().ctx.store.clone();
    let (uid, sid) = (u.user_id.clone(), s.user_id.clone());
    let hold = store
        .write(move |tx| balance::hold(tx, &uid, 200, "call:1", Some(60_000)))
        .await
        .unwrap();
    assert_eq!(
        t.get("/v1/me/balance", &u.access).await.body,
        json!({"coins": 100, "held": 200, "inDebt": false})
    );
    let over = {
        let id = hold.id.clone();
        let sid = sid.clone();
        store
            .write(move |tx| {
                balance::settle(
                    tx,
                    &id,
                    201,
                    Account::earnings(&sid),
                    TransferKind::CallEarning,
                    "call:1",
                )
            })
            .await
    };
    assert_eq!(
        over.unwrap_err().code,
        duet::core::error::Code::InsufficientBalance
    );
    let id = hold.id.clone();
    store
        .write(move |tx| {
            balance::settle(
                tx,
                &id,
                120,
                Account::earnings(&sid),
                TransferKind::CallEarning,
                "call:1",
            )
        })
        .await
        .unwrap();
    let id = hold.id.clone();
    store
        .write(move |tx| balance::release(tx, &id))
        .await
        .unwrap();
    assert_eq!(
        t.get("/v1/me/balance", &u.access).await.body,
        json!({"coins": 180, "held": 0, "inDebt": false})
    );
    assert_eq!(t.get("/v1/me/earnings", &s.access).await.body["coins"], 120);

    let uid = u.user_id.clone();
    store
        .write(move |tx| balance::hold(tx, &uid, 80, "call:2", Some(60_000)))
        .await
        .unwrap();
    assert_eq!(
        balance::release_expired(&t.app().ctx).await.unwrap(),
        0,
        "not yet"
    );
    t.clock.advance_ms(60_001);
    assert_eq!(balance::release_expired(&t.app().ctx).await.unwrap(), 1);
    assert_eq!(
        t.get("/v1/me/balance", &u.access).await.body,
        json!({"coins": 180, "held": 0, "inDebt": false})
    );
    let report = store
        .read(|rtx| balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test]
async fn ledger_verify_passes_on_a_real_data_directory_and_catches_tampering() {
    let mut t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    for amount in [100, 250, -50] {
        let key = duet::core::ids::new_id();
        post_idem(
            &t,
            &format!("/v1/admin/balances/{}/adjust", u.user_id),
            &admin.access,
            Some(&key),
            json!({"amount": amount, "reason": "r"}),
        )
        .await;
    }
    let dir = t.config.server.data_dir.clone();
    t.restart().await;
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.entries, report.wallet_coins), (3, 300));
    drop(store);
    t.stop_for_offline().await;

    let bin = env!("CARGO_BIN_EXE_duet");
    let out = std::process::Command::new(bin)
        .args(["ledger", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ledger OK"));

    // Change one amount behind the ledger's back.
    {
        use duet::domains::balance::model::Transfer;
        use redb::{ReadableDatabase, ReadableTable};
        // An outsider with the file: the journal's table by its stored name.
        const LEDGER_JOURNAL: redb::TableDefinition<u64, &[u8]> =
            redb::TableDefinition::new("ledger_journal");
        let db = redb::Database::open(dir.join("duet.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut j = txn.open_table(LEDGER_JOURNAL).unwrap();
            let mut t: Transfer =
                rmp_serde::from_slice(j.get(2).unwrap().unwrap().value()).unwrap();
            t.amount += 1;
            let bytes = rmp_serde::to_vec_named(&t).unwrap();
            j.insert(2, bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let _ = db.begin_read();
    }
    let out = std::process::Command::new(bin)
        .args(["ledger", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("entry 2: hash does not match its content"),
        "{text}"
    );
    assert!(text.contains("stored balance"), "{text}");
}
