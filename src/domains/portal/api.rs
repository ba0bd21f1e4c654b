//! Streamer portal routes: earnings, calls and gifts by day; the rules for streamers; agency
//! reports.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::{Date, OffsetDateTime};

use crate::api::body::JsonBody;
use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;

use super::{DayStats, Period};

/// One UTC day, or the totals of a period.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DayView {
    /// `YYYY-MM-DD` (UTC); null for totals.
    pub date: Option<String>,
    /// Coins earned from calls, after an agency's commission.
    pub call_coins: i64,
    /// Coins earned from gifts, after an agency's commission.
    pub gift_coins: i64,
    /// For an agency: its commissions.
    pub commission_coins: i64,
    /// Connected calls that ended that day, and their seconds.
    pub calls: u64,
    pub call_seconds: u64,
    pub gifts: u64,
}

impl DayView {
    fn of(date: Option<Date>, s: DayStats) -> DayView {
        DayView {
            date: date.map(|d| d.to_string()),
            call_coins: s.call_coins,
            gift_coins: s.gift_coins,
            commission_coins: s.commission_coins,
            calls: s.calls,
            call_seconds: s.call_seconds,
            gifts: s.gifts,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct StatementView {
    pub from: String,
    pub to: String,
    /// Every day of the period, oldest first (days without activity as zeros).
    pub days: Vec<DayView>,
    pub totals: DayView,
    /// Earnings that can be paid out now.
    pub earnings: i64,
    /// Earnings held by open payout requests.
    pub payout_hold: i64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RulesView {
    /// Null before the first publication.
    pub version: Option<u64>,
    /// Markdown.
    pub text: Option<String>,
    pub published_at: Option<OffsetDateTime>,
    /// The version the caller accepted last; null if none.
    pub accepted_version: Option<u64>,
    pub accepted_at: Option<OffsetDateTime>,
    /// Whether the caller has accepted the current version.
    pub accepted_current: bool,
}

/// One published version of the rules.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RulesVersionView {
    pub version: u64,
    /// Markdown.
    pub text: String,
    pub published_at: OffsetDateTime,
    pub published_by: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RulesText {
    /// Markdown, 1–100,000 characters.
    pub text: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RulesAcceptance {
    /// The version the streamer read: it must be the current one (`409 conflict` otherwise).
    pub version: u64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyStreamerView {
    pub streamer_id: String,
    pub display_name: Option<String>,
    pub joined_at: OffsetDateTime,
    /// From the later of the period's start and the day they joined.
    pub totals: DayView,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AgencyReportView {
    pub agency_id: String,
    pub name: String,
    pub commission_percent: u8,
    pub from: String,
    pub to: String,
    /// The agency's commissions in the period.
    pub commission_coins: i64,
    /// A page of the current streamers (by id) with their totals in the period (earnings
    /// after the commission).
    pub streamers: Vec<AgencyStreamerView>,
    /// Pass as `after` for the next page of streamers; null on the last.
    pub next_after: Option<String>,
}

const REPORT_PAGE_MAX: u32 = 500;

fn period(ctx: &Ctx, from: Option<String>, to: Option<String>) -> AppResult<Period> {
    let today = to_datetime(ctx.store.now_ms()).date();
    Period::parse(from.as_deref(), to.as_deref(), today)
}

fn report_view(r: super::AgencyReport, p: Period, limit: usize) -> AgencyReportView {
    let next_after = next_page(&r.streamers, limit, |(m, _)| {
        Cursor::Id(m.streamer_id.clone())
    });
    AgencyReportView {
        next_after,
        agency_id: r.agency.id,
        name: r.agency.name,
        commission_percent: r.agency.commission_percent,
        from: p.from.to_string(),
        to: p.to.to_string(),
        commission_coins: r.commission_coins,
        streamers: r
            .streamers
            .into_iter()
            .map(|(m, s)| AgencyStreamerView {
                streamer_id: m.streamer_id,
                display_name: m.display_name,
                joined_at: to_datetime(m.joined_at_ms),
                totals: DayView::of(None, s),
            })
            .collect(),
    }
}

pub struct PortalApi;

#[OpenApi]
impl PortalApi {
    /// The caller's earnings, calls and gifts by UTC day over `from`–`to` (`YYYY-MM-DD`, both
    /// included, at most 366 days; by default the last 30), with the totals and the balances
    /// now. Streamers.
    #[oai(
        path = "/v1/streamer/days",
        method = "get",
        operation_id = "streamer_days",
        tag = "ApiTags::Account"
    )]
    async fn days(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
    ) -> AppResult<Json<StatementView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let p = period(&ctx, from.0, to.0)?;
        let s = super::statement(&ctx, &who.user_id, p).await?;
        Ok(Json(StatementView {
            from: p.from.to_string(),
            to: p.to.to_string(),
            days: s
                .days
                .into_iter()
                .map(|(d, stats)| DayView::of(Some(d), stats))
                .collect(),
            totals: DayView::of(None, s.totals),
            earnings: s.earnings,
            payout_hold: s.payout_hold,
        }))
    }

    /// The platform's current rules for streamers (Markdown) and the version the caller
    /// accepted. Anyone signed in.
    #[oai(
        path = "/v1/streamer/rules",
        method = "get",
        operation_id = "streamer_rules",
        tag = "ApiTags::Account"
    )]
    async fn rules(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<RulesView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let (current, accepted) = super::rules(&ctx, &who.user_id).await?;
        Ok(Json(RulesView {
            accepted_current: matches!((&current, &accepted), (Some(c), Some(a)) if c.version == a.version),
            version: current.as_ref().map(|c| c.version),
            published_at: current.as_ref().map(|c| to_datetime(c.published_at_ms)),
            text: current.map(|c| c.text),
            accepted_version: accepted.as_ref().map(|a| a.version),
            accepted_at: accepted.map(|a| to_datetime(a.at_ms)),
        }))
    }

    /// Accept the current version of the rules. Streamers. `409 conflict` for another
    /// version, `404` before any is published.
    #[oai(
        path = "/v1/streamer/rules/acceptance",
        method = "post",
        operation_id = "streamer_rules_accept",
        tag = "ApiTags::Account"
    )]
    async fn accept(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<RulesAcceptance>,
    ) -> AppResult<Json<RulesView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        super::accept_rules(&ctx, &who.user_id, body.0.version).await?;
        self.rules(ctx, auth).await
    }

    /// Publish a new version of the rules for streamers (Markdown): streamers are asked to
    /// accept it. The current text again publishes nothing and answers the current version,
    /// so a retry is harmless. Admin; audited.
    #[oai(
        path = "/v1/admin/streamer-rules",
        method = "put",
        operation_id = "admin_streamer_rules",
        tag = "ApiTags::Admin"
    )]
    async fn publish(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<RulesText>,
    ) -> AppResult<Json<RulesVersionView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let r = super::publish_rules(&ctx, &who.user_id, &body.0.text).await?;
        Ok(Json(RulesVersionView {
            version: r.version,
            text: r.text,
            published_at: to_datetime(r.published_at_ms),
            published_by: r.published_by,
        }))
    }

    /// An agency over `from`–`to`: its commissions and, for a page of its current streamers
    /// (`after`, `limit` 1–500), their earnings, calls and gifts since they joined. Admin.
    #[oai(
        path = "/v1/admin/agencies/:agency_id/report",
        method = "get",
        operation_id = "admin_agency_report",
        tag = "ApiTags::Admin"
    )]
    // A route's parameters are its query string, one argument each.
    #[allow(clippy::too_many_arguments)]
    async fn agency_report(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        agency_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AgencyReportView>> {
        auth.require(&ctx, Access::Admin).await?;
        let p = period(&ctx, from.0, to.0)?;
        let limit = page_limit(limit.0, 100, REPORT_PAGE_MAX)?;
        let of = super::ReportOf::Agency(agency_id.0);
        let r = super::agency_report(&ctx, of, p, after.0, limit).await?;
        Ok(Json(report_view(r, p, limit)))
    }

    /// The same report of the agency the caller manages. `404` for an account that manages
    /// none.
    #[oai(
        path = "/v1/agency/report",
        method = "get",
        operation_id = "agency_report",
        tag = "ApiTags::Account"
    )]
    async fn my_agency_report(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AgencyReportView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let p = period(&ctx, from.0, to.0)?;
        let limit = page_limit(limit.0, 100, REPORT_PAGE_MAX)?;
        let of = super::ReportOf::ManagedBy(who.user_id.to_string());
        let r = super::agency_report(&ctx, of, p, after.0, limit).await?;
        Ok(Json(report_view(r, p, limit)))
    }
}
