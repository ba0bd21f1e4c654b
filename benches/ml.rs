//! ML benchmark: nudity frames per second on Duet's worker pool, beside the same model run by
//! Python's onnxruntime on the same input in the same run (the baseline: two single-threaded
//! sessions on two threads, as the pool runs them).
//!
//! Prints frames/s for:
//! - Duet's whole pipeline (decode-free preprocessing of a 640×480 frame: resize, crop, BGR,
//!   mean; then the pool), submitted from four threads so both workers stay busy;
//! - Duet's inference alone (the prepared tensor, through the pool's queue);
//! - Python onnxruntime 1.31.1 on the same prepared tensor (`ml-models/.venv`).
//!
//! Needs `ml-models/fetch`; says so and stops without it (fails under `ML_MODELS_REQUIRED`).
//! `cargo bench --bench ml` runs for seconds each; under `cargo test` it runs a moment.
//! Subtitles (real-time factor) come with the Whisper work of issue 15.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use duet::config::MlConfig;
use duet::ml::nsfw::{NsfwPool, Prepared, prepare};

const PYTHON_BASELINE: &str = r#"
import sys, threading, time
import numpy as np
import onnxruntime as ort
model, data, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
x = np.fromfile(data, dtype=np.float32).reshape(1, 224, 224, 3)
def session():
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
sessions = [session() for _ in range(threads)]
for s in sessions:
    s.run(["outputs"], {"input:0": x})
count = [0] * threads
stop = time.perf_counter() + seconds
def work(i):
    while time.perf_counter() < stop:
        sessions[i].run(["outputs"], {"input:0": x})
        count[i] += 1
started = time.perf_counter()
ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(sum(count) / (time.perf_counter() - started))
"#;

fn main() {
    let seconds = if common::full() { 10.0 } else { 0.5 };
    let dir = Path::new("ml-models");
    let installed =
        dir.join(duet::ml::RUNTIME_LIBRARY).is_file() && dir.join(duet::ml::NSFW_MODEL).is_file();
    if !installed {
        assert!(
            std::env::var_os("ML_MODELS_REQUIRED").is_none(),
            "ML_MODELS_REQUIRED is set but ml-models/fetch has not installed the models"
        );
        println!("ml: skipped (run ml-models/fetch)");
        return;
    }
    let config = MlConfig {
        nsfw_workers: 2,
        queue_max: 64,
        ..MlConfig::default()
    };
    let ml = duet::ml::start(&config);
    let pool = ml.nsfw.clone().expect("the nudity pool starts");
    println!("ml: {}", ml.status);
    let frame = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x + y) / 5) as u8])
    }));
    let prepared = prepare(&frame);

    let whole = frames_per_second(&pool, seconds, {
        let frame = frame.clone();
        move |pool: &NsfwPool| pool.score_image(&frame).map(|_| ())
    });
    let inference = frames_per_second(&pool, seconds, {
        let prepared = prepared.clone();
        move |pool: &NsfwPool| pool.score_prepared(prepared.clone()).map(|_| ())
    });
    println!("nudity, Duet pipeline (preprocess + pool)  {whole:>8.1} frames/s");
    println!("nudity, Duet inference (prepared tensor)   {inference:>8.1} frames/s");
    match python_baseline(&prepared, dir, seconds) {
        Ok(python) => {
            println!("nudity, Python onnxruntime (same tensor)   {python:>8.1} frames/s");
            println!(
                "Duet inference / Python {:.2}; Duet pipeline / Python {:.2}",
                inference / python,
                whole / python
            );
        }
        Err(why) => println!("nudity, Python onnxruntime: not measured ({why})"),
    }
}

/// Frames per second through `score`, from four submitting threads for `seconds`.
fn frames_per_second<F>(pool: &Arc<NsfwPool>, seconds: f64, score: F) -> f64
where
    F: Fn(&NsfwPool) -> duet::core::error::AppResult<()> + Send + Sync + Clone + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Warm up: one frame each.
    score(pool).expect("a warm-up frame");
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, score, done, stop) =
                (pool.clone(), score.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if score(&pool).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The same model and tensor through Python's onnxruntime, two single-threaded sessions.
fn python_baseline(prepared: &Prepared, dir: &Path, seconds: f64) -> Result<f64, String> {
    let python = dir.join(".venv/bin/python");
    if !python.is_file() {
        return Err("no ml-models/.venv: ml-models/fetch makes it with Python 3.11".into());
    }
    let data = std::env::temp_dir().join(format!("duet-ml-bench-{}.f32", std::process::id()));
    let bytes: Vec<u8> = prepared
        .as_slice()
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    std::fs::write(&data, bytes).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&python)
        .args(["-c", PYTHON_BASELINE])
        .arg(dir.join(duet::ml::NSFW_MODEL))
        .arg(&data)
        .args(["2", &seconds.to_string()])
        .output()
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&data);
    let out = out?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}
