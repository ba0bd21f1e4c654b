//! Routes of account deletion and data export: `DELETE /v1/me`, `GET /v1/me/export`, and the
//! admin's `DELETE /v1/admin/users/{userId}` and `GET /v1/admin/users/{userId}/export`; also
//! the admin's `GET /v1/admin/users/{userId}` (mission control's view), which shares the
//! delete's path and so its API.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::AppResult;
use crate::domains::mission_control::{self, api::AdminUserView};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DeletionScheduled {
    /// When the account and its personal data will be erased, unless its owner signs in
    /// before (which cancels the deletion).
    pub delete_at: OffsetDateTime,
}

#[derive(ApiResponse)]
pub enum DeletionResponse {
    /// Scheduled; every session is signed out.
    #[oai(status = 202)]
    Scheduled(Json<DeletionScheduled>),
}

/// Everything Duet keeps about the person. Each section holds records as stored: field names
/// in snake_case, times in unix milliseconds.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ExportArchive {
    /// `duet-export/1`.
    pub format: String,
    /// A section reached the export's bound (50,000 rows of one kind) and was cut there.
    pub truncated: bool,
    pub generated_at: OffsetDateTime,
    pub user_id: String,
    /// The account: role, email (verified or pending), platform, ban, scheduled deletion.
    pub account: Value,
    /// Ways of signing in.
    pub identities: Vec<Value>,
    /// Live sessions, with their client addresses and user agents.
    pub sessions: Vec<Value>,
    /// Push registrations.
    pub devices: Vec<Value>,
    /// The private and public profile.
    pub profile: Value,
    /// Each conversation with its messages, oldest first.
    pub conversations: Vec<Value>,
    /// Coin transfers of the wallet and of the earnings (gifts, calls, purchases, payouts).
    pub transfers: Value,
    pub calls: Vec<Value>,
    /// The people the person keeps among their favorites.
    pub favorites: Vec<Value>,
    /// The people the person blocked, with reasons.
    pub blocks: Vec<Value>,
    pub notifications: Vec<Value>,
    /// Photos, videos and KYC documents they uploaded, with their moderation state (the
    /// files themselves through `GET /v1/media/{mediaId}/url`).
    pub media: Vec<Value>,
    pub payouts: Vec<Value>,
    /// Reports the person filed, with what became of them.
    pub reports: Vec<Value>,
}

impl ExportArchive {
    fn from_value(mut v: Value) -> ExportArchive {
        let mut take = |k: &str| v.get_mut(k).map(Value::take).unwrap_or(Value::Null);
        let list = |v: Value| match v {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        ExportArchive {
            format: take("format").as_str().unwrap_or_default().to_owned(),
            truncated: take("truncated").as_bool().unwrap_or_default(),
            generated_at: to_datetime(take("generated_at_ms").as_i64().unwrap_or_default()),
            user_id: take("user_id").as_str().unwrap_or_default().to_owned(),
            account: take("account"),
            identities: list(take("identities")),
            sessions: list(take("sessions")),
            devices: list(take("devices")),
            profile: take("profile"),
            conversations: list(take("conversations")),
            transfers: take("transfers"),
            calls: list(take("calls")),
            favorites: list(take("favorites")),
            blocks: list(take("blocks")),
            notifications: list(take("notifications")),
            media: list(take("media")),
            payouts: list(take("payouts")),
            reports: list(take("reports")),
        }
    }
}

pub struct PrivacyApi;

#[OpenApi(tag = "ApiTags::Account")]
impl PrivacyApi {
    /// Delete the caller's account. Needs a fresh sign-in (a session opened within
    /// `auth.deletion.fresh_sign_in_secs`, else `reauthentication_required`); signs out
    /// everywhere; the personal data is erased after `auth.deletion.grace_days` unless the
    /// owner signs in again before, which cancels it. Any role.
    #[oai(path = "/v1/me", method = "delete", operation_id = "me_delete")]
    async fn delete_me(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<DeletionResponse> {
        let who = auth.require(&ctx, Access::Any).await?;
        let due = crate::domains::user::deletion::request(&ctx, &who).await?;
        Ok(DeletionResponse::Scheduled(Json(DeletionScheduled {
            delete_at: to_datetime(due),
        })))
    }

    /// Everything Duet keeps about the caller, as one JSON archive (GDPR access and
    /// portability). Needs a fresh sign-in (`reauthentication_required`), like deleting; at
    /// most `auth.deletion.exports_per_hour_max` an hour. Any role.
    #[oai(path = "/v1/me/export", method = "get", operation_id = "me_export")]
    async fn export(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<ExportArchive>> {
        let who = auth.require(&ctx, Access::Any).await?;
        crate::domains::user::Freshness::of(&ctx, &who)
            .check(&ctx)
            .await?;
        let per_hour = crate::config::RateConfig {
            max: ctx.config.auth.deletion.exports_per_hour_max,
            per_secs: 3600,
        };
        ctx.limits
            .check(&per_hour.limit("export"), &who.user_id, ctx.store.now_ms())?;
        let archive = super::export(&ctx, &who.user_id).await?;
        Ok(Json(ExportArchive::from_value(archive)))
    }

    /// One account: role, ban, presence, deletion, and its cohorts and tags. Admin.
    #[oai(
        path = "/v1/admin/users/:user_id",
        method = "get",
        operation_id = "admin_user_get"
    )]
    async fn admin_user(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<Json<AdminUserView>> {
        auth.require(&ctx, Access::Admin).await?;
        let overview = mission_control::user_overview(&ctx, &user_id).await?;
        Ok(Json(AdminUserView::of(overview, ctx.store.now_ms())))
    }

    /// Delete an account now: its personal data is erased at once (what must be kept stays,
    /// pseudonymised); signing in cannot cancel it. `reason` (1–500 characters) is kept in the
    /// audit log. Admin; audited.
    #[oai(
        path = "/v1/admin/users/:user_id",
        method = "delete",
        operation_id = "admin_user_delete"
    )]
    async fn admin_delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        reason: Query<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::delete_by_admin(&ctx, &who, &user_id, &reason).await?;
        Ok(NoContent::Done)
    }

    /// A user's data export. Admin; audited.
    #[oai(
        path = "/v1/admin/users/:user_id/export",
        method = "get",
        operation_id = "admin_user_export"
    )]
    async fn admin_export(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<Json<ExportArchive>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let archive = super::export_by_admin(&ctx, &who, &user_id).await?;
        Ok(Json(ExportArchive::from_value(archive)))
    }
}
