//! `/v1/admin/cohorts`: cohorts, their previews and members. Admin.

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
use crate::core::error::{AppError, AppResult};

use super::model::{Cohort, CohortRule, Membership};
use super::{CohortInput, PREVIEW_SAMPLE};

const MEMBERS_PAGE_MAX: u32 = 500;

/// How a cohort gets its members.
#[derive(poem_openapi::Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CohortKind {
    /// Everyone `rule` matches, kept current by the server.
    Rule,
    /// The people an admin lists (`POST /v1/admin/cohorts/{cohortId}/members`).
    Hand,
}

#[derive(Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CohortRequest {
    /// 1–80 characters.
    pub name: String,
    /// 1–32 characters of `a-z0-9_-`, starting with a letter. Cohorts may share a tag.
    pub tag: String,
    /// Show the tag to clients (on gallery cards). Default false.
    #[oai(default)]
    pub visible: bool,
    /// `rule` needs `rule`; `hand` refuses one. A rule cohort made `hand` keeps its members
    /// as its list.
    pub kind: CohortKind,
    pub rule: Option<CohortRule>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CohortView {
    pub id: String,
    pub name: String,
    pub tag: String,
    pub visible: bool,
    pub kind: CohortKind,
    /// Null for a hand-made cohort.
    pub rule: Option<CohortRule>,
    pub members: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl From<Cohort> for CohortView {
    fn from(c: Cohort) -> Self {
        CohortView {
            kind: if c.rule().is_some() {
                CohortKind::Rule
            } else {
                CohortKind::Hand
            },
            rule: c.rule().cloned(),
            id: c.id,
            name: c.name,
            tag: c.tag,
            visible: c.visible,
            members: c.members,
            created_at: to_datetime(c.created_at_ms),
            updated_at: to_datetime(c.updated_at_ms),
            updated_by: c.updated_by,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CohortList {
    pub items: Vec<CohortView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CohortPreviewRequest {
    pub rule: CohortRule,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CohortPreview {
    /// Accounts the rule matches now.
    pub size: u64,
    /// The first of them by id, at most 20.
    pub sample: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub joined_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MemberPage {
    /// By user id.
    pub items: Vec<MemberView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AddMembersRequest {
    /// 1–`panel.hand_members_per_request_max` (1000) user ids.
    pub user_ids: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AddMembersView {
    /// How many were not members before.
    pub added: u64,
}

fn input(b: CohortRequest) -> AppResult<CohortInput> {
    let membership = match (b.kind, b.rule) {
        (CohortKind::Rule, Some(rule)) => Membership::Rule(rule),
        (CohortKind::Hand, None) => Membership::Hand,
        (CohortKind::Rule, None) => {
            return Err(AppError::validation("a `rule` cohort needs `rule`"));
        }
        (CohortKind::Hand, Some(_)) => {
            return Err(AppError::validation("a `hand` cohort takes no `rule`"));
        }
    };
    Ok(CohortInput {
        name: b.name,
        tag: b.tag,
        visible: b.visible,
        membership,
    })
}

pub struct PanelApi;

#[OpenApi(prefix_path = "/v1/admin/cohorts", tag = "ApiTags::Admin")]
impl PanelApi {
    /// Every cohort. Admin.
    #[oai(path = "/", method = "get", operation_id = "admin_cohorts_list")]
    async fn list(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<CohortList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::list(&ctx).await?;
        Ok(Json(CohortList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Create a cohort; a rule cohort's members are judged before the answer. At most
    /// `panel.cohorts_max` (`409 conflict` past it). Admin; audited.
    #[oai(path = "/", method = "post", operation_id = "admin_cohorts_create")]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<CohortRequest>,
    ) -> AppResult<Json<CohortView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who, None, input(body.0)?).await?.into(),
        ))
    }

    /// How many accounts a rule matches now, with a sample, before saving it. Admin.
    #[oai(
        path = "/preview",
        method = "post",
        operation_id = "admin_cohorts_preview"
    )]
    async fn preview(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<CohortPreviewRequest>,
    ) -> AppResult<Json<CohortPreview>> {
        auth.require(&ctx, Access::Admin).await?;
        let (size, sample) = super::preview(&ctx, body.0.rule).await?;
        debug_assert!(sample.len() <= PREVIEW_SAMPLE);
        Ok(Json(CohortPreview { size, sample }))
    }

    /// One cohort. Admin.
    #[oai(
        path = "/:cohort_id",
        method = "get",
        operation_id = "admin_cohorts_get"
    )]
    async fn get(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
    ) -> AppResult<Json<CohortView>> {
        auth.require(&ctx, Access::Admin).await?;
        Ok(Json(super::find(&ctx, &cohort_id).await?.into()))
    }

    /// Replace a cohort (a new rule is judged before the answer; a new tag moves to every
    /// member). A rule cohort made hand-made keeps its members as its list. Admin; audited.
    #[oai(
        path = "/:cohort_id",
        method = "put",
        operation_id = "admin_cohorts_update"
    )]
    async fn update(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
        body: JsonBody<CohortRequest>,
    ) -> AppResult<Json<CohortView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who, Some(&cohort_id), input(body.0)?)
                .await?
                .into(),
        ))
    }

    /// Remove a cohort: its members leave it, then it goes. Admin; audited.
    #[oai(
        path = "/:cohort_id",
        method = "delete",
        operation_id = "admin_cohorts_delete"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::delete(&ctx, &who, &cohort_id).await?;
        Ok(NoContent::Done)
    }

    /// A cohort's members by user id. `limit` 1–500 (100). Admin.
    #[oai(
        path = "/:cohort_id/members",
        method = "get",
        operation_id = "admin_cohorts_members"
    )]
    async fn members(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<MemberPage>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 100, MEMBERS_PAGE_MAX)?;
        let rows = super::members_page(&ctx, &cohort_id, after.0, limit).await?;
        let next_after = next_page(&rows, limit, |(id, _)| Cursor::Id(id.clone()));
        Ok(Json(MemberPage {
            items: rows
                .into_iter()
                .map(|(user_id, ms)| MemberView {
                    user_id,
                    joined_at: to_datetime(ms),
                })
                .collect(),
            next_after,
        }))
    }

    /// Add people to a hand-made cohort (`409 conflict` for a rule cohort). Admin; audited.
    #[oai(
        path = "/:cohort_id/members",
        method = "post",
        operation_id = "admin_cohorts_members_add"
    )]
    async fn add_members(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
        body: JsonBody<AddMembersRequest>,
    ) -> AppResult<Json<AddMembersView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let added = super::add_members(&ctx, &who, &cohort_id, body.0.user_ids).await?;
        Ok(Json(AddMembersView {
            added: added as u64,
        }))
    }

    /// Take someone out of a hand-made cohort. Admin; audited.
    #[oai(
        path = "/:cohort_id/members/:user_id",
        method = "delete",
        operation_id = "admin_cohorts_members_remove"
    )]
    async fn remove_member(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
        user_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::remove_member(&ctx, &who, &cohort_id, &user_id).await?;
        Ok(NoContent::Done)
    }
}
