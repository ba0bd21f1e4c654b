//! Admin routes: roles, bans, the moderators' queue, the audit log.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent, ServiceAuth};
use crate::app::Ctx;
use crate::core::auth::{Access, Role};
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;
use crate::core::idempotency::Idempotency;

use super::browser;
use super::kyc::{self, KycCase, KycState};
use super::moderation::{self, Case, CaseDecision, CaseState, Rule};
use super::payouts::{self, Decision, Payout, PayoutState};
use super::reports::{self, Report, ReportAction, ReportState, TargetKind};
use super::service;
use crate::config::AutomaticAction;
use crate::domains::blocklist::BlockReason;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RoleRequest {
    pub role: Role,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BanRequest {
    /// Why, 1–500 characters; shown to the user.
    pub reason: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditView {
    pub id: String,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<String>,
}

const AUDIT_PAGE_MAX: u32 = 200;
const CASE_PAGE_MAX: u32 = 200;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReporterView {
    pub user_id: String,
    /// 1, plus 1 for an established account, plus 1 for one that has bought coins.
    pub weight: u32,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CaseView {
    pub id: String,
    pub user_id: String,
    pub rule: Rule,
    pub state: CaseState,
    pub opened_at: OffsetDateTime,
    /// `suspend` or `ban`: what the rule did when the case opened.
    pub action: String,
    pub suspended_until: Option<OffsetDateTime>,
    /// Total weight of the counted reports.
    pub weight: u32,
    pub reporters: Vec<ReporterView>,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub note: Option<String>,
}

impl From<Case> for CaseView {
    fn from(c: Case) -> Self {
        CaseView {
            id: c.id,
            user_id: c.user_id,
            rule: c.rule,
            state: c.state,
            opened_at: to_datetime(c.opened_at_ms),
            action: match c.action {
                AutomaticAction::Suspend => "suspend".into(),
                AutomaticAction::Ban => "ban".into(),
            },
            suspended_until: c.suspended_until_ms.map(to_datetime),
            weight: c.weight,
            reporters: c
                .reporters
                .into_iter()
                .map(|(user_id, weight)| ReporterView { user_id, weight })
                .collect(),
            decided_by: c.decided_by,
            decided_at: c.decided_at_ms.map(to_datetime),
            note: c.note,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CaseList {
    pub items: Vec<CaseView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CaseDecisionRequest {
    pub decision: CaseDecision,
    /// Why, 1–500 characters; kept with the case and in the audit log.
    pub note: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminBanView {
    pub reason: String,
    pub at: OffsetDateTime,
    pub by: String,
    /// A suspension's end; null: until lifted.
    pub until: Option<OffsetDateTime>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct UserCohortView {
    pub cohort_id: String,
    pub name: String,
    pub tag: String,
}

/// One account as the admin panel shows it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminUserView {
    pub user_id: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    /// The platform the account was created on.
    pub platform: Option<crate::core::platform::Platform>,
    /// The verified email it signs in with.
    pub email: Option<String>,
    /// The ban in force, if any.
    pub ban: Option<AdminBanView>,
    pub online: bool,
    pub last_seen: Option<OffsetDateTime>,
    /// When the account is to be deleted, if that was asked for.
    pub deletion_due_at: Option<OffsetDateTime>,
    pub erased: bool,
    /// The tags of the cohorts below, sorted, without repeats.
    pub tags: Vec<String>,
    pub cohorts: Vec<UserCohortView>,
}

impl AdminUserView {
    /// The view of an account at `now_ms` (served by `GET /v1/admin/users/{userId}`, which
    /// shares its path with the privacy domain's admin delete, so it is routed there).
    pub fn of(o: super::UserOverview, now_ms: i64) -> AdminUserView {
        let tags = crate::domains::panel::tag_visibility(&o.cohorts)
            .into_iter()
            .map(|(tag, _)| tag)
            .collect();
        AdminUserView {
            ban: o.user.ban_in_force(now_ms).map(|b| AdminBanView {
                reason: b.reason.clone(),
                at: to_datetime(b.at_ms),
                by: b.by.clone(),
                until: b.until_ms.map(to_datetime),
            }),
            user_id: o.user.id,
            role: o.user.role,
            created_at: to_datetime(o.user.created_at_ms),
            platform: o.user.platform,
            email: o.user.email,
            online: o.presence.online,
            last_seen: o.presence.last_seen_ms.map(to_datetime),
            deletion_due_at: o.user.deletion_due_ms.map(to_datetime),
            erased: o.user.erased_at_ms.is_some(),
            tags,
            cohorts: o
                .cohorts
                .into_iter()
                .map(|c| UserCohortView {
                    cohort_id: c.id,
                    name: c.name,
                    tag: c.tag,
                })
                .collect(),
        }
    }
}

pub struct AdminApi;

#[OpenApi(prefix_path = "/v1/admin")]
impl AdminApi {
    /// Set a user's role. Admin; audited.
    #[oai(
        path = "/users/:user_id/role",
        method = "put",
        operation_id = "admin_user_role",
        tag = "ApiTags::Admin"
    )]
    async fn set_role(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        body: JsonBody<RoleRequest>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::set_role(&ctx, &who.user_id, &user_id, body.role).await?;
        Ok(NoContent::Done)
    }

    /// Ban a user: every route and the WebSocket refuse them with `account_banned`, and their
    /// live connections are closed. Admin; audited.
    #[oai(
        path = "/users/:user_id/ban",
        method = "post",
        operation_id = "admin_user_ban",
        tag = "ApiTags::Admin"
    )]
    async fn ban(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        body: JsonBody<BanRequest>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::ban(&ctx, &who.user_id, &user_id, &body.reason).await?;
        Ok(NoContent::Done)
    }

    /// Lift a ban. Admin; audited.
    #[oai(
        path = "/users/:user_id/ban",
        method = "delete",
        operation_id = "admin_user_unban",
        tag = "ApiTags::Admin"
    )]
    async fn unban(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::unban(&ctx, &who.user_id, &user_id).await?;
        Ok(NoContent::Done)
    }

    /// A user's ways of signing in (and an email added but not verified yet). Admin.
    #[oai(
        path = "/users/:user_id/identities",
        method = "get",
        operation_id = "admin_user_identities",
        tag = "ApiTags::Admin"
    )]
    async fn identities(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<Json<crate::domains::user::api::IdentityList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = crate::domains::user::identities::list(&ctx, &user_id).await?;
        Ok(Json(crate::domains::user::api::IdentityList::of(items)))
    }

    /// The moderators' queue: cases the automatic rules opened, in one state (default
    /// `open`), oldest first. Moderators and admins.
    #[oai(
        path = "/moderation/cases",
        method = "get",
        operation_id = "admin_moderation_cases",
        tag = "ApiTags::Admin"
    )]
    async fn moderation_cases(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        state: Query<Option<CaseState>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<CaseList>> {
        auth.require(&ctx, Access::Staff).await?;
        let limit = page_limit(limit.0, 50, CASE_PAGE_MAX)?;
        let items = moderation::cases(&ctx, state.0.unwrap_or(CaseState::Open), limit).await?;
        Ok(Json(CaseList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Decide an open case: `uphold` bans the user permanently, `lift` ends the automatic
    /// suspension or ban (the reports it rested on no longer count). Moderators and admins;
    /// audited. `conflict` when the case was already decided.
    #[oai(
        path = "/moderation/cases/:case_id/decision",
        method = "post",
        operation_id = "admin_moderation_case_decide",
        tag = "ApiTags::Admin"
    )]
    async fn moderation_decide(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        case_id: Path<String>,
        body: JsonBody<CaseDecisionRequest>,
    ) -> AppResult<Json<CaseView>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let body = body.0;
        Ok(Json(
            moderation::decide(&ctx, &who.user_id, &case_id, body.decision, body.note)
                .await?
                .into(),
        ))
    }

    /// The audit log, newest first. Admin.
    #[oai(
        path = "/audit",
        method = "get",
        operation_id = "admin_audit",
        tag = "ApiTags::Admin"
    )]
    async fn audit(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AuditPage>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 50, AUDIT_PAGE_MAX)?;
        let items = crate::domains::audit::page(&ctx, before.0, limit).await?;
        let next_before = next_page(&items, limit, |a| Cursor::Id(a.id.clone()));
        Ok(Json(AuditPage {
            items: items
                .into_iter()
                .map(|a| AuditView {
                    id: a.id,
                    at: to_datetime(a.at_ms),
                    actor: a.actor,
                    action: a.action,
                    target: a.target,
                    detail: a.detail,
                })
                .collect(),
            next_before,
        }))
    }
}

#[derive(Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
pub struct PayoutRequestBody {
    /// Coins of earnings to pay out; at least `payouts.minimum_coins`.
    pub amount: i64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PayoutView {
    pub id: String,
    /// Who asked: the streamer, or the agency's manager.
    pub streamer_id: String,
    /// The agency paid out, for an agency's payout.
    pub agency_id: Option<String>,
    pub amount: i64,
    pub state: PayoutState,
    pub created_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub paid_at: Option<OffsetDateTime>,
}

impl From<Payout> for PayoutView {
    fn from(p: Payout) -> Self {
        PayoutView {
            id: p.id,
            streamer_id: p.streamer_id,
            agency_id: p.agency_id,
            amount: p.amount,
            state: p.state,
            created_at: to_datetime(p.created_at_ms),
            decided_at: p.decided_at_ms.map(to_datetime),
            decided_by: p.decided_by,
            reason: p.reason,
            paid_at: p.paid_at_ms.map(to_datetime),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PayoutList {
    pub items: Vec<PayoutView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RejectRequest {
    /// Why, shown to the streamer (1–500 characters).
    pub reason: String,
}

const PAYOUT_PAGE_MAX: u32 = 500;

pub struct PayoutApi;

#[OpenApi]
impl PayoutApi {
    /// Ask for a payout of earnings; the amount is held until an admin decides. Streamers;
    /// needs an `Idempotency-Key`.
    #[oai(
        path = "/v1/me/payouts",
        method = "post",
        operation_id = "me_payouts_request",
        tag = "ApiTags::Payouts"
    )]
    async fn request(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<PayoutRequestBody>,
    ) -> AppResult<Json<PayoutView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let idem = Idempotency::new(
            idempotency_key.0.as_deref(),
            &format!("{}:payout", who.user_id),
            &body.0,
        )?;
        Ok(Json(
            payouts::request(&ctx, &who.user_id, body.amount, idem)
                .await?
                .into(),
        ))
    }

    /// Ask for a payout of the commissions of the agency the caller manages; the amount is
    /// held until an admin decides. Agency managers; needs an `Idempotency-Key`. `404` for
    /// an account that manages no agency.
    #[oai(
        path = "/v1/agency/payouts",
        method = "post",
        operation_id = "agency_payouts_request",
        tag = "ApiTags::Payouts"
    )]
    async fn request_for_agency(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<PayoutRequestBody>,
    ) -> AppResult<Json<PayoutView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let agency_id = crate::domains::agency::managed_by_id(&ctx, &who.user_id).await?;
        // Scoped by the agency too: a manager moved to another agency starts afresh.
        let idem = Idempotency::new(
            idempotency_key.0.as_deref(),
            &format!("{}:agency_payout:{agency_id}", who.user_id),
            &body.0,
        )?;
        Ok(Json(
            payouts::request_for_agency(&ctx, &who.user_id, &agency_id, body.amount, idem)
                .await?
                .into(),
        ))
    }

    /// The payout requests of the agency the caller manages, newest first. Agency managers.
    #[oai(
        path = "/v1/agency/payouts",
        method = "get",
        operation_id = "agency_payouts",
        tag = "ApiTags::Payouts"
    )]
    async fn agency_payouts(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<PayoutList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let items = payouts::list_of_agency_managed_by(&ctx, &who.user_id).await?;
        Ok(Json(PayoutList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// The caller's payout requests, newest first. Streamers.
    #[oai(
        path = "/v1/me/payouts",
        method = "get",
        operation_id = "me_payouts",
        tag = "ApiTags::Payouts"
    )]
    async fn mine(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<PayoutList>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let items = payouts::list_of_streamer(&ctx, &who.user_id).await?;
        Ok(Json(PayoutList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Payout requests in one state, oldest first (default `requested`). Admin.
    #[oai(
        path = "/v1/admin/payouts",
        method = "get",
        operation_id = "admin_payouts",
        tag = "ApiTags::Payouts"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        state: Query<Option<PayoutState>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<PayoutList>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 100, PAYOUT_PAGE_MAX)?;
        let state = state.0.unwrap_or(PayoutState::Requested);
        let items = payouts::list_by_state(&ctx, state, limit).await?;
        Ok(Json(PayoutList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Approve a requested payout: the held coins go to the payouts account. Admin; audited.
    #[oai(
        path = "/v1/admin/payouts/:payout_id/approve",
        method = "post",
        operation_id = "admin_payout_approve",
        tag = "ApiTags::Payouts"
    )]
    async fn approve(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        payout_id: Path<String>,
    ) -> AppResult<Json<PayoutView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            payouts::decide(&ctx, &who.user_id, &payout_id, Decision::Approve, None)
                .await?
                .into(),
        ))
    }

    /// Reject a requested payout: the held coins return to the streamer's earnings. Admin;
    /// audited.
    #[oai(
        path = "/v1/admin/payouts/:payout_id/reject",
        method = "post",
        operation_id = "admin_payout_reject",
        tag = "ApiTags::Payouts"
    )]
    async fn reject(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        payout_id: Path<String>,
        body: JsonBody<RejectRequest>,
    ) -> AppResult<Json<PayoutView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let reason = super::Reason::parse("reason", &body.0.reason)?.into_string();
        Ok(Json(
            payouts::decide(
                &ctx,
                &who.user_id,
                &payout_id,
                Decision::Reject,
                Some(reason),
            )
            .await?
            .into(),
        ))
    }

    /// Mark an approved payout as paid (the money was sent outside Duet). Admin; audited.
    #[oai(
        path = "/v1/admin/payouts/:payout_id/paid",
        method = "post",
        operation_id = "admin_payout_paid",
        tag = "ApiTags::Payouts"
    )]
    async fn paid(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        payout_id: Path<String>,
    ) -> AppResult<Json<PayoutView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            payouts::decide(&ctx, &who.user_id, &payout_id, Decision::MarkPaid, None)
                .await?
                .into(),
        ))
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportRequest {
    pub target_kind: TargetKind,
    /// A user id (profile), a media id (photo, clip) or `<chatId>:<seq>` (message).
    pub target_id: String,
    pub reason: BlockReason,
    /// What happened, 1–1,000 characters.
    pub comment: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportResolutionView {
    pub action: ReportAction,
    /// The moderator; null in a reporter's own list.
    pub by: Option<String>,
    pub at: OffsetDateTime,
    pub note: Option<String>,
}

/// A report as its reporter and the moderators see it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportView {
    pub id: String,
    pub reporter_id: String,
    pub target_kind: TargetKind,
    pub target_id: String,
    /// Whose the item is: the profile's user, the media's owner, the message's sender.
    pub owner_id: String,
    pub reason: BlockReason,
    pub comment: Option<String>,
    pub state: ReportState,
    pub created_at: OffsetDateTime,
    pub resolution: Option<ReportResolutionView>,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        ReportView {
            id: r.id,
            reporter_id: r.reporter_id,
            target_kind: r.target_kind,
            target_id: r.target_id,
            owner_id: r.owner_id,
            reason: r.reason,
            comment: r.comment,
            state: r.state,
            created_at: to_datetime(r.created_at_ms),
            resolution: r.resolution.map(|x| ReportResolutionView {
                action: x.action,
                by: Some(x.by),
                at: to_datetime(x.at_ms),
                note: x.note,
            }),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportPage {
    pub items: Vec<ReportView>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportList {
    pub items: Vec<ReportView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReportResolutionRequest {
    pub action: ReportAction,
    /// 1–1,000 characters; required to warn (what the person is told) and to ban (the ban's
    /// reason). Kept with the reports and in the audit log.
    pub note: Option<String>,
}

const REPORT_PAGE_MAX: u32 = 200;
/// A reporter's own list: their latest reports.
const MY_REPORTS_MAX: usize = 100;
/// Reports shown beside one report: the others on the same item.
const REPORTS_ON_TARGET_MAX: usize = 200;

pub struct ReportApi;

#[OpenApi]
impl ReportApi {
    /// Report a profile, a photo, a clip or a message. Reports only reach the moderators'
    /// queue; the reported person is not told. The same open report is returned when the
    /// caller reports the same item again; at most `moderation.reports_per_day_max` (20)
    /// reports a day (`429 rate_limited`). `404 not_found` for an item the caller cannot see.
    #[oai(
        path = "/v1/reports",
        method = "post",
        operation_id = "report_create",
        tag = "ApiTags::Account"
    )]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ReportRequest>,
    ) -> AppResult<Json<ReportView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let b = body.0;
        let report = reports::file(
            &ctx,
            &who,
            reports::NewReport {
                target_kind: b.target_kind,
                target_id: b.target_id,
                reason: b.reason,
                comment: b.comment,
            },
        )
        .await?;
        Ok(Json(report.into()))
    }

    /// The caller's own reports, newest first (the latest 100), with what became of them.
    #[oai(
        path = "/v1/me/reports",
        method = "get",
        operation_id = "me_reports",
        tag = "ApiTags::Account"
    )]
    async fn mine(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<ReportList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let items = reports::filed_by(&ctx, &who.user_id, MY_REPORTS_MAX, true).await?;
        Ok(Json(ReportList {
            items: items
                .into_iter()
                .map(|r| {
                    let mut view = ReportView::from(r);
                    // Which moderator decided is the staff's business.
                    if let Some(res) = view.resolution.as_mut() {
                        res.by = None;
                    }
                    view
                })
                .collect(),
        }))
    }

    /// Reports in one state (default `open`), oldest first, paged by `after`. Moderators and
    /// admins.
    #[oai(
        path = "/v1/admin/reports",
        method = "get",
        operation_id = "admin_reports",
        tag = "ApiTags::Admin"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        state: Query<Option<ReportState>>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<ReportPage>> {
        auth.require(&ctx, Access::Staff).await?;
        let limit = page_limit(limit.0, 50, REPORT_PAGE_MAX)?;
        let items =
            reports::list(&ctx, state.0.unwrap_or(ReportState::Open), after.0, limit).await?;
        let next_after = next_page(&items, limit, |r| Cursor::Id(r.id.clone()));
        Ok(Json(ReportPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    /// One report with every other report on the same item, oldest first (up to 200).
    /// Moderators and admins.
    #[oai(
        path = "/v1/admin/reports/:report_id",
        method = "get",
        operation_id = "admin_report",
        tag = "ApiTags::Admin"
    )]
    async fn show(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        report_id: Path<String>,
    ) -> AppResult<Json<ReportList>> {
        auth.require(&ctx, Access::Staff).await?;
        let items = reports::on_same_target(&ctx, &report_id, REPORTS_ON_TARGET_MAX).await?;
        Ok(Json(ReportList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Resolve a report, and with it every open report on the same item: `dismiss`,
    /// `remove_item` (rejects the photo or clip, blanks the message; not for profiles),
    /// `warn` (the owner gets a `moderation_warning` notification with the note) or `ban`.
    /// Answers the reports it settled. Moderators and admins; audited. `409 conflict` when
    /// the report was resolved already.
    #[oai(
        path = "/v1/admin/reports/:report_id/resolution",
        method = "post",
        operation_id = "admin_report_resolve",
        tag = "ApiTags::Admin"
    )]
    async fn resolve(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        report_id: Path<String>,
        body: JsonBody<ReportResolutionRequest>,
    ) -> AppResult<Json<ReportList>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let b = body.0;
        let items = reports::resolve(&ctx, &who.user_id, &report_id, b.action, b.note).await?;
        Ok(Json(ReportList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycSubmission {
    /// Media ids of the caller's own `kyc_document` uploads.
    pub id_front: String,
    pub id_back: String,
    pub selfie: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycDocumentIds {
    pub id_front: String,
    pub id_back: String,
    pub selfie: String,
}

/// A document as a moderator opens it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycDocumentView {
    pub media_id: String,
    /// A signed URL of the file; null once the document was deleted.
    pub url: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycCaseView {
    pub id: String,
    pub streamer_id: String,
    pub state: KycState,
    pub documents: KycDocumentIds,
    pub submitted_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    /// Why it was rejected (or a note on a verification).
    pub reason: Option<String>,
    /// When the documents were deleted, after the retention period.
    pub documents_deleted_at: Option<OffsetDateTime>,
}

impl From<KycCase> for KycCaseView {
    fn from(c: KycCase) -> Self {
        KycCaseView {
            id: c.id,
            streamer_id: c.streamer_id,
            state: c.state,
            documents: KycDocumentIds {
                id_front: c.documents.id_front,
                id_back: c.documents.id_back,
                selfie: c.documents.selfie,
            },
            submitted_at: to_datetime(c.submitted_at_ms),
            decided_by: c.decided_by,
            decided_at: c.decided_at_ms.map(to_datetime),
            reason: c.reason,
            documents_deleted_at: c.documents_deleted_at_ms.map(to_datetime),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycStatusView {
    /// Whether the latest case is verified (what payouts need when `payouts.require_kyc` is
    /// on, and the gallery when `gallery.streamers_need_kyc` is).
    pub verified: bool,
    /// The latest case; null before the first submission.
    pub case: Option<KycCaseView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycCaseDetail {
    pub case: KycCaseView,
    /// ID front, ID back, selfie.
    pub documents: Vec<KycDocumentView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycPage {
    pub items: Vec<KycCaseView>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct KycDecisionRequest {
    /// A note kept with the verification, 1–500 characters.
    pub reason: Option<String>,
}

const KYC_PAGE_MAX: u32 = 200;

pub struct KycApi;

#[OpenApi]
impl KycApi {
    /// Submit identity documents (three different `kyc_document` uploads of the caller's):
    /// the case is `pending` until a moderator decides. `409 conflict` while a case is pending
    /// or once verified; after a rejection, submit again. Streamers.
    #[oai(
        path = "/v1/me/kyc",
        method = "post",
        operation_id = "me_kyc_submit",
        tag = "ApiTags::Account"
    )]
    async fn submit(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<KycSubmission>,
    ) -> AppResult<Json<KycCaseView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let b = body.0;
        let docs = kyc::Documents {
            id_front: b.id_front,
            id_back: b.id_back,
            selfie: b.selfie,
        };
        Ok(Json(kyc::submit(&ctx, &who.user_id, docs).await?.into()))
    }

    /// The caller's KYC status and latest case. Streamers.
    #[oai(
        path = "/v1/me/kyc",
        method = "get",
        operation_id = "me_kyc",
        tag = "ApiTags::Account"
    )]
    async fn status(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<KycStatusView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let case = kyc::current(&ctx, &who.user_id).await?;
        Ok(Json(KycStatusView {
            verified: case.as_ref().is_some_and(|c| c.state == KycState::Verified),
            // Which moderator decided is the staff's business.
            case: case.map(|c| KycCaseView {
                decided_by: None,
                ..c.into()
            }),
        }))
    }

    /// KYC cases in one state (default `pending`), oldest first, paged by `after`. Moderators
    /// and admins.
    #[oai(
        path = "/v1/admin/kyc",
        method = "get",
        operation_id = "admin_kyc_cases",
        tag = "ApiTags::Admin"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        state: Query<Option<KycState>>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<KycPage>> {
        auth.require(&ctx, Access::Staff).await?;
        let limit = page_limit(limit.0, 50, KYC_PAGE_MAX)?;
        let items = kyc::list(&ctx, state.0.unwrap_or(KycState::Pending), after.0, limit).await?;
        let next_after = next_page(&items, limit, |c| Cursor::Id(c.id.clone()));
        Ok(Json(KycPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    /// One case with signed URLs of its documents. Moderators and admins; each look is
    /// audited (`kyc.view`).
    #[oai(
        path = "/v1/admin/kyc/:case_id",
        method = "get",
        operation_id = "admin_kyc_case",
        tag = "ApiTags::Admin"
    )]
    async fn show(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        case_id: Path<String>,
    ) -> AppResult<Json<KycCaseDetail>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let (case, docs) = kyc::open_case(&ctx, &who.user_id, &case_id).await?;
        let documents = case
            .documents
            .ids()
            .into_iter()
            .zip(docs)
            .map(|(id, rec)| KycDocumentView {
                media_id: id.to_owned(),
                url: rec.map(|r| crate::domains::media::signed_url(&ctx, &r, "original").0),
            })
            .collect();
        Ok(Json(KycCaseDetail {
            case: case.into(),
            documents,
        }))
    }

    /// Verify a pending case: the streamer may request payouts. Moderators and admins;
    /// audited; the streamer is notified (`kyc_status`). `409 conflict` once decided.
    #[oai(
        path = "/v1/admin/kyc/:case_id/verify",
        method = "post",
        operation_id = "admin_kyc_verify",
        tag = "ApiTags::Admin"
    )]
    async fn verify(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        case_id: Path<String>,
        body: JsonBody<KycDecisionRequest>,
    ) -> AppResult<Json<KycCaseView>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let reason = body
            .0
            .reason
            .map(|r| super::Reason::parse("reason", &r).map(super::Reason::into_string))
            .transpose()?;
        Ok(Json(
            kyc::decide(&ctx, &who.user_id, &case_id, true, reason)
                .await?
                .into(),
        ))
    }

    /// Reject a pending case with a reason the streamer is told; they may submit again.
    /// Moderators and admins; audited. `409 conflict` once decided.
    #[oai(
        path = "/v1/admin/kyc/:case_id/reject",
        method = "post",
        operation_id = "admin_kyc_reject",
        tag = "ApiTags::Admin"
    )]
    async fn reject(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        case_id: Path<String>,
        body: JsonBody<RejectRequest>,
    ) -> AppResult<Json<KycCaseView>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        let reason = Some(super::Reason::parse("reason", &body.0.reason)?.into_string());
        Ok(Json(
            kyc::decide(&ctx, &who.user_id, &case_id, false, reason)
                .await?
                .into(),
        ))
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TableSizeView {
    pub name: String,
    pub rows: u64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TableList {
    pub items: Vec<TableSizeView>,
}

/// One record: its key (a string, a number, or an array for a composite key) and its value
/// (the stored record with its field names, snake_case as stored; credentials redacted).
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TableRowView {
    pub key: serde_json::Value,
    pub value: serde_json::Value,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TablePageView {
    pub table: String,
    pub items: Vec<TableRowView>,
    /// Pass as `from` for the next page; null at the table's end.
    pub next_from: Option<String>,
    /// Rows looked at for this page.
    pub scanned: u64,
    /// The read stopped at `admin.rows_scanned_max` or `admin.read_ms_max` before the page was
    /// full: go on from `nextFrom`.
    pub cut_short: bool,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FoundUserView {
    pub user_id: String,
    pub role: Role,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
    pub banned: bool,
    pub erased: bool,
    /// `id`, `email`, `phone` or `displayName`.
    pub matched_by: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FoundUserList {
    pub items: Vec<FoundUserView>,
}

pub struct TableApi;

#[OpenApi(prefix_path = "/v1/admin")]
impl TableApi {
    /// Every table of the store with its row count. Admin.
    #[oai(
        path = "/tables",
        method = "get",
        operation_id = "admin_tables",
        tag = "ApiTags::Admin"
    )]
    async fn tables(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<TableList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = browser::list_tables(&ctx).await?;
        Ok(Json(TableList {
            items: items
                .into_iter()
                .map(|t| TableSizeView {
                    name: t.name.to_owned(),
                    rows: t.rows,
                })
                .collect(),
        }))
    }

    /// A table's records in key order, decoded as JSON, after `from`, at most `limit` (1–200,
    /// default 50) that match every `where=field:value` (a dotted path into the record, or
    /// `$key` / `$key.N` for the key; the value as JSON writes it, strings unquoted). Each
    /// request looks at no more than `admin.rows_scanned_max` rows for no longer than
    /// `admin.read_ms_max` ms, then answers what it found with `cutShort` and a `nextFrom`.
    /// Read-only; credentials are redacted; every read is audited with the keys it returned.
    /// Admin.
    #[oai(
        path = "/tables/:name",
        method = "get",
        operation_id = "admin_table_rows",
        tag = "ApiTags::Admin"
    )]
    async fn rows(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        name: Path<String>,
        from: Query<Option<String>>,
        limit: Query<Option<u32>>,
        #[oai(name = "where")] conditions: Query<Option<Vec<String>>>,
    ) -> AppResult<Json<TablePageView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 50, browser::PAGE_MAX as u32)?;
        let conditions = conditions
            .0
            .unwrap_or_default()
            .iter()
            .map(|c| browser::Condition::parse(c))
            .collect::<AppResult<Vec<_>>>()?;
        let page =
            browser::read_table(&ctx, &who.user_id, &name, from.0, limit, conditions).await?;
        Ok(Json(TablePageView {
            table: name.0,
            items: page
                .rows
                .into_iter()
                .map(|r| TableRowView {
                    key: r.key,
                    value: r.value,
                })
                .collect(),
            next_from: page.next_from,
            scanned: page.scanned,
            cut_short: page.cut_short,
        }))
    }

    /// Find accounts by id, email, phone number, or a part of the display name (up to 50).
    /// Audited. Admin.
    #[oai(
        path = "/users",
        method = "get",
        operation_id = "admin_user_search",
        tag = "ApiTags::Admin"
    )]
    async fn search(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        q: Query<String>,
    ) -> AppResult<Json<FoundUserList>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let now = ctx.store.now_ms();
        let found = browser::search_users(&ctx, &who.user_id, &q).await?;
        Ok(Json(FoundUserList {
            items: found
                .into_iter()
                .map(|f| FoundUserView {
                    banned: f.user.is_banned(now),
                    erased: f.user.erased_at_ms.is_some(),
                    user_id: f.user.id,
                    role: f.user.role,
                    display_name: f.display_name,
                    email: f.user.email,
                    created_at: to_datetime(f.user.created_at_ms),
                    matched_by: f.matched.to_owned(),
                })
                .collect(),
        }))
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ServiceCredentialRequest {
    /// What the pipeline is, 1–100 characters.
    pub name: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ServiceCredentialView {
    pub id: String,
    pub name: String,
    /// `moderation`: fetch items waiting for a score, post scores.
    pub scope: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<service::ServiceCredential> for ServiceCredentialView {
    fn from(c: service::ServiceCredential) -> Self {
        ServiceCredentialView {
            id: c.id,
            name: c.name,
            scope: c.scope,
            created_by: c.created_by,
            created_at: to_datetime(c.created_at_ms),
            revoked_at: c.revoked_at_ms.map(to_datetime),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ServiceCredentialCreated {
    pub credential: ServiceCredentialView,
    /// The bearer token for the classifier routes: shown this once, stored only as a hash.
    pub token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ServiceCredentialList {
    pub items: Vec<ServiceCredentialView>,
}

/// An item waiting for a score, as a classifier fetches it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct WaitingItem {
    pub media_id: String,
    pub kind: crate::domains::media::model::MediaKind,
    /// A signed URL of the file to score (a photo's display variant, a clip's file).
    pub url: String,
    pub uploaded_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct WaitingPage {
    pub items: Vec<WaitingItem>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ScoreRequest {
    /// 0: surely fine … 1: surely not (nudity), judged by the media thresholds.
    pub score: f32,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ScoreResult {
    pub media_id: String,
    /// What the thresholds made of the score: `approved`, `rejected`, or `queued` for people.
    pub status: crate::domains::media::model::MediaStatus,
    pub score: Option<f32>,
}

const WAITING_PAGE_MAX: u32 = 100;

pub struct ClassifierApi;

#[OpenApi]
impl ClassifierApi {
    /// Create a service credential for an external moderation pipeline; its token is in the
    /// answer only. Admin; audited.
    #[oai(
        path = "/v1/admin/service-credentials",
        method = "post",
        operation_id = "admin_service_credential_create",
        tag = "ApiTags::Admin"
    )]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ServiceCredentialRequest>,
    ) -> AppResult<Json<ServiceCredentialCreated>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let (credential, token) = service::create(&ctx, &who.user_id, &body.0.name).await?;
        Ok(Json(ServiceCredentialCreated {
            credential: credential.into(),
            token,
        }))
    }

    /// Every service credential, revoked ones included. Admin.
    #[oai(
        path = "/v1/admin/service-credentials",
        method = "get",
        operation_id = "admin_service_credentials",
        tag = "ApiTags::Admin"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<ServiceCredentialList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = service::list(&ctx).await?;
        Ok(Json(ServiceCredentialList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Revoke a service credential: its next request is refused. Admin; audited.
    #[oai(
        path = "/v1/admin/service-credentials/:credential_id",
        method = "delete",
        operation_id = "admin_service_credential_revoke",
        tag = "ApiTags::Admin"
    )]
    async fn revoke(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        credential_id: Path<String>,
    ) -> AppResult<Json<ServiceCredentialView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            service::revoke(&ctx, &who.user_id, &credential_id)
                .await?
                .into(),
        ))
    }

    /// Items of one kind waiting for a score (queued for people, no decision yet), oldest
    /// first, with a signed URL of each file. A service credential with the `moderation` scope.
    #[oai(
        path = "/v1/classifier/queue",
        method = "get",
        operation_id = "classifier_queue",
        tag = "ApiTags::Admin"
    )]
    async fn queue(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: ServiceAuth,
        kind: Query<crate::domains::media::model::MediaKind>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<WaitingPage>> {
        service::authenticate(&ctx, &auth.0.token, service::SCOPE_MODERATION).await?;
        let limit = page_limit(limit.0, 20, WAITING_PAGE_MAX)?;
        let after = Cursor::time(after.0)?;
        let items = crate::domains::media::moderation::queue(&ctx, kind.0, after, limit).await?;
        let next_after = next_page(&items, limit, |r| {
            Cursor::Time(r.uploaded_at_ms, r.id.clone())
        });
        Ok(Json(WaitingPage {
            items: items
                .into_iter()
                .map(|r| {
                    let variant = if r.display.is_some() {
                        "display"
                    } else {
                        "original"
                    };
                    WaitingItem {
                        url: crate::domains::media::signed_url(&ctx, &r, variant).0,
                        media_id: r.id,
                        kind: r.kind,
                        uploaded_at: to_datetime(r.uploaded_at_ms),
                    }
                })
                .collect(),
            next_after,
        }))
    }

    /// Post a score for a waiting item: the media thresholds approve, reject or leave it
    /// queued for people, as they do the in-process model's scores. `409 conflict` for an item
    /// no longer waiting. A service credential with the `moderation` scope.
    #[oai(
        path = "/v1/classifier/items/:media_id/score",
        method = "post",
        operation_id = "classifier_score",
        tag = "ApiTags::Admin"
    )]
    async fn score(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: ServiceAuth,
        media_id: Path<String>,
        body: JsonBody<ScoreRequest>,
    ) -> AppResult<Json<ScoreResult>> {
        let cred = service::authenticate(&ctx, &auth.0.token, service::SCOPE_MODERATION).await?;
        let rec = crate::domains::media::moderation::score_external(
            &ctx,
            &cred.actor(),
            &media_id,
            body.0.score,
        )
        .await?;
        Ok(Json(ScoreResult {
            media_id: rec.id,
            status: rec.status,
            score: rec.score,
        }))
    }
}
