//! open_nsfw: nudity scores for photos (and, through them, clip frames and call frames).
//!
//! The model takes `input:0` f32 `[N,224,224,3]` (NHWC, BGR, minus the per-channel mean
//! [104, 117, 123]) of a 256×256 bilinear resize centre-cropped to 224, and answers `outputs`
//! `[N,2]`: (sfw, nsfw) probabilities; the score is the nsfw one.
//!
//! A pool of `ml.nsfw_workers` threads, each owning a session with one intra-op thread (two
//! single-thread workers beat one two-thread session on this model), takes jobs from a queue
//! of at most `ml.queue_max`. A full queue refuses at once (`unavailable`) rather than piling
//! work up; the caller (moderation) then leaves the item to people. Images are decoded and
//! preprocessed by the caller, on the blocking pool, never on the async executor. A worker
//! takes up to `ml.batch_max` waiting jobs into one run.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use image::DynamicImage;
use image::imageops::FilterType;

use crate::config::MlConfig;
use crate::core::error::{AppError, AppResult, Code};
use crate::domains::media::moderation::{Classifier, Sample};

/// The model's input side.
pub const SIDE: u32 = 224;
/// The resize before the centre crop.
const RESIZED: u32 = 256;
/// Per-channel means, in BGR order.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
const INPUT: &str = "input:0";
const OUTPUT: &str = "outputs";

/// One image, preprocessed: `SIDE × SIDE × 3` floats.
#[derive(Clone)]
pub struct Prepared(Vec<f32>);

impl Prepared {
    /// The floats, NHWC (what a baseline elsewhere is fed).
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

/// Resize, crop, BGR, mean: what the model expects.
pub fn prepare(img: &DynamicImage) -> Prepared {
    let rgb = img.to_rgb8();
    let resized = image::imageops::resize(&rgb, RESIZED, RESIZED, FilterType::Triangle);
    let offset = (RESIZED - SIDE) / 2;
    let mut out = Vec::with_capacity((SIDE * SIDE * 3) as usize);
    for y in offset..offset + SIDE {
        for x in offset..offset + SIDE {
            let [r, g, b] = resized.get_pixel(x, y).0;
            out.push(f32::from(b) - MEAN_BGR[0]);
            out.push(f32::from(g) - MEAN_BGR[1]);
            out.push(f32::from(r) - MEAN_BGR[2]);
        }
    }
    Prepared(out)
}

struct Job {
    input: Prepared,
    reply: SyncSender<Result<f32, String>>,
}

/// The workers and their queue. Dropping it ends the workers once the queue is drained.
pub struct NsfwPool {
    jobs: SyncSender<Job>,
}

impl NsfwPool {
    /// Loads one session per worker (0.5–0.9 s each) and starts the workers.
    pub fn start(
        env: &ort::environment::Environment,
        model: &Path,
        config: &MlConfig,
    ) -> Result<NsfwPool, String> {
        if !model.is_file() {
            return Err(format!(
                "{} is missing (run ml-models/fetch)",
                model.display()
            ));
        }
        let (jobs, queue) = sync_channel::<Job>(config.queue_max);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..config.nsfw_workers {
            let session =
                load(env, model).map_err(|e| format!("loading {}: {e}", model.display()))?;
            let (queue, batch_max) = (queue.clone(), config.batch_max.max(1));
            std::thread::Builder::new()
                .name(format!("duet-nsfw-{i}"))
                .spawn(move || work(session, &queue, batch_max))
                .map_err(|e| format!("starting an ML worker: {e}"))?;
        }
        Ok(NsfwPool { jobs })
    }

    /// The nsfw probability of a prepared image; blocks until a worker answers. A full queue
    /// is `unavailable` at once.
    pub fn score_prepared(&self, input: Prepared) -> AppResult<f32> {
        let (reply, answer) = sync_channel(1);
        match self.jobs.try_send(Job { input, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(AppError::new(
                    Code::Unavailable,
                    "the nudity model's queue is full",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::new(Code::Unavailable, "the nudity model stopped"));
            }
        }
        answer
            .recv()
            .map_err(|_| AppError::new(Code::Unavailable, "the nudity model stopped"))?
            .map_err(|e| AppError::internal(format!("nudity model: {e}")))
    }

    /// The nsfw probability of an image (preprocessed here, on the caller's thread).
    pub fn score_image(&self, img: &DynamicImage) -> AppResult<f32> {
        self.score_prepared(prepare(img))
    }
}

/// A session with one intra-op thread.
fn load(env: &ort::environment::Environment, model: &Path) -> ort::Result<ort::session::Session> {
    ort::session::Session::builder(env)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .commit_from_file(model)
}

/// One worker: takes a job, and whatever else is waiting up to `batch_max`, runs them as one
/// batch, answers each.
fn work(mut session: ort::session::Session, queue: &Mutex<Receiver<Job>>, batch_max: usize) {
    loop {
        let batch = {
            let Ok(queue) = queue.lock() else { return };
            let Ok(first) = queue.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < batch_max {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let scores = run(&mut session, &batch);
        for (i, job) in batch.into_iter().enumerate() {
            let answer = scores.as_ref().map(|s| s[i]).map_err(Clone::clone);
            let _ = job.reply.send(answer);
        }
    }
}

fn run(session: &mut ort::session::Session, batch: &[Job]) -> Result<Vec<f32>, String> {
    let per = (SIDE * SIDE * 3) as usize;
    let mut data = Vec::with_capacity(per * batch.len());
    for job in batch {
        data.extend_from_slice(&job.input.0);
    }
    let shape = [batch.len() as i64, i64::from(SIDE), i64::from(SIDE), 3];
    let tensor = ort::value::Tensor::from_array((shape, data)).map_err(|e| e.to_string())?;
    let outputs = session
        .run(ort::inputs![INPUT => tensor])
        .map_err(|e| e.to_string())?;
    let (_, probs) = outputs[OUTPUT]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    Ok((0..batch.len()).map(|i| probs[i * 2 + 1]).collect())
}

impl Classifier for NsfwPool {
    fn score(&self, sample: Sample<'_>) -> AppResult<f32> {
        match sample {
            Sample::Photo(img) => self.score_image(img),
            // Clip frames need an in-process H.264 decoder, which is not here yet: clips go
            // to people.
            Sample::Video(_) => Err(AppError::new(
                Code::Unavailable,
                "clips are not scored by a model yet",
            )),
        }
    }
}
