//! REST routes of the video domain.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::cursor::{Cursor, next_page, page_limit};
use crate::core::error::{AppError, AppResult};
use crate::domains::billing::model::{CallKind, Side};

use super::Action;
use super::model::{Call, CallState, EndReason};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct StartCall {
    pub callee_id: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CallView {
    pub id: String,
    pub kind: CallKind,
    pub caller_id: String,
    pub callee_id: String,
    /// Which side pays.
    pub payer: Side,
    pub state: CallState,
    pub tariff_id: String,
    pub tariff_version: u32,
    pub created_at: OffsetDateTime,
    pub connected_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub duration_seconds: i64,
    /// Coins charged to the payer.
    pub charged: i64,
    /// Coins credited to the earner.
    pub earned: i64,
    pub end_reason: Option<EndReason>,
}

impl From<Call> for CallView {
    fn from(c: Call) -> Self {
        let duration_seconds = c
            .ended_at_ms
            .zip(c.connected_at_ms)
            .map_or(0, |(e, s)| (e - s) / 1000);
        CallView {
            payer: c.payer_side(),
            id: c.id.into(),
            kind: c.kind,
            caller_id: c.caller_id.into(),
            callee_id: c.callee_id.into(),
            state: c.state,
            tariff_id: c.tariff_id,
            tariff_version: c.tariff_version,
            created_at: to_datetime(c.created_at_ms),
            connected_at: c.connected_at_ms.map(to_datetime),
            ended_at: c.ended_at_ms.map(to_datetime),
            duration_seconds,
            charged: c.charged,
            earned: c.earned,
            end_reason: c.end_reason,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct CallPage {
    pub items: Vec<CallView>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<String>,
}

const PAGE_MAX: u32 = 100;

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MediaView {
    /// `agora` or `twilio`.
    pub provider: String,
    pub channel: String,
    pub uid: String,
    pub token: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProviderFailure {
    /// The provider that failed for this client.
    pub provider: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProviderView {
    pub name: String,
    pub enabled: bool,
    /// Too many failures lately: new calls skip it until the window passes.
    pub failing: bool,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProviderList {
    /// In the order they are tried.
    pub items: Vec<ProviderView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProviderSwitch {
    pub enabled: bool,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RouletteJoin {
    /// BCP 47 tags the user speaks: a streamer who speaks one is preferred. Remembered for
    /// `next`.
    #[oai(default)]
    pub languages: Vec<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RouletteStatus {
    /// `waiting` or `matched`.
    pub status: String,
    /// The roulette call, when matched: connecting, fetch `/media` and report `/joined`.
    pub call: Option<CallView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct Availability {
    pub available: bool,
}

fn roulette_status(o: super::roulette::Outcome) -> RouletteStatus {
    match o {
        super::roulette::Outcome::Waiting => RouletteStatus {
            status: "waiting".into(),
            call: None,
        },
        super::roulette::Outcome::Matched(c) => RouletteStatus {
            status: "matched".into(),
            call: Some((*c).into()),
        },
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ClipRequest {
    /// The uploaded video.
    pub media_id: String,
    pub duration_seconds: u32,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ClipView {
    pub id: String,
    pub streamer_id: String,
    pub media_id: String,
    pub duration_seconds: u32,
    pub state: super::roulette::ClipState,
}

impl From<super::roulette::Clip> for ClipView {
    fn from(c: super::roulette::Clip) -> Self {
        ClipView {
            id: c.id,
            streamer_id: c.streamer_id,
            media_id: c.media_id,
            duration_seconds: c.duration_seconds,
            state: c.state,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ClipModeration {
    pub state: super::roulette::ClipState,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ClipOffer {
    /// An approved clip of an online, free streamer; absent while the user should keep
    /// waiting. The user can call `clip.streamerId` directly.
    pub clip: Option<ClipView>,
}

pub struct CallApi;

impl CallApi {
    async fn act(
        ctx: &Arc<Ctx>,
        auth: &BearerAuth,
        id: &str,
        action: Action,
    ) -> AppResult<Json<CallView>> {
        let who = auth.require(ctx, Access::Any).await?;
        let max_ms = ctx.config.calls.max_duration_secs as i64 * 1000;
        Ok(Json(
            super::act(ctx, &who.user_id, id, action, max_ms)
                .await?
                .into(),
        ))
    }
}

#[OpenApi(tag = "ApiTags::Calls")]
impl CallApi {
    /// Call someone: the call rings until accepted, declined or timed out (`unavailable` when
    /// they are offline, `busy` when either is in a call, `insufficient_balance` when the
    /// payer cannot pay the first checkpoint, `forbidden` when no tariff allows it). Any role.
    #[oai(path = "/v1/calls", method = "post", operation_id = "calls_start")]
    async fn start(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<StartCall>,
    ) -> AppResult<Json<CallView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let ring_ms = ctx.config.calls.ring_timeout_secs as i64 * 1000;
        Ok(Json(
            super::start(&ctx, &who, &body.callee_id, ring_ms)
                .await?
                .into(),
        ))
    }

    /// Answer a ringing call (the callee). Any role.
    #[oai(
        path = "/v1/calls/:call_id/accept",
        method = "post",
        operation_id = "calls_accept"
    )]
    async fn accept(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<CallView>> {
        Self::act(ctx.0, &auth, &call_id, Action::Accept).await
    }

    /// Refuse a ringing call (the callee). Any role.
    #[oai(
        path = "/v1/calls/:call_id/decline",
        method = "post",
        operation_id = "calls_decline"
    )]
    async fn decline(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<CallView>> {
        Self::act(ctx.0, &auth, &call_id, Action::Decline).await
    }

    /// Hang up (either side; while ringing the caller cancels). Any role.
    #[oai(
        path = "/v1/calls/:call_id/hangup",
        method = "post",
        operation_id = "calls_hangup"
    )]
    async fn hangup(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<CallView>> {
        Self::act(ctx.0, &auth, &call_id, Action::Hangup).await
    }

    /// The caller's client has joined the media channel; when both have, the call is connected
    /// and billing starts. Any role.
    #[oai(
        path = "/v1/calls/:call_id/joined",
        method = "post",
        operation_id = "calls_joined"
    )]
    async fn joined(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<CallView>> {
        Self::act(ctx.0, &auth, &call_id, Action::Joined).await
    }

    /// A call record, for its participants and staff. Any role.
    #[oai(
        path = "/v1/calls/:call_id",
        method = "get",
        operation_id = "calls_get"
    )]
    async fn get(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<CallView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let call = super::find_call(&ctx, &call_id.0)
            .await?
            .filter(|c| {
                c.caller_id == who.user_id
                    || c.callee_id == who.user_id
                    || Access::Staff.allows(who.role)
            })
            .ok_or_else(|| AppError::not_found("no such call"))?;
        Ok(Json(call.into()))
    }

    /// The caller's calls, newest first. Any role.
    #[oai(path = "/v1/me/calls", method = "get", operation_id = "me_calls")]
    async fn mine(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<CallPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let limit = page_limit(limit.0, 50, PAGE_MAX)?;
        let items = super::calls_of(&ctx, &who.user_id, before.0, limit).await?;
        let next_before = next_page(&items, limit, |c| Cursor::Id(c.id.to_string()));
        Ok(Json(CallPage {
            items: items.into_iter().map(Into::into).collect(),
            next_before,
        }))
    }

    /// The caller's media credentials for a connecting or connected call:
    /// `{provider, channel, uid, token, expiresAt}`. Fetch again after a `call_state` event
    /// that changes the provider. Any role.
    #[oai(
        path = "/v1/calls/:call_id/media",
        method = "get",
        operation_id = "calls_media"
    )]
    async fn media(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
    ) -> AppResult<Json<MediaView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let t = super::media_for(&ctx, &who.user_id, &call_id).await?;
        Ok(Json(MediaView {
            provider: t.provider.to_owned(),
            channel: t.channel,
            uid: t.uid,
            token: t.token,
            expires_at: to_datetime(t.expires_at * 1000),
        }))
    }

    /// This client could not use the call's provider: the call moves to the next provider
    /// (fetch `/media` again), and enough failures switch new calls over too. Any role.
    #[oai(
        path = "/v1/calls/:call_id/provider-failure",
        method = "post",
        operation_id = "calls_provider_failure"
    )]
    async fn provider_failure(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        call_id: Path<String>,
        body: JsonBody<ProviderFailure>,
    ) -> AppResult<Json<CallView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        Ok(Json(
            super::provider_failed(ctx.0, &who.user_id, &call_id, &body.provider)
                .await?
                .into(),
        ))
    }

    /// The configured video providers, in the order they are tried. Admin.
    #[oai(
        path = "/v1/admin/video/providers",
        method = "get",
        operation_id = "admin_video_providers"
    )]
    async fn providers(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<ProviderList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::provider_statuses(ctx.0).await?;
        Ok(Json(ProviderList {
            items: items
                .into_iter()
                .map(|p| ProviderView {
                    name: p.name.to_owned(),
                    enabled: p.enabled,
                    failing: p.failing,
                })
                .collect(),
        }))
    }

    /// Switch a provider on or off for new calls. Admin; audited.
    #[oai(
        path = "/v1/admin/video/providers/:name",
        method = "put",
        operation_id = "admin_video_provider_switch"
    )]
    async fn switch(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        name: Path<String>,
        body: JsonBody<ProviderSwitch>,
    ) -> AppResult<crate::api::NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::switch_provider(&ctx, &who.user_id, &name, body.enabled).await?;
        Ok(crate::api::NoContent::Done)
    }

    /// Wait for a roulette partner (matched at once when a streamer is free). Users.
    #[oai(
        path = "/v1/roulette/join",
        method = "post",
        operation_id = "roulette_join"
    )]
    async fn roulette_join(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<RouletteJoin>,
    ) -> AppResult<Json<RouletteStatus>> {
        let who = auth.require(&ctx, Access::User).await?;
        if body.languages.len() > 10 {
            return Err(AppError::validation("at most 10 languages"));
        }
        Ok(Json(roulette_status(
            super::roulette::join(ctx.0, &who.user_id, Some(body.0.languages)).await?,
        )))
    }

    /// Stop waiting. Users.
    #[oai(
        path = "/v1/roulette/leave",
        method = "post",
        operation_id = "roulette_leave"
    )]
    async fn roulette_leave(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<crate::api::NoContent> {
        let who = auth.require(&ctx, Access::User).await?;
        super::roulette::leave(&ctx, &who.user_id).await?;
        Ok(crate::api::NoContent::Done)
    }

    /// End the current roulette call, if any, and wait for the next partner. Users.
    #[oai(
        path = "/v1/roulette/next",
        method = "post",
        operation_id = "roulette_next"
    )]
    async fn roulette_next(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<RouletteStatus>> {
        let who = auth.require(&ctx, Access::User).await?;
        Ok(Json(roulette_status(
            super::roulette::next(ctx.0, &who.user_id).await?,
        )))
    }

    /// Switch oneself available (or not) for roulette. Streamers.
    #[oai(
        path = "/v1/roulette/availability",
        method = "put",
        operation_id = "roulette_availability"
    )]
    async fn roulette_availability(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<Availability>,
    ) -> AppResult<crate::api::NoContent> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        super::roulette::set_available(ctx.0, &who.user_id, body.available).await?;
        Ok(crate::api::NoContent::Done)
    }

    /// Register a prerecorded clip (pending moderation). Streamers.
    #[oai(path = "/v1/me/clips", method = "post", operation_id = "clips_add")]
    async fn add_clip(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ClipRequest>,
    ) -> AppResult<Json<ClipView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        Ok(Json(
            super::roulette::add_clip(&ctx, &who.user_id, &body.media_id, body.duration_seconds)
                .await?
                .into(),
        ))
    }

    /// Approve or reject a clip. Moderators and admins; audited.
    #[oai(
        path = "/v1/admin/clips/:clip_id/moderation",
        method = "put",
        operation_id = "admin_clip_moderate"
    )]
    async fn moderate_clip(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        clip_id: Path<String>,
        body: JsonBody<ClipModeration>,
    ) -> AppResult<Json<ClipView>> {
        let who = auth.require(&ctx, Access::Staff).await?;
        Ok(Json(
            super::roulette::moderate_clip(&ctx, &who.user_id, &clip_id, body.state)
                .await?
                .into(),
        ))
    }

    /// For a waiting roulette user: after `calls.clip_after_secs` without a match, an approved
    /// clip of an online streamer who is free. Users.
    #[oai(
        path = "/v1/roulette/clip",
        method = "get",
        operation_id = "roulette_clip"
    )]
    async fn roulette_clip(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<ClipOffer>> {
        let who = auth.require(&ctx, Access::User).await?;
        let wait_ms = ctx.config.calls.clip_after_secs as i64 * 1000;
        let clip = super::roulette::clip_for(&ctx, &who.user_id, wait_ms).await?;
        Ok(Json(ClipOffer {
            clip: clip.map(Into::into),
        }))
    }
}
