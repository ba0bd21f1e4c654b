//! Media benchmark: a real server in this process, real HTTP.
//!
//! Prints, each beside its baseline measured in the same run:
//! - photo uploads per second over HTTP (receive, sniff, decode, orient, re-encode without
//!   metadata, two variants, three durable files, the record) with p50/p99, beside the raw
//!   disk copy of the same bytes (write, fsync, rename: what storing the upload as sent would
//!   cost);
//! - downloads per second through signed URLs (signature, record, `ETag`, the file) with
//!   p50/p99, beside reading the same file straight from disk.
//!
//! `cargo bench --bench media` runs the full sizes; under `cargo test` it runs tiny ones.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use duet::app::App;
use duet::config::Config;
use duet::core::clock::{SharedClock, SystemClock};
use serde_json::{Value, json};

struct Sizes {
    /// Side of the square test photo, pixels.
    photo_px: u32,
    uploads: usize,
    upload_concurrency: usize,
    downloads: usize,
    download_concurrency: usize,
}

fn main() {
    let sizes = if common::full() {
        Sizes {
            photo_px: 1_600,
            uploads: 200,
            upload_concurrency: 4,
            downloads: 20_000,
            download_concurrency: 32,
        }
    } else {
        Sizes {
            photo_px: 64,
            uploads: 4,
            upload_concurrency: 2,
            downloads: 20,
            download_concurrency: 2,
        }
    };
    common::run(run(sizes));
}

/// A photo like a phone's: smooth gradients with some texture, as JPEG; each `seed` gives
/// other pixels.
fn photo(px: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(px, px, |x, y| {
        let t = ((x * 7 + y * 13 + seed * 31) % 32) as u8;
        image::Rgb([
            (x * 255 / px) as u8 ^ t,
            (y * 255 / px) as u8,
            ((x + y) * 127 / px) as u8 ^ (t / 2),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// Runs `n` jobs on `concurrency` workers: (jobs per second, p50 ms, p99 ms).
async fn measure<F, Fut>(n: usize, concurrency: usize, make: F) -> (f64, f64, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next) = (make.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t0 = Instant::now();
                    make(i).await;
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (
        rate,
        common::percentile(&all, 0.5),
        common::percentile(&all, 0.99),
    )
}

/// The baseline of an upload: the same bytes written, fsynced and renamed into a folder, as
/// many times and as concurrently; files per second.
async fn disk_copies(
    dir: &std::path::Path,
    bytes: Arc<Vec<u8>>,
    n: usize,
    concurrency: usize,
) -> f64 {
    let dir = Arc::new(dir.to_owned());
    std::fs::create_dir_all(&*dir).unwrap();
    measure(n, concurrency, move |i| {
        let (dir, bytes) = (dir.clone(), bytes.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let tmp = dir.join(format!("{i}.tmp"));
                let mut f = std::fs::File::create(&tmp).unwrap();
                f.write_all(&bytes).unwrap();
                f.sync_all().unwrap();
                std::fs::rename(&tmp, dir.join(i.to_string())).unwrap();
            })
            .await
            .unwrap();
        }
    })
    .await
    .0
}

async fn run(s: Sizes) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.rate_limits.user_writes.max = u32::MAX;
    config.rate_limits.address_writes.max = u32::MAX;
    config.server.connections.per_address_max = usize::MAX;
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.path().join("data");
    config.log.level = "warn".into();
    config.media.uploads_max = s.upload_concurrency.max(1);
    let app = App::start(config, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(s.download_concurrency)
        .build()
        .unwrap();
    let r: Value = http
        .post(format!("{base}/v1/auth/device"))
        .json(&json!({"deviceId": "bench-media", "deviceSecret": "bench-secret-0123", "platform": "ios"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["accessToken"].as_str().unwrap().to_owned();

    println!(
        "duet media benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // Every upload is another picture, so each is decoded, encoded and stored anew.
    let photos: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..s.uploads as u32)
            .map(|seed| photo(s.photo_px, seed))
            .collect(),
    );
    let jpeg = Arc::new(photos[0].clone());
    println!(
        "test photo: {0}x{0} JPEG, {1} KB",
        s.photo_px,
        jpeg.len() / 1024
    );

    let copies = disk_copies(
        &dir.path().join("baseline"),
        jpeg.clone(),
        s.uploads,
        s.upload_concurrency,
    )
    .await;
    println!("raw disk copy (write, fsync, rename) {copies:>8.1} files/s  (baseline)");

    let (up_rate, up_p50, up_p99) = {
        let (http, base, token, photos) =
            (http.clone(), base.clone(), token.clone(), photos.clone());
        measure(s.uploads, s.upload_concurrency, move |i| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            let body = photos[i].clone();
            async move {
                let r = http
                    .post(format!("{base}/v1/media?kind=photo"))
                    .bearer_auth(&token)
                    .header("content-type", "image/jpeg")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        })
        .await
    };
    println!(
        "POST /v1/media (photo)             {up_rate:>8.1} uploads/s  p50 {up_p50:.1} ms  p99 {up_p99:.1} ms  ({:.2} of the disk copy)",
        up_rate / copies
    );

    // Downloads: the display variant of one uploaded photo, through its signed URL.
    let r: Value = http
        .post(format!("{base}/v1/media?kind=photo"))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body((*jpeg).clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{base}{}", r["urls"]["display"].as_str().unwrap());
    let blob_path = {
        let id = r["id"].as_str().unwrap();
        let ctx = app.ctx.clone();
        let rec = ctx
            .store
            .read({
                let id = id.to_owned();
                move |rtx| duet::domains::media::find(rtx, &id)
            })
            .await
            .unwrap()
            .unwrap();
        duet::domains::media::blob_path(&ctx, rec.variant("display").unwrap())
    };
    let display_kb = std::fs::metadata(&blob_path).unwrap().len() / 1024;
    let reads = {
        let path = Arc::new(blob_path);
        measure(s.downloads, s.download_concurrency, move |_| {
            let path = path.clone();
            async move {
                let bytes = tokio::fs::read(&*path).await.unwrap();
                assert!(!bytes.is_empty());
            }
        })
        .await
        .0
    };
    println!("raw file read ({display_kb} KB display variant)  {reads:>8.0} reads/s  (baseline)");
    let (dl_rate, dl_p50, dl_p99) = {
        let (http, url) = (http.clone(), Arc::new(url));
        measure(s.downloads, s.download_concurrency, move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(url.as_str()).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert!(!r.bytes().await.unwrap().is_empty());
            }
        })
        .await
    };
    println!(
        "GET signed URL (display)           {dl_rate:>8.0} downloads/s  p50 {dl_p50:.2} ms  p99 {dl_p99:.2} ms  ({:.2} of the raw read)",
        dl_rate / reads
    );
    app.shutdown().await;
}
