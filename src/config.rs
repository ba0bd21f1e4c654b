//! Configuration: embedded defaults, then a TOML file, then `DUET_`-prefixed environment
//! variables (`DUET_SERVER__LISTEN=0.0.0.0:8080`: sections joined by a double underscore).
//! Everything is validated at load; an invalid value stops startup with the key and the reason.
//! `config/duet.toml` documents every key with its default, and a test keeps it in step with
//! [`Config::default`].

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub ws: WsConfig,
    pub presence: PresenceConfig,
    pub events: EventsConfig,
    pub payouts: PayoutsConfig,
    pub payments: PaymentsConfig,
    pub calls: CallsConfig,
    pub video: VideoConfig,
    pub moderation: ModerationConfig,
    pub rate_limits: RateLimitsConfig,
    pub chat: ChatConfig,
    pub notifications: NotificationsConfig,
    pub gallery: GalleryConfig,
    pub panel: PanelConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub ml: MlConfig,
}

/// ML on the server (`crate::ml`): models from `ml-models/fetch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MlConfig {
    /// Off: no model is loaded and moderation queues everything for people.
    pub enabled: bool,
    /// Where `ml-models/fetch` installed the runtime library and the models.
    pub dir: String,
    /// Threads scoring images for nudity, each with its own session.
    pub nsfw_workers: usize,
    /// Images waiting for a worker, at most; past it a score is refused at once.
    pub queue_max: usize,
    /// Waiting images one worker runs as one batch, at most (1: measured no faster batched).
    pub batch_max: usize,
}

impl Default for MlConfig {
    fn default() -> Self {
        MlConfig {
            enabled: true,
            dir: "ml-models".into(),
            nsfw_workers: 2,
            queue_max: 64,
            batch_max: 1,
        }
    }
}

/// The admins' read-only table browser and user search (`/v1/admin/tables`,
/// `GET /v1/admin/users?q=`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Rows one request may look at (a filter that matches little stops here, with a cursor
    /// to go on).
    pub rows_scanned_max: u64,
    /// How long one request may read, in milliseconds (it stops with a cursor to go on).
    pub read_ms_max: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            rows_scanned_max: 100_000,
            read_ms_max: 2_000,
        }
    }
}

/// Media storage (`/v1/media`) and its moderation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest upload of each kind, in bytes (`payload_too_large` past it).
    pub photo_bytes_max: u64,
    pub video_bytes_max: u64,
    pub kyc_document_bytes_max: u64,
    /// Bytes of uploads one account may hold, and items (`quota_exceeded` past either).
    pub quota_bytes_per_user: u64,
    pub items_per_user_max: u64,
    /// Pixels (width × height) a photo may have; past it the photo is refused from its header,
    /// before decoding (`image_too_large`): the guard against decompression bombs.
    pub photo_pixels_max: u64,
    /// Longest video accepted, in seconds.
    pub video_secs_max: u64,
    /// Long side, in pixels, of the `display` and `thumb` variants of a photo.
    pub display_px: u32,
    pub thumb_px: u32,
    /// JPEG quality of re-encoded photos (1–100).
    pub jpeg_quality: u8,
    /// How long a signed URL lives, in seconds (URLs issued within a quarter of it are the
    /// same, so a CDN caches one copy).
    pub url_ttl_secs: u64,
    /// Prepended to signed URLs: a CDN's address in front of this server (empty: URLs are
    /// paths on this server).
    pub public_base_url: String,
    /// Uploads received at once, and photos decoded at once (CPU bound); further uploads wait
    /// up to `upload_wait_secs`, then get `unavailable`.
    pub uploads_max: usize,
    pub decodes_max: usize,
    pub upload_wait_secs: u64,
    /// Uploads of one account at once (`429 rate_limited` past it), so one account cannot
    /// hold every upload slot with slow bodies.
    pub uploads_per_user_max: usize,
    /// How often unreferenced files are collected, and how old one must be to go.
    pub collect_interval_secs: u64,
    pub collect_grace_secs: u64,
    /// Classifier scores (0: fine, 1: not) below `approve_below` approve a photo or clip,
    /// those at or above `reject_at` reject it; between, and always without a classifier, it
    /// waits for a moderator.
    pub photo_approve_below: f32,
    pub photo_reject_at: f32,
    pub video_approve_below: f32,
    pub video_reject_at: f32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            photo_bytes_max: 15 << 20,
            video_bytes_max: 100 << 20,
            kyc_document_bytes_max: 15 << 20,
            quota_bytes_per_user: 1 << 30,
            items_per_user_max: 500,
            photo_pixels_max: 50_000_000,
            video_secs_max: 300,
            display_px: 1_280,
            thumb_px: 320,
            jpeg_quality: 85,
            url_ttl_secs: 3_600,
            public_base_url: String::new(),
            uploads_max: 16,
            decodes_max: 2,
            upload_wait_secs: 10,
            uploads_per_user_max: 2,
            collect_interval_secs: 3_600,
            collect_grace_secs: 3_600,
            photo_approve_below: 0.2,
            photo_reject_at: 0.8,
            video_approve_below: 0.2,
            video_reject_at: 0.8,
        }
    }
}

impl MediaConfig {
    /// The largest upload of `kind`.
    pub fn bytes_max(&self, kind: crate::domains::media::model::MediaKind) -> u64 {
        use crate::domains::media::model::MediaKind;
        match kind {
            MediaKind::Photo => self.photo_bytes_max,
            MediaKind::Video => self.video_bytes_max,
            MediaKind::KycDocument => self.kyc_document_bytes_max,
        }
    }

    /// The largest upload of any kind: the body limit of `POST /v1/media`.
    pub fn upload_bytes_max(&self) -> u64 {
        self.photo_bytes_max
            .max(self.video_bytes_max)
            .max(self.kyc_document_bytes_max)
    }
}

/// Cohorts (`/v1/admin/cohorts`) and the tags they give.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PanelConfig {
    /// How often every account is judged again against every rule cohort (conditions that
    /// change with time alone — age, "registered within", "active within" — move then).
    pub recompute_interval_secs: u64,
    /// Accounts judged per read and write while recomputing, previewing or removing a cohort.
    pub recompute_chunk: usize,
    /// Cohorts kept at once.
    pub cohorts_max: usize,
    /// User ids one request may add to a hand-made cohort.
    pub hand_members_per_request_max: usize,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig {
            recompute_interval_secs: 3_600,
            recompute_chunk: 500,
            cohorts_max: 200,
            hand_members_per_request_max: 1_000,
        }
    }
}

/// The gallery's feeds (`GET /v1/gallery`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GalleryConfig {
    /// How long a ranked list (per viewer role and filters) is shared before it is read from
    /// the index again (while one request rebuilds it, the others keep the old one for up to
    /// twice this). 0: every first page reads the index.
    pub ranked_cache_ms: u64,
    /// Ranked lists kept at once; past it the cache starts over.
    pub ranked_lists_max: usize,
    /// How long a feed's cursor keeps the list its first page pinned (`cursor_expired` after).
    pub cursor_ttl_secs: u64,
    /// Pinned lists kept at once; past it the oldest goes.
    pub cursors_max: usize,
    /// How often the live `gallery` signal goes out (when something changed).
    pub signal_interval_ms: u64,
    /// Under churn, an index commit waits until its oldest change is this old, so the changes
    /// arriving meanwhile share it (a commit costs tens of ms and a reader reload, whatever it
    /// holds); a backlog is committed at once.
    pub commit_interval_ms: u64,
    /// A change to a shown profile must be in the feeds within this long: the index lag
    /// (metric `duet_gallery_freshness_seconds`, a warning past it) plus twice
    /// `ranked_cache_ms`.
    pub freshness_ms_max: u64,
    /// Streamers are shown only once their avatar is an approved photo (media moderation).
    pub streamers_need_approved_photo: bool,
    /// Streamers are shown only once their KYC case is verified.
    pub streamers_need_kyc: bool,
}

impl Default for GalleryConfig {
    fn default() -> Self {
        GalleryConfig {
            ranked_cache_ms: 100,
            ranked_lists_max: 1_024,
            cursor_ttl_secs: 600,
            cursors_max: 10_000,
            signal_interval_ms: 1_000,
            commit_interval_ms: 250,
            freshness_ms_max: 1_000,
            streamers_need_approved_photo: true,
            streamers_need_kyc: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// An in-app notification not acknowledged within this many seconds goes out as a push.
    pub ack_timeout_secs: u64,
    /// Retries of a failed send wait `retry_base_secs · 2^attempt`, at most `retry_max_secs`.
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Attempts before a send is dead-lettered.
    pub attempts_max: u32,
    /// A follower hears that a favorite came online at most once per this period.
    pub favorite_online_period_secs: u64,
    /// Followers told per write when a favorite comes online (a big fan-out is chunked).
    pub fanout_chunk: u32,
    /// How often the missed-call email digest runs.
    pub digest_every_secs: u64,
    /// Where this server is reached from outside: the base of unsubscribe links in emails.
    pub public_base_url: String,
    pub fcm: FcmConfig,
    pub apns: ApnsConfig,
    pub onesignal: OneSignalConfig,
    pub sendgrid: SendGridConfig,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            ack_timeout_secs: 10,
            retry_base_secs: 5,
            retry_max_secs: 3600,
            attempts_max: 8,
            favorite_online_period_secs: 6 * 3600,
            fanout_chunk: 500,
            digest_every_secs: 86_400,
            public_base_url: "http://127.0.0.1:8080".into(),
            fcm: FcmConfig::default(),
            apns: ApnsConfig::default(),
            onesignal: OneSignalConfig::default(),
            sendgrid: SendGridConfig::default(),
        }
    }
}

/// Firebase Cloud Messaging (HTTP v1); used when `project_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FcmConfig {
    pub project_id: String,
    /// A service-account JSON key with the Firebase Cloud Messaging role.
    pub service_account_file: String,
    pub token_url: String,
    pub base_url: String,
}

impl Default for FcmConfig {
    fn default() -> Self {
        FcmConfig {
            project_id: String::new(),
            service_account_file: String::new(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            base_url: "https://fcm.googleapis.com".into(),
        }
    }
}

/// Apple Push Notification service (token auth); used when `team_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApnsConfig {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` signing key (PKCS#8 PEM, P-256).
    pub private_key_file: String,
    /// The app's bundle id: the topic of alerts; VoIP pushes go to `<bundle_id>.voip`.
    pub bundle_id: String,
    /// `https://api.push.apple.com`, or `https://api.sandbox.push.apple.com` for development builds.
    pub base_url: String,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            team_id: String::new(),
            key_id: String::new(),
            private_key_file: String::new(),
            bundle_id: String::new(),
            base_url: "https://api.push.apple.com".into(),
        }
    }
}

/// OneSignal; used when `app_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OneSignalConfig {
    pub app_id: String,
    pub api_key: String,
    pub base_url: String,
}

impl Default for OneSignalConfig {
    fn default() -> Self {
        OneSignalConfig {
            app_id: String::new(),
            api_key: String::new(),
            base_url: "https://api.onesignal.com".into(),
        }
    }
}

/// SendGrid for email; used when `api_key` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendGridConfig {
    pub api_key: String,
    pub from_email: String,
    pub from_name: String,
    pub base_url: String,
}

impl Default for SendGridConfig {
    fn default() -> Self {
        SendGridConfig {
            api_key: String::new(),
            from_email: "no-reply@duet.example".into(),
            from_name: "Duet".into(),
            base_url: "https://api.sendgrid.com".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Messages one sender may send per minute (sliding window); past it, `rate_limited`.
    pub messages_per_minute: u32,
    /// Chats started with online streamers when someone signs up (0: none).
    pub auto_add_streamers: u32,
    /// The first message of those chats, from the streamer.
    pub greeting: String,
    /// When set, auto-add picks only streamers carrying one of these cohort tags.
    pub auto_add_tags: Vec<String>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            messages_per_minute: 30,
            auto_add_streamers: 3,
            greeting: "Hi! Nice to meet you. Say hello any time.".into(),
            auto_add_tags: Vec::new(),
        }
    }
}

/// Request limits on every write route (POST, PUT, PATCH, DELETE, and WebSocket frames that
/// act), counted in memory per caller over a sliding window (`core::rate_limit`). Past one,
/// `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Writes one signed-in user may make (keyed by the verified token's user).
    pub user_writes: RateConfig,
    /// Writes without a valid bearer token (sign-in, registration, store webhooks), per client
    /// address.
    pub address_writes: RateConfig,
    /// Callers tracked at once; past it, idle counters are dropped first, then new callers
    /// wait.
    pub keys_max: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub max: u32,
    pub per_secs: u64,
}

impl RateConfig {
    /// This rate as the limit `name` of the rate limiter.
    pub fn limit(self, name: &'static str) -> crate::core::rate_limit::Limit {
        crate::core::rate_limit::Limit {
            name,
            max: self.max,
            window_ms: self.per_secs as i64 * 1000,
        }
    }
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            user_writes: RateConfig {
                max: 120,
                per_secs: 60,
            },
            address_writes: RateConfig {
                max: 300,
                per_secs: 60,
            },
            keys_max: 200_000,
        }
    }
}

/// The automatic moderation rules fed by blocks (see `mission_control::moderation`). A block
/// counts only when the blocker really met the target — a call between them connected, or the
/// target sent them a message or a gift — and weighs 1, plus 1 for an account at least
/// `established_account_days` old, plus 1 for one that has bought coins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// Weight of counted `harassment` blocks within the window that acts on a user or streamer.
    pub harassment_threshold: u32,
    pub harassment_window_secs: u64,
    /// Weight of counted `nudity` penalties within the window that acts on a streamer; a
    /// `nudity` block counts (and records a penalty) only after a connected call.
    pub nudity_threshold: u32,
    pub nudity_window_secs: u64,
    pub established_account_days: u32,
    /// Distinct counted reporters a rule needs besides the weight: one or two well-standing
    /// accounts cannot act on anyone alone.
    pub min_reporters: u32,
    /// `suspend` (for `suspension_secs`, with a case for moderators to uphold as a ban or
    /// lift) or `ban` (a permanent ban, with a case all the same).
    pub automatic_action: AutomaticAction,
    pub suspension_secs: u64,
    /// Reports (`POST /v1/reports`) one account may file in 24 hours.
    pub reports_per_day_max: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AutomaticAction {
    Suspend,
    Ban,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            harassment_threshold: 5,
            harassment_window_secs: 7 * 86_400,
            nudity_threshold: 3,
            nudity_window_secs: 30 * 86_400,
            established_account_days: 30,
            min_reporters: 3,
            automatic_action: AutomaticAction::Suspend,
            suspension_secs: 3 * 86_400,
            reports_per_day_max: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Lifetime of the media tokens handed to participants.
    pub token_ttl_secs: u32,
    /// Failures of one provider reported within the window before new calls use the next one.
    pub failure_threshold: u32,
    pub failure_window_secs: u64,
    pub agora: AgoraConfig,
    pub twilio: TwilioConfig,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            token_ttl_secs: 3600,
            failure_threshold: 3,
            failure_window_secs: 60,
            agora: AgoraConfig::default(),
            twilio: TwilioConfig::default(),
        }
    }
}

/// Agora, the primary provider; used when both values are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgoraConfig {
    pub app_id: String,
    pub app_certificate: String,
}

/// Twilio Video, the fallback; used when all three values are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub api_key_sid: String,
    pub api_key_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// A call not answered within this many seconds is missed.
    pub ring_timeout_secs: u64,
    /// A connected call ends after this many seconds.
    pub max_duration_secs: u64,
    /// A connected call ends when a participant has had no live WebSocket for this long.
    pub connection_lost_secs: u64,
    /// A roulette user waiting this long without a match is offered a prerecorded clip.
    pub clip_after_secs: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_timeout_secs: 30,
            max_duration_secs: 4 * 3600,
            connection_lost_secs: 15,
            clip_after_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    pub apple: AppleConfig,
    pub google: GoogleConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppleConfig {
    /// Accept App Store purchases and server notifications.
    pub enabled: bool,
    /// The app's bundle id; transactions of other apps are refused.
    pub bundle_id: String,
    /// `Production` or `Sandbox`.
    pub environment: String,
    /// Apple Root CA - G3 (PEM or DER); every chain must end at it.
    pub root_certificate_file: String,
}

impl Default for AppleConfig {
    fn default() -> Self {
        AppleConfig {
            enabled: false,
            bundle_id: String::new(),
            environment: "Production".into(),
            root_certificate_file: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleConfig {
    /// Accept Google Play purchases and Real-time Developer Notifications.
    pub enabled: bool,
    /// The app's package name.
    pub package_name: String,
    /// The service account's JSON key (client_email, private_key).
    pub service_account_file: String,
    /// OAuth token endpoint (also the JWT audience).
    pub token_url: String,
    /// Google Play Developer API base URL.
    pub api_base_url: String,
    /// The audience configured on the Pub/Sub push subscription.
    pub pubsub_audience: String,
    /// The service account the push subscription authenticates as.
    pub pubsub_service_account: String,
    /// Google's OIDC keys, as a file or a URL (exactly one).
    pub pubsub_jwks_file: String,
    pub pubsub_jwks_url: String,
    /// Credit license-test purchases (a staging server); production leaves this off.
    pub accept_test_purchases: bool,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            enabled: false,
            package_name: String::new(),
            service_account_file: String::new(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            api_base_url: "https://androidpublisher.googleapis.com".into(),
            pubsub_audience: String::new(),
            pubsub_service_account: String::new(),
            pubsub_jwks_file: String::new(),
            pubsub_jwks_url: "https://www.googleapis.com/oauth2/v3/certs".into(),
            accept_test_purchases: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutsConfig {
    /// The smallest payout a streamer may request, in coins.
    pub minimum_coins: i64,
    /// Only streamers whose KYC case is verified may request payouts.
    pub require_kyc: bool,
    /// The documents of a decided KYC case are deleted this many days after the decision;
    /// the decision stays.
    pub kyc_document_retention_days: u32,
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            minimum_coins: 1000,
            require_kyc: true,
            kyc_document_retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Where `duet.redb`, the signing key and media live.
    pub data_dir: PathBuf,
    /// Largest accepted request body.
    pub body_bytes_max: usize,
    /// On SIGTERM, how long in-flight requests may take before the process exits anyway.
    pub shutdown_grace_secs: u64,
    /// Header that carries the client address when Duet runs behind a proxy or CDN
    /// (e.g. `cf-connecting-ip`, `x-forwarded-for`). Empty: use the socket's peer address.
    pub client_ip_header: String,
    pub connections: ConnectionsConfig,
}

/// Bounds on HTTP connections (see `api::server`): how many may be open and how long each
/// phase of one may last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Open connections at most, WebSockets included; lowered at start to fit the descriptor
    /// limit less `reserved_descriptors`. When full, the longest-idle connection is closed to
    /// make room; if every one is busy the newcomer gets `503`.
    pub max: usize,
    /// Descriptors kept for everything but client connections (store, logs, outbound calls).
    pub reserved_descriptors: usize,
    /// A request head must be complete this long after its first byte.
    pub header_read_timeout_ms: u64,
    /// A request body must be complete this long after its head, plus its length at
    /// `body_min_bytes_per_sec`.
    pub body_read_timeout_ms: u64,
    pub body_min_bytes_per_sec: u64,
    /// A connection with no request in flight is closed after this long (keep-alive timeout).
    pub idle_timeout_ms: u64,
    /// A connection serving requests is closed when none starts or finishes for this long
    /// (a response the client never reads, a stalled HTTP/2 stream).
    pub request_timeout_ms: u64,
    /// Open connections from one address (an IPv6 /64 counts as one) at most; newcomers past
    /// it get `503`. Not applied when `server.client_ip_header` is set (every peer is then the
    /// proxy).
    pub per_address_max: usize,
    /// A failing `accept` (e.g. out of descriptors) is retried after a backoff that doubles
    /// from 1 ms up to this.
    pub accept_backoff_max_ms: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max: 10_000,
            reserved_descriptors: 128,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 15_000,
            body_min_bytes_per_sec: 16 * 1024,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 60_000,
            per_address_max: 512,
            accept_backoff_max_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `duet=debug,poem=info`. `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `iss` of the tokens Duet issues.
    pub issuer: String,
    /// Lifetime of access tokens; at most 900 (15 minutes).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a session's refresh token since its last use.
    pub refresh_token_ttl_days: u64,
    /// For this long after a refresh token was exchanged, presenting it again returns the same
    /// new refresh token (two clients refreshing at once both keep the session); after it,
    /// reuse revokes the session. 0: any reuse revokes.
    pub refresh_reuse_interval_secs: u64,
    /// Changing how the account signs in (linking or removing a way in, adding an email) and
    /// deleting it need a session opened this recently: a token taken from an unlocked phone
    /// or a log is not enough (`reauthentication_required`).
    pub fresh_sign_in_secs: u64,
    /// PKCS#8 PEM Ed25519 key that signs access tokens. Empty: `<data_dir>/signing-key.pem`,
    /// created on first start.
    pub signing_key_file: String,
    pub throttle: ThrottleConfig,
    pub external: ExternalIdpConfig,
    /// Sign in with Apple: `POST /v1/auth/apple`.
    pub apple: OidcProviderConfig,
    /// Sign in with Google: `POST /v1/auth/google`.
    pub google: OidcProviderConfig,
    /// Facebook Login: `POST /v1/auth/facebook`.
    pub facebook: FacebookConfig,
    /// Sign-in by phone number with a one-time SMS code: `POST /v1/auth/phone/start|verify`.
    pub phone: PhoneConfig,
    /// Email verification and password reset links (sent through `notifications.sendgrid`).
    pub email: EmailAuthConfig,
    /// Account deletion (`DELETE /v1/me`) and data export (`GET /v1/me/export`).
    pub deletion: DeletionConfig,
}

/// How the one-time SMS code is sent and checked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmsProvider {
    /// Twilio Verify makes, sends and checks the code (`verify_service_sid`).
    TwilioVerify,
    /// Duet makes the code, keeps only its hash, and sends it as a Twilio Messaging SMS
    /// (`messaging_service_sid` or `from_number`).
    TwilioMessaging,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConfig {
    pub enabled: bool,
    pub provider: SmsProvider,
    /// Twilio account (HTTP basic auth: `account_sid` and `auth_token`, or an API key's sid
    /// and secret with `account_sid` still naming the account).
    pub account_sid: String,
    pub auth_token: String,
    /// `twilio_verify`: the Verify service (`VA…`).
    pub verify_service_sid: String,
    /// `twilio_messaging`: the Messaging service (`MG…`), or else `from_number`.
    pub messaging_service_sid: String,
    pub from_number: String,
    pub verify_base_url: String,
    pub api_base_url: String,
    /// Digits of a code Duet makes (`twilio_messaging`), 4–10.
    pub code_digits: u32,
    /// A code is good for this long after it was sent.
    pub code_ttl_secs: u64,
    /// Wrong codes tolerated per code; then a new one must be asked for.
    pub attempts_max: u32,
    /// The least time between two codes to one number.
    pub resend_interval_secs: u64,
    /// Codes sent to one number per hour.
    pub sends_per_number_max: u32,
    /// Codes asked for from one client address per hour.
    pub sends_per_address_max: u32,
    /// Codes sent per hour over everyone.
    pub sends_per_hour_max: u32,
    /// Codes sent per 24 hours over everyone: SMS cost money, this is the ceiling of the bill.
    pub sends_per_day_max: u32,
    /// Codes tried per number from one client address per 24 hours, whatever codes were
    /// sent: a new code resets only its own attempts, this does not.
    pub code_tries_per_day_max: u32,
    /// Country calling codes served, as E.164 prefixes (`+44`, `+1`); empty serves every
    /// number. Refusing the ranges the app is not offered in keeps SMS pumping to premium
    /// numbers off the bill.
    pub allowed_prefixes: Vec<String>,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            enabled: false,
            provider: SmsProvider::TwilioVerify,
            account_sid: String::new(),
            auth_token: String::new(),
            verify_service_sid: String::new(),
            messaging_service_sid: String::new(),
            from_number: String::new(),
            verify_base_url: "https://verify.twilio.com".into(),
            api_base_url: "https://api.twilio.com".into(),
            code_digits: 6,
            code_ttl_secs: 600,
            attempts_max: 5,
            resend_interval_secs: 30,
            sends_per_number_max: 5,
            sends_per_address_max: 20,
            sends_per_hour_max: 1_000,
            sends_per_day_max: 10_000,
            code_tries_per_day_max: 20,
            allowed_prefixes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailAuthConfig {
    /// Where the links in emails point: the web page that posts the token to
    /// `/v1/auth/email/verify` or `/v1/auth/password/reset`. `{token}` is replaced.
    pub verify_link: String,
    pub reset_link: String,
    /// A verification link works for this long.
    pub verify_link_ttl_hours: u64,
    /// A password reset link works for this long.
    pub reset_link_ttl_minutes: u64,
    /// An email an account added but never verified is released after this long.
    pub claim_ttl_days: u64,
    /// Verification emails one account may ask for per hour.
    pub resends_per_hour_max: u32,
    /// Emails (verification or reset) sent to one address per hour, whoever asks.
    pub emails_per_address_per_hour_max: u32,
    /// Auth emails waiting to be sent; past it new ones are dropped (and logged).
    pub queue_max: usize,
}

impl Default for EmailAuthConfig {
    fn default() -> Self {
        EmailAuthConfig {
            verify_link: "http://127.0.0.1:8080/verify-email?token={token}".into(),
            reset_link: "http://127.0.0.1:8080/reset-password?token={token}".into(),
            verify_link_ttl_hours: 48,
            reset_link_ttl_minutes: 60,
            claim_ttl_days: 7,
            resends_per_hour_max: 5,
            emails_per_address_per_hour_max: 5,
            queue_max: 1_024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeletionConfig {
    /// Deletion happens this long after it was asked for; signing in again before cancels it.
    pub grace_days: u64,
    /// Data exports (`GET /v1/me/export`) one account may take per hour: each reads all of it.
    pub exports_per_hour_max: u32,
}

impl Default for DeletionConfig {
    fn default() -> Self {
        DeletionConfig {
            grace_days: 14,
            exports_per_hour_max: 6,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Failed sign-ins of one account from one address before each further attempt from that
    /// address waits: `pair_delay_base_secs`, doubling with each failure up to
    /// `pair_delay_max_secs`. Other addresses (the owner's) are not slowed.
    pub pair_free_failures: u32,
    pub pair_delay_base_secs: u64,
    pub pair_delay_max_secs: u64,
    /// Failed sign-ins of one account from all addresses within the window before it is
    /// refused for everyone: a ceiling for guessing spread over many addresses, far above what
    /// an owner mistypes.
    pub account_failures_max: u32,
    /// Failed password sign-ins (and registration probes) from one client address, over all
    /// accounts, within the window before its password attempts are throttled. Device
    /// sign-ins are not affected.
    pub address_failures_max: u32,
    /// Accounts one client address may create within the window (device, password or
    /// external sign-up).
    pub signups_per_address_max: u32,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalIdpConfig {
    /// Accept Firebase-compatible ID tokens on `POST /v1/auth/external`.
    pub enabled: bool,
    /// The Firebase project id: `aud`, and `iss` = `https://securetoken.google.com/<project>`.
    pub project_id: String,
    /// A JWKS file with the provider's public keys. One of `jwks_file` and `jwks_url`.
    pub jwks_file: String,
    /// A JWKS URL, fetched at start and again after `jwks_refresh_secs` or on an unknown `kid`.
    pub jwks_url: String,
    pub jwks_refresh_secs: u64,
    /// Allowed clock skew for `exp`, `iat` and `auth_time`.
    pub leeway_secs: u64,
}

/// Facebook Login: `POST /v1/auth/facebook` with a user access token (checked through the
/// Graph API) or an iOS Limited Login token (checked against Facebook's JWKS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FacebookConfig {
    pub enabled: bool,
    pub app_id: String,
    pub app_secret: String,
    /// The Graph API, versioned.
    pub graph_base_url: String,
    /// Limited Login: Facebook's keys as a JWKS file or URL
    /// (`https://limited.facebook.com/.well-known/oauth/openid/jwks/`); both empty: Limited
    /// Login tokens are refused.
    pub jwks_file: String,
    pub jwks_url: String,
    pub jwks_refresh_secs: u64,
    pub leeway_secs: u64,
}

impl Default for FacebookConfig {
    fn default() -> Self {
        FacebookConfig {
            enabled: false,
            app_id: String::new(),
            app_secret: String::new(),
            graph_base_url: "https://graph.facebook.com/v19.0".into(),
            jwks_file: String::new(),
            jwks_url: String::new(),
            jwks_refresh_secs: 3600,
            leeway_secs: 60,
        }
    }
}

/// An OpenID Connect provider whose ID tokens sign people in (`auth.apple`, `auth.google`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProviderConfig {
    pub enabled: bool,
    /// Accepted `aud` values: Apple's bundle and service ids; Google's iOS, Android and web
    /// client ids.
    pub audiences: Vec<String>,
    /// A JWKS file with the provider's public keys. One of `jwks_file` and `jwks_url`
    /// (Apple: `https://appleid.apple.com/auth/keys`; Google:
    /// `https://www.googleapis.com/oauth2/v3/certs`).
    pub jwks_file: String,
    pub jwks_url: String,
    pub jwks_refresh_secs: u64,
    /// Allowed clock skew for `exp` and `iat`.
    pub leeway_secs: u64,
}

impl Default for OidcProviderConfig {
    fn default() -> Self {
        OidcProviderConfig {
            enabled: false,
            audiences: Vec::new(),
            jwks_file: String::new(),
            jwks_url: String::new(),
            jwks_refresh_secs: 3600,
            leeway_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// Without a bearer header, the `auth` frame must arrive within this time.
    pub auth_deadline_secs: u64,
    /// A connection that sends nothing (no frame, no ping) for this long is closed.
    pub heartbeat_timeout_secs: u64,
    /// Frames waiting to be sent to one client; a client that lets it fill up is closed.
    pub outbound_queue_max: usize,
    /// Largest accepted incoming frame.
    pub frame_bytes_max: usize,
    /// Malformed or refused frames tolerated before the connection is closed.
    pub bad_frames_max: u32,
    /// Events replayed at most on one resume; older gaps need a full refetch over REST.
    pub replay_events_max: usize,
    /// A replay looks through at most this many of the user's events that are not on the topic
    /// before it answers `reset` instead: its work is bounded by what it returns.
    pub replay_skip_max: usize,
    /// `subscribe` frames one connection may send; past it they are refused (`rate_limited`,
    /// counted as a bad frame).
    pub subscribes_max: u32,
    /// Open connections per user; a newer one closes the oldest (`too_many_connections`).
    pub connections_per_user_max: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// A user stays online this long after their last connection is gone.
    pub offline_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Largest page of `GET /v1/admin/events`.
    pub query_limit_max: u32,
    /// Log rows one admin query may scan while filtering.
    pub query_scan_max: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            body_bytes_max: 1024 * 1024,
            shutdown_grace_secs: 10,
            client_ip_header: String::new(),
            connections: ConnectionsConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "duet".into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_days: 60,
            refresh_reuse_interval_secs: 5,
            fresh_sign_in_secs: 300,
            signing_key_file: String::new(),
            throttle: ThrottleConfig::default(),
            external: ExternalIdpConfig::default(),
            apple: OidcProviderConfig::default(),
            google: OidcProviderConfig::default(),
            facebook: FacebookConfig::default(),
            phone: PhoneConfig::default(),
            email: EmailAuthConfig::default(),
            deletion: DeletionConfig::default(),
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            pair_free_failures: 3,
            pair_delay_base_secs: 1,
            pair_delay_max_secs: 900,
            account_failures_max: 50,
            address_failures_max: 30,
            signups_per_address_max: 50,
            window_secs: 900,
        }
    }
}

impl Default for ExternalIdpConfig {
    fn default() -> Self {
        ExternalIdpConfig {
            enabled: false,
            project_id: String::new(),
            jwks_file: String::new(),
            jwks_url: String::new(),
            jwks_refresh_secs: 3600,
            leeway_secs: 60,
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            auth_deadline_secs: 10,
            heartbeat_timeout_secs: 60,
            outbound_queue_max: 1024,
            frame_bytes_max: 64 * 1024,
            bad_frames_max: 5,
            replay_events_max: 10_000,
            replay_skip_max: 2_000,
            subscribes_max: 64,
            connections_per_user_max: 8,
        }
    }
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            offline_grace_secs: 20,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            query_limit_max: 500,
            query_scan_max: 100_000,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Defaults, then the file (if given), then `DUET_` environment variables.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(bad(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("DUET_").split("__"));
        let config: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let key = if key.is_empty() {
                "config".to_owned()
            } else {
                key
            };
            bad(&key, e.kind.to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.server.body_bytes_max < 1024 {
            return Err(bad("server.body_bytes_max", "must be at least 1024"));
        }
        let c = &self.server.connections;
        if c.max == 0 {
            return Err(bad("server.connections.max", "must be at least 1"));
        }
        for (key, ms) in [
            ("header_read_timeout_ms", c.header_read_timeout_ms),
            ("body_read_timeout_ms", c.body_read_timeout_ms),
            ("idle_timeout_ms", c.idle_timeout_ms),
            ("request_timeout_ms", c.request_timeout_ms),
            ("accept_backoff_max_ms", c.accept_backoff_max_ms),
        ] {
            if ms == 0 {
                return Err(bad(
                    &format!("server.connections.{key}"),
                    "must be at least 1 (a phase without a bound is what the limits prevent)",
                ));
            }
        }
        if c.per_address_max == 0 {
            return Err(bad(
                "server.connections.per_address_max",
                "must be at least 1",
            ));
        }
        if c.body_min_bytes_per_sec == 0 {
            return Err(bad(
                "server.connections.body_min_bytes_per_sec",
                "must be at least 1",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad("log.format", "must be `text` or `json`"));
        }
        if !(1..=900).contains(&self.auth.access_token_ttl_secs) {
            return Err(bad(
                "auth.access_token_ttl_secs",
                "must be between 1 and 900",
            ));
        }
        if self.auth.refresh_reuse_interval_secs > 60 {
            return Err(bad(
                "auth.refresh_reuse_interval_secs",
                "must be at most 60 (a stolen token is honoured that long)",
            ));
        }
        if self.auth.refresh_token_ttl_days == 0 {
            return Err(bad("auth.refresh_token_ttl_days", "must be at least 1"));
        }
        if self.auth.issuer.is_empty() {
            return Err(bad("auth.issuer", "must not be empty"));
        }
        let t = &self.auth.throttle;
        if t.pair_free_failures == 0 || t.pair_delay_base_secs == 0 || t.pair_delay_max_secs == 0 {
            return Err(bad(
                "auth.throttle",
                "pair_free_failures and the pair delays must be positive",
            ));
        }
        if t.account_failures_max == 0
            || t.address_failures_max == 0
            || t.signups_per_address_max == 0
            || t.window_secs == 0
        {
            return Err(bad("auth.throttle", "limits and window must be positive"));
        }
        for (key, p) in [
            ("auth.apple", &self.auth.apple),
            ("auth.google", &self.auth.google),
        ] {
            if !p.enabled {
                continue;
            }
            if p.audiences.is_empty() || p.audiences.iter().any(String::is_empty) {
                return Err(bad(&format!("{key}.audiences"), "required when enabled"));
            }
            if p.jwks_file.is_empty() == p.jwks_url.is_empty() {
                return Err(bad(key, "set exactly one of jwks_file and jwks_url"));
            }
            if p.jwks_refresh_secs == 0 {
                return Err(bad(&format!("{key}.jwks_refresh_secs"), "must be positive"));
            }
        }
        let f = &self.auth.facebook;
        if f.enabled {
            if f.app_id.is_empty() || f.app_secret.is_empty() {
                return Err(bad("auth.facebook", "app_id and app_secret are required"));
            }
            if !f.jwks_file.is_empty() && !f.jwks_url.is_empty() {
                return Err(bad(
                    "auth.facebook",
                    "set at most one of jwks_file and jwks_url",
                ));
            }
            if f.jwks_refresh_secs == 0 {
                return Err(bad("auth.facebook.jwks_refresh_secs", "must be positive"));
            }
        }
        let p = &self.auth.phone;
        if p.enabled {
            if p.account_sid.is_empty() || p.auth_token.is_empty() {
                return Err(bad("auth.phone", "account_sid and auth_token are required"));
            }
            match p.provider {
                SmsProvider::TwilioVerify if p.verify_service_sid.is_empty() => {
                    return Err(bad(
                        "auth.phone.verify_service_sid",
                        "required with twilio_verify",
                    ));
                }
                SmsProvider::TwilioMessaging
                    if p.messaging_service_sid.is_empty() == p.from_number.is_empty() =>
                {
                    return Err(bad(
                        "auth.phone",
                        "set exactly one of messaging_service_sid and from_number with twilio_messaging",
                    ));
                }
                _ => {}
            }
        }
        if !(4..=10).contains(&p.code_digits) {
            return Err(bad("auth.phone.code_digits", "must be 4–10"));
        }
        if p.code_ttl_secs == 0
            || p.attempts_max == 0
            || p.sends_per_number_max == 0
            || p.sends_per_address_max == 0
            || p.sends_per_hour_max == 0
            || p.sends_per_day_max == 0
            || p.code_tries_per_day_max == 0
        {
            return Err(bad(
                "auth.phone",
                "ttl, attempts and send limits must be positive",
            ));
        }
        let e = &self.auth.email;
        for (key, link) in [
            ("auth.email.verify_link", &e.verify_link),
            ("auth.email.reset_link", &e.reset_link),
        ] {
            if !link.contains("{token}") {
                return Err(bad(key, "must contain {token}"));
            }
        }
        if e.verify_link_ttl_hours == 0
            || e.reset_link_ttl_minutes == 0
            || e.claim_ttl_days == 0
            || e.resends_per_hour_max == 0
            || e.emails_per_address_per_hour_max == 0
            || e.queue_max == 0
        {
            return Err(bad("auth.email", "lifetimes and limits must be positive"));
        }
        let g = &self.gallery;
        if 2 * g.ranked_cache_ms + g.commit_interval_ms >= g.freshness_ms_max {
            return Err(bad(
                "gallery",
                "2 × ranked_cache_ms + commit_interval_ms must be below freshness_ms_max",
            ));
        }
        if g.ranked_lists_max == 0
            || g.cursor_ttl_secs == 0
            || g.cursors_max == 0
            || g.signal_interval_ms == 0
        {
            return Err(bad(
                "gallery",
                "ranked_lists_max, cursor_ttl_secs and cursors_max must be positive",
            ));
        }
        let m = &self.media;
        if [
            m.photo_bytes_max,
            m.video_bytes_max,
            m.kyc_document_bytes_max,
            m.quota_bytes_per_user,
            m.items_per_user_max,
            m.photo_pixels_max,
            m.video_secs_max,
            m.url_ttl_secs,
            m.collect_interval_secs,
        ]
        .contains(&0)
            || m.display_px == 0
            || m.thumb_px == 0
            || m.uploads_max == 0
            || m.decodes_max == 0
            || m.uploads_per_user_max == 0
        {
            return Err(bad("media", "sizes, counts and intervals must be positive"));
        }
        if !(1..=100).contains(&m.jpeg_quality) {
            return Err(bad("media.jpeg_quality", "must be from 1 to 100"));
        }
        if m.url_ttl_secs < 60 {
            return Err(bad("media.url_ttl_secs", "must be at least 60"));
        }
        for (key, approve, reject) in [
            ("photo", m.photo_approve_below, m.photo_reject_at),
            ("video", m.video_approve_below, m.video_reject_at),
        ] {
            if !(0.0..=1.0).contains(&approve) || !(0.0..=1.0).contains(&reject) || approve > reject
            {
                return Err(bad(
                    &format!("media.{key}_approve_below"),
                    "thresholds must be within 0..=1, approve_below at most reject_at",
                ));
            }
        }
        let p = &self.panel;
        if p.recompute_interval_secs == 0
            || p.recompute_chunk == 0
            || p.cohorts_max == 0
            || p.hand_members_per_request_max == 0
        {
            return Err(bad("panel", "every setting must be positive"));
        }
        if self.auth.fresh_sign_in_secs == 0 {
            return Err(bad("auth.fresh_sign_in_secs", "must be positive"));
        }
        if self.auth.deletion.exports_per_hour_max == 0 {
            return Err(bad(
                "auth.deletion.exports_per_hour_max",
                "must be positive",
            ));
        }
        let x = &self.auth.external;
        if x.enabled {
            if x.project_id.is_empty() {
                return Err(bad(
                    "auth.external.project_id",
                    "required when external is enabled",
                ));
            }
            if x.jwks_file.is_empty() == x.jwks_url.is_empty() {
                return Err(bad(
                    "auth.external.jwks_file",
                    "set exactly one of jwks_file and jwks_url when external is enabled",
                ));
            }
        }
        let w = &self.ws;
        if w.outbound_queue_max == 0 {
            return Err(bad("ws.outbound_queue_max", "must be positive"));
        }
        if w.frame_bytes_max < 256 {
            return Err(bad("ws.frame_bytes_max", "must be at least 256"));
        }
        if w.heartbeat_timeout_secs == 0 || w.auth_deadline_secs == 0 {
            return Err(bad("ws", "deadlines must be positive"));
        }
        let r = &self.rate_limits;
        for (key, rate) in [
            ("user_writes", r.user_writes),
            ("address_writes", r.address_writes),
        ] {
            if rate.max == 0 || rate.per_secs == 0 {
                return Err(bad(
                    &format!("rate_limits.{key}"),
                    "max and per_secs must be positive",
                ));
            }
        }
        if r.keys_max == 0 {
            return Err(bad("rate_limits.keys_max", "must be positive"));
        }
        let m = &self.moderation;
        if m.harassment_threshold == 0
            || m.harassment_window_secs == 0
            || m.nudity_threshold == 0
            || m.nudity_window_secs == 0
            || m.suspension_secs == 0
        {
            return Err(bad(
                "moderation",
                "thresholds, windows and the suspension must be positive",
            ));
        }
        if self.chat.messages_per_minute == 0 {
            return Err(bad("chat.messages_per_minute", "must be positive"));
        }
        if self.chat.greeting.trim().is_empty() || self.chat.greeting.chars().count() > 2000 {
            return Err(bad("chat.greeting", "must be 1–2000 characters"));
        }
        if crate::domains::panel::model::check_tags(&self.chat.auto_add_tags, 20, "auto_add_tags")
            .is_err()
        {
            return Err(bad(
                "chat.auto_add_tags",
                "at most 20 cohort tags, none twice (a-z, 0-9, _ and -, starting with a letter)",
            ));
        }
        let n = &self.notifications;
        if n.ack_timeout_secs == 0
            || n.retry_base_secs == 0
            || n.attempts_max == 0
            || n.digest_every_secs == 0
            || n.fanout_chunk == 0
        {
            return Err(bad(
                "notifications",
                "timeouts, retries and periods must be positive",
            ));
        }
        if n.retry_max_secs < n.retry_base_secs {
            return Err(bad(
                "notifications.retry_max_secs",
                "must be at least retry_base_secs",
            ));
        }
        if !n.fcm.project_id.is_empty() && n.fcm.service_account_file.is_empty() {
            return Err(bad(
                "notifications.fcm.service_account_file",
                "required when project_id is set",
            ));
        }
        if !n.apns.team_id.is_empty()
            && (n.apns.key_id.is_empty()
                || n.apns.private_key_file.is_empty()
                || n.apns.bundle_id.is_empty())
        {
            return Err(bad(
                "notifications.apns",
                "key_id, private_key_file and bundle_id are required when team_id is set",
            ));
        }
        if !n.onesignal.app_id.is_empty() && n.onesignal.api_key.is_empty() {
            return Err(bad(
                "notifications.onesignal.api_key",
                "required when app_id is set",
            ));
        }
        let a = &self.payments.apple;
        if a.enabled {
            if a.bundle_id.is_empty() || a.root_certificate_file.is_empty() {
                return Err(bad(
                    "payments.apple",
                    "bundle_id and root_certificate_file are required when enabled",
                ));
            }
            if !matches!(a.environment.as_str(), "Production" | "Sandbox") {
                return Err(bad(
                    "payments.apple.environment",
                    "must be Production or Sandbox",
                ));
            }
        }
        let g = &self.payments.google;
        if g.enabled {
            if g.package_name.is_empty() || g.service_account_file.is_empty() {
                return Err(bad(
                    "payments.google",
                    "package_name and service_account_file are required when enabled",
                ));
            }
            if g.pubsub_audience.is_empty() || g.pubsub_service_account.is_empty() {
                return Err(bad(
                    "payments.google",
                    "pubsub_audience and pubsub_service_account are required when enabled",
                ));
            }
        }
        if self.video.token_ttl_secs == 0
            || self.video.failure_threshold == 0
            || self.video.failure_window_secs == 0
        {
            return Err(bad(
                "video",
                "token_ttl_secs, failure_threshold and failure_window_secs must be positive",
            ));
        }
        if self.calls.ring_timeout_secs == 0 || self.calls.max_duration_secs == 0 {
            return Err(bad(
                "calls",
                "ring_timeout_secs and max_duration_secs must be positive",
            ));
        }
        if self.ml.nsfw_workers == 0 || self.ml.queue_max == 0 || self.ml.batch_max == 0 {
            return Err(bad(
                "ml",
                "nsfw_workers, queue_max and batch_max must be positive",
            ));
        }
        if self.admin.rows_scanned_max == 0 || self.admin.read_ms_max == 0 {
            return Err(bad(
                "admin",
                "rows_scanned_max and read_ms_max must be positive",
            ));
        }
        if self.payouts.kyc_document_retention_days == 0 {
            return Err(bad(
                "payouts.kyc_document_retention_days",
                "must be at least 1",
            ));
        }
        if self.payouts.minimum_coins <= 0 {
            return Err(bad("payouts.minimum_coins", "must be positive"));
        }
        if self.events.query_limit_max == 0 {
            return Err(bad("events.query_limit_max", "must be positive"));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            bad(
                "server.listen",
                format!("`{}` is not host:port", self.server.listen),
            )
        })
    }

    pub fn signing_key_path(&self) -> PathBuf {
        if self.auth.signing_key_file.is_empty() {
            self.server.data_dir.join("signing-key.pem")
        } else {
            PathBuf::from(&self.auth.signing_key_file)
        }
    }
}
