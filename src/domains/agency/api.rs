//! Agency routes: admins create agencies and assign streamers; a manager sees their agency.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::body::JsonBody;
use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;

use super::{Agency, AgencyDraft};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyRequest {
    /// 1–100 characters.
    pub name: String,
    /// 0–90: the agency's share of each earning of its streamers, rounded down to whole
    /// coins (rounding favours the streamer). A change applies to earnings from then on.
    #[oai(validator(maximum(value = "90")))]
    pub commission_percent: u8,
    /// The account that manages the agency (not a streamer; one agency per manager).
    pub manager_id: Option<String>,
    /// Where the agency's payouts are sent, 1–1,000 characters.
    pub payout_details: Option<String>,
}

impl AgencyRequest {
    fn draft(self) -> AgencyDraft {
        AgencyDraft {
            name: self.name,
            commission_percent: self.commission_percent,
            manager_id: self.manager_id,
            payout_details: self.payout_details,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyView {
    pub id: String,
    pub name: String,
    pub commission_percent: u8,
    pub manager_id: Option<String>,
    pub payout_details: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<Agency> for AgencyView {
    fn from(a: Agency) -> Self {
        AgencyView {
            id: a.id,
            name: a.name,
            commission_percent: a.commission_percent,
            manager_id: a.manager_id,
            payout_details: a.payout_details,
            created_at: to_datetime(a.created_at_ms),
            updated_at: to_datetime(a.updated_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyList {
    pub items: Vec<AgencyView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyMemberView {
    pub user_id: String,
    pub display_name: Option<String>,
    pub joined_at: OffsetDateTime,
}

/// An agency with a page of its streamers and its money.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyDetail {
    pub agency: AgencyView,
    /// Its streamers by id, a page of them.
    pub streamers: Vec<AgencyMemberView>,
    /// Pass as `after` for the next page of streamers; null on the last.
    pub next_after: Option<String>,
    /// Commissions not yet asked for, in coins.
    pub balance: i64,
    /// Coins held by open payout requests.
    pub payout_hold: i64,
}

const AGENCY_PAGE_MAX: u32 = 1_000;
const MEMBER_PAGE_MAX: u32 = 500;

async fn detail(
    ctx: &Ctx,
    agency_id: &str,
    after: Option<String>,
    limit: Option<u32>,
) -> AppResult<AgencyDetail> {
    let limit = page_limit(limit, 100, MEMBER_PAGE_MAX)?;
    let (agency, members) = super::show(ctx, agency_id, after, limit).await?;
    let (balance, payout_hold) = super::balances(ctx, &agency.id).await?;
    let next_after = next_page(&members, limit, |m| Cursor::Id(m.streamer_id.clone()));
    Ok(AgencyDetail {
        agency: agency.into(),
        streamers: members
            .into_iter()
            .map(|m| AgencyMemberView {
                user_id: m.streamer_id,
                display_name: m.display_name,
                joined_at: to_datetime(m.joined_at_ms),
            })
            .collect(),
        next_after,
        balance,
        payout_hold,
    })
}

pub struct AgencyApi;

#[OpenApi]
impl AgencyApi {
    /// Create an agency. Admin; audited.
    #[oai(
        path = "/v1/admin/agencies",
        method = "post",
        operation_id = "admin_agency_create",
        tag = "ApiTags::Admin"
    )]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<AgencyRequest>,
    ) -> AppResult<Json<AgencyView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, None, body.0.draft())
                .await?
                .into(),
        ))
    }

    /// Every agency (up to `limit`, 1–1,000). Admin.
    #[oai(
        path = "/v1/admin/agencies",
        method = "get",
        operation_id = "admin_agencies",
        tag = "ApiTags::Admin"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AgencyList>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 100, AGENCY_PAGE_MAX)?;
        let items = super::list(&ctx, limit).await?;
        Ok(Json(AgencyList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// One agency with a page of its streamers (by id, `after`, `limit` 1–500) and its
    /// balances. Admin.
    #[oai(
        path = "/v1/admin/agencies/:agency_id",
        method = "get",
        operation_id = "admin_agency",
        tag = "ApiTags::Admin"
    )]
    async fn show(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        agency_id: Path<String>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AgencyDetail>> {
        auth.require(&ctx, Access::Admin).await?;
        Ok(Json(detail(&ctx, &agency_id, after.0, limit.0).await?))
    }

    /// Replace an agency's name, commission, manager and payout details. Admin; audited.
    #[oai(
        path = "/v1/admin/agencies/:agency_id",
        method = "put",
        operation_id = "admin_agency_update",
        tag = "ApiTags::Admin"
    )]
    async fn update(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        agency_id: Path<String>,
        body: JsonBody<AgencyRequest>,
    ) -> AppResult<Json<AgencyView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, Some(agency_id.0), body.0.draft())
                .await?
                .into(),
        ))
    }

    /// Put a streamer in the agency: from now on their earnings are split with it. `409
    /// conflict` when they are in another agency. Admin; audited.
    #[oai(
        path = "/v1/admin/agencies/:agency_id/streamers/:user_id",
        method = "put",
        operation_id = "admin_agency_assign",
        tag = "ApiTags::Admin"
    )]
    async fn assign(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        agency_id: Path<String>,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::assign(&ctx, &who.user_id, &agency_id, &user_id, true).await?;
        Ok(NoContent::Done)
    }

    /// Take a streamer out of the agency. Admin; audited.
    #[oai(
        path = "/v1/admin/agencies/:agency_id/streamers/:user_id",
        method = "delete",
        operation_id = "admin_agency_unassign",
        tag = "ApiTags::Admin"
    )]
    async fn unassign(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        agency_id: Path<String>,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::assign(&ctx, &who.user_id, &agency_id, &user_id, false).await?;
        Ok(NoContent::Done)
    }

    /// The agency the caller manages, with a page of its streamers and its balances. `404`
    /// for an account that manages none.
    #[oai(
        path = "/v1/agency",
        method = "get",
        operation_id = "agency_mine",
        tag = "ApiTags::Account"
    )]
    async fn mine(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AgencyDetail>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let agency_id = super::managed_by_id(&ctx, &who.user_id).await?;
        Ok(Json(detail(&ctx, &agency_id, after.0, limit.0).await?))
    }
}
