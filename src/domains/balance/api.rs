//! REST routes of the balance domain.

use crate::api::body::JsonBody;
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
use crate::core::cursor::{Cursor, page_limit};
use crate::core::error::AppResult;
use crate::core::idempotency::Idempotency;

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
    Ok((
        Cursor::seq(cursor)?,
        page_limit(limit, PAGE_DEFAULT, PAGE_MAX)?,
    ))
}

async fn transactions(
    ctx: &Ctx,
    account: Account,
    cursor: Option<String>,
    limit: Option<u32>,
) -> AppResult<TransactionPage> {
    let (before, limit) = page_args(cursor, limit)?;
    let (items, next) = super::history_page(ctx, &account, before, limit).await?;
    let next_cursor = next.map(|n| Cursor::Seq(n).encode());
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
        let b = super::wallet_of(&ctx, &who.user_id).await?;
        Ok(Json(BalanceView {
            coins: b.wallet,
            held: b.held,
            in_debt: b.in_debt,
        }))
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
        let e = super::earnings_of(&ctx, &who.user_id).await?;
        Ok(Json(EarningsView {
            coins: e.earnings,
            pending_payouts: e.payout_hold,
        }))
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
        let b = super::balances_of(&ctx, &user_id.0).await?;
        Ok(Json(UserBalances {
            wallet: b.wallet,
            held: b.held,
            earnings: b.earnings,
            payout_hold: b.payout_hold,
            in_debt: b.in_debt,
        }))
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
        body: JsonBody<AdjustRequest>,
    ) -> AppResult<Json<AdjustResult>> {
        let who = auth.require(&ctx, Access::Admin).await?;
        let b = body.0;
        let reason = super::Reference::parse("reason", &b.reason)?;
        let idem = Idempotency::new(
            idempotency_key.0.as_deref(),
            &format!("{}:adjust", who.user_id),
            &json!({"userId": user_id.0, "request": b}),
        )?;
        let earnings = b.account == AdjustAccount::Earnings;
        let done = super::adjust(
            &ctx,
            &who.user_id,
            &user_id,
            earnings,
            b.amount,
            reason,
            idem,
        )
        .await?;
        Ok(Json(AdjustResult {
            transfer_id: done.transfer_id,
            balance: done.balance,
        }))
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
        let (items, next) = super::history_page(&ctx, &account, before, limit).await?;
        let next_cursor = next.map(|n| Cursor::Seq(n).encode());
        Ok(Json(JournalPage {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }
}
