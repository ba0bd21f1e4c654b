//! REST routes of the balance domain.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::{AppError, AppResult};
use crate::core::idempotency::Idempotency;
use crate::domains::{audit, user};

use redb::ReadableTable;

use super::model::{Account, Transfer, TransferKind};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct BalanceView {
    /// Spendable coins. Below zero only after a store refund of spent coins; the next purchase
    /// pays that debt first.
    pub coins: i64,
    /// Coins reserved by ongoing calls.
    pub held: i64,
    pub in_debt: bool,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct EarningsView {
    /// Earned coins available for a payout.
    pub coins: i64,
    /// Coins in payout requests not yet approved or rejected.
    pub pending_payouts: i64,
}

/// One movement of the caller's account.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TransactionView {
    pub id: String,
    pub kind: TransferKind,
    /// Signed: positive when coins came in.
    pub delta: i64,
    pub reference: String,
    pub created_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TransactionPage {
    pub items: Vec<TransactionView>,
    /// Pass as `cursor` for the next (older) page.
    pub next_cursor: Option<String>,
}

/// A journal entry, as admins see it.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct JournalEntryView {
    pub seq: u64,
    pub id: String,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: i64,
    pub kind: TransferKind,
    pub reference: String,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
    pub hash: String,
}

impl From<Transfer> for JournalEntryView {
    fn from(t: Transfer) -> Self {
        JournalEntryView {
            seq: t.seq,
            id: t.id,
            debit_account: t.debit.as_str().to_owned(),
            credit_account: t.credit.as_str().to_owned(),
            amount: t.amount,
            kind: t.kind,
            reference: t.reference,
            idempotency_key: t.idempotency_key,
            created_at: to_datetime(t.created_at_ms),
            hash: t.hash,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct JournalPage {
    pub items: Vec<JournalEntryView>,
    pub next_cursor: Option<String>,
}

#[derive(Enum, Clone, Copy, Serialize, Deserialize, PartialEq, Debug, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AdjustAccount {
    #[default]
    Wallet,
    Earnings,
}

#[derive(Object, Serialize)]
#[oai(rename_all = "camelCase")]
pub struct AdjustRequest {
    /// Coins: positive credits the account, negative debits it.
    pub amount: i64,
    /// Why; kept on the transfer and in the audit log (1–200 characters).
    pub reason: String,
    #[oai(default)]
    pub account: AdjustAccount,
}

#[derive(Object, Serialize, Deserialize)]
#[oai(rename_all = "camelCase")]
pub struct AdjustResult {
    pub transfer_id: String,
    /// The account's balance right after the adjustment.
    pub balance: i64,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct UserBalances {
    pub wallet: i64,
    pub held: i64,
    pub earnings: i64,
    pub payout_hold: i64,
    pub in_debt: bool,
}

/// Largest page of a history.
const PAGE_MAX: u32 = 200;
const PAGE_DEFAULT: u32 = 50;

pub fn page_args(cursor: Option<String>, limit: Option<u32>) -> AppResult<(Option<u64>, usize)> {
    let before = match cursor {
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| AppError::validation("cursor is not one we issued"))?,
        ),
        None => None,
    };
    Ok((
        before,
        crate::api::page_limit(limit, PAGE_DEFAULT, PAGE_MAX)?,
    ))
}

async fn transactions(
    ctx: &Ctx,
    account: Account,
    cursor: Option<String>,
    limit: Option<u32>,
) -> AppResult<TransactionPage> {
    let (before, limit) = page_args(cursor, limit)?;
    let a = account.clone();
    let (items, next) = ctx
        .store
        .read(move |rtx| super::history(rtx, &a, before, limit))
        .await?;
    let next_cursor = next.map(|n| n.to_string());
    Ok(TransactionPage {
        items: items
            .into_iter()
            .map(|t| TransactionView {
                delta: if t.credit == account {
                    t.amount
                } else {
                    -t.amount
                },
                id: t.id,
                kind: t.kind,
                reference: t.reference,
                created_at: to_datetime(t.created_at_ms),
            })
            .collect(),
        next_cursor,
    })
}

pub struct BalanceApi;

#[OpenApi(tag = "ApiTags::Balance")]
impl BalanceApi {
    /// The caller's coins. Any role.
    #[oai(path = "/v1/me/balance", method = "get", operation_id = "me_balance")]
    async fn balance(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<BalanceView>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let uid = who.user_id.clone();
        let view = ctx
            .store
            .read(move |rtx| {
                Ok(BalanceView {
                    coins: super::balance(rtx, &Account::wallet(&uid))?,
                    held: super::balance(rtx, &Account::held(&uid))?,
                    in_debt: super::in_debt(rtx, &uid)?,
                })
            })
            .await?;
        Ok(Json(view))
    }

    /// The caller's wallet movements, newest first. Any role.
    #[oai(
        path = "/v1/me/balance/transactions",
        method = "get",
        operation_id = "me_balance_transactions"
    )]
    async fn transactions(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<TransactionPage>> {
        let who = auth.require(&ctx, Access::Any).await?;
        Ok(Json(
            transactions(&ctx, Account::wallet(&who.user_id), cursor.0, limit.0).await?,
        ))
    }

    /// The caller's earnings. Streamers.
    #[oai(path = "/v1/me/earnings", method = "get", operation_id = "me_earnings")]
    async fn earnings(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<EarningsView>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        let uid = who.user_id.clone();
        let view = ctx
            .store
            .read(move |rtx| {
                Ok(EarningsView {
                    coins: super::balance(rtx, &Account::earnings(&uid))?,
                    pending_payouts: super::balance(rtx, &Account::payout_hold(&uid))?,
                })
            })
            .await?;
        Ok(Json(view))
    }

    /// The caller's earnings movements, newest first. Streamers.
    #[oai(
        path = "/v1/me/earnings/transactions",
        method = "get",
        operation_id = "me_earnings_transactions"
    )]
    async fn earnings_transactions(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<TransactionPage>> {
        let who = auth.require(&ctx, Access::Streamer).await?;
        Ok(Json(
            transactions(&ctx, Account::earnings(&who.user_id), cursor.0, limit.0).await?,
        ))
    }

    /// Every balance of a user. Moderators and admins.
    #[oai(
        path = "/v1/admin/balances/:user_id",
        method = "get",
        operation_id = "admin_balances"
    )]
    async fn user_balances(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
    ) -> AppResult<Json<UserBalances>> {
        auth.require(&ctx, Access::Staff).await?;
        let uid = user_id.0;
        let view = ctx
            .store
            .read(move |rtx| {
                user::find_user(rtx, &uid)?.ok_or_else(|| AppError::not_found("no such user"))?;
                Ok(UserBalances {
                    wallet: super::balance(rtx, &Account::wallet(&uid))?,
                    held: super::balance(rtx, &Account::held(&uid))?,
                    earnings: super::balance(rtx, &Account::earnings(&uid))?,
                    payout_hold: super::balance(rtx, &Account::payout_hold(&uid))?,
                    in_debt: super::in_debt(rtx, &uid)?,
                })
            })
            .await?;
        Ok(Json(view))
    }

    /// Credit (positive) or debit (negative) a user's wallet or earnings. Admin; needs an
    /// `Idempotency-Key`; audited.
    #[oai(
        path = "/v1/admin/balances/:user_id/adjust",
        method = "post",
        operation_id = "admin_balance_adjust"
    )]
    async fn adjust(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        user_id: Path<String>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<AdjustRequest>,
    ) -> AppResult<Json<AdjustResult>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let b = body.0;
        let reason = b.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > super::REFERENCE_CHARS_MAX {
            return Err(AppError::validation("reason must be 1–200 characters"));
        }
        let idem = Idempotency::new(
            idempotency_key.0.as_deref(),
            &format!("{}:adjust", who.user_id),
            &json!({"userId": user_id.0, "request": b}),
        )?;
        let leg = super::adjust_legs(
            &user_id,
            b.account == AdjustAccount::Earnings,
            b.amount,
            &reason,
        )?;
        let (actor, uid) = (who.user_id.clone(), user_id.0.clone());
        let result = ctx
            .store
            .write(move |tx| {
                idem.run(tx, || {
                    user::find_user_tx(tx, &uid)?.ok_or_else(|| AppError::not_found("no such user"))?;
                    let posted = super::post(tx, std::slice::from_ref(&leg), Some(&idem.key))?;
                    let account = if leg.credit.owner().is_some() { &leg.credit } else { &leg.debit };
                    let balance = tx.read(super::tables::BALANCES)?.get(account.as_str())?.map(|v| v.value()).unwrap_or(0);
                    audit::record_tx(
                        tx,
                        &actor,
                        "balance.adjust",
                        &uid,
                        json!({"amount": b.amount, "account": super::account_label(account), "reason": reason, "transferId": posted[0].id}),
                    )?;
                    Ok(AdjustResult { transfer_id: posted[0].id.clone(), balance })
                })
            })
            .await?;
        Ok(Json(result))
    }

    /// Any account's journal entries, newest first (`wallet:<userId>`, `earnings:<userId>`,
    /// `held:<userId>`, `payout_hold:<userId>`, `system:<name>`). Admin.
    #[oai(
        path = "/v1/admin/accounts/:account/transactions",
        method = "get",
        operation_id = "admin_account_transactions"
    )]
    async fn account_transactions(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        account: Path<String>,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AppResult<Json<JournalPage>> {
        auth.require(&ctx, Access::Admin).await?;
        let account = Account::parse(&account)?;
        let (before, limit) = page_args(cursor.0, limit.0)?;
        let (items, next) = ctx
            .store
            .read(move |rtx| super::history(rtx, &account, before, limit))
            .await?;
        let next_cursor = next.map(|n| n.to_string());
        Ok(Json(JournalPage {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }
}
