//! Media storage, what Firebase Storage did: photos, clips and KYC documents uploaded by their
//! owners, kept content-addressed on disk (`blobs.rs`) with their records in redb, served
//! through expiring signed URLs (`signing.rs`) that a CDN can cache, and moderated
//! (`moderation.rs`) before anyone else sees them.
//!
//! Who sees what (checked whenever a URL is issued — a URL is never issued to anyone else):
//! - the owner sees all their own media, in every state;
//! - moderators and admins see everything (they moderate it and decide KYC cases);
//! - anyone else sees an item only when it is public *and* approved (avatars, profile photos,
//!   clips, gift icons); KYC documents never.
//!
//! An item others may not see answers `not_found`, as one that does not exist does.

pub mod api;
pub mod blobs;
pub mod events;
pub mod model;
pub mod moderation;
pub mod photo;
pub mod signing;
pub mod sniff;
mod tables;
pub mod video;
pub use tables::TABLES;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;

use crate::app::Ctx;
use crate::config::MediaConfig;
use crate::core::auth::{Access, Principal};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Reads, Store, Tx, dec, get, newest_first, put};
use blobs::{Blobs, Incoming};
use events::MediaEvent;
use model::{Blob, MediaKind, MediaRecord, MediaStatus, Usage, Visibility};
use moderation::Classifier;
use signing::UrlSigner;
use sniff::FileType;
use tables::*;

/// The media files, the URL signer, the limits on concurrent work and the classifier.
pub struct MediaStore {
    pub blobs: Blobs,
    pub signer: UrlSigner,
    config: MediaConfig,
    uploads: Arc<tokio::sync::Semaphore>,
    decodes: Arc<tokio::sync::Semaphore>,
    /// Uploads in flight per account (at most `uploads_per_user_max`), so one account cannot
    /// hold every upload slot.
    in_flight: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    classifier: parking_lot::RwLock<Option<Arc<dyn Classifier>>>,
    /// Signed URLs by `id/variant`, with their expiry.
    signed: parking_lot::Mutex<std::collections::HashMap<String, (i64, String)>>,
}

/// Signed URLs kept for reuse, at most; past it the cache starts over.
const SIGNED_URLS_KEPT: usize = 100_000;

impl MediaStore {
    /// Opens `data/media/` and the URL key beside it.
    pub fn open(data_dir: &std::path::Path, config: &MediaConfig) -> anyhow::Result<MediaStore> {
        let key = crate::core::auth::load_or_create_secret(&data_dir.join(signing::KEY_FILE), 32)?;
        Ok(MediaStore {
            blobs: Blobs::open(&data_dir.join("media"))?,
            signer: UrlSigner::new(key, config.url_ttl_secs),
            config: config.clone(),
            uploads: Arc::new(tokio::sync::Semaphore::new(config.uploads_max)),
            decodes: Arc::new(tokio::sync::Semaphore::new(config.decodes_max)),
            in_flight: Default::default(),
            classifier: Default::default(),
            signed: Default::default(),
        })
    }

    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// Installs the classifier that scores new photos and clips (the ML domain's model, or a
    /// test's); without one every item waits for a moderator.
    pub fn set_classifier(&self, classifier: Option<Arc<dyn Classifier>>) {
        *self.classifier.write() = classifier;
    }

    fn classifier(&self) -> Option<Arc<dyn Classifier>> {
        self.classifier.read().clone()
    }

    /// A signed URL for `variant` of `rec` (the caller checked who may see it), and its
    /// expiry in unix seconds.
    pub fn url(&self, rec: &MediaRecord, variant: &str, now_ms: i64) -> (String, i64) {
        self.url_of(&rec.id, variant, now_ms)
    }

    /// The same by id. A URL stays the same for a quarter of its lifetime, so it is signed
    /// once and kept: a feed page shows twenty avatars and signs none of them again.
    pub fn url_of(&self, id: &str, variant: &str, now_ms: i64) -> (String, i64) {
        let exp = self.signer.expiry(now_ms / 1000);
        let key = format!("{id}/{variant}");
        if let Some((at, url)) = self.signed.lock().get(&key)
            && *at == exp
        {
            return (url.clone(), exp);
        }
        let (path, exp) = self.signer.url(id, variant, now_ms / 1000);
        let url = format!(
            "{}{path}",
            self.config.public_base_url.trim_end_matches('/')
        );
        let mut signed = self.signed.lock();
        if signed.len() >= SIGNED_URLS_KEPT {
            signed.clear();
        }
        signed.insert(key, (exp, url.clone()));
        (url, exp)
    }
}

/// Whether `viewer` may see `rec` (see the module's rules). KYC documents are their owner's
/// alone here: moderators open them through the KYC case, where every look is audited.
pub fn can_see(viewer: &Principal, rec: &MediaRecord) -> bool {
    viewer.user_id.as_str() == rec.owner_id
        || (rec.kind != MediaKind::KycDocument
            && (Access::Staff.allows(viewer.role) || rec.is_public()))
}

/// What an upload asks for.
pub struct UploadRequest {
    pub kind: MediaKind,
    pub visibility: Option<Visibility>,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The request's `Content-Length`, when sent: refused early when it cannot fit.
    pub declared_len: Option<u64>,
}

fn unsupported(kind: MediaKind) -> AppError {
    let allowed: Vec<&str> = FileType::allowed(kind).iter().map(|t| t.mime()).collect();
    AppError::new(
        Code::UnsupportedMediaType,
        format!(
            "a {} must be one of {} (by its content, and declared so in Content-Type)",
            kind.as_str(),
            allowed.join(", ")
        ),
    )
}

fn too_large(kind: MediaKind, max: u64) -> AppError {
    AppError::new(
        Code::PayloadTooLarge,
        format!("a {} is at most {max} bytes", kind.as_str()),
    )
}

/// Stores an upload of `who`'s: receives the body into a temporary file (hashing and counting
/// it, refusing past the kind's size), checks its type by its first bytes, makes a photo's
/// variants or reads a clip's container, then publishes the files and commits the record.
pub async fn upload<S, E>(
    ctx: &Ctx,
    who: &Principal,
    req: UploadRequest,
    mut body: S,
) -> AppResult<MediaRecord>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let media = &ctx.media;
    let config = media.config();
    let kind = req.kind;
    let declared = req
        .content_type
        .as_deref()
        .and_then(FileType::from_mime)
        .filter(|t| FileType::allowed(kind).contains(t))
        .ok_or_else(|| unsupported(kind))?;
    let visibility = match (kind, req.visibility) {
        (MediaKind::KycDocument, Some(Visibility::Public)) => {
            return Err(AppError::validation("KYC documents are always private"));
        }
        (MediaKind::KycDocument, _) => Visibility::Private,
        (_, v) => v.unwrap_or_default(),
    };
    let max = config.bytes_max(kind);
    if req.declared_len.is_some_and(|n| n > max) {
        return Err(too_large(kind, max));
    }
    if let Some(n) = req.declared_len {
        check_quota(&ctx.store, &who.user_id, n, config).await?;
    }
    let _mine = InFlight::enter(media, &who.user_id)?;
    // Owned: it is moved into the work that outlives a request whose client went away.
    let permit = tokio::time::timeout(
        Duration::from_secs(config.upload_wait_secs),
        media.uploads.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        let mut e = AppError::new(Code::Unavailable, "too many uploads at once; try again");
        e.retry_after_secs = Some(1);
        e
    })?
    .map_err(|_| AppError::new(Code::Unavailable, "shutting down"))?;

    // Receive. Writes go to the page cache; the one fsync is in `publish`.
    let mut incoming = media.blobs.incoming()?;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| AppError::validation(format!("the upload was cut off: {e}")))?;
        if incoming.len + chunk.len() as u64 > max {
            return Err(too_large(kind, max));
        }
        incoming.write(&chunk)?;
    }
    if incoming.len == 0 {
        return Err(AppError::validation("the upload is empty"));
    }
    if sniff::sniff(&incoming.head) != Some(declared) {
        return Err(unsupported(kind));
    }
    // Refused before anything is stored: an account at its quota leaves no files behind.
    check_quota(&ctx.store, &who.user_id, incoming.len, config).await?;

    let id = new_id();
    let now = ctx.store.now_ms();
    let uploaded_len = incoming.len;
    let mut rec = match kind {
        MediaKind::Photo => store_photo(media, incoming, declared, permit).await?,
        MediaKind::Video => store_video(media, incoming, declared, permit).await?,
        MediaKind::KycDocument => {
            let original = publish(media, incoming, declared, permit).await?;
            record_of(original)
        }
    };
    rec.id = id;
    rec.owner_id = who.user_id.to_string();
    rec.kind = kind;
    rec.visibility = visibility;
    rec.uploaded_at_ms = now;
    // What it takes on disk, or what was sent if more: a small PNG that re-encodes to
    // megabytes is charged for the megabytes.
    rec.quota_bytes = uploaded_len.max(rec.blobs().map(|b| b.bytes).sum());
    rec.status = if kind.is_moderated() {
        MediaStatus::Pending
    } else {
        MediaStatus::NotModerated
    };
    if kind.is_moderated() && Access::Staff.allows(who.role) {
        moderation::approve_at_upload(&mut rec, &who.user_id, now);
    }
    let quota = config.clone();
    ctx.store
        .write(move |tx| {
            insert_tx(tx, &rec, &quota)?;
            Ok(rec.clone())
        })
        .await
}

/// A record with everything but who, what and when (filled by [`upload`]).
fn record_of(original: Blob) -> MediaRecord {
    MediaRecord {
        id: String::new(),
        owner_id: String::new(),
        kind: MediaKind::Photo,
        visibility: Visibility::Public,
        status: MediaStatus::Pending,
        original,
        display: None,
        thumb: None,
        width: None,
        height: None,
        duration_ms: None,
        uploaded_at_ms: 0,
        score: None,
        decision: None,
        quota_bytes: 0,
    }
}

/// Uploads in flight for one account, counted while it lives.
struct InFlight<'a> {
    media: &'a MediaStore,
    owner: String,
}

impl<'a> InFlight<'a> {
    fn enter(media: &'a MediaStore, owner: &str) -> AppResult<InFlight<'a>> {
        let mut map = media.in_flight.lock();
        let n = map.entry(owner.to_owned()).or_default();
        if *n >= media.config.uploads_per_user_max {
            let mut e = AppError::new(
                Code::RateLimited,
                format!(
                    "at most {} uploads of one account at once",
                    media.config.uploads_per_user_max
                ),
            );
            e.retry_after_secs = Some(1);
            return Err(e);
        }
        *n += 1;
        Ok(InFlight {
            media,
            owner: owner.to_owned(),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.media.in_flight.lock();
        if let Some(n) = map.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.owner);
            }
        }
    }
}

type Permit = tokio::sync::OwnedSemaphorePermit;

/// Makes a received file a blob (fsync and rename, on the blocking pool, holding the upload's
/// slot until done even if its client has gone).
async fn publish(
    media: &Arc<MediaStore>,
    incoming: Incoming,
    t: FileType,
    permit: Permit,
) -> AppResult<Blob> {
    let bytes = incoming.len;
    let m = media.clone();
    let sha256 = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        m.blobs.publish(incoming)
    })
    .await
    .map_err(|e| AppError::internal(format!("storing an upload: {e}")))??;
    Ok(Blob {
        sha256,
        bytes,
        content_type: t.mime().to_owned(),
    })
}

async fn store_photo(
    media: &Arc<MediaStore>,
    incoming: Incoming,
    t: FileType,
    permit: Permit,
) -> AppResult<MediaRecord> {
    // Owned and moved into the work: a client that goes away mid-decode frees no slot while
    // its decode still runs, so `decodes_max` bounds the decodes (and their memory) for real.
    let decoding = media
        .decodes
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::new(Code::Unavailable, "shutting down"))?;
    let m = media.clone();
    tokio::task::spawn_blocking(move || {
        let _slots = (permit, decoding);
        let sent = std::fs::read(incoming.path())
            .map_err(|e| AppError::internal(format!("reading an upload: {e}")))?;
        let p = photo::process(&sent, t, m.config())?;
        let blob = |e: &photo::Encoded| -> AppResult<Blob> {
            Ok(Blob {
                sha256: m.blobs.put(&e.bytes)?,
                bytes: e.bytes.len() as u64,
                content_type: e.file_type.mime().to_owned(),
            })
        };
        let mut rec = record_of(blob(&p.original)?);
        rec.display = Some(blob(&p.display)?);
        rec.thumb = Some(blob(&p.thumb)?);
        rec.width = Some(p.original.width);
        rec.height = Some(p.original.height);
        Ok(rec)
    })
    .await
    .map_err(|e| AppError::internal(format!("processing a photo: {e}")))?
}

async fn store_video(
    media: &Arc<MediaStore>,
    incoming: Incoming,
    t: FileType,
    permit: Permit,
) -> AppResult<MediaRecord> {
    let path = incoming.path().to_owned();
    let info = tokio::task::spawn_blocking(move || video::probe(&path))
        .await
        .map_err(|e| AppError::internal(format!("reading a video: {e}")))??;
    let max_ms = media.config().video_secs_max as i64 * 1000;
    if info.duration_ms > max_ms {
        return Err(AppError::validation(format!(
            "a video is at most {} seconds long",
            media.config().video_secs_max
        )));
    }
    let mut rec = record_of(publish(media, incoming, t, permit).await?);
    rec.width = Some(info.width);
    rec.height = Some(info.height);
    rec.duration_ms = Some(info.duration_ms);
    Ok(rec)
}

fn quota_exceeded(detail: String) -> AppError {
    AppError::new(Code::QuotaExceeded, detail)
}

/// Refuses when `owner` cannot store `more` bytes and one more item.
fn check_usage(usage: &Usage, more: u64, config: &MediaConfig) -> AppResult<()> {
    if usage.items >= config.items_per_user_max {
        return Err(quota_exceeded(format!(
            "an account holds at most {} media items; delete some first",
            config.items_per_user_max
        )));
    }
    if usage.bytes + more > config.quota_bytes_per_user {
        return Err(quota_exceeded(format!(
            "an account holds at most {} bytes of media; {} are used",
            config.quota_bytes_per_user, usage.bytes
        )));
    }
    Ok(())
}

async fn check_quota(store: &Store, owner: &str, more: u64, config: &MediaConfig) -> AppResult<()> {
    let o = owner.to_owned();
    let usage = store.read(move |rtx| usage_of(rtx, &o)).await?;
    check_usage(&usage, more, config)
}

fn usage_of(r: &impl Reads, owner: &str) -> AppResult<Usage> {
    Ok(get(&r.read_table(USAGE)?, owner)?.unwrap_or_default())
}

/// Commits a new record against its owner's quota, with its event.
fn insert_tx(tx: &Tx, rec: &MediaRecord, config: &MediaConfig) -> AppResult<()> {
    let mut usage = usage_of(tx, &rec.owner_id)?;
    check_usage(&usage, rec.quota_bytes, config)?;
    usage.bytes += rec.quota_bytes;
    usage.items += 1;
    put(&mut tx.table(USAGE)?, rec.owner_id.as_str(), &usage)?;
    put(&mut tx.table(MEDIA)?, rec.id.as_str(), rec)?;
    tx.table(MEDIA_BY_OWNER)?.insert(
        (rec.owner_id.as_str(), rec.uploaded_at_ms, rec.id.as_str()),
        (),
    )?;
    tx.emit(
        NewEvent::about(
            &rec.owner_id,
            MediaEvent::Uploaded {
                media_id: rec.id.clone(),
                owner_id: rec.owner_id.clone().into(),
                kind: rec.kind,
                status: rec.status,
            },
        )
        .to(Audience::Users(vec![rec.owner_id.clone().into()])),
    )?;
    Ok(())
}

/// An item, if it exists.
pub fn find(r: &impl Reads, id: &str) -> AppResult<Option<MediaRecord>> {
    get(&r.read_table(MEDIA)?, id)
}

/// A signed URL for `variant` of `rec` (the caller checked who may see it), now.
pub fn signed_url(ctx: &Ctx, rec: &MediaRecord, variant: &str) -> (String, i64) {
    ctx.media.url(rec, variant, ctx.store.now_ms())
}

/// A signed URL for `variant` of the photo `id` (the caller knows it is approved and public:
/// a card, a profile), now.
pub fn photo_url(ctx: &Ctx, id: &str, variant: &str) -> String {
    ctx.media.url_of(id, variant, ctx.store.now_ms()).0
}

/// Where a blob's file is.
pub fn blob_path(ctx: &Ctx, blob: &Blob) -> std::path::PathBuf {
    ctx.media.blobs.path(&blob.sha256)
}

fn invalid_url(detail: &str) -> AppError {
    AppError::new(Code::InvalidSignature, detail)
}

/// What a signed URL names, when its signature holds and it has not expired: the blob,
/// whether anyone may see it (a CDN may share it), and the seconds left.
pub async fn signed_blob(
    ctx: &Ctx,
    id: &str,
    variant: &str,
    exp: Option<i64>,
    sig: Option<&str>,
) -> AppResult<(Blob, bool, i64)> {
    let now_secs = ctx.store.now_ms() / 1000;
    let (Some(exp), Some(sig)) = (exp, sig) else {
        return Err(invalid_url("the URL is not signed"));
    };
    if !model::VARIANTS.contains(&variant) || !ctx.media.signer.verify(id, variant, exp, sig) {
        return Err(invalid_url("the URL's signature does not hold"));
    }
    if exp <= now_secs {
        return Err(invalid_url("the URL has expired; ask for a new one"));
    }
    // One point lookup on a hot page: inline, the hop to the blocking pool costs more.
    let rec = ctx
        .store
        .read_inline(|rtx| find(rtx, id))?
        .ok_or_else(|| AppError::not_found("no such media"))?;
    let blob = rec
        .variant(variant)
        .ok_or_else(|| AppError::not_found("no such variant"))?
        .clone();
    Ok((blob, rec.is_public(), exp - now_secs))
}

/// An item `viewer` may see; `not_found` otherwise (whether or not it exists).
pub async fn visible(ctx: &Ctx, viewer: &Principal, id: &str) -> AppResult<MediaRecord> {
    let i = id.to_owned();
    ctx.store
        .read(move |rtx| find(rtx, &i))
        .await?
        .filter(|rec| can_see(viewer, rec))
        .ok_or_else(|| AppError::not_found("no such media"))
}

/// One page of `owner`'s media, newest first, before the `(uploaded ms, id)` cursor.
pub async fn list(
    ctx: &Ctx,
    owner: &str,
    before: Option<(i64, String)>,
    limit: usize,
) -> AppResult<Vec<MediaRecord>> {
    let o = owner.to_owned();
    ctx.store
        .read(move |rtx| {
            let rows = newest_first(&rtx.open_table(MEDIA_BY_OWNER)?, &o, before.as_ref(), limit)?;
            let media = rtx.open_table(MEDIA)?;
            let mut out = Vec::with_capacity(rows.len());
            for (_, id) in rows {
                if let Some(v) = media.get(id.as_str())? {
                    out.push(dec(v.value())?);
                }
            }
            Ok(out)
        })
        .await
}

/// Deletes an item: by its owner, or by staff. Its files go with the next collection.
pub async fn delete(ctx: &Ctx, who: &Principal, id: &str) -> AppResult<()> {
    let (who, id) = (who.clone(), id.to_owned());
    ctx.store
        .write(move |tx| {
            let rec = find(tx, &id)?
                .filter(|r| r.owner_id == who.user_id.as_str() || Access::Staff.allows(who.role))
                .ok_or_else(|| AppError::not_found("no such media"))?;
            if rec.owner_id != who.user_id.as_str() {
                crate::domains::audit::record_tx(
                    tx,
                    &who.user_id,
                    "media.delete",
                    &rec.id,
                    serde_json::json!({"owner": rec.owner_id, "kind": rec.kind.as_str()}),
                )?;
            }
            remove_tx(tx, &rec)
        })
        .await
}

/// Deletes item `id` inside a caller's write (KYC documents past their retention); its files
/// go with the next collection. `false` when there was no such item.
pub fn remove_by_id_tx(tx: &Tx, id: &str) -> AppResult<bool> {
    let Some(rec) = find(tx, id)? else {
        return Ok(false);
    };
    remove_tx(tx, &rec)?;
    Ok(true)
}

fn remove_tx(tx: &Tx, rec: &MediaRecord) -> AppResult<()> {
    remove_rows_tx(tx, rec)?;
    tx.emit(
        NewEvent::about(
            &rec.owner_id,
            MediaEvent::Deleted {
                media_id: rec.id.clone(),
                owner_id: rec.owner_id.clone().into(),
                kind: rec.kind,
            },
        )
        .to(Audience::Users(vec![rec.owner_id.clone().into()])),
    )?;
    Ok(())
}

/// The rows of an item and its quota, without an event.
fn remove_rows_tx(tx: &Tx, rec: &MediaRecord) -> AppResult<()> {
    tx.table(MEDIA)?.remove(rec.id.as_str())?;
    tx.table(MEDIA_BY_OWNER)?.remove((
        rec.owner_id.as_str(),
        rec.uploaded_at_ms,
        rec.id.as_str(),
    ))?;
    if rec.status == MediaStatus::Queued {
        tx.table(QUEUE)?
            .remove((rec.kind.as_str(), rec.uploaded_at_ms, rec.id.as_str()))?;
    }
    let mut usage = usage_of(tx, &rec.owner_id)?;
    usage.bytes = usage.bytes.saturating_sub(rec.quota_bytes);
    usage.items = usage.items.saturating_sub(1);
    put(&mut tx.table(USAGE)?, rec.owner_id.as_str(), &usage)?;
    Ok(())
}

/// Erasure: every item of the account goes (its files with the next collection). No event
/// per item: the erasure's own `user_erased` tells every consumer, and the erasure rewrites
/// the person's events in this same write.
pub fn erase_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    let rows = newest_first(&tx.read(MEDIA_BY_OWNER)?, user_id, None, usize::MAX)?;
    for (_, id) in rows {
        if let Some(rec) = find(tx, &id)? {
            remove_rows_tx(tx, &rec)?;
        }
    }
    tx.table(USAGE)?.remove(user_id)?;
    Ok(())
}

/// Whether `id` is a photo of `owner`'s that may be put on their profile (any state but
/// rejected: a pending one shows once approved).
pub fn check_profile_photo(r: &impl Reads, owner: &str, id: &str) -> AppResult<()> {
    match find(r, id)? {
        Some(rec)
            if rec.owner_id == owner
                && rec.kind == MediaKind::Photo
                && rec.visibility == Visibility::Public
                && rec.status != MediaStatus::Rejected =>
        {
            Ok(())
        }
        _ => Err(AppError::validation(format!(
            "{id} is not a public photo of yours that could be shown"
        ))),
    }
}

/// Whether anyone may see item `id` now (public and approved).
pub fn is_public(r: &impl Reads, id: &str) -> AppResult<bool> {
    Ok(find(r, id)?.is_some_and(|rec| rec.is_public()))
}

/// The items among `ids` that anyone may see (public and approved), in order.
pub fn public_among(r: &impl Reads, ids: &[String]) -> AppResult<Vec<MediaRecord>> {
    let t = r.read_table(MEDIA)?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(rec) = get::<&str, MediaRecord>(&t, id.as_str())?
            && rec.is_public()
        {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Deletes the files no record names, once older than the grace period; (files, bytes).
pub async fn collect(ctx: &Ctx) -> AppResult<(u64, u64)> {
    let (media, store) = (ctx.media.clone(), ctx.store.clone());
    let grace = Duration::from_secs(media.config().collect_grace_secs);
    tokio::task::spawn_blocking(move || collect_blocking(&store, &media.blobs, grace))
        .await
        .map_err(|e| AppError::internal(format!("collecting media: {e}")))?
}

/// [`collect`] on the calling thread, for a stopped server too (`duet media collect`).
pub fn collect_blocking(store: &Store, blobs: &Blobs, grace: Duration) -> AppResult<(u64, u64)> {
    blobs.collect(grace, || {
        store.read_blocking(|rtx| {
            let mut names = HashSet::new();
            for row in rtx.open_table(MEDIA)?.iter()? {
                let (_, v) = row?;
                let rec: MediaRecord = dec(v.value())?;
                names.extend(rec.blobs().map(|b| b.sha256.clone()));
            }
            Ok(names)
        })
    })
}

/// What `duet media verify` found.
#[derive(Debug, Default)]
pub struct Verified {
    pub records: u64,
    pub files_checked: u64,
    /// (media id, blob) named by a record but missing, of another size or other bytes.
    pub broken: Vec<(String, String)>,
    /// Files no record names (collection removes them once past the grace period).
    pub unreferenced: u64,
}

/// Checks every record's files: present, of the recorded size, with the bytes their name
/// hashes to; and counts the files no record names.
pub fn verify_blocking(store: &Store, blobs: &Blobs) -> AppResult<Verified> {
    let mut out = Verified::default();
    let mut named = HashSet::new();
    let records: Vec<MediaRecord> = store.read_blocking(|rtx| {
        rtx.open_table(MEDIA)?
            .iter()?
            .map(|row| dec(row?.1.value()))
            .collect()
    })?;
    for rec in records {
        out.records += 1;
        for blob in rec.blobs() {
            if !named.insert(blob.sha256.clone()) {
                continue;
            }
            out.files_checked += 1;
            let good = std::fs::read(blobs.path(&blob.sha256)).is_ok_and(|bytes| {
                bytes.len() as u64 == blob.bytes && blobs::sha256_hex(&bytes) == blob.sha256
            });
            if !good {
                out.broken.push((rec.id.clone(), blob.sha256.clone()));
            }
        }
    }
    out.unreferenced = blobs
        .names()?
        .iter()
        .filter(|n| !named.contains(*n))
        .count() as u64;
    Ok(out)
}
