//! What the media domain stores about each item.

use serde::{Deserialize, Serialize};

/// What an upload is for; each kind has its own accepted types, size limit and rules.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum MediaKind {
    /// JPEG, PNG or WebP; stored re-encoded, without metadata, with `display` and `thumb`
    /// variants.
    Photo,
    /// MP4 or QuickTime; stored as sent, with its duration and size read.
    Video,
    /// JPEG, PNG or PDF for identity checks: only the owner and moderators ever see it.
    KycDocument,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Photo => "photo",
            MediaKind::Video => "video",
            MediaKind::KycDocument => "kyc_document",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        [MediaKind::Photo, MediaKind::Video, MediaKind::KycDocument]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether moderation looks at this kind (what others may come to see).
    pub fn is_moderated(self) -> bool {
        self != MediaKind::KycDocument
    }
}

/// Where an item stands in moderation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Stored; the classifier has not looked at it yet.
    Pending,
    /// Waiting for a moderator.
    Queued,
    /// Others may see it (when it is public).
    Approved,
    /// Nobody but its owner and moderators sees it.
    Rejected,
    /// Not moderated (KYC documents): only the owner and moderators ever see it.
    NotModerated,
}

/// Who may see an approved item besides its owner and moderators.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone, once approved: avatars, profile photos, clips, gift icons.
    #[default]
    Public,
    /// Its owner and moderators only.
    Private,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blob {
    /// SHA-256 of the bytes, which names the file under `data/media/blobs/`.
    pub sha256: String,
    pub bytes: u64,
    pub content_type: String,
}

/// The variants of an item a URL may name.
pub const VARIANTS: [&str; 3] = ["original", "display", "thumb"];

/// A moderation decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `classifier`, or the moderator's user id.
    pub by: String,
    pub at_ms: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub id: String,
    pub owner_id: String,
    pub kind: MediaKind,
    pub visibility: Visibility,
    pub status: MediaStatus,
    /// The stored file (for photos: re-encoded, metadata stripped).
    pub original: Blob,
    /// Photos only: the display-size and thumbnail variants.
    #[serde(default)]
    pub display: Option<Blob>,
    #[serde(default)]
    pub thumb: Option<Blob>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<i64>,
    pub uploaded_at_ms: i64,
    /// The classifier's score (0: surely fine, 1: surely not), when one ran.
    #[serde(default)]
    pub score: Option<f32>,
    #[serde(default)]
    pub decision: Option<Decision>,
    /// The bytes counted against the owner's quota (the upload, not the variants).
    pub quota_bytes: u64,
}

impl MediaRecord {
    /// The blob a variant name stands for (`None`: no such variant of this item).
    pub fn variant(&self, name: &str) -> Option<&Blob> {
        match name {
            "original" => Some(&self.original),
            "display" => self.display.as_ref(),
            "thumb" => self.thumb.as_ref(),
            _ => None,
        }
    }

    /// Every blob it names.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.original)
            .chain(self.display.as_ref())
            .chain(self.thumb.as_ref())
    }

    /// Whether people other than the owner and moderators may see it.
    pub fn is_public(&self) -> bool {
        self.visibility == Visibility::Public && self.status == MediaStatus::Approved
    }
}

/// What an owner holds, against their quota.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub items: u64,
}
