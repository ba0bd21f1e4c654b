//! Moderation of photos and clips: every one enters it on upload. The durable
//! `media_moderation` consumer hands each new item to the classifier, when one is installed,
//! and decides by the per-kind thresholds of `[media]`: below `approve_below` approved, at or
//! above `reject_at` rejected, in between — and always without a classifier — queued for
//! moderators, who approve or reject it with a reason (audited, the owner notified through
//! the `media_moderated` event).

use std::sync::Arc;

use serde_json::json;

use super::model::{Decision, MediaKind, MediaRecord, MediaStatus};
use super::tables::{MEDIA, QUEUE};
use super::{MediaStore, events::MediaEvent};
use crate::app::Ctx;
use crate::config::MediaConfig;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, Consumer, Event, NewEvent};
use crate::core::store::{Store, Tx, dec, get, put};
use crate::domains::audit;

/// The consumer's name (its cursor).
pub const CONSUMER: &str = "media_moderation";
/// Who a classifier's decisions are by, in records and events.
pub const BY_CLASSIFIER: &str = "classifier";

/// What a classifier is shown: a photo decoded, or a clip's file.
pub enum Sample<'a> {
    Photo(&'a image::DynamicImage),
    Video(&'a std::path::Path),
}

/// Scores an item: 0 surely fine, 1 surely not (nudity, for the ML issue's model). Runs on the
/// blocking pool; an error leaves the item to moderators.
pub trait Classifier: Send + Sync {
    fn score(&self, sample: Sample<'_>) -> AppResult<f32>;
}

/// The decision a score makes under the thresholds of `kind`.
pub fn judge(config: &MediaConfig, kind: MediaKind, score: f32) -> MediaStatus {
    let (approve_below, reject_at) = match kind {
        MediaKind::Video => (config.video_approve_below, config.video_reject_at),
        _ => (config.photo_approve_below, config.photo_reject_at),
    };
    if score >= reject_at {
        MediaStatus::Rejected
    } else if score < approve_below {
        MediaStatus::Approved
    } else {
        MediaStatus::Queued
    }
}

/// Moves an item to `status`, keeping the queue in step, with its event. `by` is the
/// classifier or a moderator.
pub(super) fn decide_tx(
    tx: &Tx,
    rec: &mut MediaRecord,
    status: MediaStatus,
    by: &str,
    reason: Option<String>,
) -> AppResult<()> {
    if rec.status == MediaStatus::Queued {
        tx.table(QUEUE)?
            .remove((rec.kind.as_str(), rec.uploaded_at_ms, rec.id.as_str()))?;
    }
    if status == MediaStatus::Queued {
        tx.table(QUEUE)?
            .insert((rec.kind.as_str(), rec.uploaded_at_ms, rec.id.as_str()), ())?;
    }
    rec.status = status;
    rec.decision = (status != MediaStatus::Queued).then(|| Decision {
        by: by.to_owned(),
        at_ms: tx.now_ms(),
        reason: reason.clone(),
    });
    put(&mut tx.table(MEDIA)?, rec.id.as_str(), &*rec)?;
    tx.emit(
        NewEvent::about(
            &rec.owner_id,
            MediaEvent::Moderated {
                media_id: rec.id.clone(),
                owner_id: rec.owner_id.clone().into(),
                kind: rec.kind,
                status,
                reason,
                by: by.to_owned(),
            },
        )
        .to(Audience::Users(vec![rec.owner_id.clone().into()])),
    )?;
    Ok(())
}

/// A moderator's decision on an item: approve (a reason optional) or reject (a reason
/// required). Works on queued items and on decided ones (taking down an approved photo after a
/// report, approving a rejected one on appeal); audited.
pub async fn moderate(
    ctx: &Ctx,
    moderator_id: &str,
    media_id: &str,
    approve: bool,
    reason: Option<String>,
) -> AppResult<MediaRecord> {
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(AppError::validation("a rejection needs a reason"));
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > REASON_CHARS_MAX)
    {
        return Err(AppError::validation(format!(
            "reason must be at most {REASON_CHARS_MAX} characters"
        )));
    }
    let (moderator, id) = (moderator_id.to_owned(), media_id.to_owned());
    ctx.store
        .write(move |tx| moderate_tx(tx, &moderator, &id, approve, reason.clone()))
        .await
}

/// [`moderate`] inside a caller's write (a report resolved by removing the item); the reason
/// is checked already.
pub fn moderate_tx(
    tx: &Tx,
    moderator: &str,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> AppResult<MediaRecord> {
    let mut rec: MediaRecord =
        get(&tx.read(MEDIA)?, id)?.ok_or_else(|| AppError::not_found("no such media"))?;
    if !rec.kind.is_moderated() {
        return Err(AppError::new(
            Code::Conflict,
            "KYC documents are decided in their KYC case, not here",
        ));
    }
    let status = if approve {
        MediaStatus::Approved
    } else {
        MediaStatus::Rejected
    };
    let before = rec.status;
    decide_tx(tx, &mut rec, status, moderator, reason.clone())?;
    audit::record_tx(
        tx,
        moderator,
        if approve {
            "media.approve"
        } else {
            "media.reject"
        },
        &rec.id,
        json!({"owner": rec.owner_id, "kind": rec.kind.as_str(), "before": before, "reason": reason}),
    )?;
    Ok(rec)
}

/// Longest moderator reason.
pub const REASON_CHARS_MAX: usize = 500;

/// The queue of `kind`, oldest first, after the `(queued at, id)` cursor.
pub async fn queue(
    ctx: &Ctx,
    kind: MediaKind,
    after: Option<(i64, String)>,
    limit: usize,
) -> AppResult<Vec<MediaRecord>> {
    ctx.store
        .read(move |rtx| {
            let q = rtx.open_table(QUEUE)?;
            let media = rtx.open_table(MEDIA)?;
            let k = kind.as_str();
            let (ms, id) = after.map_or((i64::MIN, String::new()), |(ms, id)| (ms, id));
            let mut out = Vec::new();
            for row in q.range((k, ms, id.as_str())..(k, i64::MAX, ""))? {
                let (key, _) = row?;
                let (_, at, mid) = key.value();
                if (at, mid) == (ms, id.as_str()) {
                    continue;
                }
                if let Some(v) = media.get(mid)? {
                    out.push(dec::<MediaRecord>(v.value())?);
                }
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
}

/// Runs the classifier on each new photo or clip, and decides or queues it.
pub struct Moderation {
    pub store: Store,
    pub media: Arc<MediaStore>,
}

impl Consumer for Moderation {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        for e in events {
            let Some(MediaEvent::Uploaded {
                media_id, status, ..
            }) = e.decode()?
            else {
                continue;
            };
            if status != MediaStatus::Pending {
                continue;
            }
            let id = media_id.clone();
            let Some(rec) = self
                .store
                .read(move |rtx| get::<&str, MediaRecord>(&rtx.open_table(MEDIA)?, id.as_str()))
                .await?
            else {
                continue;
            };
            let (status, score) = match self.media.score(&rec).await {
                Some(score) => (judge(self.media.config(), rec.kind, score), Some(score)),
                None => (MediaStatus::Queued, None),
            };
            self.store
                .write(move |tx| {
                    // Decided once: a replay after a crash, or a moderator who was quicker,
                    // leaves it be.
                    let Some(mut rec) =
                        get::<&str, MediaRecord>(&tx.read(MEDIA)?, media_id.as_str())?
                    else {
                        return Ok(());
                    };
                    if rec.status != MediaStatus::Pending {
                        return Ok(());
                    }
                    rec.score = score;
                    decide_tx(tx, &mut rec, status, BY_CLASSIFIER, None)
                })
                .await?;
        }
        Ok(())
    }
}

impl MediaStore {
    /// The classifier's score for an item, when one is installed and it could score it.
    async fn score(&self, rec: &MediaRecord) -> Option<f32> {
        let classifier = self.classifier()?;
        let path = match rec.kind {
            // The display variant: what people see, and smaller to decode.
            MediaKind::Photo => self.blobs.path(&rec.variant("display")?.sha256),
            MediaKind::Video => self.blobs.path(&rec.original.sha256),
            MediaKind::KycDocument => return None,
        };
        let kind = rec.kind;
        let id = rec.id.clone();
        let scored = tokio::task::spawn_blocking(move || match kind {
            MediaKind::Photo => {
                // Blob names carry no extension: the format is read from the bytes.
                let picture = image::ImageReader::open(&path)
                    .and_then(|r| r.with_guessed_format())
                    .map_err(|e| AppError::internal(format!("reading a stored photo: {e}")))?
                    .decode()
                    .map_err(|e| AppError::internal(format!("decoding a stored photo: {e}")))?;
                classifier.score(Sample::Photo(&picture))
            }
            _ => classifier.score(Sample::Video(&path)),
        })
        .await;
        match scored {
            Ok(Ok(score)) if score.is_finite() => Some(score.clamp(0.0, 1.0)),
            Ok(Ok(score)) => {
                tracing::warn!(media = %id, score, "the classifier gave no usable score");
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(media = %id, error = %e, "the classifier failed; left to moderators");
                None
            }
            Err(e) => {
                tracing::warn!(media = %id, error = %e, "the classifier panicked; left to moderators");
                None
            }
        }
    }
}

/// Approves an item as it is stored (uploads by staff, who are trusted with gift icons).
pub(super) fn approve_at_upload(rec: &mut MediaRecord, by: &str, now_ms: i64) {
    rec.status = MediaStatus::Approved;
    rec.decision = Some(Decision {
        by: by.to_owned(),
        at_ms: now_ms,
        reason: None,
    });
}

/// A score from an external classifier (a service credential's pipeline): judged by the same
/// thresholds as the in-process model. Only an item still waiting (pending, or queued for
/// people: a moderator's decision ends the wait) takes it; `conflict` otherwise. Between the
/// thresholds the item stays with people, with the score kept for them to see.
pub async fn score_external(
    ctx: &Ctx,
    by: &str,
    media_id: &str,
    score: f32,
) -> AppResult<MediaRecord> {
    if !(0.0..=1.0).contains(&score) {
        return Err(AppError::validation("score must be within 0–1"));
    }
    let config = ctx.media.config().clone();
    let (by, id) = (by.to_owned(), media_id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut rec: MediaRecord = get(&tx.read(MEDIA)?, id.as_str())?
                .ok_or_else(|| AppError::not_found("no such media"))?;
            let waiting = matches!(rec.status, MediaStatus::Pending | MediaStatus::Queued);
            if !rec.kind.is_moderated() || !waiting {
                return Err(AppError::conflict("the item is not waiting for a score"));
            }
            rec.score = Some(score);
            let status = judge(&config, rec.kind, score);
            decide_tx(tx, &mut rec, status, &by, None)?;
            Ok(rec)
        })
        .await
}
