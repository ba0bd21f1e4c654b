//! REST routes of the gift domain.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Serialize;
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::AppResult;
use crate::core::idempotency::Idempotency;
use crate::core::platform::Platform;

use super::{Gift, GiftInput, Sent};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GiftView {
    pub id: String,
    pub name: String,
    pub icon_media_id: Option<String>,
    pub price: i64,
    pub streamer_share_percent: u8,
    pub active: bool,
    pub sort: i32,
    pub platforms: Vec<Platform>,
    pub updated_at: OffsetDateTime,
}

impl From<Gift> for GiftView {
    fn from(g: Gift) -> Self {
        GiftView {
            id: g.id,
            name: g.name,
            icon_media_id: g.icon_media_id,
            price: g.price,
            streamer_share_percent: g.streamer_share_percent,
            active: g.active,
            sort: g.sort,
            platforms: g.platforms,
            updated_at: to_datetime(g.updated_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GiftList {
    pub items: Vec<GiftView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GiftRequest {
    /// 1–60 characters.
    pub name: String,
    pub icon_media_id: Option<String>,
    /// Coins, positive.
    pub price: i64,
    /// 0–100: the streamer's part of the price; the rest is platform revenue.
    pub streamer_share_percent: u8,
    #[oai(default = "default_true")]
    pub active: bool,
    #[oai(default)]
    pub sort: i32,
    /// Platforms it is offered on.
    pub platforms: Vec<Platform>,
}

fn default_true() -> bool {
    true
}

impl From<GiftRequest> for GiftInput {
    fn from(r: GiftRequest) -> Self {
        GiftInput {
            name: r.name,
            icon_media_id: r.icon_media_id,
            price: r.price,
            streamer_share_percent: r.streamer_share_percent,
            active: r.active,
            sort: r.sort,
            platforms: r.platforms,
        }
    }
}

#[derive(Object, Serialize)]
#[oai(rename_all = "camelCase")]
pub struct SendGiftRequest {
    pub gift_id: String,
    /// A streamer.
    pub to_user_id: String,
    /// The call it was sent in, if any.
    pub call_id: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SendGiftResult {
    pub gift_id: String,
    pub to_user_id: String,
    pub price: i64,
    /// What the streamer earned.
    pub streamer_coins: i64,
    /// The sender's wallet after the gift.
    pub balance: i64,
    pub transfer_ids: Vec<String>,
}

impl From<Sent> for SendGiftResult {
    fn from(s: Sent) -> Self {
        SendGiftResult {
            gift_id: s.gift_id,
            to_user_id: s.to_user_id,
            price: s.price,
            streamer_coins: s.streamer_coins,
            balance: s.balance,
            transfer_ids: s.transfer_ids,
        }
    }
}

pub struct GiftApi;

#[OpenApi(tag = "ApiTags::Gifts")]
impl GiftApi {
    /// Active gifts, in catalog order; only those offered on `platform` when given. Any role.
    #[oai(path = "/v1/gifts", method = "get", operation_id = "gifts_list")]
    async fn list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        platform: Query<Option<Platform>>,
    ) -> AppResult<Json<GiftList>> {
        auth.require(&ctx, Access::Any).await?;
        let items = super::catalog(&ctx, platform.0, false).await?;
        Ok(Json(GiftList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Send a gift to a streamer: the price leaves the wallet at once
    /// (`insufficient_balance` if it cannot). Any role; needs an `Idempotency-Key`.
    #[oai(path = "/v1/gifts/send", method = "post", operation_id = "gifts_send")]
    async fn send(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<SendGiftRequest>,
    ) -> AppResult<Json<SendGiftResult>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let idem = Idempotency::new(
            idempotency_key.0.as_deref(),
            &format!("{}:gift", who.user_id),
            &body.0,
        )?;
        let b = body.0;
        let sent = super::send(
            &ctx,
            &who.user_id,
            &b.gift_id,
            &b.to_user_id,
            b.call_id,
            idem,
        )
        .await?;
        Ok(Json(sent.into()))
    }

    /// The whole catalog, inactive gifts included. Admin.
    #[oai(
        path = "/v1/admin/gifts",
        method = "get",
        operation_id = "admin_gifts_list"
    )]
    async fn admin_list(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<GiftList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::catalog(&ctx, None, true).await?;
        Ok(Json(GiftList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Add a gift. Admin; audited.
    #[oai(
        path = "/v1/admin/gifts",
        method = "post",
        operation_id = "admin_gifts_create"
    )]
    async fn create(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<GiftRequest>,
    ) -> AppResult<Json<GiftView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, None, body.0.into())
                .await?
                .into(),
        ))
    }

    /// Replace a gift. Admin; audited.
    #[oai(
        path = "/v1/admin/gifts/:gift_id",
        method = "put",
        operation_id = "admin_gifts_update"
    )]
    async fn update(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        gift_id: Path<String>,
        body: JsonBody<GiftRequest>,
    ) -> AppResult<Json<GiftView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save(&ctx, &who.user_id, Some(gift_id.0), body.0.into())
                .await?
                .into(),
        ))
    }

    /// Remove a gift from the catalog (gifts already sent keep their record). Admin; audited.
    #[oai(
        path = "/v1/admin/gifts/:gift_id",
        method = "delete",
        operation_id = "admin_gifts_delete"
    )]
    async fn delete(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        gift_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::delete(&ctx, &who.user_id, gift_id.0).await?;
        Ok(NoContent::Done)
    }
}
