//! Mission control over real HTTP: reports and their resolutions, KYC, agencies, table
//! browsing and the streamer portal.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gallery::approved_photo;
use crate::support::*;

async fn report(t: &TestApp, who: &Tokens, kind: &str, target: &str, reason: &str) -> Reply {
    t.post(
        "/v1/reports",
        Some(&who.access),
        json!({"targetKind": kind, "targetId": target, "reason": reason, "comment": "look"}),
    )
    .await
}

async fn resolve(t: &TestApp, staff: &Tokens, report_id: &str, body: Value) -> Reply {
    t.post(
        &format!("/v1/admin/reports/{report_id}/resolution"),
        Some(&staff.access),
        body,
    )
    .await
}

#[tokio::test]
async fn reports_reach_moderators_who_remove_warn_and_ban_audited() {
    let t = TestApp::spawn_with(|c| c.moderation.reports_per_day_max = 5).await;
    let admin = t.admin().await;
    let moderator = t.with_role(&admin, "moderator").await;
    let streamer = t.with_role(&admin, "streamer").await;
    let (u, u2) = (t.user().await, t.user().await);

    // A profile, twice by one reporter: the same open report.
    let first = report(&t, &u, "profile", &streamer.user_id, "harassment").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["state"], "open");
    assert_eq!(first.body["ownerId"], streamer.user_id.as_str());
    let again = report(&t, &u, "profile", &streamer.user_id, "harassment").await;
    assert_eq!(again.body["id"], first.body["id"]);
    let second = report(&t, &u2, "profile", &streamer.user_id, "spam").await;
    assert_eq!(second.status, 200);
    // Oneself, and what does not exist.
    let r = report(&t, &u, "profile", &u.user_id, "spam").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    let r = report(
        &t,
        &u,
        "profile",
        "01890000-0000-7000-8000-000000000000",
        "spam",
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));

    // A photo only once the reporter can see it: a queued photo is its owner's alone.
    let queued = {
        let r = t
            .http
            .post(format!("{}/v1/media?kind=photo", t.base))
            .bearer_auth(&streamer.access)
            .header("content-type", "image/png")
            .body(crate::media::png(4, 4, [1, 2, 3]))
            .send()
            .await
            .unwrap();
        Reply::from(r).await.body["id"].as_str().unwrap().to_owned()
    };
    let r = report(&t, &u, "photo", &queued, "nudity").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
    let photo = approved_photo(&t, &streamer).await;
    let photo_report = report(&t, &u, "photo", &photo, "nudity").await;
    assert_eq!(photo_report.status, 200, "{:?}", photo_report.body);

    // A message only by the person it was sent to.
    let sent = t
        .post(
            &format!("/v1/chats/{}/messages", u.user_id),
            Some(&streamer.access),
            json!({"clientMessageId": "m1", "text": "rude words"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let chat = sent.body["chatId"].as_str().unwrap().to_owned();
    let target = format!("{chat}:{}", sent.body["seq"]);
    let r = report(&t, &u2, "message", &target, "harassment").await;
    assert_eq!(
        r.status, 404,
        "an outsider cannot report a message they never saw"
    );
    let r = report(&t, &streamer, "message", &target, "harassment").await;
    assert_eq!(r.status, 404, "nor can its sender");
    let message_report = report(&t, &u, "message", &target, "harassment").await;
    assert_eq!(message_report.status, 200, "{:?}", message_report.body);
    // One message, one item, however its seq is spelled.
    let padded = format!("{chat}:0{}", sent.body["seq"]);
    let again = report(&t, &u, "message", &padded, "harassment").await;
    assert_eq!(
        again.body["id"], message_report.body["id"],
        "{:?}",
        again.body
    );

    // The daily limit (5): u has filed 3 reports; two more profiles pass, the next is refused.
    for _ in 0..2 {
        let other = t.user().await;
        assert_eq!(
            report(&t, &u, "profile", &other.user_id, "fake")
                .await
                .status,
            200
        );
    }
    let other = t.user().await;
    let r = report(&t, &u, "profile", &other.user_id, "fake").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));

    // Only staff see the queue.
    assert_eq!(t.get("/v1/admin/reports", &u.access).await.status, 403);
    let queue = t
        .get("/v1/admin/reports?limit=200", &moderator.access)
        .await;
    assert_eq!(queue.status, 200, "{:?}", queue.body);
    assert_eq!(queue.body["items"].as_array().unwrap().len(), 6);

    // Removing the photo rejects it; removing the message blanks it.
    let r = resolve(
        &t,
        &moderator,
        photo_report.body["id"].as_str().unwrap(),
        json!({"action": "remove_item", "note": "nudity"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["state"], "actioned");
    let item = t.get(&format!("/v1/media/{photo}"), &streamer.access).await;
    assert_eq!(item.body["status"], "rejected", "{:?}", item.body);
    let r = resolve(
        &t,
        &moderator,
        message_report.body["id"].as_str().unwrap(),
        json!({"action": "remove_item"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let msgs = t
        .get(&format!("/v1/chats/{chat}/messages"), &u.access)
        .await;
    let m = msgs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["seq"] == sent.body["seq"])
        .unwrap()
        .clone();
    assert_eq!(m["deleted"], true, "{m:?}");
    assert!(m["text"].is_null());

    // A profile cannot be removed; a warning needs a note, then settles both reports on it.
    let profile_report = first.body["id"].as_str().unwrap();
    let r = resolve(
        &t,
        &moderator,
        profile_report,
        json!({"action": "remove_item"}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = resolve(&t, &moderator, profile_report, json!({"action": "warn"})).await;
    assert_eq!(r.status, 400);
    let r = resolve(
        &t,
        &moderator,
        profile_report,
        json!({"action": "warn", "note": "Be kind in chats."}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        2,
        "both reports on the profile"
    );
    let r = resolve(
        &t,
        &moderator,
        second.body["id"].as_str().unwrap(),
        json!({"action": "dismiss"}),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "conflict"));
    let warned = until("the warning notification", || async {
        let n = t.get("/v1/me/notifications", &streamer.access).await;
        n.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == "moderation_warning")
            .cloned()
    })
    .await;
    assert_eq!(warned["body"], "Be kind in chats.");

    // A ban: the banned person is refused from then on; reporting alone banned nobody.
    let r = report(&t, &u2, "profile", &streamer.user_id, "fake").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        t.get("/v1/me/profile", &streamer.access).await.status,
        200,
        "a report alone does nothing"
    );
    let r = resolve(
        &t,
        &moderator,
        r.body["id"].as_str().unwrap(),
        json!({"action": "ban", "note": "fake profile"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let me = t.get("/v1/me/profile", &streamer.access).await;
    assert_eq!(me.code(), "account_banned");

    // Staff answer to admins: a moderator neither bans an admin nor decides about themselves.
    let fresh = t.user().await;
    let r = report(&t, &fresh, "profile", &admin.user_id, "fake").await;
    let r = resolve(
        &t,
        &moderator,
        r.body["id"].as_str().unwrap(),
        json!({"action": "ban", "note": "gone"}),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    assert_eq!(
        t.get("/v1/admin/audit?limit=1", &admin.access).await.status,
        200,
        "the admin is not banned"
    );
    let r = report(&t, &fresh, "profile", &moderator.user_id, "fake").await;
    let r = resolve(
        &t,
        &moderator,
        r.body["id"].as_str().unwrap(),
        json!({"action": "dismiss"}),
    )
    .await;
    assert_eq!(r.code(), "conflict", "not about themselves");

    // Every resolution is in the audit log under its moderator.
    let audit = t.get("/v1/admin/audit?limit=200", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["actor"] == moderator.user_id.as_str())
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for a in [
        "report.remove_item",
        "report.warn",
        "report.ban",
        "media.reject",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // Reporters see what became of their reports, not who decided.
    let mine = t.get("/v1/me/reports", &u.access).await;
    let photo_mine = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == photo_report.body["id"])
        .unwrap()
        .clone();
    assert_eq!(photo_mine["state"], "actioned");
    assert_eq!(photo_mine["resolution"]["action"], "remove_item");
    assert!(photo_mine["resolution"]["by"].is_null());
    let resolved = t
        .get("/v1/admin/reports?state=actioned", &moderator.access)
        .await;
    assert_eq!(resolved.body["items"].as_array().unwrap().len(), 5);
    let _ = Method::GET;
}

/// A `kyc_document` upload of `who`'s: a small PNG of one colour.
async fn kyc_document(t: &TestApp, who: &Tokens, rgb: [u8; 3]) -> String {
    let r = t
        .http
        .post(format!("{}/v1/media?kind=kyc_document", t.base))
        .bearer_auth(&who.access)
        .header("content-type", "image/png")
        .body(crate::media::png(4, 4, rgb))
        .send()
        .await
        .unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn submit_kyc(t: &TestApp, who: &Tokens, docs: [&str; 3]) -> Reply {
    t.post(
        "/v1/me/kyc",
        Some(&who.access),
        json!({"idFront": docs[0], "idBack": docs[1], "selfie": docs[2]}),
    )
    .await
}

/// Submits documents for `streamer` and has an admin verify them: what payouts need.
pub(crate) async fn verify_kyc(t: &TestApp, admin: &Tokens, streamer: &Tokens) {
    let mut docs = Vec::new();
    for rgb in [[1, 1, 1], [2, 2, 2], [3, 3, 3]] {
        docs.push(kyc_document(t, streamer, rgb).await);
    }
    let r = submit_kyc(t, streamer, [&docs[0], &docs[1], &docs[2]]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let case = r.body["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/v1/admin/kyc/{case}/verify"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn kyc_cases_are_decided_by_moderators_gate_payouts_and_lose_their_documents_later() {
    let t = TestApp::spawn_with(|c| c.payouts.kyc_document_retention_days = 1).await;
    let admin = t.admin().await;
    let moderator = t.with_role(&admin, "moderator").await;
    let s = t.with_role(&admin, "streamer").await;
    let other = t.with_role(&admin, "streamer").await;
    crate::coins::credit(&t, &admin, &s.user_id, 5000, "earnings").await;
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&s.access),
        Some(json!({"payoutDetails": {"method": "paypal", "account": "s@example.com", "holderName": "S"}})),
    )
    .await;
    let payout = |key: &'static str| {
        let token = s.access.clone();
        let t = &t;
        async move {
            crate::coins::post_idem(
                t,
                "/v1/me/payouts",
                &token,
                Some(key),
                json!({"amount": 1000}),
            )
            .await
        }
    };
    let r = payout("p-1").await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "kyc_required"));

    let (front, back, selfie) = (
        kyc_document(&t, &s, [9, 0, 0]).await,
        kyc_document(&t, &s, [0, 9, 0]).await,
        kyc_document(&t, &s, [0, 0, 9]).await,
    );
    let theirs = kyc_document(&t, &other, [5, 5, 5]).await;
    let photo = approved_photo(&t, &s).await;
    // Someone else's document, a photo, the same document twice: refused.
    for docs in [
        [&front, &back, &theirs],
        [&front, &back, &photo],
        [&front, &front, &selfie],
    ] {
        let r = submit_kyc(&t, &s, [docs[0], docs[1], docs[2]]).await;
        assert_eq!(r.code(), "validation_failed", "{:?}", r.body);
    }
    let first = submit_kyc(&t, &s, [&front, &back, &selfie]).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["state"], "pending");
    assert_eq!(
        submit_kyc(&t, &s, [&front, &back, &selfie]).await.code(),
        "conflict"
    );
    let mine = t.get("/v1/me/kyc", &s.access).await;
    assert_eq!(
        (
            mine.body["verified"].clone(),
            mine.body["case"]["state"].clone()
        ),
        (json!(false), json!("pending"))
    );
    // Documents are for their owner and moderators only.
    let u = t.user().await;
    assert_eq!(
        t.get(&format!("/v1/media/{front}/url"), &u.access)
            .await
            .status,
        404
    );
    assert_eq!(t.get("/v1/admin/kyc", &s.access).await.status, 403);

    // The moderator's queue and case, whose opening is audited.
    let case1 = first.body["id"].as_str().unwrap().to_owned();
    let queue = t.get("/v1/admin/kyc", &moderator.access).await;
    assert_eq!(
        queue.body["items"][0]["id"],
        case1.as_str(),
        "{:?}",
        queue.body
    );
    let detail = t
        .get(&format!("/v1/admin/kyc/{case1}"), &moderator.access)
        .await;
    assert_eq!(detail.status, 200, "{:?}", detail.body);
    let url = detail.body["documents"][0]["url"].as_str().unwrap();
    let file = t.http.get(format!("{}{url}", t.base)).send().await.unwrap();
    assert_eq!(file.status(), 200);

    // Rejected with a reason (one is required), then submitted again and verified.
    let reject = |case: String, body: Value| {
        let (t, token) = (&t, moderator.access.clone());
        async move {
            t.post(&format!("/v1/admin/kyc/{case}/reject"), Some(&token), body)
                .await
        }
    };
    assert_eq!(
        reject(case1.clone(), json!({})).await.code(),
        "validation_failed"
    );
    let r = reject(case1.clone(), json!({"reason": "the photo is blurred"})).await;
    assert_eq!(r.body["state"], "rejected", "{:?}", r.body);
    assert_eq!(
        reject(case1.clone(), json!({"reason": "again"}))
            .await
            .code(),
        "conflict"
    );
    let told = until("the rejection notification", || async {
        let n = t.get("/v1/me/notifications", &s.access).await;
        n.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == "kyc_status")
            .cloned()
    })
    .await;
    assert!(
        told["body"].as_str().unwrap().contains("blurred"),
        "{told:?}"
    );
    assert_eq!(payout("p-2").await.code(), "kyc_required");
    let second = submit_kyc(&t, &s, [&front, &back, &selfie]).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    let case2 = second.body["id"].as_str().unwrap().to_owned();
    let r = t
        .post(
            &format!("/v1/admin/kyc/{case2}/verify"),
            Some(&moderator.access),
            json!({}),
        )
        .await;
    assert_eq!(r.body["state"], "verified", "{:?}", r.body);
    let r = payout("p-3").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "requested");

    let audit = t.get("/v1/admin/audit?limit=200", &admin.access).await;
    let actions: Vec<String> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect();
    for a in ["kyc.view", "kyc.reject", "kyc.verify"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }

    // Past the retention the documents go; the decision stays.
    let ctx = t.app().ctx.clone();
    assert_eq!(
        duet::domains::mission_control::kyc::delete_expired_documents(&ctx)
            .await
            .unwrap(),
        0
    );
    t.clock.advance_ms(86_400_000);
    assert_eq!(
        duet::domains::mission_control::kyc::delete_expired_documents(&ctx)
            .await
            .unwrap(),
        2
    );
    let (s, moderator) = (t.refresh(&s).await, t.refresh(&moderator).await);
    assert_eq!(
        t.get(&format!("/v1/media/{front}"), &s.access).await.status,
        404
    );
    let mine = t.get("/v1/me/kyc", &s.access).await;
    assert_eq!(mine.body["verified"], true, "{:?}", mine.body);
    assert!(mine.body["case"]["documentsDeletedAt"].is_string());
    let detail = t
        .get(&format!("/v1/admin/kyc/{case2}"), &moderator.access)
        .await;
    assert!(
        detail.body["documents"][0]["url"].is_null(),
        "{:?}",
        detail.body
    );
}

#[tokio::test]
async fn an_agency_takes_its_exact_share_of_calls_and_gifts_and_asks_for_payouts() {
    let t = TestApp::spawn_with(|c| c.payouts.minimum_coins = 10).await;
    let admin = t.admin().await;
    let manager = t.user().await;
    let p = crate::calls::pair(&t, &admin, 1000).await;
    let agency = t
        .post(
            "/v1/admin/agencies",
            Some(&admin.access),
            json!({"name": "Stars", "commissionPercent": 30, "managerId": manager.user_id, "payoutDetails": "IBAN DE00 1234"}),
        )
        .await;
    assert_eq!(agency.status, 200, "{:?}", agency.body);
    let id = agency.body["id"].as_str().unwrap().to_owned();
    let r = t
        .post(
            "/v1/admin/agencies",
            Some(&admin.access),
            json!({"name": "Greedy", "commissionPercent": 95}),
        )
        .await;
    assert_eq!(r.code(), "validation_failed");
    let assign = t
        .call(
            Method::PUT,
            &format!("/v1/admin/agencies/{id}/streamers/{}", p.streamer.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(assign.status, 204, "{:?}", assign.body);
    let other = t
        .post(
            "/v1/admin/agencies",
            Some(&admin.access),
            json!({"name": "Other", "commissionPercent": 10}),
        )
        .await;
    let r = t
        .call(
            Method::PUT,
            &format!(
                "/v1/admin/agencies/{}/streamers/{}",
                other.body["id"].as_str().unwrap(),
                p.streamer.user_id
            ),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.code(), "conflict", "one agency at a time");

    // A 60-second call earns 30 on connect and 30 at 60 s: each split 21 / 9.
    let end = minute_call(&t, &p).await;
    assert_eq!(end.body["earned"], 60, "{:?}", end.body);
    // A gift of 100 with a 50% streamer share: 50, split 35 / 15.
    let gift = crate::coins::make_gift(&t, &admin, 100, 50).await;
    let send = |key: &'static str| send_gift(&t, &p, &gift, key);
    assert_eq!(send("g-1").await.status, 200);
    let earnings = t.get("/v1/me/earnings", &p.streamer.access).await;
    assert_eq!(earnings.body["coins"], 21 + 21 + 35, "{:?}", earnings.body);
    let mine = t.get("/v1/agency", &manager.access).await;
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    assert_eq!(mine.body["balance"], 9 + 9 + 15);
    assert_eq!(
        mine.body["streamers"][0]["userId"],
        p.streamer.user_id.as_str()
    );
    assert!(mine.body["nextAfter"].is_null());
    assert_eq!(t.get("/v1/agency", &p.user.access).await.status, 404);
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/users/{}/role", manager.user_id),
            Some(&admin.access),
            Some(json!({"role": "streamer"})),
        )
        .await;
    assert_eq!(r.code(), "conflict", "a manager does not become a streamer");

    // The manager asks for a payout of the agency's coins; an admin approves it.
    let ask = |key: &'static str, who: &Tokens, amount: i64| {
        let (t, token) = (&t, who.access.clone());
        async move {
            crate::coins::post_idem(
                t,
                "/v1/agency/payouts",
                &token,
                Some(key),
                json!({"amount": amount}),
            )
            .await
        }
    };
    assert_eq!(ask("a-0", &p.user, 20).await.status, 404, "not a manager");
    assert_eq!(
        ask("a-1", &manager, 34).await.code(),
        "insufficient_balance"
    );
    let payout = ask("a-2", &manager, 20).await;
    assert_eq!(payout.status, 200, "{:?}", payout.body);
    assert_eq!(payout.body["agencyId"], id.as_str());
    let mine = t.get("/v1/agency", &manager.access).await;
    assert_eq!(
        (
            mine.body["balance"].clone(),
            mine.body["payoutHold"].clone()
        ),
        (json!(13), json!(20))
    );
    let pid = payout.body["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/v1/admin/payouts/{pid}/approve"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(r.body["state"], "approved", "{:?}", r.body);
    let list = t.get("/v1/agency/payouts", &manager.access).await;
    assert_eq!(list.body["items"][0]["state"], "approved");

    // A new commission applies from then on; out of the agency, nothing is split.
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/agencies/{id}"),
            Some(&admin.access),
            Some(json!({"name": "Stars", "commissionPercent": 50, "managerId": manager.user_id, "payoutDetails": "IBAN DE00 1234"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(send("g-2").await.status, 200);
    let r = t
        .call(
            Method::DELETE,
            &format!("/v1/admin/agencies/{id}/streamers/{}", p.streamer.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(send("g-3").await.status, 200);
    let earnings = t.get("/v1/me/earnings", &p.streamer.access).await;
    assert_eq!(earnings.body["coins"], 77 + 25 + 50);
    let mine = t.get("/v1/agency", &manager.access).await;
    assert_eq!(mine.body["balance"], 13 + 25);

    // The agency's report over the period: its commissions and its streamers' days.
    t.caught_up().await;
    let report = t
        .get(
            &format!("/v1/admin/agencies/{id}/report?from=2026-03-01&to=2026-03-01"),
            &admin.access,
        )
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    assert_eq!(report.body["commissionCoins"], 9 + 9 + 15 + 25);
    assert_eq!(
        report.body["streamers"],
        json!([]),
        "the streamer left the agency"
    );
    let r = t
        .call(
            Method::PUT,
            &format!("/v1/admin/agencies/{id}/streamers/{}", p.streamer.user_id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let report = t
        .get(
            "/v1/agency/report?from=2026-03-01&to=2026-03-01",
            &manager.access,
        )
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    let totals = &report.body["streamers"][0]["totals"];
    assert_eq!(
        (
            totals["callCoins"].clone(),
            totals["giftCoins"].clone(),
            totals["calls"].clone(),
            totals["gifts"].clone()
        ),
        (json!(42), json!(35 + 25 + 50), json!(1), json!(3)),
        "{totals:?}"
    );
    assert_eq!(t.get("/v1/agency/report", &p.user.access).await.status, 404);

    // The journal proves every split.
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let audit = t.get("/v1/admin/audit?limit=200", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for a in [
        "agency.create",
        "agency.update",
        "agency.assign",
        "agency.unassign",
        "payout.approved",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn admins_browse_any_table_read_only_bounded_redacted_and_audited() {
    let t = TestApp::spawn_with(|c| c.admin.rows_scanned_max = 3).await;
    let admin = t.admin().await;
    let moderator = t.with_role(&admin, "moderator").await;
    let ada = t
        .email_account("ada@example.com", "a long password 1")
        .await;
    t.call(
        Method::PATCH,
        "/v1/me/profile",
        Some(&ada.access),
        Some(json!({"displayName": "Ada Lovelace"})),
    )
    .await;

    assert_eq!(
        t.get("/v1/admin/tables", &moderator.access).await.status,
        403
    );
    let tables = t.get("/v1/admin/tables", &admin.access).await;
    assert_eq!(tables.status, 200, "{:?}", tables.body);
    let users = tables.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "user_by_id")
        .unwrap()
        .clone();
    assert_eq!(users["rows"], 3, "admin, moderator and Ada");
    assert!(tables.body["items"].as_array().unwrap().len() > 100);

    // A record by a field, decoded with its field names; the password hash never shows.
    let page = t
        .get(
            "/v1/admin/tables/user_by_id?where=email:ada@example.com",
            &admin.access,
        )
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(
        page.body["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        page.body
    );
    let row = &page.body["items"][0];
    assert_eq!(row["key"], ada.user_id.as_str());
    assert_eq!(row["value"]["id"], ada.user_id.as_str());
    assert_eq!(row["value"]["password_hash"], "[redacted]");
    // A composite key filtered on its part.
    let ids = t
        .get(
            &format!(
                "/v1/admin/tables/user_identity_by_user?where=$key.0:{}",
                ada.user_id
            ),
            &admin.access,
        )
        .await;
    assert_eq!(
        ids.body["items"][0]["key"][1], "email:ada@example.com",
        "{:?}",
        ids.body
    );

    // Paging in key order; the scan bound (3 here) cuts a fruitless search short with a cursor.
    let first = t
        .get("/v1/admin/tables/user_by_id?limit=1", &admin.access)
        .await;
    let next = first.body["nextFrom"].as_str().unwrap().to_owned();
    let second = t
        .get(
            &format!("/v1/admin/tables/user_by_id?limit=1&from={next}"),
            &admin.access,
        )
        .await;
    assert_ne!(
        first.body["items"][0]["key"],
        second.body["items"][0]["key"]
    );
    let none = t
        .get(
            "/v1/admin/tables/event_log?where=type:nothing_like_this",
            &admin.access,
        )
        .await;
    assert_eq!(none.status, 200, "{:?}", none.body);
    assert_eq!(
        (none.body["scanned"].clone(), none.body["cutShort"].clone()),
        (json!(3), json!(true))
    );
    assert!(none.body["nextFrom"].is_string());
    // Cursors that are not ours, unknown tables, malformed conditions.
    for (path, code) in [
        (
            "/v1/admin/tables/user_by_id?where=password_hash:x",
            "validation_failed",
        ),
        ("/v1/admin/tables/user_by_id?from=zz", "validation_failed"),
        ("/v1/admin/tables/user_by_id?from=ff", "validation_failed"),
        (
            "/v1/admin/tables/user_by_id?where=nocolon",
            "validation_failed",
        ),
        ("/v1/admin/tables/no_such_table", "not_found"),
    ] {
        assert_eq!(t.get(path, &admin.access).await.code(), code, "{path}");
    }

    // The user search, by email, id and a part of the name.
    for (q, by) in [
        ("ADA@example.com".to_owned(), "email"),
        (ada.user_id.clone(), "id"),
        ("lovel".to_owned(), "displayName"),
    ] {
        let r = t
            .get(&format!("/v1/admin/users?q={q}"), &admin.access)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["items"][0]["userId"], ada.user_id.as_str(), "{q}");
        assert_eq!(r.body["items"][0]["matchedBy"], by);
    }

    // Every look is in the audit log, with the records it returned.
    let audit = t.get("/v1/admin/audit?limit=200", &admin.access).await;
    let reads: Vec<Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "table.read" && a["target"] == "user_by_id")
        .cloned()
        .collect();
    assert!(
        reads
            .iter()
            .any(|a| a["detail"]["keys"] == json!([ada.user_id])),
        "{reads:?}"
    );
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "user.search")
    );
}

#[tokio::test]
async fn the_streamer_portal_shows_days_and_the_rules_to_accept() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let p = crate::calls::pair(&t, &admin, 1000).await;
    minute_call(&t, &p).await;
    let gift = crate::coins::make_gift(&t, &admin, 100, 50).await;
    let send = |key: &'static str| send_gift(&t, &p, &gift, key);
    assert_eq!(send("g-1").await.status, 200);
    t.clock.advance_ms(86_400_000);
    let streamer = t.refresh(&p.streamer).await;
    let user = t.refresh(&p.user).await;
    let r = crate::coins::post_idem(
        &t,
        "/v1/gifts/send",
        &user.access,
        Some("g-2"),
        json!({"giftId": gift, "toUserId": streamer.user_id}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.caught_up().await;

    let page = t
        .get(
            "/v1/streamer/days?from=2026-02-28&to=2026-03-02",
            &streamer.access,
        )
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let days = page.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["date"], "2026-02-28");
    assert_eq!(days[0]["calls"], 0);
    let d1 = &days[1];
    assert_eq!(
        (
            d1["callCoins"].clone(),
            d1["giftCoins"].clone(),
            d1["calls"].clone(),
            d1["callSeconds"].clone(),
            d1["gifts"].clone()
        ),
        (json!(60), json!(50), json!(1), json!(60), json!(1)),
        "{d1:?}"
    );
    assert_eq!(
        (days[2]["giftCoins"].clone(), days[2]["gifts"].clone()),
        (json!(50), json!(1))
    );
    assert_eq!(page.body["totals"]["giftCoins"], 100);
    assert_eq!(page.body["earnings"], 160);
    // The default period is the last 30 days, today included.
    let default = t.get("/v1/streamer/days", &streamer.access).await;
    assert_eq!(default.body["days"].as_array().unwrap().len(), 30);
    assert_eq!(default.body["to"], "2026-03-02");
    for q in [
        "from=2026-03-02&to=2026-03-01",
        "from=2025-01-01&to=2026-03-01",
        "from=yesterday",
    ] {
        let r = t
            .get(&format!("/v1/streamer/days?{q}"), &streamer.access)
            .await;
        assert_eq!(r.code(), "validation_failed", "{q}");
    }
    assert_eq!(t.get("/v1/streamer/days", &user.access).await.status, 403);

    // The rules: published by an admin as versions, accepted by streamers.
    let rules = t.get("/v1/streamer/rules", &streamer.access).await;
    assert!(rules.body["version"].is_null(), "{:?}", rules.body);
    let accept = |version: u64| {
        let (t, token) = (&t, streamer.access.clone());
        async move {
            t.post(
                "/v1/streamer/rules/acceptance",
                Some(&token),
                json!({"version": version}),
            )
            .await
        }
    };
    assert_eq!(accept(1).await.status, 404);
    let admin = t.refresh(&admin).await;
    let publish = |text: &'static str| {
        let (t, token) = (&t, admin.access.clone());
        async move {
            t.call(
                Method::PUT,
                "/v1/admin/streamer-rules",
                Some(&token),
                Some(json!({"text": text})),
            )
            .await
        }
    };
    let r = publish("# Rules\n\nBe **kind**.").await;
    assert_eq!(
        (r.status.as_u16(), r.body["version"].clone()),
        (200, json!(1)),
        "{:?}",
        r.body
    );
    assert_eq!(publish("   ").await.code(), "validation_failed");
    let same = publish("# Rules\n\nBe **kind**.").await;
    assert_eq!(
        same.body["version"], 1,
        "the same text again publishes nothing"
    );
    let rules = t.get("/v1/streamer/rules", &streamer.access).await;
    assert_eq!(
        (
            rules.body["text"].clone(),
            rules.body["acceptedCurrent"].clone()
        ),
        (json!("# Rules\n\nBe **kind**."), json!(false))
    );
    assert_eq!(accept(2).await.code(), "conflict");
    let r = accept(1).await;
    assert_eq!(
        (
            r.body["acceptedVersion"].clone(),
            r.body["acceptedCurrent"].clone()
        ),
        (json!(1), json!(true))
    );
    publish("# Rules\n\nBe kinder.").await;
    let rules = t.get("/v1/streamer/rules", &streamer.access).await;
    assert_eq!(
        (
            rules.body["version"].clone(),
            rules.body["acceptedVersion"].clone(),
            rules.body["acceptedCurrent"].clone()
        ),
        (json!(2), json!(1), json!(false))
    );
    assert_eq!(
        accept(1).await.code(),
        "conflict",
        "an old version can no longer be accepted"
    );
    let audit = t.get("/v1/admin/audit?limit=50", &admin.access).await;
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "streamer_rules.publish")
    );
}

/// A direct call of the pair, connected for 60 s (each second's timers run), hung up by the
/// user: its final state.
async fn minute_call(t: &TestApp, p: &crate::calls::Pair) -> Reply {
    let call = crate::calls::connect(t, p).await;
    for _ in 0..60 {
        t.clock.advance_ms(1000);
        crate::calls::run_timers(t).await;
    }
    crate::calls::act(t, &p.user, &call, "hangup").await
}

/// The pair's user sends `gift` to the pair's streamer under idempotency key `key`.
async fn send_gift(t: &TestApp, p: &crate::calls::Pair, gift: &str, key: &str) -> Reply {
    crate::coins::post_idem(
        t,
        "/v1/gifts/send",
        &p.user.access,
        Some(key),
        json!({"giftId": gift, "toUserId": p.streamer.user_id}),
    )
    .await
}
