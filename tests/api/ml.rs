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
    let _ = json!({});
}
