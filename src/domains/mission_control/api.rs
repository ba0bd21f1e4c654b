//! Admin routes: roles, bans, the audit log.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::{Access, Role};
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};

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

pub struct AdminApi;

#[OpenApi(prefix_path = "/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Set a user's role. Admin; audited.
    #[oai(
        path = "/users/:user_id/role",
        method = "put",
        operation_id = "admin_user_role"
    )]
    async fn set_role(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        body: Json<RoleRequest>,
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
        operation_id = "admin_user_ban"
    )]
    async fn ban(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        body: Json<BanRequest>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::ban(&ctx, &who.user_id, &user_id, &body.reason).await?;
        Ok(NoContent::Done)
    }

    /// Lift a ban. Admin; audited.
    #[oai(
        path = "/users/:user_id/ban",
        method = "delete",
        operation_id = "admin_user_unban"
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

    /// The audit log, newest first. Admin.
    #[oai(path = "/audit", method = "get", operation_id = "admin_audit")]
    async fn audit(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<AuditPage>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = limit.0.unwrap_or(50);
        if limit == 0 || limit > AUDIT_PAGE_MAX {
            return Err(AppError::validation(format!(
                "limit must be 1–{AUDIT_PAGE_MAX}"
            )));
        }
        let items = super::audit_page(&ctx, before.0, limit as usize).await?;
        let next_before = (items.len() == limit as usize)
            .then(|| items.last().map(|a| a.id.clone()))
            .flatten();
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
