//! The payment domain: coin packs (products), payment intents, and crediting store purchases
//! exactly once — App Store transactions verified from their signed JWS, Google Play purchases
//! verified with the Developer API — with refunds and revocations taking the coins back.
//!
//! A refund of coins already spent leaves the wallet below zero: the one exception to the
//! non-negative rule (the ledger allows it only for `refund` transfers and flags the wallet);
//! the next purchase lands on the negative balance and so settles the debt first.

pub mod api;
pub mod events;
pub mod stores;
mod tables;
pub use tables::TABLES;

use std::collections::BTreeMap;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::platform::Platform;
use crate::core::store::{Reads, Tx, dec, get, put};
use crate::core::text::Text;
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::balance::{self, model::*};
use events::PaymentEvent;
use tables::*;

pub const PRODUCTS_MAX: usize = 200;
pub const NAME_CHARS_MAX: usize = 60;
pub const STORE_ID_CHARS_MAX: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    /// platform → the store's product id.
    pub store_product_ids: BTreeMap<String, String>,
    pub coins: i64,
    pub bonus_coins: i64,
    /// Price in minor units of `currency` (cents), for display and analytics.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    pub active: bool,
    pub sort: i32,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum IntentState {
    Created,
    Verifying,
    Completed,
    Failed,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub user_id: String,
    pub product_id: String,
    pub platform: Platform,
    pub state: IntentState,
    pub coins: i64,
    pub bonus_coins: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The store's product id at the time the intent was made: a product edited or removed
    /// after the user paid must not make the payment unverifiable.
    #[serde(default)]
    pub store_product_id: String,
    #[serde(default)]
    pub store_key: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorePurchase {
    pub key: String,
    pub intent_id: String,
    pub user_id: String,
    pub product_id: String,
    pub coins: i64,
    pub bonus_coins: i64,
    pub credited_at_ms: i64,
    #[serde(default)]
    pub refunded_at_ms: Option<i64>,
}

/// A product's editable fields.
#[derive(Debug, Clone)]
pub struct ProductInput {
    pub name: String,
    pub store_product_ids: BTreeMap<String, String>,
    pub coins: i64,
    pub bonus_coins: i64,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub sort: i32,
}

impl ProductInput {
    pub fn validate(self) -> AppResult<ProductInput> {
        let name = Text::<1, NAME_CHARS_MAX>::parse("name", &self.name)?.into_string();
        if self.coins <= 0
            || self.coins > balance::AMOUNT_MAX
            || self.bonus_coins < 0
            || self.bonus_coins > balance::AMOUNT_MAX
        {
            return Err(AppError::validation(
                "coins must be positive and bonusCoins not negative",
            ));
        }
        if self.price_minor < 0 {
            return Err(AppError::validation("priceMinor must not be negative"));
        }
        let currency = self.currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(AppError::validation(
                "currency must be an ISO 4217 code like USD",
            ));
        }
        for (platform, id) in &self.store_product_ids {
            Platform::parse(platform)?;
            if id.is_empty()
                || id.len() > STORE_ID_CHARS_MAX
                || !id.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(AppError::validation(
                    "store product ids are 1–200 printable characters",
                ));
            }
        }
        Ok(ProductInput {
            name,
            currency,
            ..self
        })
    }
}

pub async fn products(
    ctx: &Ctx,
    platform: Option<Platform>,
    include_inactive: bool,
) -> AppResult<Vec<Product>> {
    ctx.store
        .read(move |rtx| {
            let mut out: Vec<Product> = Vec::new();
            for row in rtx.open_table(PRODUCTS)?.iter()? {
                let p: Product = dec(row?.1.value())?;
                let offered =
                    platform.is_none_or(|pl| p.store_product_ids.contains_key(pl.as_str()));
                if (include_inactive || p.active) && offered {
                    out.push(p);
                }
            }
            out.sort_by_key(|p| (p.sort, p.price_minor));
            Ok(out)
        })
        .await
}

pub async fn save_product(
    ctx: &Ctx,
    actor: &str,
    id: Option<String>,
    input: ProductInput,
) -> AppResult<Product> {
    let input = input.validate()?;
    let actor = actor.to_owned();
    let fresh = new_id();
    ctx.store
        .write(move |tx| {
            let id = match &id {
                Some(id) => {
                    get::<&str, Product>(&tx.read(PRODUCTS)?, id.as_str())?
                        .ok_or_else(|| AppError::not_found(format!("no product {id}")))?;
                    id.clone()
                }
                None => {
                    if redb::ReadableTableMetadata::len(&tx.read(PRODUCTS)?)? as usize >= PRODUCTS_MAX {
                        return Err(AppError::validation(format!("at most {PRODUCTS_MAX} products")));
                    }
                    fresh.clone()
                }
            };
            let p = Product {
                id: id.clone(),
                name: input.name.clone(),
                store_product_ids: input.store_product_ids.clone(),
                coins: input.coins,
                bonus_coins: input.bonus_coins,
                price_minor: input.price_minor,
                currency: input.currency.clone(),
                active: input.active,
                sort: input.sort,
                updated_at_ms: tx.now_ms(),
            };
            put(&mut tx.table(PRODUCTS)?, id.as_str(), &p)?;
            audit_tx(tx, &actor, "product.save", &id, json!({"name": p.name, "coins": p.coins, "bonusCoins": p.bonus_coins, "active": p.active}))?;
            Ok(p)
        })
        .await
}

pub async fn delete_product(ctx: &Ctx, actor: &str, id: String) -> AppResult<()> {
    let actor = actor.to_owned();
    ctx.store
        .write(move |tx| {
            get::<&str, Product>(&tx.read(PRODUCTS)?, id.as_str())?
                .ok_or_else(|| AppError::not_found(format!("no product {id}")))?;
            tx.table(PRODUCTS)?.remove(id.as_str())?;
            audit_tx(tx, &actor, "product.delete", &id, json!({}))
        })
        .await
}

pub async fn create_intent(
    ctx: &Ctx,
    user_id: &str,
    product_id: &str,
    platform: Platform,
) -> AppResult<Intent> {
    let (user_id, product_id) = (user_id.to_owned(), product_id.to_owned());
    let id = new_id();
    ctx.store
        .write(move |tx| {
            let p: Product = get(&tx.read(PRODUCTS)?, product_id.as_str())?
                .filter(|p: &Product| p.active)
                .ok_or_else(|| AppError::not_found(format!("no active product {product_id}")))?;
            let Some(store_product_id) = p.store_product_ids.get(platform.as_str()).cloned() else {
                return Err(AppError::validation(format!(
                    "{} is not sold on {}",
                    p.name,
                    platform.as_str()
                )));
            };
            let now = tx.now_ms();
            let intent = Intent {
                id: id.clone(),
                user_id: user_id.clone(),
                product_id: p.id,
                platform,
                state: IntentState::Created,
                coins: p.coins,
                bonus_coins: p.bonus_coins,
                created_at_ms: now,
                updated_at_ms: now,
                store_product_id: store_product_id.clone(),
                store_key: None,
                failure: None,
            };
            put(&mut tx.table(INTENTS)?, intent.id.as_str(), &intent)?;
            Ok(intent)
        })
        .await
}

/// The caller's intent; its `store_product_id` is what it must be paid with.
pub async fn intent_for(ctx: &Ctx, user_id: &str, intent_id: &str) -> AppResult<Intent> {
    let (user_id, intent_id) = (user_id.to_owned(), intent_id.to_owned());
    ctx.store
        .read(move |rtx| {
            get(&rtx.open_table(INTENTS)?, intent_id.as_str())?
                .filter(|i: &Intent| i.user_id == user_id)
                .ok_or_else(|| AppError::not_found("no such payment intent"))
        })
        .await
}

/// Moves an intent to `verifying` before a store is asked (so a crash mid-call is visible).
pub async fn mark_verifying(ctx: &Ctx, intent_id: &str) -> AppResult<()> {
    let intent_id = intent_id.to_owned();
    ctx.store
        .write(move |tx| {
            let mut i: Intent = get(&tx.read(INTENTS)?, intent_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such intent"))?;
            if matches!(i.state, IntentState::Created | IntentState::Failed) {
                i.state = IntentState::Verifying;
                i.updated_at_ms = tx.now_ms();
                put(&mut tx.table(INTENTS)?, i.id.as_str(), &i)?;
            }
            Ok(())
        })
        .await
}

pub async fn fail(ctx: &Ctx, intent_id: &str, reason: &str) -> AppResult<()> {
    let (intent_id, reason) = (intent_id.to_owned(), reason.to_owned());
    ctx.store
        .write(move |tx| {
            let mut i: Intent = get(&tx.read(INTENTS)?, intent_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such intent"))?;
            if matches!(
                i.state,
                IntentState::Created | IntentState::Verifying | IntentState::Failed
            ) {
                i.state = IntentState::Failed;
                i.failure = Some(reason.clone());
                i.updated_at_ms = tx.now_ms();
                put(&mut tx.table(INTENTS)?, i.id.as_str(), &i)?;
            }
            Ok(())
        })
        .await
}

/// Units of a coin pack one store purchase may carry (StoreKit and Play allow a quantity).
pub const QUANTITY_MAX: u32 = 10;

/// Credits a verified store purchase to the intent's user, once per store transaction.
/// `store_key` is `apple:<transactionId>` or `google:<orderId>`.
pub async fn complete(
    ctx: &Ctx,
    intent_id: &str,
    store_key: &str,
    quantity: u32,
    details: serde_json::Value,
) -> AppResult<Intent> {
    if !(1..=QUANTITY_MAX).contains(&quantity) {
        return Err(AppError::new(
            Code::InvalidReceipt,
            format!("a purchase of {quantity} packs is not accepted"),
        ));
    }
    let (intent_id, store_key) = (intent_id.to_owned(), store_key.to_owned());
    ctx.store
        .write(move |tx| {
            let mut intent: Intent = get(&tx.read(INTENTS)?, intent_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such intent"))?;
            let done = get::<&str, StorePurchase>(&tx.read(STORE_PURCHASES)?, store_key.as_str())?;
            if let Some(done) = done {
                // Already credited: the same request again is answered as before.
                if done.intent_id == intent.id {
                    return Ok(intent);
                }
                return Err(AppError::conflict(
                    "this store purchase was already credited to another payment",
                ));
            }
            if tx.read(REFUNDED_EARLY)?.get(store_key.as_str())?.is_some() {
                return Err(AppError::new(
                    Code::InvalidReceipt,
                    "the store refunded this purchase before it was credited",
                ));
            }
            if intent.state == IntentState::Completed || intent.state == IntentState::Refunded {
                return Err(AppError::conflict(
                    "this payment intent is already completed with another purchase",
                ));
            }
            credit(tx, &mut intent, &store_key, quantity, details.clone())?;
            Ok(intent)
        })
        .await
}

/// The legs that credit `coins` and `bonus` to a wallet.
fn credit_legs(user_id: &str, coins: i64, bonus: i64, reference: &str) -> Vec<Leg> {
    let wallet = Account::wallet(user_id);
    let mut legs = vec![Leg {
        debit: Account::system(SystemAccount::StorePurchases),
        credit: wallet.clone(),
        amount: coins,
        kind: TransferKind::Purchase,
        reference: reference.to_owned(),
    }];
    if bonus > 0 {
        legs.push(Leg {
            debit: Account::system(SystemAccount::Bonuses),
            credit: wallet,
            amount: bonus,
            kind: TransferKind::PurchaseBonus,
            reference: reference.to_owned(),
        });
    }
    legs
}

fn credit(
    tx: &Tx,
    intent: &mut Intent,
    store_key: &str,
    quantity: u32,
    details: serde_json::Value,
) -> AppResult<()> {
    let times = i64::from(quantity);
    let too_much = || {
        AppError::new(
            Code::InvalidReceipt,
            "the purchase is larger than a wallet can take",
        )
    };
    let coins = intent.coins.checked_mul(times).ok_or_else(too_much)?;
    let bonus = intent.bonus_coins.checked_mul(times).ok_or_else(too_much)?;
    let reference = format!("payment:{}", intent.id);
    balance::post(
        tx,
        &credit_legs(&intent.user_id, coins, bonus, &reference),
        Some(store_key),
    )?;
    let now = tx.now_ms();
    intent.state = IntentState::Completed;
    intent.store_key = Some(store_key.to_owned());
    intent.failure = None;
    intent.updated_at_ms = now;
    put(&mut tx.table(INTENTS)?, intent.id.as_str(), intent)?;
    let purchase = StorePurchase {
        key: store_key.to_owned(),
        intent_id: intent.id.clone(),
        user_id: intent.user_id.clone(),
        product_id: intent.product_id.clone(),
        coins,
        bonus_coins: bonus,
        credited_at_ms: now,
        refunded_at_ms: None,
    };
    put(&mut tx.table(STORE_PURCHASES)?, store_key, &purchase)?;
    tx.table(PURCHASES_BY_USER)?
        .insert((intent.user_id.as_str(), store_key), ())?;
    tx.emit(
        NewEvent::about(
            &intent.user_id,
            PaymentEvent::PurchaseCompleted {
                intent_id: intent.id.clone(),
                user_id: intent.user_id.clone().into(),
                product_id: intent.product_id.clone(),
                platform: intent.platform,
                coins,
                bonus_coins: bonus,
                quantity,
                store: details,
            },
        )
        .to(Audience::Users(vec![intent.user_id.clone().into()])),
    )?;
    Ok(())
}

/// Whether `user_id` ever bought coins in a store (refunded purchases included: they are
/// still a sign of a real person), for the weight of their reports.
pub fn has_purchased(r: &impl Reads, user_id: &str) -> AppResult<bool> {
    Ok(r.read_table(PURCHASES_BY_USER)?
        .range((user_id, "")..=(user_id, "\u{10ffff}"))?
        .next()
        .is_some())
}

/// Fills `PURCHASES_BY_USER` from the purchases stored before it existed; at start, once
/// (later purchases write it as they are credited).
pub fn index_purchases_by_user(tx: &Tx) -> AppResult<usize> {
    if tx.read(PURCHASES_BY_USER)?.iter()?.next().is_some() {
        return Ok(0);
    }
    let purchases: Vec<StorePurchase> = tx
        .read(STORE_PURCHASES)?
        .iter()?
        .map(|row| dec(row?.1.value()))
        .collect::<AppResult<_>>()?;
    let mut index = tx.table(PURCHASES_BY_USER)?;
    for p in &purchases {
        index.insert((p.user_id.as_str(), p.key.as_str()), ())?;
    }
    Ok(purchases.len())
}

/// Takes back the coins of a refunded or revoked store purchase; false when the purchase was
/// already refunded. A refund of a purchase not credited yet leaves a tombstone, so the purchase
/// can never be credited afterwards.
pub fn refund_tx(tx: &Tx, store_key: &str, reason: &str) -> AppResult<bool> {
    let Some(mut p) = get::<&str, StorePurchase>(&tx.read(STORE_PURCHASES)?, store_key)? else {
        tx.table(REFUNDED_EARLY)?.insert(store_key, tx.now_ms())?;
        return Ok(false);
    };
    if p.refunded_at_ms.is_some() {
        return Ok(false);
    }
    // The mirror of the credit, leg for leg, into the refunds account.
    let reference = format!("payment:{}:{reason}", p.intent_id);
    let legs: Vec<Leg> = credit_legs(&p.user_id, p.coins, p.bonus_coins, &reference)
        .into_iter()
        .map(|l| Leg {
            debit: l.credit,
            credit: Account::system(SystemAccount::Refunds),
            kind: TransferKind::Refund,
            ..l
        })
        .collect();
    balance::post(tx, &legs, Some(&format!("refund:{store_key}")))?;
    let now = tx.now_ms();
    p.refunded_at_ms = Some(now);
    put(&mut tx.table(STORE_PURCHASES)?, store_key, &p)?;
    set_intent_state(tx, &p.intent_id, IntentState::Refunded)?;
    tx.emit(
        NewEvent::about(
            &p.user_id,
            PaymentEvent::PurchaseRefunded {
                intent_id: p.intent_id.clone(),
                user_id: p.user_id.clone().into(),
                product_id: p.product_id.clone(),
                coins: p.coins + p.bonus_coins,
                reason: reason.to_string(),
            },
        )
        .to(Audience::Users(vec![p.user_id.clone().into()])),
    )?;
    Ok(true)
}

/// Gives back the coins of a refund the store reversed; false when there was nothing to undo.
pub fn reverse_refund_tx(tx: &Tx, store_key: &str) -> AppResult<bool> {
    let Some(mut p) = get::<&str, StorePurchase>(&tx.read(STORE_PURCHASES)?, store_key)? else {
        let early = tx.read(REFUNDED_EARLY)?.get(store_key)?.is_some();
        if early {
            tx.table(REFUNDED_EARLY)?.remove(store_key)?;
        }
        return Ok(early);
    };
    if p.refunded_at_ms.is_none() {
        return Ok(false);
    }
    let reference = format!("payment:{}:refund_reversed", p.intent_id);
    balance::post(
        tx,
        &credit_legs(&p.user_id, p.coins, p.bonus_coins, &reference),
        Some(&format!("refund_reversed:{store_key}")),
    )?;
    p.refunded_at_ms = None;
    put(&mut tx.table(STORE_PURCHASES)?, store_key, &p)?;
    set_intent_state(tx, &p.intent_id, IntentState::Completed)?;
    tx.emit(NewEvent::about(
        &p.user_id,
        PaymentEvent::PurchaseRefundReversed {
            intent_id: p.intent_id.clone(),
            user_id: p.user_id.clone().into(),
            coins: p.coins + p.bonus_coins,
        },
    ))?;
    Ok(true)
}

fn set_intent_state(tx: &Tx, intent_id: &str, state: IntentState) -> AppResult<()> {
    // Bound first: a table opened in an `if let` head stays open through its block.
    let intent = get::<&str, Intent>(&tx.read(INTENTS)?, intent_id)?;
    if let Some(mut i) = intent {
        i.state = state;
        i.updated_at_ms = tx.now_ms();
        put(&mut tx.table(INTENTS)?, i.id.as_str(), &i)?;
    }
    Ok(())
}

/// Records a webhook message id; false when it was seen before.
pub fn first_delivery(tx: &Tx, key: &str) -> AppResult<bool> {
    if tx.read(WEBHOOK_MESSAGES)?.get(key)?.is_some() {
        return Ok(false);
    }
    tx.table(WEBHOOK_MESSAGES)?.insert(key, tx.now_ms())?;
    Ok(true)
}

/// What a store notification asks for.
#[derive(Debug, Clone)]
pub enum StoreAction {
    /// Take the coins back (`reason`: refund, revoke, voided).
    Refund {
        store_key: String,
        reason: String,
    },
    /// The store reversed a refund: give the coins again.
    ReverseRefund {
        store_key: String,
    },
    Nothing,
}

/// Applies a store notification once: dedupes by message key.
pub async fn handle_notification(
    ctx: &Ctx,
    message_key: &str,
    action: StoreAction,
) -> AppResult<bool> {
    let message_key = message_key.to_owned();
    ctx.store
        .write(move |tx| {
            if !first_delivery(tx, &message_key)? {
                return Ok(false);
            }
            match &action {
                StoreAction::Refund { store_key, reason } => refund_tx(tx, store_key, reason),
                StoreAction::ReverseRefund { store_key } => reverse_refund_tx(tx, store_key),
                StoreAction::Nothing => Ok(false),
            }
        })
        .await
}

/// `invalid_receipt` with a reason, recorded on the intent.
pub async fn refuse(ctx: &Ctx, intent_id: &str, e: AppError) -> AppError {
    if e.code == Code::InvalidReceipt
        && let Err(f) = fail(ctx, intent_id, &e.detail).await
    {
        return f;
    }
    e
}
