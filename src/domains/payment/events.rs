//! The payment domain's events.

use crate::core::ids::UserId;
use crate::core::platform::Platform;

crate::domain_events! {
    pub enum PaymentEvent in "payment" {
        /// A store purchase was credited to the buyer's wallet.
        PurchaseCompleted = "purchase_completed" on "account" to "the buyer" {
            intent_id: String,
            user_id: UserId,
            product_id: String,
            platform: Platform,
            coins: i64,
            bonus_coins: i64,
            quantity: u32,
            /// What the store said of the purchase.
            store: serde_json::Value,
        }
        /// The store refunded or revoked a purchase: its coins were taken back.
        PurchaseRefunded = "purchase_refunded" on "account" to "the buyer" {
            intent_id: String,
            user_id: UserId,
            product_id: String,
            coins: i64,
            reason: String,
        }
        PurchaseRefundReversed = "purchase_refund_reversed" {
            intent_id: String,
            user_id: UserId,
            coins: i64,
        }
    }
}
