//! ML with the real models (`ml-models/fetch` installs them; CI fetches them first): nudity
//! scores through the moderation thresholds, a full queue refused, the server without models.

use serde_json::json;

use crate::support::*;

/// Whether the models are installed; CI sets `ML_MODELS_REQUIRED` so that a missing model fails
/// the run instead of skipping these tests (not `DUET_*`: those are configuration).
fn models_here() -> bool {
    let here = std::path::Path::new("ml-models")
        .join(duet::ml::RUNTIME_LIBRARY)
        .is_file()
        && std::path::Path::new("ml-models")
            .join(duet::ml::NSFW_MODEL)
            .is_file();
    if !here && std::env::var_os("ML_MODELS_REQUIRED").is_some() {
        panic!("ML_MODELS_REQUIRED is set but ml-models/fetch has not installed the models");
    }
    here
}

async fn upload_png(t: &TestApp, who: &Tokens, png: Vec<u8>) -> Reply {
    let r = t
        .http
        .post(format!("{}/v1/media?kind=photo", t.base))
        .bearer_auth(&who.access)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

/// A clean picture: a gradient landscape of sky over grass.
fn landscape() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        if y < 140 {
            image::Rgb([90 + (y / 3) as u8, 150 + (x / 8) as u8, 230])
        } else {
            image::Rgb([40, 120 + (x / 6) as u8, 40])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn status_of(t: &TestApp, who: &Tokens, id: &str) -> String {
    until("the photo to be decided", || async {
        let r = t.get(&format!("/v1/media/{id}"), &who.access).await;
        let s = r.body["status"].as_str().unwrap_or_default().to_owned();
        (s != "pending").then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_clean_photo_scores_low_and_is_approved_by_the_thresholds() {
    if !models_here() {
        return;
    }
    let t = TestApp::spawn_with(|c| c.ml.enabled = true).await;
    let ready = t
        .http
        .get(format!("{}/readyz", t.base))
        .send()
        .await
        .unwrap();
    let text = ready.text().await.unwrap();
    assert!(text.contains("ml: on"), "{text}");
    let u = t.user().await;
    let r = upload_png(&t, &u, landscape()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&t, &u, &id).await, "approved");
    // The score itself, straight from the pool: low.
    let pool = t.app().ctx.ml.nsfw.clone().unwrap();
    let img = image::load_from_memory(&landscape()).unwrap();
    let score = tokio::task::spawn_blocking(move || pool.score_image(&img))
        .await
        .unwrap()
        .unwrap();
    assert!((0.0..0.2).contains(&score), "a landscape scored {score}");
}

#[tokio::test]
async fn a_score_over_the_threshold_rejects_and_between_them_queues_for_people() {
    if !models_here() {
        return;
    }
    // Thresholds set so that the test photo's (low) score crosses them: everything at or
    // above 0 is rejected.
    let t = TestApp::spawn_with(|c| {
        c.ml.enabled = true;
        c.media.photo_approve_below = 0.0;
        c.media.photo_reject_at = 0.0;
    })
    .await;
    let u = t.user().await;
    let r = upload_png(&t, &u, landscape()).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&t, &u, &id).await, "rejected");
    let notes = until("the rejection notification", || async {
        let n = t.get("/v1/me/notifications", &u.access).await;
        n.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == "media_moderated")
            .cloned()
    })
    .await;
    assert_eq!(notes["data"]["status"], "rejected");

    // Between the thresholds: the moderators' queue.
    let t = TestApp::spawn_with(|c| {
        c.ml.enabled = true;
        c.media.photo_approve_below = 0.0;
        c.media.photo_reject_at = 1.0;
    })
    .await;
    let u = t.user().await;
    let r = upload_png(&t, &u, landscape()).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&t, &u, &id).await, "queued");
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_not_piled_up() {
    if !models_here() {
        return;
    }
    let t = TestApp::spawn_with(|c| {
        c.ml.enabled = true;
        c.ml.nsfw_workers = 1;
        c.ml.queue_max = 1;
    })
    .await;
    let pool = t.app().ctx.ml.nsfw.clone().unwrap();
    let img = image::load_from_memory(&landscape()).unwrap();
    // Sixteen at once against one worker and one queue place: some are refused with
    // `unavailable` at once, the others are scored.
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (pool, img) = (pool.clone(), img.clone());
        handles.push(tokio::task::spawn_blocking(move || pool.score_image(&img)));
    }
    let (mut scored, mut refused) = (0, 0);
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => scored += 1,
            Err(e) => {
                assert_eq!(e.code.as_str(), "unavailable", "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        scored >= 1 && refused >= 1,
        "scored {scored}, refused {refused}"
    );
}

#[tokio::test]
async fn without_models_the_server_serves_with_ml_off_and_people_moderate() {
    let t = TestApp::spawn_with(|c| {
        c.ml.enabled = true;
        c.ml.dir = "/nonexistent/ml-models".into();
    })
    .await;
    let ready = t
        .http
        .get(format!("{}/readyz", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(text.contains("ml: off"), "{text}");
    let u = t.user().await;
    let r = upload_png(&t, &u, landscape()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&t, &u, &id).await, "queued");
    // An app that started without models keeps no later one in this process from loading them.
    if models_here() {
        let later = TestApp::spawn_with(|c| c.ml.enabled = true).await;
        let text = later
            .http
            .get(format!("{}/readyz", later.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("ml: on"), "{text}");
    }
}

#[tokio::test]
async fn an_external_classifier_scores_waiting_photos_through_the_thresholds_until_revoked() {
    // No model in-process: every photo waits for people, or for the external pipeline.
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = upload_png(&t, &u, landscape()).await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        assert_eq!(status_of(&t, &u, &id).await, "queued");
        ids.push(id);
    }
    let r = t
        .post(
            "/v1/admin/service-credentials",
            Some(&admin.access),
            json!({"name": "gpu pipeline"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let cred = r.body["credential"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["credential"]["scope"], "moderation");
    let queue = |token: String| {
        let t = &t;
        async move {
            let r = t
                .http
                .get(format!("{}/v1/classifier/queue?kind=photo", t.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            Reply::from(r).await
        }
    };
    let score = |token: String, id: String, score: f64| {
        let t = &t;
        async move {
            let r = t
                .http
                .post(format!("{}/v1/classifier/items/{id}/score", t.base))
                .bearer_auth(token)
                .json(&json!({"score": score}))
                .send()
                .await
                .unwrap();
            Reply::from(r).await
        }
    };
    // The waiting photos, each with a URL the pipeline can fetch.
    let waiting = queue(token.clone()).await;
    assert_eq!(waiting.status, 200, "{:?}", waiting.body);
    let items = waiting.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let url = items[0]["url"].as_str().unwrap();
    let file = t.http.get(format!("{}{url}", t.base)).send().await.unwrap();
    assert_eq!(file.status(), 200);
    // Scores go through the same thresholds (approve below 0.2, reject at 0.8).
    let r = score(token.clone(), ids[0].clone(), 0.05).await;
    assert_eq!(
        (r.status.as_u16(), r.body["status"].clone()),
        (200, json!("approved")),
        "{:?}",
        r.body
    );
    let r = score(token.clone(), ids[1].clone(), 0.93).await;
    assert_eq!(r.body["status"], "rejected");
    assert_eq!(status_of(&t, &u, &ids[1]).await, "rejected");
    let r = score(token.clone(), ids[0].clone(), 0.5).await;
    assert_eq!(r.code(), "conflict", "decided items wait no more");
    let r = score(token.clone(), ids[0].clone(), 1.5).await;
    assert_eq!(r.code(), "validation_failed");
    // A person's token is no service credential; a revoked credential is refused.
    assert_eq!(queue(u.access.clone()).await.code(), "unauthorized");
    let r = t
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/admin/service-credentials/{cred}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["revokedAt"].is_string());
    assert_eq!(queue(token.clone()).await.code(), "unauthorized");
    let audit = t.get("/v1/admin/audit?limit=50", &admin.access).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"service_credential.create")
            && actions.contains(&"service_credential.revoke"),
        "{actions:?}"
    );
}
