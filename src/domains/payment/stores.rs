//! The store flows: receipts verified with the store (App Store JWS, the Play Developer API)
//! and credited once, and the stores' refund notifications. Routes hand these the request's
//! fields; every provider call happens here.

use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::platform::Platform;

use super::{Intent, StoreAction};

/// Longest purchase token or signed transaction accepted.
pub const STORE_TOKEN_BYTES_MAX: usize = 64 * 1024;

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

/// Completes `user_id`'s intent with an App Store transaction: the JWS and its certificate
/// chain verified, the coins credited once per transaction id. A transaction whose
/// `appAccountToken` names another intent is refused.
pub async fn purchase_apple(
    ctx: &Ctx,
    user_id: &str,
    intent_id: &str,
    signed_transaction: &str,
) -> AppResult<Intent> {
    let verifier = ctx
        .apple
        .as_ref()
        .ok_or_else(|| AppError::new(Code::Unavailable, "App Store payments are not configured"))?;
    if signed_transaction.len() > STORE_TOKEN_BYTES_MAX {
        return Err(AppError::validation("signedTransaction is too large"));
    }
    let intent = super::intent_for(ctx, user_id, intent_id).await?;
    if intent.platform != Platform::Ios {
        return Err(AppError::validation("this intent is not for the App Store"));
    }
    super::mark_verifying(ctx, &intent.id).await?;
    let t = match verifier.transaction(signed_transaction, ctx.store.now_ms()) {
        Ok(t) => t,
        Err(e) => return Err(super::refuse(ctx, &intent.id, e).await),
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
        return Err(super::refuse(ctx, &intent.id, AppError::new(Code::InvalidReceipt, why)).await);
    }
    let details = json!({"store": "apple", "transactionId": t.transaction_id, "originalTransactionId": t.original_transaction_id});
    let key = format!("apple:{}", t.transaction_id);
    let done = super::complete(ctx, &intent.id, &key, t.quantity.unwrap_or(1), details).await?;
    Ok(done)
}

/// Completes `user_id`'s intent with a Google Play purchase: verified with the Play Developer
/// API (`purchaseState` 0; test purchases only where configured), consumed, and credited once
/// per order id. A purchase whose `obfuscatedAccountId` names another intent is refused.
pub async fn purchase_google(
    ctx: &Ctx,
    user_id: &str,
    intent_id: &str,
    product_id: &str,
    purchase_token: &str,
) -> AppResult<Intent> {
    let play = ctx.google.as_ref().ok_or_else(|| {
        AppError::new(Code::Unavailable, "Google Play payments are not configured")
    })?;
    if purchase_token.is_empty() || purchase_token.len() > STORE_TOKEN_BYTES_MAX {
        return Err(AppError::validation("purchaseToken must be 1–65536 bytes"));
    }
    let intent = super::intent_for(ctx, user_id, intent_id).await?;
    if intent.platform != Platform::Android {
        return Err(AppError::validation("this intent is not for Google Play"));
    }
    if product_id != intent.store_product_id {
        let e = AppError::new(
            Code::InvalidReceipt,
            format!(
                "the purchase is for {}, not {}",
                product_id, intent.store_product_id
            ),
        );
        return Err(super::refuse(ctx, &intent.id, e).await);
    }
    super::mark_verifying(ctx, &intent.id).await?;
    let now = ctx.store.now_ms();
    let purchase = match play.get_product(product_id, purchase_token, now).await {
        Ok(p) => p,
        Err(e) => return Err(super::refuse(ctx, &intent.id, e).await),
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
        return Err(super::refuse(ctx, &intent.id, AppError::new(Code::InvalidReceipt, why)).await);
    }
    // Consume before crediting: if crediting then fails, a retry finds it consumed and
    // credits it; the reverse order could lose a purchase Google would refund after 3 days.
    if purchase.consumption_state == 0 {
        play.consume(product_id, purchase_token, now).await?;
    }
    let details = json!({"store": "google", "orderId": purchase.order_id});
    let key = format!("google:{}", purchase.order_id);
    let done = super::complete(
        ctx,
        &intent.id,
        &key,
        purchase.quantity.unwrap_or(1),
        details,
    )
    .await?;
    Ok(done)
}

/// An App Store Server Notification V2: `REFUND` and `REVOKE` take the coins back,
/// `REFUND_REVERSED` gives them again. Authenticated by Apple's signature.
pub async fn apple_notification(ctx: &Ctx, signed_payload: &str) -> AppResult<()> {
    let verifier = ctx
        .apple
        .as_ref()
        .ok_or_else(|| AppError::new(Code::Unavailable, "App Store payments are not configured"))?;
    let n = verifier.notification(signed_payload, ctx.store.now_ms())?;
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
    super::handle_notification(ctx, &format!("apple:{}", n.uuid), action).await?;
    Ok(())
}

/// A Google Play Real-time Developer Notification pushed by Pub/Sub with a Google-signed
/// bearer token: a voided purchase takes the coins back.
pub async fn google_notification(
    ctx: &Ctx,
    bearer: Option<&str>,
    message_id: &str,
    data: &str,
) -> AppResult<()> {
    let verifier = ctx.pubsub.as_ref().ok_or_else(|| {
        AppError::new(Code::Unavailable, "Google Play payments are not configured")
    })?;
    let bearer =
        bearer.ok_or_else(|| AppError::unauthorized("the push carries no bearer token"))?;
    verifier.verify(bearer, ctx.store.now_ms()).await?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(data)
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
    super::handle_notification(ctx, &format!("google:{message_id}"), action).await?;
    Ok(())
}
