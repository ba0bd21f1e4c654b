//! REST routes of the payment domain, and the store webhooks.

use crate::api::body::JsonBody;
use std::collections::BTreeMap;
use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::AppResult;
use crate::core::platform::Platform;

use super::{Intent, IntentState, Product, ProductInput};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct StoreProductIds {
    pub ios: Option<String>,
    pub android: Option<String>,
    pub web: Option<String>,
}

impl StoreProductIds {
    fn to_map(&self) -> BTreeMap<String, String> {
        [
            (Platform::Ios, &self.ios),
            (Platform::Android, &self.android),
            (Platform::Web, &self.web),
        ]
        .into_iter()
        .filter_map(|(p, id)| id.clone().map(|id| (p.as_str().to_owned(), id)))
        .collect()
    }
    fn from_map(m: &BTreeMap<String, String>) -> Self {
        StoreProductIds {
            ios: m.get("ios").cloned(),
            android: m.get("android").cloned(),
            web: m.get("web").cloned(),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProductView {
    pub id: String,
    pub name: String,
    pub store_product_ids: StoreProductIds,
    pub coins: i64,
    pub bonus_coins: i64,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub sort: i32,
    pub updated_at: OffsetDateTime,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        ProductView {
            store_product_ids: StoreProductIds::from_map(&p.store_product_ids),
            id: p.id,
            name: p.name,
            coins: p.coins,
            bonus_coins: p.bonus_coins,
            price_minor: p.price_minor,
            currency: p.currency,
            active: p.active,
            sort: p.sort,
            updated_at: to_datetime(p.updated_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProductList {
    pub items: Vec<ProductView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ProductRequest {
    pub name: String,
    pub store_product_ids: StoreProductIds,
    pub coins: i64,
    #[oai(default)]
    pub bonus_coins: i64,
    pub price_minor: i64,
    pub currency: String,
    #[oai(default = "default_true")]
    pub active: bool,
    #[oai(default)]
    pub sort: i32,
}

fn default_true() -> bool {
    true
}

impl From<ProductRequest> for ProductInput {
    fn from(r: ProductRequest) -> Self {
        ProductInput {
            store_product_ids: r.store_product_ids.to_map(),
            name: r.name,
            coins: r.coins,
            bonus_coins: r.bonus_coins,
            price_minor: r.price_minor,
            currency: r.currency,
            active: r.active,
            sort: r.sort,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct IntentRequest {
    pub product_id: String,
    pub platform: Platform,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct IntentView {
    pub id: String,
    pub product_id: String,
    pub platform: Platform,
    pub state: IntentState,
    pub coins: i64,
    pub bonus_coins: i64,
    pub failure: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<Intent> for IntentView {
    fn from(i: Intent) -> Self {
        IntentView {
            id: i.id,
            product_id: i.product_id,
            platform: i.platform,
            state: i.state,
            coins: i.coins,
            bonus_coins: i.bonus_coins,
            failure: i.failure,
            created_at: to_datetime(i.created_at_ms),
            updated_at: to_datetime(i.updated_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AppleRequest {
    pub intent_id: String,
    /// The StoreKit 2 `jwsRepresentation` of the transaction.
    pub signed_transaction: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GoogleRequest {
    pub intent_id: String,
    /// The Play product id of the purchase.
    pub product_id: String,
    pub purchase_token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AppleNotificationBody {
    /// App Store Server Notification V2.
    pub signed_payload: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PubSubMessage {
    /// Base64 of the DeveloperNotification JSON.
    pub data: String,
    pub message_id: String,
    pub publish_time: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PubSubPush {
    pub message: PubSubMessage,
    pub subscription: Option<String>,
}

pub struct PaymentApi;

#[OpenApi(tag = "ApiTags::Payments")]
impl PaymentApi {
    /// Coin packs for sale on a platform. Any role.
    #[oai(path = "/v1/products", method = "get", operation_id = "products_list")]
    async fn products(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        platform: Query<Platform>,
    ) -> AppResult<Json<ProductList>> {
        auth.require(&ctx, Access::Any).await?;
        let items = super::products(&ctx, Some(platform.0), false).await?;
        Ok(Json(ProductList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Every product, inactive ones included. Admin.
    #[oai(
        path = "/v1/admin/products",
        method = "get",
        operation_id = "admin_products_list"
    )]
    async fn admin_products(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<ProductList>> {
        auth.require(&ctx, Access::Admin).await?;
        let items = super::products(&ctx, None, true).await?;
        Ok(Json(ProductList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Add a product. Admin; audited.
    #[oai(
        path = "/v1/admin/products",
        method = "post",
        operation_id = "admin_products_create"
    )]
    async fn create_product(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<ProductRequest>,
    ) -> AppResult<Json<ProductView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save_product(&ctx, &who.user_id, None, body.0.into())
                .await?
                .into(),
        ))
    }

    /// Replace a product. Admin; audited.
    #[oai(
        path = "/v1/admin/products/:product_id",
        method = "put",
        operation_id = "admin_products_update"
    )]
    async fn update_product(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        product_id: Path<String>,
        body: JsonBody<ProductRequest>,
    ) -> AppResult<Json<ProductView>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        Ok(Json(
            super::save_product(&ctx, &who.user_id, Some(product_id.0), body.0.into())
                .await?
                .into(),
        ))
    }

    /// Remove a product. Admin; audited.
    #[oai(
        path = "/v1/admin/products/:product_id",
        method = "delete",
        operation_id = "admin_products_delete"
    )]
    async fn delete_product(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        product_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Admin).await?;
        super::delete_product(&ctx, &who.user_id, product_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Start buying a product. Any role.
    #[oai(
        path = "/v1/payments/intents",
        method = "post",
        operation_id = "payments_intent_create"
    )]
    async fn create_intent(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<IntentRequest>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        Ok(Json(
            super::create_intent(&ctx, &who.user_id, &body.product_id, body.platform)
                .await?
                .into(),
        ))
    }

    /// One of the caller's payment intents. Any role.
    #[oai(
        path = "/v1/payments/intents/:intent_id",
        method = "get",
        operation_id = "payments_intent_get"
    )]
    async fn get_intent(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        intent_id: Path<String>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        Ok(Json(
            super::intent_for(&ctx, &who.user_id, &intent_id)
                .await?
                .into(),
        ))
    }

    /// Complete an intent with an App Store transaction: the JWS and its certificate chain are
    /// verified, and the coins credited once per transaction id. Set the StoreKit purchase's
    /// `appAccountToken` to the intent id: a transaction carrying another token is refused.
    /// Any role.
    #[oai(
        path = "/v1/payments/apple",
        method = "post",
        operation_id = "payments_apple"
    )]
    async fn apple(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<AppleRequest>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let done = super::stores::purchase_apple(
            &ctx,
            &who.user_id,
            &body.intent_id,
            &body.signed_transaction,
        )
        .await?;
        Ok(Json(done.into()))
    }

    /// Complete an intent with a Google Play purchase: verified with the Play Developer API
    /// (`purchaseState` 0; test purchases only where configured), consumed, and credited once
    /// per order id. Set `obfuscatedAccountId` to the intent id: a purchase carrying another is
    /// refused. Any role.
    #[oai(
        path = "/v1/payments/google",
        method = "post",
        operation_id = "payments_google"
    )]
    async fn google(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        body: JsonBody<GoogleRequest>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let done = super::stores::purchase_google(
            &ctx,
            &who.user_id,
            &body.intent_id,
            &body.product_id,
            &body.purchase_token,
        )
        .await?;
        Ok(Json(done.into()))
    }

    /// App Store Server Notifications V2. `REFUND` and `REVOKE` take the coins back,
    /// `REFUND_REVERSED` gives them again. Public: authenticated by Apple's signature.
    #[oai(
        path = "/v1/webhooks/apple",
        method = "post",
        operation_id = "webhooks_apple"
    )]
    async fn apple_webhook(
        &self,
        ctx: Data<&Arc<Ctx>>,
        body: JsonBody<AppleNotificationBody>,
    ) -> AppResult<NoContent> {
        super::stores::apple_notification(&ctx, &body.signed_payload).await?;
        Ok(NoContent::Done)
    }

    /// Google Play Real-time Developer Notifications, pushed by Pub/Sub with a Google-signed
    /// bearer token. A voided purchase takes the coins back. Public: authenticated by the push
    /// token.
    #[oai(
        path = "/v1/webhooks/google",
        method = "post",
        operation_id = "webhooks_google"
    )]
    async fn google_webhook(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<PubSubPush>,
    ) -> AppResult<NoContent> {
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        super::stores::google_notification(
            &ctx,
            bearer,
            &body.message.message_id,
            &body.message.data,
        )
        .await?;
        Ok(NoContent::Done)
    }
}
