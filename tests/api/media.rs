//! Media storage over real HTTP: upload refusals, photo stripping, decompression bombs, signed
//! URLs (expiry, tampering, caching, ranges), who sees what, moderation with a fake
//! classifier, deletion and collection.

use std::sync::Arc;

use duet::domains::media::moderation::{Classifier, Sample};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const PHOTO_EXIF: &[u8] = include_bytes!("../fixtures/media/photo-exif.jpg");
const CLIP: &[u8] = include_bytes!("../fixtures/media/clip.mp4");

/// A PNG of one colour, made here.
pub(crate) fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A PNG whose header claims `w`×`h` pixels, with next to no data: a decompression bomb's
/// shape (the refusal must come from the header, before any decoding).
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

async fn upload(
    app: &TestApp,
    token: &str,
    query: &str,
    content_type: &str,
    bytes: &[u8],
) -> Reply {
    let r = app
        .http
        .post(format!("{}/v1/media?{query}", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

/// Uploads an 8×8 PNG of one colour: its media id.
async fn png_id(app: &TestApp, token: &str, query: &str, rgb: [u8; 3]) -> String {
    let r = upload(app, token, query, "image/png", &png(8, 8, rgb)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Fetches a signed URL (a path on this server) with extra headers: status, headers, bytes.
async fn fetch(
    app: &TestApp,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.http.get(format!("{}{url}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.bytes().await.unwrap().to_vec())
}

/// Scores a photo by its red: pure red is surely not fine, pure blue surely fine.
struct RedMeansNo;

impl Classifier for RedMeansNo {
    fn score(&self, sample: Sample<'_>) -> duet::core::error::AppResult<f32> {
        match sample {
            Sample::Photo(p) => {
                let rgb = p.to_rgb8();
                let n = rgb.pixels().len().max(1) as f32;
                Ok(rgb.pixels().map(|p| f32::from(p.0[0])).sum::<f32>() / n / 255.0)
            }
            Sample::Video(_) => Ok(0.5),
        }
    }
}

async fn media(app: &TestApp, token: &str, id: &str) -> Reply {
    app.get(&format!("/v1/media/{id}"), token).await
}

#[tokio::test]
async fn uploads_are_refused_by_content_size_and_quota_with_codes() {
    let app = TestApp::spawn_with(|c| {
        c.media.photo_bytes_max = 4_000;
        c.media.quota_bytes_per_user = 6_000;
    })
    .await;
    let u = app.user().await;
    // GIF bytes declared as JPEG: the first bytes decide.
    let r = upload(&app, &u.access, "kind=photo", "image/jpeg", b"GIF89a....").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (415, "unsupported_media_type")
    );
    // A real JPEG declared as PNG.
    let r = upload(&app, &u.access, "kind=photo", "image/png", PHOTO_EXIF).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (415, "unsupported_media_type")
    );
    // A type the kind does not take: a PDF is no photo, a JPEG no video.
    let r = upload(
        &app,
        &u.access,
        "kind=photo",
        "application/pdf",
        b"%PDF-1.7 x",
    )
    .await;
    assert_eq!(r.status, 415, "{:?}", r.body);
    let r = upload(&app, &u.access, "kind=video", "image/jpeg", PHOTO_EXIF).await;
    assert_eq!(r.status, 415, "{:?}", r.body);
    let r = upload(&app, &u.access, "kind=photo", "image/gif", b"GIF89a").await;
    assert_eq!(r.status, 415, "{:?}", r.body);
    // Over the kind's size.
    let big = png(400, 400, [1, 2, 3]);
    let mut big_noise = big.clone();
    big_noise.resize(5_000, 0);
    let r = upload(&app, &u.access, "kind=photo", "image/png", &big_noise).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    // A JPEG's magic bytes over garbage.
    let mut corrupt = vec![0xFF, 0xD8, 0xFF, 0xE0];
    corrupt.extend(std::iter::repeat_n(7u8, 300));
    let r = upload(&app, &u.access, "kind=photo", "image/jpeg", &corrupt).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "media_unreadable"));
    // An ftyp header over garbage is not a video.
    let mut fake = b"\0\0\0\x18ftypisom\0\0\0\0isomavc1".to_vec();
    fake.extend(std::iter::repeat_n(1u8, 200));
    let r = upload(&app, &u.access, "kind=video", "video/mp4", &fake).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "media_unreadable"));
    // KYC documents are private, always.
    let r = upload(
        &app,
        &u.access,
        "kind=kyc_document&visibility=public",
        "application/pdf",
        b"%PDF-1.7 x",
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    // The quota: the sent bytes count (the 4 KB photo limit lets each in, 6 KB holds one).
    let r = upload(
        &app,
        &u.access,
        "kind=kyc_document",
        "application/pdf",
        &[b'%', b'P', b'D', b'F', b'-'].repeat(700),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = upload(
        &app,
        &u.access,
        "kind=kyc_document",
        "application/pdf",
        &[b'%', b'P', b'D', b'F', b'-'].repeat(700),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "quota_exceeded"));
    // Nothing refused was kept.
    let list = app.get("/v1/media", &u.access).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        list.body
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_from_its_header() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let bomb = bomb_png(100_000, 100_000);
    assert!(bomb.len() < 100);
    let r = upload(&app, &u.access, "kind=photo", "image/png", &bomb).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "image_too_large"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn photos_are_stored_upright_without_metadata_with_variants() {
    let app = TestApp::spawn_with(|c| c.media.thumb_px = 16).await;
    let u = app.user().await;
    assert!(
        PHOTO_EXIF.windows(14).any(|w| w == b"DuetTestCamera"),
        "the fixture carries EXIF"
    );
    let r = upload(&app, &u.access, "kind=photo", "image/jpeg", PHOTO_EXIF).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let m = &r.body;
    assert_eq!(m["status"], "pending");
    assert_eq!(m["kind"], "photo");
    // Orientation 6 (turned 90°): stored upright, so 64×48 becomes 48×64.
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(48), Some(64))
    );
    for variant in ["original", "display", "thumb"] {
        let url = m["urls"][variant].as_str().unwrap();
        let (status, headers, bytes) = fetch(&app, url, &[]).await;
        assert_eq!(status, 200, "{variant}");
        assert_eq!(headers["content-type"], "image/jpeg");
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "{variant} has no EXIF"
        );
        assert!(!bytes.windows(14).any(|w| w == b"DuetTestCamera"));
        let img = image::load_from_memory(&bytes).unwrap();
        if variant == "thumb" {
            assert_eq!((img.width(), img.height()), (12, 16));
        } else {
            assert_eq!((img.width(), img.height()), (48, 64));
        }
        // Upright: the fixture's left half (blue) is now its top half.
        let top = img.to_rgb8().get_pixel(img.width() / 2, 2).0;
        assert!(
            top[2] > 150 && top[0] < 100,
            "{variant} top is blue: {top:?}"
        );
    }
}

#[tokio::test]
async fn signed_urls_expire_refuse_tampering_and_cache_by_etag() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let r = upload(
        &app,
        &u.access,
        "kind=photo",
        "image/png",
        &png(20, 10, [0, 0, 255]),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let url = r.body["urls"]["display"].as_str().unwrap().to_owned();

    let (status, headers, bytes) = fetch(&app, &url, &[]).await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let cache = headers["cache-control"].to_str().unwrap().to_owned();
    // Not approved yet: only its owner could have this URL, so no shared cache keeps it.
    assert!(cache.starts_with("private, max-age="), "{cache}");
    let max_age: i64 = cache
        .split("max-age=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_600..=3_600 + 900).contains(&max_age), "{max_age}");
    let (status, _, body) = fetch(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!((status, body.len()), (304, 0));

    // Tampered: another variant, another item, another expiry, another signature.
    let tampered = [
        url.replace("/display?", "/original?"),
        url.replace(&id, &duet::core::ids::new_id()),
        {
            let exp: i64 = url
                .split("exp=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            url.replace(&format!("exp={exp}"), &format!("exp={}", exp + 3600))
        },
        {
            let (head, sig) = url.split_once("sig=").unwrap();
            let mut sig = sig.to_owned().into_bytes();
            sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
            format!("{head}sig={}", String::from_utf8(sig).unwrap())
        },
        url.split("&sig=").next().unwrap().to_owned(),
    ];
    for t in tampered {
        let r = Reply::from(
            app.http
                .get(format!("{}{t}", app.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "invalid_signature"),
            "{t}"
        );
    }
    // Expired: past its expiry nothing is served, and a new URL works again.
    app.clock.advance_ms((max_age + 1) * 1000);
    let r = Reply::from(
        app.http
            .get(format!("{}{url}", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "invalid_signature"));
    let u = app.refresh(&u).await;
    let fresh = app
        .get(&format!("/v1/media/{id}/url?variant=display"), &u.access)
        .await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    let (status, _, again) = fetch(&app, fresh.body["url"].as_str().unwrap(), &[]).await;
    assert_eq!((status, again), (200, bytes));
    // The redirect form.
    let r = app
        .http
        .get(format!(
            "{}/v1/media/{id}/url?variant=thumb&redirect=true",
            app.base
        ))
        .bearer_auth(&u.access)
        .send()
        .await
        .unwrap();
    // reqwest follows the redirect to the file.
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
}

#[tokio::test]
async fn videos_keep_their_file_with_duration_and_serve_byte_ranges() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let r = upload(&app, &u.access, "kind=video", "video/mp4", CLIP).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let m = &r.body;
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(64), Some(48))
    );
    assert_eq!(m["durationMs"], 2_000);
    assert_eq!(m["bytes"], CLIP.len());
    assert!(m["urls"]["thumb"].is_null());
    let url = m["urls"]["original"].as_str().unwrap();
    let (status, headers, bytes) = fetch(&app, url, &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, CLIP));
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-type"], "video/mp4");

    let (status, headers, bytes) = fetch(&app, url, &[("range", "bytes=100-299")]).await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes 100-299/{}", CLIP.len())
    );
    assert_eq!(bytes.as_slice(), &CLIP[100..300]);
    let (status, _, bytes) = fetch(&app, url, &[("range", "bytes=-10")]).await;
    assert_eq!((status, bytes.as_slice()), (206, &CLIP[CLIP.len() - 10..]));
    let (status, headers, _) = fetch(&app, url, &[("range", "bytes=99999999-")]).await;
    assert_eq!(status, 416);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes */{}", CLIP.len())
    );
}

#[tokio::test]
async fn each_role_sees_only_what_the_rules_allow() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let moderator = app.with_role(&admin, "moderator").await;
    let owner = app.user().await;
    let other = app.user().await;

    let o = &owner.access;
    let public = png_id(&app, o, "kind=photo", [0, 0, 200]).await;
    let private = png_id(&app, o, "kind=photo&visibility=private", [0, 200, 0]).await;
    let kyc = png_id(&app, o, "kind=kyc_document", [9, 9, 9]).await;
    assert_eq!(
        media(&app, &owner.access, &kyc).await.body["status"],
        "not_moderated"
    );

    // Before approval: the owner and staff, nobody else — not even a URL. KYC documents are
    // their owner's alone here (moderators open them in the KYC case, audited).
    for m in [&public, &private, &kyc] {
        assert_eq!(media(&app, &owner.access, m).await.status, 200);
        let staff = if m == &kyc { 404 } else { 200 };
        assert_eq!(media(&app, &moderator.access, m).await.status, staff);
        assert_eq!(media(&app, &admin.access, m).await.status, staff);
        let r = media(&app, &other.access, m).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
        let r = app.get(&format!("/v1/media/{m}/url"), &other.access).await;
        assert_eq!(r.status, 404);
    }
    // The owner's list holds all three; another's holds none of them.
    assert_eq!(
        app.get("/v1/media", &owner.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.get("/v1/media", &other.access).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Approved: the public photo is anyone's to see; the private one still is not.
    app.caught_up().await;
    for m in [&public, &private] {
        let r = app
            .post(
                &format!("/v1/admin/moderation/{m}/approve"),
                Some(&moderator.access),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let seen = media(&app, &other.access, &public).await;
    assert_eq!(seen.status, 200);
    let (_, headers, _) = fetch(&app, seen.body["urls"]["display"].as_str().unwrap(), &[]).await;
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    assert_eq!(media(&app, &other.access, &private).await.status, 404);
    // KYC documents are not moderated here, and never anyone else's.
    let r = app
        .post(
            &format!("/v1/admin/moderation/{kyc}/approve"),
            Some(&moderator.access),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(media(&app, &other.access, &kyc).await.status, 404);
    // Nobody but staff reaches the queue or decides.
    let r = app
        .get("/v1/admin/moderation/queue?kind=photo", &other.access)
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .post(
            &format!("/v1/admin/moderation/{public}/reject"),
            Some(&other.access),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    // Only the owner (or staff) deletes.
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/media/{public}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/media/{public}"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(media(&app, &owner.access, &public).await.status, 404);
}

#[tokio::test]
async fn the_classifier_approves_rejects_or_queues_and_moderators_decide_the_rest() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let moderator = app.with_role(&admin, "moderator").await;
    let u = app.user().await;

    // Without a classifier every item waits for people.
    let unscored = png_id(&app, &u.access, "kind=photo", [0, 0, 255]).await;
    app.caught_up().await;
    assert_eq!(
        media(&app, &u.access, &unscored).await.body["status"],
        "queued"
    );

    app.app()
        .ctx
        .media
        .set_classifier(Some(Arc::new(RedMeansNo)));
    let mut ids = Vec::new();
    for rgb in [[0, 0, 255], [255, 0, 0], [128, 0, 128]] {
        let r = upload(&app, &u.access, "kind=photo", "image/png", &png(8, 8, rgb)).await;
        assert_eq!(r.body["status"], "pending");
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    app.caught_up().await;
    let status = |v: Value| v["status"].as_str().unwrap().to_owned();
    assert_eq!(
        status(media(&app, &u.access, &ids[0]).await.body),
        "approved"
    );
    assert_eq!(
        status(media(&app, &u.access, &ids[1]).await.body),
        "rejected"
    );
    assert_eq!(status(media(&app, &u.access, &ids[2]).await.body), "queued");

    // The queue holds the two left to people, oldest first.
    let q = app
        .get("/v1/admin/moderation/queue?kind=photo", &moderator.access)
        .await;
    assert_eq!(q.status, 200, "{:?}", q.body);
    let queued: Vec<&str> = q.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(queued, vec![unscored.as_str(), ids[2].as_str()]);
    assert!(
        q.body["items"][0]["urls"]["display"].is_string(),
        "moderators see the item"
    );

    // A rejection needs a reason; with one it is decided, audited and the owner hears of it.
    let r = app
        .post(
            &format!("/v1/admin/moderation/{}/reject", ids[2]),
            Some(&moderator.access),
            json!({}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    let r = app
        .post(
            &format!("/v1/admin/moderation/{}/reject", ids[2]),
            Some(&moderator.access),
            json!({"reason": "not a photo of you"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "rejected");
    assert_eq!(r.body["rejectionReason"], "not a photo of you");
    let r = app
        .post(
            &format!("/v1/admin/moderation/{unscored}/approve"),
            Some(&moderator.access),
            json!({}),
        )
        .await;
    assert_eq!(r.body["status"], "approved");
    let q = app
        .get("/v1/admin/moderation/queue?kind=photo", &moderator.access)
        .await;
    assert_eq!(q.body["items"].as_array().unwrap().len(), 0, "{:?}", q.body);

    let audit = app.get("/v1/admin/audit", &admin.access).await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let entries = audit.body["items"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "media.reject"
            && e["target"] == ids[2].as_str()
            && e["actor"] == moderator.user_id.as_str()),
        "{entries:?}"
    );
    // The owner's events say what became of each.
    let events = app
        .get("/v1/admin/events?type=media_moderated", &admin.access)
        .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    let decided: Vec<(String, String)> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["data"]["mediaId"].as_str().unwrap().to_owned(),
                e["data"]["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        decided.contains(&(ids[1].clone(), "classifier".into())),
        "{decided:?}"
    );
    assert!(
        decided.contains(&(ids[2].clone(), moderator.user_id.clone())),
        "{decided:?}"
    );
    // Notified: both rejections and the moderator's approval; not the classifier's approval.
    app.caught_up().await;
    let told = app.get("/v1/me/notifications", &u.access).await;
    let mut told: Vec<(String, String)> = told.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "media_moderated")
        .map(|n| {
            (
                n["data"]["mediaId"].as_str().unwrap().to_owned(),
                n["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    told.sort();
    let mut expected = vec![
        (ids[1].clone(), "rejected".to_owned()),
        (ids[2].clone(), "rejected".to_owned()),
        (unscored.clone(), "approved".to_owned()),
    ];
    expected.sort();
    assert_eq!(told, expected);
}

#[tokio::test]
async fn deleted_media_files_are_collected_and_shared_bytes_stay_while_named() {
    let app = TestApp::spawn_with(|c| {
        c.media.collect_grace_secs = 0;
        c.media.display_px = 24;
        c.media.thumb_px = 12;
    })
    .await;
    let u = app.user().await;
    let ctx = app.app().ctx.clone();
    let blob_count = || walk(&ctx.config.server.data_dir.join("media").join("blobs"));
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    // The same clip twice: stored once.
    let a = upload(&app, &u.access, "kind=video", "video/mp4", CLIP).await;
    let b = upload(&app, &u.access, "kind=video", "video/mp4", CLIP).await;
    assert_eq!(blob_count(), 1);
    let photo = upload(
        &app,
        &u.access,
        "kind=photo",
        "image/png",
        &png(30, 30, [5, 5, 5]),
    )
    .await;
    assert_eq!(blob_count(), 4, "the photo and its two variants");
    // Nothing is named by nothing yet.
    assert_eq!(duet::domains::media::collect(&ctx).await.unwrap().0, 0);

    for r in [&a, &photo] {
        let id = r.body["id"].as_str().unwrap();
        let d = app
            .call(
                Method::DELETE,
                &format!("/v1/media/{id}"),
                Some(&u.access),
                None,
            )
            .await;
        assert_eq!(d.status, 204);
    }
    let (files, _) = duet::domains::media::collect(&ctx).await.unwrap();
    assert_eq!(
        files, 3,
        "the photo's three files go; the clip is still named by b"
    );
    assert_eq!(blob_count(), 1);
    let (status, _, bytes) = fetch(&app, b.body["urls"]["original"].as_str().unwrap(), &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, CLIP));
    // A deleted item's URLs stop at once.
    let (status, _, _) = fetch(&app, a.body["urls"]["original"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 404);
    // The quota is given back.
    let id = b.body["id"].as_str().unwrap();
    app.call(
        Method::DELETE,
        &format!("/v1/media/{id}"),
        Some(&u.access),
        None,
    )
    .await;
    assert_eq!(duet::domains::media::collect(&ctx).await.unwrap().0, 1);
    assert_eq!(blob_count(), 0);
}

#[tokio::test]
async fn profiles_show_only_approved_photos_and_streamers_need_one_to_be_in_the_gallery() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let moderator = app.with_role(&admin, "moderator").await;
    let streamer = app.with_role(&admin, "streamer").await;
    let viewer = app.user().await;
    let stranger = app.user().await;

    let s = &streamer.access;
    let avatar = png_id(&app, s, "kind=photo", [0, 0, 250]).await;
    let second = png_id(&app, s, "kind=photo", [0, 250, 0]).await;
    let private = png_id(&app, s, "kind=photo&visibility=private", [250, 0, 0]).await;
    let theirs = png_id(&app, &stranger.access, "kind=photo", [1, 1, 1]).await;

    let patch = |body: Value| {
        app.call(
            Method::PATCH,
            "/v1/me/profile",
            Some(&streamer.access),
            Some(body),
        )
    };
    // Only one's own public photos.
    for bad in [&theirs, &private] {
        let r = patch(json!({"avatarMediaId": bad})).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{bad}"
        );
    }
    let r = patch(json!({"photoMediaIds": [second, second]})).await;
    assert_eq!(r.code(), "validation_failed");
    let r = patch(
        json!({"displayName": "Ann", "avatarMediaId": avatar, "photoMediaIds": [second, avatar]}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["private"]["avatarMediaId"], avatar.as_str());
    assert!(
        r.body["public"]["avatarMediaId"].is_null(),
        "not approved yet"
    );
    assert_eq!(r.body["public"]["photoMediaIds"], json!([]));

    // Online but without an approved photo: not in the gallery.
    let _ws = app.ws_ready(&streamer.access).await;
    app.settle().await;
    app.caught_up().await;
    let feed = app.get("/v1/gallery", &viewer.access).await;
    assert_eq!(
        feed.body["items"].as_array().unwrap().len(),
        0,
        "{:?}",
        feed.body
    );

    // Approved: on the public profile, and in the gallery with a thumbnail anyone can fetch.
    for m in [&avatar, &second] {
        let r = app
            .post(
                &format!("/v1/admin/moderation/{m}/approve"),
                Some(&moderator.access),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    app.caught_up().await;
    let public = app
        .get(
            &format!("/v1/profiles/{}", streamer.user_id),
            &viewer.access,
        )
        .await;
    assert_eq!(public.body["avatarMediaId"], avatar.as_str());
    assert_eq!(public.body["photoMediaIds"], json!([second, avatar]));
    let feed = app.get("/v1/gallery", &viewer.access).await;
    let card = &feed.body["items"][0];
    assert_eq!(card["userId"], streamer.user_id.as_str(), "{:?}", feed.body);
    let (status, headers, _) = fetch(&app, card["avatarUrl"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );

    // Taken down: off the profile, and the streamer leaves the gallery.
    let r = app
        .post(
            &format!("/v1/admin/moderation/{avatar}/reject"),
            Some(&moderator.access),
            json!({"reason": "not you"}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.caught_up().await;
    let public = app
        .get(
            &format!("/v1/profiles/{}", streamer.user_id),
            &viewer.access,
        )
        .await;
    assert!(public.body["avatarMediaId"].is_null());
    assert_eq!(public.body["photoMediaIds"], json!([second]));
    let feed = app.get("/v1/gallery", &viewer.access).await;
    assert_eq!(
        feed.body["items"].as_array().unwrap().len(),
        0,
        "{:?}",
        feed.body
    );
    // A rejected photo cannot be set again.
    let r = patch(json!({"avatarMediaId": avatar})).await;
    assert_eq!(r.code(), "validation_failed");
}

#[tokio::test]
async fn one_account_holds_at_most_two_uploads_at_once() {
    use tokio::io::AsyncWriteExt;
    // The retries below are writes too: past the per-user write limit they would be refused
    // as `rate_limited` for that reason instead.
    let app = TestApp::spawn_with(|c| c.rate_limits.user_writes.max = 100_000).await;
    let u = app.user().await;
    let other = app.user().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Two uploads whose bodies never finish arriving.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/media?kind=photo HTTP/1.1\r\nhost: duet\r\nauthorization: Bearer {}\r\n\
             content-type: image/png\r\ncontent-length: 100000\r\n\r\n",
            u.access
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"\x89PNG\r\n\x1a\n").await.unwrap();
        held.push(s);
    }
    let small = png(4, 4, [1, 2, 3]);
    let r = until("a third upload of the account to be refused", || async {
        let r = upload(&app, &u.access, "kind=photo", "image/png", &small).await;
        (r.status == 429).then_some(r)
    })
    .await;
    assert_eq!(r.code(), "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    // Others upload meanwhile.
    let r = upload(&app, &other.access, "kind=photo", "image/png", &small).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Once the held uploads go, the account uploads again.
    drop(held);
    until("the account's slots to free up", || async {
        let r = upload(&app, &u.access, "kind=photo", "image/png", &small).await;
        (r.status == 201).then_some(())
    })
    .await;
}
