//! REST routes of media storage and of its moderation queue, and the signed-URL download
//! (`GET /media/{id}/{variant}`, outside the OpenAPI service: it takes no token, the URL is the
//! permission).

use std::sync::Arc;

use poem::http::{HeaderMap, StatusCode, header};
use poem::web::Data;
use poem::{Body, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use crate::api::body::JsonBody;
use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::{AppError, AppResult};

use super::UploadRequest;
use super::model::{MediaKind, MediaRecord, MediaStatus, Visibility};
use super::sniff::FileType;

const PAGE_MAX: u32 = 100;

/// The file, as the body, declared by its type.
#[derive(ApiRequest)]
pub enum UploadBody {
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Body>),
    #[oai(content_type = "image/png")]
    Png(Binary<Body>),
    #[oai(content_type = "image/webp")]
    Webp(Binary<Body>),
    #[oai(content_type = "video/mp4")]
    Mp4(Binary<Body>),
    #[oai(content_type = "video/quicktime")]
    QuickTime(Binary<Body>),
    #[oai(content_type = "application/pdf")]
    Pdf(Binary<Body>),
}

impl UploadBody {
    fn split(self) -> (FileType, Body) {
        match self {
            UploadBody::Jpeg(b) => (FileType::Jpeg, b.0),
            UploadBody::Png(b) => (FileType::Png, b.0),
            UploadBody::Webp(b) => (FileType::Webp, b.0),
            UploadBody::Mp4(b) => (FileType::Mp4, b.0),
            UploadBody::QuickTime(b) => (FileType::QuickTime, b.0),
            UploadBody::Pdf(b) => (FileType::Pdf, b.0),
        }
    }
}

/// Signed URLs of an item's variants, valid until `expiresAt`.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaUrls {
    /// The stored file (photos: re-encoded without metadata).
    pub original: String,
    /// Photos only: at most `media.display_px` on the long side.
    pub display: Option<String>,
    /// Photos only: at most `media.thumb_px` on the long side.
    pub thumb: Option<String>,
    pub expires_at: OffsetDateTime,
}

impl MediaUrls {
    pub fn of(ctx: &Ctx, rec: &MediaRecord) -> MediaUrls {
        let (original, exp) = super::signed_url(ctx, rec, "original");
        let variant = |name: &str| {
            rec.variant(name)
                .map(|_| super::signed_url(ctx, rec, name).0)
        };
        MediaUrls {
            original,
            display: variant("display"),
            thumb: variant("thumb"),
            expires_at: to_datetime(exp * 1000),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaItem {
    pub id: String,
    pub owner_id: String,
    pub kind: MediaKind,
    pub visibility: Visibility,
    pub status: MediaStatus,
    /// The stored file's type (photos are stored as JPEG, or PNG when transparent).
    pub content_type: String,
    /// The stored file's size.
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<i64>,
    pub uploaded_at: OffsetDateTime,
    /// Why it was rejected, when it was and a reason was given.
    pub rejection_reason: Option<String>,
    pub urls: MediaUrls,
}

impl MediaItem {
    pub fn of(ctx: &Ctx, rec: MediaRecord) -> MediaItem {
        let urls = MediaUrls::of(ctx, &rec);
        MediaItem {
            rejection_reason: rec
                .decision
                .as_ref()
                .filter(|_| rec.status == MediaStatus::Rejected)
                .and_then(|d| d.reason.clone()),
            content_type: rec.original.content_type.clone(),
            bytes: rec.original.bytes,
            id: rec.id,
            owner_id: rec.owner_id,
            kind: rec.kind,
            visibility: rec.visibility,
            status: rec.status,
            width: rec.width,
            height: rec.height,
            duration_ms: rec.duration_ms,
            uploaded_at: to_datetime(rec.uploaded_at_ms),
            urls,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ModerationQueuePage {
    pub items: Vec<MediaItem>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaPage {
    pub items: Vec<MediaItem>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

/// One variant's signed URL.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaUrl {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

#[derive(ApiResponse)]
pub enum MediaUrlResponse {
    /// The signed URL.
    #[oai(status = 200)]
    Url(Json<MediaUrl>),
    /// `redirect=true`: the signed URL is in `Location`.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum MediaCreated {
    /// Stored; photos and clips are `pending` moderation.
    #[oai(status = 201)]
    Media(Json<MediaItem>),
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaDecision {
    /// Required to reject; shown to the owner. Up to 500 characters.
    pub reason: Option<String>,
}

pub struct MediaApi;

#[OpenApi]
impl MediaApi {
    /// Upload a photo, a video or a KYC document, the file as the body. Its type is read from
    /// its first bytes and must match `Content-Type` and be one the kind accepts (photo: JPEG,
    /// PNG, WebP; video: MP4, QuickTime; KYC document: JPEG, PNG, PDF), else `415
    /// unsupported_media_type`. Past the kind's size `413 payload_too_large`; past the
    /// account's quota `413 quota_exceeded`; a file that cannot be read as its type `422
    /// media_unreadable`; a photo of more than `media.photo_pixels_max` pixels `422
    /// image_too_large`; more than `media.uploads_per_user_max` uploads of one account at once
    /// `429 rate_limited`, and with every upload slot busy `503 unavailable`. Photos are re-encoded without metadata (EXIF, GPS), upright, with
    /// `display` and `thumb` variants. `visibility` defaults to `public` (KYC documents are
    /// always private). Photos and clips start `pending` moderation (staff uploads are
    /// approved at once). Any role.
    #[oai(
        path = "/v1/media",
        method = "post",
        operation_id = "media_upload",
        tag = "ApiTags::Media"
    )]
    async fn upload(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        kind: Query<MediaKind>,
        visibility: Query<Option<Visibility>>,
        req: &poem::Request,
        body: UploadBody,
    ) -> AppResult<MediaCreated> {
        let who = auth.require(&ctx, Access::Any).await?;
        let (file_type, body) = body.split();
        let req = UploadRequest {
            kind: kind.0,
            visibility: visibility.0,
            content_type: Some(file_type.mime().to_owned()),
            // Read, not documented: clients do not set it themselves.
            declared_len: req
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok()),
        };
        let rec = super::upload(&ctx, &who, req, body.into_bytes_stream()).await?;
        Ok(MediaCreated::Media(Json(MediaItem::of(&ctx, rec))))
    }

    /// Your media, newest first, paged by `before`. Any role.
    #[oai(
        path = "/v1/media",
        method = "get",
        operation_id = "media_list",
        tag = "ApiTags::Media"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<MediaPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 20, PAGE_MAX)?;
        let before = Cursor::time(before.0)?;
        let items = super::list(&ctx, &who.user_id, before, limit).await?;
        let next_before = next_page(&items, limit, |r| {
            Cursor::Time(r.uploaded_at_ms, r.id.clone())
        });
        Ok(Json(MediaPage {
            items: items.into_iter().map(|r| MediaItem::of(&ctx, r)).collect(),
            next_before,
        }))
    }

    /// One item with its signed URLs: your own in any state; someone else's only when public
    /// and approved (`not_found` otherwise, as if it did not exist); staff see everything.
    #[oai(
        path = "/v1/media/:media_id",
        method = "get",
        operation_id = "media_get",
        tag = "ApiTags::Media"
    )]
    async fn get(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        media_id: Path<String>,
    ) -> AppResult<Json<MediaItem>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let rec = super::visible(&ctx, &who, &media_id.0).await?;
        Ok(Json(MediaItem::of(&ctx, rec)))
    }

    /// A signed URL for one variant (`original`, `display`, `thumb`; default `display` for
    /// photos, `original` otherwise), under the same rules as getting the item; with
    /// `redirect=true`, a `302` to it.
    #[oai(
        path = "/v1/media/:media_id/url",
        method = "get",
        operation_id = "media_url",
        tag = "ApiTags::Media"
    )]
    async fn url(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        media_id: Path<String>,
        variant: Query<Option<String>>,
        redirect: Query<Option<bool>>,
    ) -> AppResult<MediaUrlResponse> {
        let who = auth.require(&ctx, Access::Any).await?;
        let rec = super::visible(&ctx, &who, &media_id.0).await?;
        let name = variant.0.unwrap_or_else(|| {
            if rec.display.is_some() {
                "display".into()
            } else {
                "original".into()
            }
        });
        if rec.variant(&name).is_none() {
            return Err(AppError::validation(format!(
                "this item has no variant {name:?} (variants: original; photos also display, thumb)"
            )));
        }
        let (url, exp) = super::signed_url(&ctx, &rec, &name);
        Ok(match redirect.0 {
            Some(true) => MediaUrlResponse::Redirect(url),
            _ => MediaUrlResponse::Url(Json(MediaUrl {
                url,
                expires_at: to_datetime(exp * 1000),
            })),
        })
    }

    /// Delete one of your items (staff may delete anyone's, audited). Its files are removed by
    /// the next collection; URLs already issued stop working at once.
    #[oai(
        path = "/v1/media/:media_id",
        method = "delete",
        operation_id = "media_delete",
        tag = "ApiTags::Media"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        media_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::delete(&ctx, &who, &media_id.0).await?;
        Ok(NoContent::Done)
    }

    /// The moderation queue of one kind, oldest first, paged by `after`. Moderators and admins.
    #[oai(
        path = "/v1/admin/moderation/queue",
        method = "get",
        operation_id = "moderation_queue",
        tag = "ApiTags::Admin"
    )]
    async fn queue(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        kind: Query<MediaKind>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<ModerationQueuePage>> {
        auth.require(&ctx, Access::Staff).await?;
        let limit = page_limit(limit.0, 20, PAGE_MAX)?;
        let after = Cursor::time(after.0)?;
        let items = super::moderation::queue(&ctx, kind.0, after, limit).await?;
        let next_after = next_page(&items, limit, |r| {
            Cursor::Time(r.uploaded_at_ms, r.id.clone())
        });
        Ok(Json(ModerationQueuePage {
            items: items.into_iter().map(|r| MediaItem::of(&ctx, r)).collect(),
            next_after,
        }))
    }

    /// Approve a photo or clip (queued, or rejected before), audited; the owner is notified.
    /// Moderators and admins.
    #[oai(
        path = "/v1/admin/moderation/:media_id/approve",
        method = "post",
        operation_id = "moderation_approve",
        tag = "ApiTags::Admin"
    )]
    async fn approve(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        media_id: Path<String>,
        body: JsonBody<MediaDecision>,
    ) -> AppResult<Json<MediaItem>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let rec = super::moderation::moderate(&ctx, &who.user_id, &media_id.0, true, body.0.reason)
            .await?;
        Ok(Json(MediaItem::of(&ctx, rec)))
    }

    /// Reject a photo or clip with a reason (queued, or approved before: taking it down),
    /// audited; the owner is notified. Moderators and admins.
    #[oai(
        path = "/v1/admin/moderation/:media_id/reject",
        method = "post",
        operation_id = "moderation_reject",
        tag = "ApiTags::Admin"
    )]
    async fn reject(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        media_id: Path<String>,
        body: JsonBody<MediaDecision>,
    ) -> AppResult<Json<MediaItem>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let rec =
            super::moderation::moderate(&ctx, &who.user_id, &media_id.0, false, body.0.reason)
                .await?;
        Ok(Json(MediaItem::of(&ctx, rec)))
    }
}

/// `GET /media/{id}/{variant}?exp=&sig=`: the file, when the signature is this server's and
/// `exp` (unix seconds) has not passed; `403 invalid_signature` otherwise. Cacheable until
/// `exp` (`public` for items anyone may see, `private` otherwise), with a strong `ETag` (the
/// content hash: `304` to `If-None-Match`) and single byte ranges (`206`; `416` when none of
/// it is in the file).
#[poem::handler]
pub async fn download(
    ctx: Data<&Arc<Ctx>>,
    poem::web::Path((id, variant)): poem::web::Path<(String, String)>,
    poem::web::Query(q): poem::web::Query<SignedQuery>,
    headers: &HeaderMap,
) -> poem::Result<Response> {
    let (blob, public, max_age) =
        super::signed_blob(&ctx, &id, &variant, q.exp, q.sig.as_deref()).await?;
    let etag = format!("\"{}\"", blob.sha256);
    let cache = format!(
        "{}, max-age={max_age}, immutable",
        if public { "public" } else { "private" }
    );
    let base = || {
        Response::builder()
            .header(header::ETAG, etag.as_str())
            .header(header::CACHE_CONTROL, cache.as_str())
            .header(header::ACCEPT_RANGES, "bytes")
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(base().status(StatusCode::NOT_MODIFIED).finish());
    }
    let path = super::blob_path(&ctx, &blob);
    let len = blob.bytes;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAsk::Whole, |v| byte_range(v, len));
    match range {
        RangeAsk::Part(start, end) => Ok(base()
            .status(StatusCode::PARTIAL_CONTENT)
            .content_type(blob.content_type.as_str())
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
            .header(header::CONTENT_LENGTH, end - start + 1)
            .body(file_body(path, start, end - start + 1).await?)),
        RangeAsk::Unsatisfiable => Ok(base()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .finish()),
        RangeAsk::Whole => Ok(base()
            .content_type(blob.content_type.as_str())
            .header(header::CONTENT_LENGTH, len)
            .body(file_body(path, 0, len).await?)),
    }
}

/// Files (or ranges) up to this size are read whole in one trip to the blocking pool; larger
/// ones stream, a chunk per trip.
const READ_WHOLE_MAX: u64 = 1 << 20;

/// `len` bytes of the file at `path` from `start`.
async fn file_body(path: std::path::PathBuf, start: u64, len: u64) -> AppResult<Body> {
    use std::io::{Read, Seek};
    let failed = |e: std::io::Error| AppError::internal(format!("reading a stored file: {e}"));
    if len <= READ_WHOLE_MAX {
        let bytes = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path)?;
            f.seek(std::io::SeekFrom::Start(start))?;
            let mut buf = vec![0; len as usize];
            f.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|e| AppError::internal(format!("reading a stored file: {e}")))?
        .map_err(failed)?;
        return Ok(Body::from(bytes));
    }
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(&path).await.map_err(failed)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(failed)?;
    Ok(Body::from_async_read(file.take(len)))
}

#[derive(serde::Deserialize)]
pub struct SignedQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

/// What a `Range` header asks of a file (RFC 9110 §14).
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// No byte range we read (absent, another unit, malformed): the whole file, `200`.
    Whole,
    /// One range, inclusive. Of several, the first is served (a server may answer fewer).
    Part(u64, u64),
    /// None of it is in the file: `416`.
    Unsatisfiable,
}

pub fn byte_range(header: &str, len: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        // A suffix: the last `b` bytes.
        match b.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return RangeAsk::Whole,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        let end = match b {
            "" => len.saturating_sub(1),
            b => match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                _ => return RangeAsk::Whole,
            },
        };
        (start, end)
    };
    if len == 0 || start >= len {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::{RangeAsk::*, byte_range};

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-99", 1000), Part(0, 99));
        assert_eq!(byte_range("bytes=900-", 1000), Part(900, 999));
        assert_eq!(byte_range("bytes=-100", 1000), Part(900, 999));
        assert_eq!(byte_range("bytes=-5000", 1000), Part(0, 999));
        assert_eq!(byte_range("bytes=990-5000", 1000), Part(990, 999));
        assert_eq!(byte_range("bytes=0-0, 5-9", 1000), Part(0, 0));
        assert_eq!(byte_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(byte_range("bytes=5-4", 1000), Whole);
        assert_eq!(byte_range("items=0-1", 1000), Whole);
        assert_eq!(byte_range("bytes=x-1", 1000), Whole);
    }
}
