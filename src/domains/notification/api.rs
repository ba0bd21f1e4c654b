//! REST routes of notifications. Live delivery is the WebSocket topic `notifications`; the
//! app answers each with `{type: "ack", seq}`.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Html, Json};
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::AppResult;

use super::delivery;
use super::model::*;

const PAGE_MAX: u32 = 200;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    /// What to open: `callId`, `chatId`, `userId`, …
    pub data: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub read: bool,
    /// The event seq it was delivered with on `notifications` (what `ack` names).
    pub seq: u64,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            data: serde_json::from_str(&n.data).unwrap_or_default(),
            id: n.id,
            kind: n.kind,
            title: n.title,
            body: n.body,
            created_at: to_datetime(n.created_at_ms),
            read: n.read_at_ms.is_some(),
            seq: n.seq,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct NotificationPage {
    /// Newest first.
    pub items: Vec<NotificationView>,
    /// Pass as `before` for older ones; absent on the last page.
    pub next_before: Option<String>,
    pub unread_count: u64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ReadNotifications {
    /// The notifications to mark read; all of them when absent.
    pub ids: Option<Vec<String>>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct UnreadCount {
    pub unread_count: u64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PreferencesView {
    /// Kinds never pushed (still stored in-app).
    #[oai(default)]
    pub muted_push: Vec<Kind>,
    /// Kinds never emailed.
    #[oai(default)]
    pub muted_email: Vec<Kind>,
    /// No email at all (the link in every email sets it).
    #[oai(default)]
    pub email_unsubscribed: bool,
}

/// A change of preferences: what is absent stays as it is.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PreferencesPatch {
    pub muted_push: Option<Vec<Kind>>,
    pub muted_email: Option<Vec<Kind>>,
    pub email_unsubscribed: Option<bool>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct Unsubscribed {
    pub unsubscribed: bool,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SystemNotificationRequest {
    pub user_id: String,
    /// 1–100 characters.
    pub title: String,
    /// Up to 1000 characters.
    pub body: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BroadcastRequest {
    /// 1–100 characters.
    pub title: String,
    /// Up to 1000 characters.
    pub body: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BroadcastView {
    pub broadcast_id: String,
    /// The cohort's members now; those in it when the fan-out reaches them are told.
    pub members: u64,
}

#[derive(poem_openapi::ApiResponse)]
pub enum BroadcastResponse {
    /// Queued: members are told in chunks, in-app then by push.
    #[oai(status = 202)]
    Queued(Json<BroadcastView>),
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SendView {
    pub id: String,
    pub notification_id: String,
    pub user_id: String,
    pub channel: Channel,
    pub provider: String,
    pub device_id: Option<String>,
    pub kind: Kind,
    pub state: SendState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<Send> for SendView {
    fn from(s: Send) -> Self {
        SendView {
            id: s.id,
            notification_id: s.notification_id,
            user_id: s.user_id,
            channel: s.channel,
            provider: s.provider,
            device_id: s.device_id,
            kind: s.kind,
            state: s.state,
            attempts: s.attempts,
            last_error: s.last_error,
            created_at: to_datetime(s.created_at_ms),
            updated_at: to_datetime(s.updated_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SendList {
    pub items: Vec<SendView>,
}

pub struct NotificationApi;

#[OpenApi(tag = "ApiTags::Social")]
impl NotificationApi {
    /// Your notifications, newest first, with the unread count. Any role.
    #[oai(
        path = "/v1/me/notifications",
        method = "get",
        operation_id = "me_notifications"
    )]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<NotificationPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let (items, unread) = super::page(&ctx, &who.user_id, before.0, limit).await?;
        let next_before = next_page(&items, limit, |n| Cursor::Id(n.id.clone()));
        Ok(Json(NotificationPage {
            items: items.into_iter().map(Into::into).collect(),
            next_before,
            unread_count: unread,
        }))
    }

    /// Mark notifications read (the `ids`, or all); a read notification is never pushed.
    /// Any role.
    #[oai(
        path = "/v1/me/notifications/read",
        method = "post",
        operation_id = "me_notifications_read"
    )]
    async fn read(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ReadNotifications>,
    ) -> AppResult<Json<UnreadCount>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let unread = super::mark_read(&ctx, &who.user_id, body.0.ids).await?;
        Ok(Json(UnreadCount {
            unread_count: unread,
        }))
    }

    /// What you muted, per channel. Any role.
    #[oai(
        path = "/v1/me/notification-preferences",
        method = "get",
        operation_id = "me_notification_preferences_get"
    )]
    async fn preferences(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<PreferencesView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let p = super::preferences_of(&ctx, &who.user_id).await?;
        Ok(Json(PreferencesView {
            muted_push: p.muted_push,
            muted_email: p.muted_email,
            email_unsubscribed: p.email_unsubscribed,
        }))
    }

    /// Change what you muted, per channel; fields left out stay as they are. Any role.
    #[oai(
        path = "/v1/me/notification-preferences",
        method = "patch",
        operation_id = "me_notification_preferences_patch"
    )]
    async fn set_preferences(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<PreferencesPatch>,
    ) -> AppResult<Json<PreferencesView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let tidy = |list: Option<Vec<Kind>>| {
            list.map(|mut l| {
                l.sort_by_key(|k| k.as_str());
                l.dedup();
                l
            })
        };
        let b = body.0;
        let p = super::update_preferences(
            &ctx,
            &who.user_id,
            tidy(b.muted_push),
            tidy(b.muted_email),
            b.email_unsubscribed,
        )
        .await?;
        Ok(Json(PreferencesView {
            muted_push: p.muted_push,
            muted_email: p.muted_email,
            email_unsubscribed: p.email_unsubscribed,
        }))
    }

    /// The unsubscribe link of every email: a page asking to confirm (mail scanners open
    /// links; only the confirmation, a POST, unsubscribes). No sign-in: the token is the proof.
    #[oai(
        path = "/v1/email/unsubscribe",
        method = "get",
        operation_id = "email_unsubscribe"
    )]
    async fn unsubscribe_page(
        &self,
        ctx: Data<&Arc<Ctx>>,
        token: Query<String>,
    ) -> AppResult<Html<String>> {
        // A bad link is refused here already, not after the click.
        ctx.tokens.verify_for(super::UNSUBSCRIBE, &token.0)?;
        let action = format!("/v1/email/unsubscribe?token={}", token.0);
        Ok(Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
             <body><p>Stop all emails from Duet?</p><form method=\"post\" action=\"{action}\">\
             <button type=\"submit\">Unsubscribe</button></form></body></html>"
        )))
    }

    /// Unsubscribe from every email: the confirmation of the page above, and RFC 8058
    /// one-click unsubscribe (`List-Unsubscribe-Post`).
    #[oai(
        path = "/v1/email/unsubscribe",
        method = "post",
        operation_id = "email_unsubscribe_post"
    )]
    async fn unsubscribe_post(
        &self,
        ctx: Data<&Arc<Ctx>>,
        token: Query<String>,
    ) -> AppResult<Json<Unsubscribed>> {
        super::unsubscribe(&ctx, &token.0).await?;
        Ok(Json(Unsubscribed { unsubscribed: true }))
    }

    /// Send a `system` notification to one person (in-app, then push). Admin; audited.
    #[oai(
        path = "/v1/admin/notifications",
        method = "post",
        operation_id = "admin_notifications_send"
    )]
    async fn send_system(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<SystemNotificationRequest>,
    ) -> AppResult<Json<NotificationView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let b = body.0;
        let n = super::send_system(&ctx, &who.user_id, &b.user_id, &b.title, &b.body).await?;
        Ok(Json(n.into()))
    }

    /// Send a `system` notification to every member of a cohort (in-app, then push), in
    /// chunks after the answer. Admin; audited.
    #[oai(
        path = "/v1/admin/cohorts/:cohort_id/broadcast",
        method = "post",
        operation_id = "admin_cohorts_broadcast"
    )]
    async fn broadcast(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cohort_id: Path<String>,
        body: JsonBody<BroadcastRequest>,
    ) -> AppResult<BroadcastResponse> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let (broadcast_id, members) =
            super::broadcast(&ctx, &who.user_id, &cohort_id, &body.title, &body.body).await?;
        Ok(BroadcastResponse::Queued(Json(BroadcastView {
            broadcast_id,
            members,
        })))
    }

    /// Pushes and emails that could not be delivered, newest first. Admin.
    #[oai(
        path = "/v1/admin/notifications/dead-letters",
        method = "get",
        operation_id = "admin_dead_letters"
    )]
    async fn dead_letters(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<SendList>> {
        auth.require(&ctx, Access::Admin).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let items = delivery::dead_letters(&ctx, limit).await?;
        Ok(Json(SendList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Give a dead letter a new round of attempts. Admin.
    #[oai(
        path = "/v1/admin/notifications/dead-letters/:send_id/retry",
        method = "post",
        operation_id = "admin_dead_letter_retry"
    )]
    async fn retry(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        send_id: Path<String>,
    ) -> AppResult<Json<SendView>> {
        auth.require(&ctx, Access::Admin).await?;
        Ok(Json(delivery::retry_dead(&ctx, &send_id.0).await?.into()))
    }
}
