//! Streamer payouts: a streamer asks for part of their earnings (held at once); an admin
//! approves (the coins go to the payouts account), rejects (the hold is released) or, once the
//! money has been sent outside, marks it paid. Every decision is audited.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::idempotency::Idempotency;
use crate::core::ids::new_id;
use crate::core::store::{Tx, get, put};
use crate::domains::balance::{self, model::*};
use crate::domains::{agency, profile};

use super::tables::{PAYOUTS, PAYOUTS_BY_STATE, PAYOUTS_BY_STREAMER};
use crate::domains::audit::record_tx as audit_tx;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum PayoutState {
    Requested,
    Approved,
    Rejected,
    Paid,
}

impl PayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Requested => "requested",
            PayoutState::Approved => "approved",
            PayoutState::Rejected => "rejected",
            PayoutState::Paid => "paid",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payout {
    pub id: String,
    /// Who asked: the streamer, or the agency's manager for an agency's payout.
    pub streamer_id: String,
    /// The agency whose commissions are paid out, for an agency's payout.
    #[serde(default)]
    pub agency_id: Option<String>,
    pub amount: i64,
    pub state: PayoutState,
    pub created_at_ms: i64,
    #[serde(default)]
    pub decided_at_ms: Option<i64>,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub paid_at_ms: Option<i64>,
}

/// Open payout requests one streamer (or agency) may have at once.
pub const OPEN_REQUESTS_MAX: usize = 5;

impl Payout {
    /// Whose coins are paid out: the streamer, or the agency.
    pub fn payee(&self) -> &str {
        self.agency_id.as_deref().unwrap_or(&self.streamer_id)
    }

    /// The account the coins come from.
    fn source(&self) -> Account {
        match &self.agency_id {
            Some(agency) => Account::agency(agency),
            None => Account::earnings(&self.streamer_id),
        }
    }
}

fn store(tx: &Tx, p: &Payout, previous: Option<PayoutState>) -> AppResult<()> {
    put(&mut tx.table(PAYOUTS)?, p.id.as_str(), p)?;
    let mut idx = tx.table(PAYOUTS_BY_STATE)?;
    if let Some(prev) = previous {
        idx.remove((prev.as_str(), p.id.as_str()))?;
    }
    idx.insert((p.state.as_str(), p.id.as_str()), ())?;
    drop(idx);
    tx.table(PAYOUTS_BY_STREAMER)?
        .insert((p.payee(), p.id.as_str()), ())?;
    tx.emit(
        NewEvent::about(
            &p.streamer_id,
            super::events::PayoutEvent::Status {
                payout_id: p.id.clone(),
                state: p.state,
                amount: p.amount,
                reason: p.reason.clone(),
            },
        )
        .to(Audience::Users(vec![p.streamer_id.clone().into()])),
    )?;
    Ok(())
}

/// A streamer asks for `amount` coins of their earnings.
pub async fn request(
    ctx: &Ctx,
    streamer_id: &str,
    amount: i64,
    idem: Idempotency,
) -> AppResult<Payout> {
    let require_kyc = ctx.config.payouts.require_kyc;
    request_for(
        ctx,
        streamer_id,
        None,
        amount,
        idem,
        move |tx, streamer_id| {
            super::kyc::require_verified(require_kyc, tx, streamer_id)?;
            if profile::payout_details_tx(tx, streamer_id)?.is_none() {
                return Err(AppError::validation(
                    "set payoutDetails in your profile first",
                ));
            }
            Ok(())
        },
    )
    .await
}

/// An agency's manager asks for `amount` coins of the agency's commissions. The agency is
/// vetted by the admins who created it, so no KYC case is asked for; its payout details are
/// the ones an admin set.
pub async fn request_for_agency(
    ctx: &Ctx,
    manager_id: &str,
    agency_id: &str,
    amount: i64,
    idem: Idempotency,
) -> AppResult<Payout> {
    let a = agency_id.to_owned();
    request_for(
        ctx,
        manager_id,
        Some(a.clone()),
        amount,
        idem,
        move |tx, manager| {
            // Still this agency's manager, in the request's own write.
            if agency::managed_agency(tx, manager)?.as_deref() != Some(a.as_str()) {
                return Err(AppError::not_found("you manage no agency"));
            }
            let agency =
                agency::find(tx, &a)?.ok_or_else(|| AppError::not_found("no such agency"))?;
            if agency.payout_details.is_none() {
                return Err(AppError::validation(
                    "the agency has no payout details yet: ask an admin to set them",
                ));
            }
            Ok(())
        },
    )
    .await
}

/// A payout request of `requester` (for `agency_id` when set), once `allowed` passes inside
/// the request's write: the coins are held at once.
async fn request_for(
    ctx: &Ctx,
    requester: &str,
    agency_id: Option<String>,
    amount: i64,
    idem: Idempotency,
    allowed: impl Fn(&Tx, &str) -> AppResult<()> + Send + 'static,
) -> AppResult<Payout> {
    let minimum = ctx.config.payouts.minimum_coins;
    if amount < minimum {
        return Err(AppError::validation(format!(
            "payouts start at {minimum} coins"
        )));
    }
    let requester = requester.to_owned();
    let id = new_id();
    ctx.store
        .write(move |tx| {
            idem.run(tx, || {
                allowed(tx, &requester)?;
                let p = Payout {
                    id: id.clone(),
                    streamer_id: requester.clone(),
                    agency_id: agency_id.clone(),
                    amount,
                    state: PayoutState::Requested,
                    created_at_ms: tx.now_ms(),
                    decided_at_ms: None,
                    decided_by: None,
                    reason: None,
                    paid_at_ms: None,
                };
                let open = streamer_payouts(
                    &tx.read(PAYOUTS_BY_STREAMER)?,
                    &tx.read(PAYOUTS)?,
                    p.payee(),
                )?
                .into_iter()
                .filter(|p| p.state == PayoutState::Requested)
                .count();
                if open >= OPEN_REQUESTS_MAX {
                    return Err(AppError::conflict(format!(
                        "at most {OPEN_REQUESTS_MAX} open payout requests"
                    )));
                }
                balance::post(
                    tx,
                    &[Leg {
                        debit: p.source(),
                        credit: Account::payout_hold(p.payee()),
                        amount,
                        kind: TransferKind::PayoutRequest,
                        reference: format!("payout:{}", p.id),
                    }],
                    Some(&idem.key),
                )?;
                store(tx, &p, None)?;
                Ok(p)
            })
        })
        .await
}

/// What an admin decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    MarkPaid,
}

pub async fn decide(
    ctx: &Ctx,
    actor: &str,
    payout_id: &str,
    decision: Decision,
    reason: Option<String>,
) -> AppResult<Payout> {
    let (actor, payout_id) = (actor.to_owned(), payout_id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut p: Payout = get(&tx.read(PAYOUTS)?, payout_id.as_str())?
                .ok_or_else(|| AppError::not_found(format!("no payout {payout_id}")))?;
            // Nobody decides on their own money: not the requester, not the agency's manager.
            if p.streamer_id == actor
                || p.agency_id.is_some()
                    && agency::managed_agency(tx, &actor)?.as_deref() == p.agency_id.as_deref()
            {
                return Err(AppError::forbidden(
                    "another admin decides on a payout of yours",
                ));
            }
            let previous = p.state;
            let next = match (decision, p.state) {
                (Decision::Approve, PayoutState::Requested) => PayoutState::Approved,
                (Decision::Reject, PayoutState::Requested) => PayoutState::Rejected,
                (Decision::MarkPaid, PayoutState::Approved) => PayoutState::Paid,
                (_, state) => {
                    return Err(AppError::new(
                        Code::Conflict,
                        format!("a {} payout cannot be {decision:?}d", state.as_str()),
                    ));
                }
            };
            let reference = format!("payout:{}", p.id);
            let held = Account::payout_hold(p.payee());
            match next {
                PayoutState::Approved => balance::post(
                    tx,
                    &[Leg {
                        debit: held,
                        credit: Account::system(SystemAccount::Payouts),
                        amount: p.amount,
                        kind: TransferKind::Payout,
                        reference,
                    }],
                    None,
                )
                .map(|_| ())?,
                PayoutState::Rejected => balance::post(
                    tx,
                    &[Leg {
                        debit: held,
                        credit: p.source(),
                        amount: p.amount,
                        kind: TransferKind::PayoutReject,
                        reference,
                    }],
                    None,
                )
                .map(|_| ())?,
                _ => {}
            }
            let now = tx.now_ms();
            p.state = next;
            if next == PayoutState::Paid {
                p.paid_at_ms = Some(now);
            } else {
                p.decided_at_ms = Some(now);
                p.decided_by = Some(actor.clone());
                p.reason = reason.clone();
            }
            store(tx, &p, Some(previous))?;
            audit_tx(
                tx,
                &actor,
                &format!("payout.{}", next.as_str()),
                &p.id,
                json!({"streamerId": p.streamer_id, "agencyId": p.agency_id, "amount": p.amount, "reason": reason}),
            )?;
            Ok(p)
        })
        .await
}

pub fn by_state(rtx: &ReadTransaction, state: PayoutState, limit: usize) -> AppResult<Vec<Payout>> {
    super::in_state(rtx, PAYOUTS_BY_STATE, PAYOUTS, state.as_str(), None, limit)
}

pub fn of_streamer(rtx: &ReadTransaction, streamer_id: &str) -> AppResult<Vec<Payout>> {
    let mut out = streamer_payouts(
        &rtx.open_table(PAYOUTS_BY_STREAMER)?,
        &rtx.open_table(PAYOUTS)?,
        streamer_id,
    )?;
    out.reverse();
    Ok(out)
}

/// Payouts in one state, oldest first, at most `limit` ([`by_state`] in its own read).
pub async fn list_by_state(ctx: &Ctx, state: PayoutState, limit: usize) -> AppResult<Vec<Payout>> {
    ctx.store.read(move |rtx| by_state(rtx, state, limit)).await
}

/// A streamer's payouts, newest first ([`of_streamer`] in its own read).
pub async fn list_of_streamer(ctx: &Ctx, streamer_id: &str) -> AppResult<Vec<Payout>> {
    let uid = streamer_id.to_owned();
    ctx.store.read(move |rtx| of_streamer(rtx, &uid)).await
}

/// The payouts of the agency `manager_id` manages, newest first; `404` when they manage none.
pub async fn list_of_agency_managed_by(ctx: &Ctx, manager_id: &str) -> AppResult<Vec<Payout>> {
    let m = manager_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let agency = agency::managed_agency(rtx, &m)?
                .ok_or_else(|| AppError::not_found("you manage no agency"))?;
            of_streamer(rtx, &agency)
        })
        .await
}

/// A streamer's (or an agency's) payouts, oldest first (ids are time-ordered).
fn streamer_payouts(
    idx: &impl ReadableTable<(&'static str, &'static str), ()>,
    payouts: &impl ReadableTable<&'static str, &'static [u8]>,
    streamer_id: &str,
) -> AppResult<Vec<Payout>> {
    let mut out = Vec::new();
    for row in idx.range((streamer_id, "")..)? {
        let (k, _) = row?;
        let (s, id) = k.value();
        if s != streamer_id {
            break;
        }
        if let Some(p) = get::<&str, Payout>(payouts, id)? {
            out.push(p);
        }
    }
    Ok(out)
}
