//! REST routes of the billing domain.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::{Access, Role};
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};

use super::TariffInput;
use super::model::*;

#[derive(Object, Clone, Copy)]
#[oai(rename_all = "camelCase")]
pub struct CheckpointDto {
    pub at_seconds: u32,
    pub coins: i64,
}

#[derive(Object, Clone, Copy)]
#[oai(rename_all = "camelCase")]
pub struct RepeatDto {
    pub every_seconds: u32,
    pub coins: i64,
}

#[derive(Object, Clone)]
#[oai(rename_all = "camelCase")]
pub struct ScheduleDto {
    /// Sorted by `atSeconds`; 0 is "on connect".
    pub checkpoints: Vec<CheckpointDto>,
    /// Continues after the last checkpoint.
    pub repeat: Option<RepeatDto>,
}

impl From<ScheduleDto> for Schedule {
    fn from(d: ScheduleDto) -> Self {
        Schedule {
            checkpoints: d
                .checkpoints
                .into_iter()
                .map(|c| Checkpoint {
                    at_seconds: c.at_seconds,
                    coins: c.coins,
                })
                .collect(),
            repeat: d.repeat.map(|r| Repeat {
                every_seconds: r.every_seconds,
                coins: r.coins,
            }),
        }
    }
}

impl From<&Schedule> for ScheduleDto {
    fn from(s: &Schedule) -> Self {
        ScheduleDto {
            checkpoints: s
                .checkpoints
                .iter()
                .map(|c| CheckpointDto {
                    at_seconds: c.at_seconds,
                    coins: c.coins,
                })
                .collect(),
            repeat: s.repeat.map(|r| RepeatDto {
                every_seconds: r.every_seconds,
                coins: r.coins,
            }),
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ScopeType {
    Default,
    Streamer,
    Cohort,
}

#[derive(Object, Clone)]
#[oai(rename_all = "camelCase")]
pub struct ScopeDto {
    #[oai(rename = "type")]
    pub scope_type: ScopeType,
    /// The streamer's user id, or the cohort tag.
    pub value: Option<String>,
}

impl ScopeDto {
    fn parse(&self) -> AppResult<Scope> {
        let need = || {
            self.value
                .clone()
                .ok_or_else(|| AppError::validation("scope.value is required for this scope"))
        };
        Ok(match self.scope_type {
            ScopeType::Default => Scope::Default,
            ScopeType::Streamer => Scope::Streamer(need()?),
            ScopeType::Cohort => Scope::Cohort(need()?),
        })
    }
    fn from_scope(s: &Scope) -> Self {
        match s {
            Scope::Default => ScopeDto {
                scope_type: ScopeType::Default,
                value: None,
            },
            Scope::Streamer(v) => ScopeDto {
                scope_type: ScopeType::Streamer,
                value: Some(v.clone()),
            },
            Scope::Cohort(v) => ScopeDto {
                scope_type: ScopeType::Cohort,
                value: Some(v.clone()),
            },
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TariffRequest {
    pub name: String,
    pub kind: CallKind,
    pub caller_role: Role,
    pub callee_role: Role,
    /// Which side pays; the other earns.
    pub payer: Side,
    pub scope: ScopeDto,
    pub payer_schedule: ScheduleDto,
    pub earner_schedule: ScheduleDto,
    #[oai(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TariffView {
    pub id: String,
    pub version: u32,
    pub name: String,
    pub kind: CallKind,
    pub caller_role: Role,
    pub callee_role: Role,
    pub payer: Side,
    pub scope: ScopeDto,
    pub payer_schedule: ScheduleDto,
    pub earner_schedule: ScheduleDto,
    pub active: bool,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl From<Tariff> for TariffView {
    fn from(t: Tariff) -> Self {
        TariffView {
            scope: ScopeDto::from_scope(&t.scope),
            payer_schedule: (&t.payer_schedule).into(),
            earner_schedule: (&t.earner_schedule).into(),
            id: t.id,
            version: t.version,
            name: t.name,
            kind: t.kind,
            caller_role: t.caller_role,
            callee_role: t.callee_role,
            payer: t.payer,
            active: t.active,
            updated_at: to_datetime(t.updated_at_ms),
            updated_by: t.updated_by,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TariffList {
    pub items: Vec<TariffView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PreviewView {
    pub tariff_id: String,
    pub version: u32,
    /// Which side pays.
    pub payer: Side,
    pub seconds: u64,
    /// What the payer is charged for a call of this length.
    pub cost: i64,
    /// What the earner gets.
    pub earnings: i64,
    /// The difference, kept by the platform.
    pub platform: i64,
}

impl TryFrom<TariffRequest> for TariffInput {
    type Error = AppError;
    fn try_from(r: TariffRequest) -> AppResult<Self> {
        Ok(TariffInput {
            scope: r.scope.parse()?,
            name: r.name,
            kind: r.kind,
            caller_role: r.caller_role,
            callee_role: r.callee_role,
            payer: r.payer,
            payer_schedule: r.payer_schedule.into(),
            earner_schedule: r.earner_schedule.into(),
            active: r.active,
        })
    }
}

pub struct BillingApi;

#[OpenApi(tag = "ApiTags::Billing")]
impl BillingApi {
    /// What a call to `calleeId` of `seconds` would cost the payer and earn the earner, under
    /// the tariff that applies now. Any role.
    #[oai(
        path = "/v1/tariffs/preview",
        method = "get",
        operation_id = "tariffs_preview"
    )]
    async fn preview(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        kind: Query<CallKind>,
        #[oai(name = "calleeId")] callee_id: Query<String>,
        seconds: Query<u64>,
    ) -> AppResult<Json<PreviewView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        if seconds.0 > u64::from(SECONDS_MAX) {
            return Err(AppError::validation(format!(
                "seconds is at most {SECONDS_MAX}"
            )));
        }
        let secs = seconds.0;
        let t = super::tariff_for_call(&ctx, kind.0, &who.user_id, who.role, &callee_id.0).await?;
        let cost = t.payer_schedule.total_at(secs);
        let earnings = t.earner_schedule.total_at(secs);
        Ok(Json(PreviewView {
            tariff_id: t.id,
            version: t.version,
            payer: t.payer,
            seconds: secs,
            cost,
            earnings,
            platform: cost - earnings,
        }))
    }

    /// Every tariff, current versions. Admin.
    #[oai(
        path = "/v1/admin/tariffs",
        method = "get",
        operation_id = "admin_tariffs_list"
    )]
    async fn list(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<TariffList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::tariffs(&ctx).await?;
        Ok(Json(TariffList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Add a tariff. Admin; audited.
    #[oai(
        path = "/v1/admin/tariffs",
        method = "post",
        operation_id = "admin_tariffs_create"
    )]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<TariffRequest>,
    ) -> AppResult<Json<TariffView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, None, body.0.try_into()?)
                .await?
                .into(),
        ))
    }

    /// Change a tariff: a new version; calls already connected keep theirs. Admin; audited.
    #[oai(
        path = "/v1/admin/tariffs/:tariff_id",
        method = "put",
        operation_id = "admin_tariffs_update"
    )]
    async fn update(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        tariff_id: Path<String>,
        body: JsonBody<TariffRequest>,
    ) -> AppResult<Json<TariffView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, Some(tariff_id.0), body.0.try_into()?)
                .await?
                .into(),
        ))
    }

    /// One version of a tariff. Admin.
    #[oai(
        path = "/v1/admin/tariffs/:tariff_id/versions/:version",
        method = "get",
        operation_id = "admin_tariffs_version"
    )]
    async fn version(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        tariff_id: Path<String>,
        version: Path<u32>,
    ) -> AppResult<Json<TariffView>> {
        auth.require(&ctx, Access::Admin).await?;
        let t = super::tariff_version(&ctx, &tariff_id.0, version.0)
            .await?
            .ok_or_else(|| AppError::not_found("no such tariff version"))?;
        Ok(Json(t.into()))
    }
}
