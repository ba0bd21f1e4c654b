//! REST routes of the settings domain.

use crate::api::body::JsonBody;
use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::NoContent;
use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};
use crate::core::platform::Platform;

use super::model::{FlagRecord, PlatformRule, parse_flag_key};
use crate::core::platform::AppVersion;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ClientSettingsView {
    pub platform: Platform,
    /// The lowest app version this platform may run, if one is set.
    pub min_version: Option<String>,
    /// The client must update before it can be used.
    pub update_required: bool,
    /// Every flag, evaluated for this user and platform.
    pub flags: BTreeMap<String, bool>,
}

#[derive(Object, Clone, Copy)]
#[oai(rename_all = "camelCase")]
pub struct RuleDto {
    pub enabled: bool,
    /// 0–100; omitted means everyone (when enabled).
    pub rollout_percent: Option<u8>,
}

#[derive(Object, Default)]
#[oai(rename_all = "camelCase")]
pub struct PlatformRules {
    pub ios: Option<RuleDto>,
    pub android: Option<RuleDto>,
    pub web: Option<RuleDto>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FlagRequest {
    #[oai(default)]
    pub description: String,
    /// Platforms left out have the flag off.
    pub platforms: PlatformRules,
    /// When not empty, only people carrying one of these cohort tags get the flag (at most
    /// 20).
    #[oai(default)]
    pub cohort_tags: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FlagView {
    pub key: String,
    pub description: String,
    pub platforms: PlatformRules,
    /// Empty: everyone on the platforms; otherwise only people carrying one of these tags.
    pub cohort_tags: Vec<String>,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl From<FlagRecord> for FlagView {
    fn from(f: FlagRecord) -> Self {
        let rule = |p: Platform| {
            f.platforms.get(p.as_str()).map(|r| RuleDto {
                enabled: r.enabled,
                rollout_percent: r.rollout_percent,
            })
        };
        FlagView {
            platforms: PlatformRules {
                ios: rule(Platform::Ios),
                android: rule(Platform::Android),
                web: rule(Platform::Web),
            },
            key: f.key,
            description: f.description,
            cohort_tags: f.cohort_tags,
            updated_at: to_datetime(f.updated_at_ms),
            updated_by: f.updated_by,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MinVersionRequest {
    pub version: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AllSettings {
    /// platform → minimum version.
    pub min_versions: BTreeMap<String, String>,
    pub flags: Vec<FlagView>,
}

/// Longest flag description, in characters.
const FLAG_DESCRIPTION_CHARS_MAX: usize = 500;

pub struct SettingsApi;

#[OpenApi(tag = "ApiTags::Settings")]
impl SettingsApi {
    /// The settings for this client: flags evaluated for the caller and whether it must update.
    /// Any role.
    #[oai(path = "/v1/settings", method = "get", operation_id = "settings_get")]
    async fn get(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        platform: Query<Platform>,
        #[oai(name = "appVersion")] app_version: Query<String>,
    ) -> AppResult<Json<ClientSettingsView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let version = AppVersion::parse(&app_version)?;
        let s = super::for_client(&ctx, platform.0, version, &who.user_id).await?;
        Ok(Json(ClientSettingsView {
            platform: platform.0,
            min_version: s.min_version,
            update_required: s.update_required,
            flags: s.flags,
        }))
    }

    /// Every setting, for the admin panel. Admin.
    #[oai(
        path = "/v1/admin/settings",
        method = "get",
        operation_id = "admin_settings_get"
    )]
    async fn all(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<AllSettings>> {
        auth.require(&ctx, Access::Admin).await?;
        let (min_versions, flags) = super::all(&ctx).await?;
        Ok(Json(AllSettings {
            min_versions,
            flags: flags.into_iter().map(Into::into).collect(),
        }))
    }

    /// Set the minimum app version of a platform. Admin; audited.
    #[oai(
        path = "/v1/admin/settings/min-version/:platform",
        method = "put",
        operation_id = "admin_settings_min_version"
    )]
    async fn min_version(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        platform: Path<Platform>,
        body: JsonBody<MinVersionRequest>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let version = AppVersion::parse(&body.version)?;
        super::set_min_version(&ctx, &who.user_id, platform.0, version).await?;
        Ok(NoContent::Done)
    }

    /// Create or replace a feature flag. Admin; audited.
    #[oai(
        path = "/v1/admin/settings/flags/:key",
        method = "put",
        operation_id = "admin_settings_flag_put"
    )]
    async fn put_flag(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        key: Path<String>,
        body: JsonBody<FlagRequest>,
    ) -> AppResult<Json<FlagView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let key = parse_flag_key(&key)?;
        let b = body.0;
        if b.description.chars().count() > FLAG_DESCRIPTION_CHARS_MAX {
            return Err(AppError::validation(format!(
                "description is at most {FLAG_DESCRIPTION_CHARS_MAX} characters"
            )));
        }
        let mut platforms = BTreeMap::new();
        for (p, rule) in [
            (Platform::Ios, b.platforms.ios),
            (Platform::Android, b.platforms.android),
            (Platform::Web, b.platforms.web),
        ] {
            if let Some(r) = rule {
                if r.rollout_percent.is_some_and(|p| p > 100) {
                    return Err(AppError::validation("rolloutPercent must be 0–100"));
                }
                platforms.insert(
                    p.as_str().to_owned(),
                    PlatformRule {
                        enabled: r.enabled,
                        rollout_percent: r.rollout_percent,
                    },
                );
            }
        }
        let flag = super::put_flag(
            &ctx,
            &who.user_id,
            key,
            b.description,
            platforms,
            b.cohort_tags,
        )
        .await?;
        Ok(Json(flag.into()))
    }

    /// Delete a feature flag. Admin; audited.
    #[oai(
        path = "/v1/admin/settings/flags/:key",
        method = "delete",
        operation_id = "admin_settings_flag_delete"
    )]
    async fn delete_flag(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        key: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::delete_flag(&ctx, &who.user_id, key.0).await?;
        Ok(NoContent::Done)
    }
}
