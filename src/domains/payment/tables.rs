//! The payment domain's tables.

crate::tables! {
    /// product id → Product.
    PRODUCTS: &str => &[u8] = "payment_product";
    /// intent id → Intent.
    INTENTS: &str => &[u8] = "payment_intent";
    /// `apple:<transactionId>` | `google:<orderId>` → StorePurchase: each store purchase is
    /// credited once.
    STORE_PURCHASES: &str => &[u8] = "payment_store_purchase";
    /// (user id, store key): each user's credited store purchases, for their standing.
    PURCHASES_BY_USER: (&str, &str) => () = "payment_purchase_by_user";
    /// Store keys refunded before they were credited → when: such a purchase is never credited.
    REFUNDED_EARLY: &str => i64 = "payment_refunded_early";
    /// `apple:<notificationUUID>` | `google:<messageId>` → received at (ms): webhook dedupe.
    WEBHOOK_MESSAGES: &str => i64 = "payment_webhook_message";
}
