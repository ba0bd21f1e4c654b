//! REST routes of the payment domain, and the store webhooks.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::platform::Platform;

use super::{Intent, IntentState, Product, ProductInput, StoreAction};

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeveloperNotification {
    package_name: String,
    #[serde(default)]
    voided_purchase_notification: Option<VoidedPurchase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoidedPurchase {
    order_id: String,
}

/// Longest purchase token or signed transaction accepted.
const STORE_TOKEN_BYTES_MAX: usize = 64 * 1024;

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
        body: Json<ProductRequest>,
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
        body: Json<ProductRequest>,
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
        body: Json<IntentRequest>,
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
        body: Json<AppleRequest>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let verifier = ctx.apple.as_ref().ok_or_else(|| {
            AppError::new(Code::Unavailable, "App Store payments are not configured")
        })?;
        if body.signed_transaction.len() > STORE_TOKEN_BYTES_MAX {
            return Err(AppError::validation("signedTransaction is too large"));
        }
        let intent = super::intent_for(&ctx, &who.user_id, &body.intent_id).await?;
        if intent.platform != Platform::Ios {
            return Err(AppError::validation("this intent is not for the App Store"));
        }
        super::mark_verifying(&ctx, &intent.id).await?;
        let t = match verifier.transaction(&body.signed_transaction, ctx.store.now_ms()) {
            Ok(t) => t,
            Err(e) => return Err(super::refuse(&ctx, &intent.id, e).await),
        };
        let refusal = if t.product_id != intent.store_product_id {
            Some(format!(
                "the transaction is for {}, not {}",
                t.product_id, intent.store_product_id
            ))
        } else if t.revocation_date.is_some() {
            Some("the transaction was revoked".to_owned())
        } else if t
            .app_account_token
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case(&intent.id))
        {
            Some("the transaction belongs to another payment (appAccountToken)".to_owned())
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(
                super::refuse(&ctx, &intent.id, AppError::new(Code::InvalidReceipt, why)).await,
            );
        }
        let details = json!({"store": "apple", "transactionId": t.transaction_id, "originalTransactionId": t.original_transaction_id});
        let key = format!("apple:{}", t.transaction_id);
        let done =
            super::complete(&ctx, &intent.id, &key, t.quantity.unwrap_or(1), details).await?;
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
        body: Json<GoogleRequest>,
    ) -> AppResult<Json<IntentView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let play = ctx.google.as_ref().ok_or_else(|| {
            AppError::new(Code::Unavailable, "Google Play payments are not configured")
        })?;
        if body.purchase_token.is_empty() || body.purchase_token.len() > STORE_TOKEN_BYTES_MAX {
            return Err(AppError::validation("purchaseToken must be 1–65536 bytes"));
        }
        let intent = super::intent_for(&ctx, &who.user_id, &body.intent_id).await?;
        if intent.platform != Platform::Android {
            return Err(AppError::validation("this intent is not for Google Play"));
        }
        if body.product_id != intent.store_product_id {
            let e = AppError::new(
                Code::InvalidReceipt,
                format!(
                    "the purchase is for {}, not {}",
                    body.product_id, intent.store_product_id
                ),
            );
            return Err(super::refuse(&ctx, &intent.id, e).await);
        }
        super::mark_verifying(&ctx, &intent.id).await?;
        let now = ctx.store.now_ms();
        let purchase = match play
            .get_product(&body.product_id, &body.purchase_token, now)
            .await
        {
            Ok(p) => p,
            Err(e) => return Err(super::refuse(&ctx, &intent.id, e).await),
        };
        let refusal = if purchase.purchase_state != 0 || purchase.order_id.is_empty() {
            Some(format!(
                "the purchase is not completed (purchaseState {})",
                purchase.purchase_state
            ))
        } else if purchase.purchase_type == Some(0) && !play.accepts_test_purchases() {
            Some("a license-test purchase is not credited on this server".to_owned())
        } else if purchase
            .obfuscated_external_account_id
            .as_deref()
            .is_some_and(|a| a != intent.id)
        {
            Some("the purchase belongs to another payment (obfuscatedAccountId)".to_owned())
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(
                super::refuse(&ctx, &intent.id, AppError::new(Code::InvalidReceipt, why)).await,
            );
        }
        // Consume before crediting: if crediting then fails, a retry finds it consumed and
        // credits it; the reverse order could lose a purchase Google would refund after 3 days.
        if purchase.consumption_state == 0 {
            play.consume(&body.product_id, &body.purchase_token, now)
                .await?;
        }
        let details = json!({"store": "google", "orderId": purchase.order_id});
        let key = format!("google:{}", purchase.order_id);
        let done = super::complete(
            &ctx,
            &intent.id,
            &key,
            purchase.quantity.unwrap_or(1),
            details,
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
        body: Json<AppleNotificationBody>,
    ) -> AppResult<NoContent> {
        let verifier = ctx.apple.as_ref().ok_or_else(|| {
            AppError::new(Code::Unavailable, "App Store payments are not configured")
        })?;
        let n = verifier.notification(&body.signed_payload, ctx.store.now_ms())?;
        let action = match (n.notification_type.as_str(), &n.transaction) {
            ("REFUND" | "REVOKE", Some(t)) => StoreAction::Refund {
                store_key: format!("apple:{}", t.transaction_id),
                reason: n.notification_type.to_lowercase(),
            },
            ("REFUND_REVERSED", Some(t)) => StoreAction::ReverseRefund {
                store_key: format!("apple:{}", t.transaction_id),
            },
            _ => StoreAction::Nothing,
        };
        super::handle_notification(&ctx, &format!("apple:{}", n.uuid), action).await?;
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
        body: Json<PubSubPush>,
    ) -> AppResult<NoContent> {
        let verifier = ctx.pubsub.as_ref().ok_or_else(|| {
            AppError::new(Code::Unavailable, "Google Play payments are not configured")
        })?;
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::unauthorized("the push carries no bearer token"))?;
        verifier.verify(bearer, ctx.store.now_ms()).await?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(&body.message.data)
            .map_err(|_| AppError::validation("message.data is not base64"))?;
        let n: DeveloperNotification = serde_json::from_slice(&data)
            .map_err(|e| AppError::validation(format!("not a DeveloperNotification: {e}")))?;
        if let Some(g) = &ctx.google_package
            && n.package_name != *g
        {
            return Err(AppError::validation(
                "the notification is for another package",
            ));
        }
        let action = match n.voided_purchase_notification {
            Some(v) => StoreAction::Refund {
                store_key: format!("google:{}", v.order_id),
                reason: "voided".to_owned(),
            },
            None => StoreAction::Nothing,
        };
        super::handle_notification(&ctx, &format!("google:{}", body.message.message_id), action)
            .await?;
        Ok(NoContent::Done)
    }
}
