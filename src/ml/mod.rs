//! ML on the server: ONNX models run in-process through `ort`, with ONNX Runtime loaded at
//! start from the library `ml-models/fetch` installs (`load-dynamic`: nothing is linked or
//! downloaded at build time). Without the library or a model the server runs with ML off —
//! it says so at start and on `/readyz` — and moderation queues everything for people.
//!
//! ONNX Runtime allows one environment per process, so the runtime is loaded once per process
//! and shared; each app starts its own bounded worker pools on it.

pub mod nsfw;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::MlConfig;

/// The ONNX Runtime library `ml-models/fetch` installs, under `ml.dir`.
pub const RUNTIME_LIBRARY: &str = "lib/libonnxruntime.so.1.31.1";
/// The open_nsfw model, under `ml.dir`.
pub const NSFW_MODEL: &str = "open-nsfw.onnx";

/// The process's ONNX Runtime environment, once loaded (the first library that loads wins).
/// Only success is kept: an app started without the models (ML off) must not keep a later
/// one in the same process from loading them.
static RUNTIME: parking_lot::Mutex<Option<ort::environment::Environment>> =
    parking_lot::Mutex::new(None);

fn runtime(library: &Path) -> Result<ort::environment::Environment, String> {
    let mut loaded = RUNTIME.lock();
    if let Some(env) = loaded.as_ref() {
        return Ok(env.clone());
    }
    // Checked before ort is touched: ort panics on use after a failed load.
    if !library.is_file() {
        return Err(format!(
            "{} is missing (run ml-models/fetch)",
            library.display()
        ));
    }
    let env = ort::init_from(library)
        .map_err(|e| format!("loading {}: {e}", library.display()))?
        .with_name("duet")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("starting ONNX Runtime: {e}"))?;
    *loaded = Some(env.clone());
    Ok(env)
}

/// What ML this app runs.
pub struct Ml {
    /// Nudity scores for photos, when on.
    pub nsfw: Option<Arc<nsfw::NsfwPool>>,
    /// `on (…)` or `off: <why>`, for the start log and `/readyz`.
    pub status: String,
}

impl Ml {
    pub fn off(why: impl Into<String>) -> Ml {
        Ml {
            nsfw: None,
            status: format!("off: {}", why.into()),
        }
    }
}

/// Loads the runtime and starts the pools `config` asks for; never fails: what cannot start
/// is off, with the reason in `status`.
pub fn start(config: &MlConfig) -> Ml {
    if !config.enabled {
        return Ml::off("ml.enabled is false");
    }
    let dir = PathBuf::from(&config.dir);
    let env = match runtime(&dir.join(RUNTIME_LIBRARY)) {
        Ok(env) => env,
        Err(why) => return Ml::off(why),
    };
    let model = dir.join(NSFW_MODEL);
    match nsfw::NsfwPool::start(&env, &model, config) {
        Ok(pool) => Ml {
            status: format!(
                "on (open_nsfw: {} workers, queue {})",
                config.nsfw_workers, config.queue_max
            ),
            nsfw: Some(Arc::new(pool)),
        },
        Err(why) => Ml::off(why),
    }
}
