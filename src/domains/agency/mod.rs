//! Agencies: admins create agencies with a commission percentage and assign streamers to them.
//! Every earning of an agency's streamer (call earnings, gifts) is split in the same ledger
//! operation: the streamer's part to their earnings, the agency's part (rounded down, so
//! rounding favours the streamer) to `agency:<id>`, as an `agency_commission` transfer right
//! after the earning whose reference names the agency, the percent and the earning, so
//! `ledger verify` checks every split from the journal alone. A change of commission applies to
//! earnings from then on. An agency's manager (an account an admin names) sees the agency and
//! requests its payouts like a streamer (`mission_control::payouts`).

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Reads, get, put};
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::balance::{
    self,
    model::{Account, AccountKind, Leg, TransferKind, commission_reference, commission_split},
};
use crate::domains::{profile, user};

use events::AgencyEvent;
use tables::*;

/// Highest commission: the streamer always keeps a part of every earning.
pub const COMMISSION_PERCENT_MAX: u8 = 90;
/// Longest agency name, in characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest payout details text, in characters.
pub const PAYOUT_DETAILS_CHARS_MAX: usize = 1_000;
/// Streamers one agency may have.
pub const STREAMERS_MAX: usize = 10_000;

type Name = crate::core::text::Text<1, NAME_CHARS_MAX>;
type PayoutDetails = crate::core::text::Text<1, PAYOUT_DETAILS_CHARS_MAX>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Agency {
    pub id: String,
    pub name: String,
    pub commission_percent: u8,
    /// The account that manages the agency: sees it and requests its payouts.
    pub manager_id: Option<String>,
    /// Where the agency's payouts are sent (bank, PayPal, …), as the admin wrote it.
    pub payout_details: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What an admin sets on an agency.
pub struct AgencyDraft {
    pub name: String,
    pub commission_percent: u8,
    pub manager_id: Option<String>,
    pub payout_details: Option<String>,
}

fn check(d: AgencyDraft) -> AppResult<AgencyDraft> {
    if d.commission_percent > COMMISSION_PERCENT_MAX {
        return Err(AppError::validation(format!(
            "commissionPercent must be 0–{COMMISSION_PERCENT_MAX}"
        )));
    }
    Ok(AgencyDraft {
        name: Name::parse("name", &d.name)?.into_string(),
        payout_details: d
            .payout_details
            .map(|p| PayoutDetails::parse("payoutDetails", &p).map(PayoutDetails::into_string))
            .transpose()?,
        ..d
    })
}

/// Creates (`id` none) or replaces an agency; audited.
pub async fn save(
    ctx: &Ctx,
    actor: &str,
    id: Option<String>,
    draft: AgencyDraft,
) -> AppResult<Agency> {
    let d = check(draft)?;
    let actor = actor.to_owned();
    let new = id.is_none();
    let id = id.unwrap_or_else(new_id);
    ctx.store
        .write(move |tx| {
            let before: Option<Agency> = get(&tx.read(AGENCIES)?, id.as_str())?;
            if before.is_none() && !new {
                return Err(AppError::not_found("no such agency"));
            }
            if let Some(m) = &d.manager_id {
                let ok = user::find_user_tx(tx, m)?
                    .is_some_and(|u| u.erased_at_ms.is_none() && u.role != Role::Streamer);
                if !ok {
                    return Err(AppError::validation(
                        "managerId must be an account that is not a streamer",
                    ));
                }
                if let Some(other) = tx.read(AGENCY_BY_MANAGER)?.get(m.as_str())?
                    && other.value() != id
                {
                    return Err(AppError::conflict("that account manages another agency"));
                }
            }
            let now = tx.now_ms();
            let agency = Agency {
                id: id.clone(),
                name: d.name.clone(),
                commission_percent: d.commission_percent,
                manager_id: d.manager_id.clone(),
                payout_details: d.payout_details.clone(),
                created_at_ms: before.as_ref().map_or(now, |b| b.created_at_ms),
                updated_at_ms: now,
            };
            if let Some(old) = before.as_ref().and_then(|b| b.manager_id.as_deref()) {
                tx.table(AGENCY_BY_MANAGER)?.remove(old)?;
            }
            if let Some(m) = &agency.manager_id {
                tx.table(AGENCY_BY_MANAGER)?
                    .insert(m.as_str(), agency.id.as_str())?;
            }
            put(&mut tx.table(AGENCIES)?, agency.id.as_str(), &agency)?;
            tx.emit(NewEvent::about(
                &agency.id,
                AgencyEvent::Saved {
                    agency_id: agency.id.clone(),
                    name: agency.name.clone(),
                    commission_percent: agency.commission_percent,
                    manager_id: agency.manager_id.clone().map(Into::into),
                },
            ))?;
            audit_tx(
                tx,
                &actor,
                if new {
                    "agency.create"
                } else {
                    "agency.update"
                },
                &agency.id,
                json!({
                    "name": agency.name,
                    "commissionPercent": agency.commission_percent,
                    "managerId": agency.manager_id,
                    "before": before.map(|b| b.commission_percent),
                }),
            )?;
            Ok(agency)
        })
        .await
}

pub fn find(r: &impl Reads, id: &str) -> AppResult<Option<Agency>> {
    get(&r.read_table(AGENCIES)?, id)
}

/// Every agency, by id (at most `limit`).
pub async fn list(ctx: &Ctx, limit: usize) -> AppResult<Vec<Agency>> {
    ctx.store
        .read(move |rtx| {
            rtx.read_table(AGENCIES)?
                .iter()?
                .take(limit)
                .map(|row| {
                    let (_, v) = row?;
                    crate::core::store::dec(v.value())
                })
                .collect()
        })
        .await
}

/// One agency and a page of its streamers (after `after`, at most `limit`).
pub async fn show(
    ctx: &Ctx,
    id: &str,
    after: Option<String>,
    limit: usize,
) -> AppResult<(Agency, Vec<Member>)> {
    let id = id.to_owned();
    ctx.store
        .read(move |rtx| {
            let agency = find(rtx, &id)?.ok_or_else(|| AppError::not_found("no such agency"))?;
            let streamers = streamers(rtx, &id, after.as_deref(), limit)?;
            Ok((agency, streamers))
        })
        .await
}

/// The id of the agency `manager_id` manages; `404` when none.
pub async fn managed_by_id(ctx: &Ctx, manager_id: &str) -> AppResult<String> {
    let id = manager_id.to_owned();
    ctx.store
        .read(move |rtx| managed_agency(rtx, &id))
        .await?
        .ok_or_else(|| AppError::not_found("you manage no agency"))
}

/// The id of the agency `manager_id` manages, if any.
pub fn managed_agency(r: &impl Reads, manager_id: &str) -> AppResult<Option<String>> {
    Ok(r.read_table(AGENCY_BY_MANAGER)?
        .get(manager_id)?
        .map(|v| v.value().to_owned()))
}

/// A streamer of an agency: who, their display name, since when.
#[derive(Debug, Clone)]
pub struct Member {
    pub streamer_id: String,
    pub display_name: Option<String>,
    pub joined_at_ms: i64,
}

/// An agency's streamers by id, after `after`, at most `limit`.
pub fn streamers(
    r: &impl Reads,
    agency_id: &str,
    after: Option<&str>,
    limit: usize,
) -> AppResult<Vec<Member>> {
    let from = after.unwrap_or("");
    let mut out = Vec::new();
    for row in r
        .read_table(AGENCY_STREAMERS)?
        .range((agency_id, from)..(agency_id, "~"))?
    {
        let (k, v) = row?;
        let id = k.value().1;
        if id == from {
            continue;
        }
        if out.len() >= limit {
            break;
        }
        out.push(Member {
            streamer_id: id.to_owned(),
            display_name: profile::profile_of(r, id)?.display_name,
            joined_at_ms: v.value(),
        });
    }
    Ok(out)
}

fn streamer_count(r: &impl Reads, agency_id: &str) -> AppResult<usize> {
    Ok(r.read_table(AGENCY_STREAMERS)?
        .range((agency_id, "")..(agency_id, "~"))?
        .count())
}

/// The agency a streamer belongs to, if any.
pub fn agency_of(r: &impl Reads, streamer_id: &str) -> AppResult<Option<String>> {
    Ok(r.read_table(AGENCY_OF_STREAMER)?
        .get(streamer_id)?
        .map(|v| v.value().to_owned()))
}

/// Puts a streamer in an agency (`Some`) or takes them out (`None`); audited. `conflict` when
/// they are in another agency (take them out first).
pub async fn assign(
    ctx: &Ctx,
    actor: &str,
    agency_id: &str,
    streamer_id: &str,
    join: bool,
) -> AppResult<()> {
    let (actor, agency_id, streamer_id) = (
        actor.to_owned(),
        agency_id.to_owned(),
        streamer_id.to_owned(),
    );
    ctx.store
        .write(move |tx| {
            if find(tx, &agency_id)?.is_none() {
                return Err(AppError::not_found("no such agency"));
            }
            let current = agency_of(tx, &streamer_id)?;
            if join {
                let is_streamer = user::find_user_tx(tx, &streamer_id)?
                    .is_some_and(|u| u.role == Role::Streamer && u.erased_at_ms.is_none());
                if !is_streamer {
                    return Err(AppError::not_found("no such streamer"));
                }
                match current.as_deref() {
                    Some(a) if a == agency_id => return Ok(()),
                    Some(_) => {
                        return Err(AppError::conflict(
                            "the streamer is in another agency: take them out first",
                        ));
                    }
                    None => {}
                }
                if streamer_count(tx, &agency_id)? >= STREAMERS_MAX {
                    return Err(AppError::conflict(format!(
                        "an agency has at most {STREAMERS_MAX} streamers"
                    )));
                }
                tx.table(AGENCY_OF_STREAMER)?
                    .insert(streamer_id.as_str(), agency_id.as_str())?;
                tx.table(AGENCY_STREAMERS)?
                    .insert((agency_id.as_str(), streamer_id.as_str()), tx.now_ms())?;
            } else {
                if current.as_deref() != Some(agency_id.as_str()) {
                    return Err(AppError::not_found("the streamer is not in this agency"));
                }
                tx.table(AGENCY_OF_STREAMER)?.remove(streamer_id.as_str())?;
                tx.table(AGENCY_STREAMERS)?
                    .remove((agency_id.as_str(), streamer_id.as_str()))?;
            }
            tx.emit(
                NewEvent::about(
                    &streamer_id,
                    AgencyEvent::StreamerAssigned {
                        streamer_id: streamer_id.clone().into(),
                        agency_id: join.then(|| agency_id.clone()),
                    },
                )
                .to(Audience::Users(vec![streamer_id.clone().into()])),
            )?;
            audit_tx(
                tx,
                &actor,
                if join {
                    "agency.assign"
                } else {
                    "agency.unassign"
                },
                &streamer_id,
                json!({"agencyId": agency_id}),
            )
        })
        .await
}

/// The legs that pay `leg` (an earning into a streamer's earnings): the leg itself, or — for
/// an agency's streamer — the streamer's part and then the agency's commission.
pub fn split_earning(r: &impl Reads, leg: Leg) -> AppResult<Vec<Leg>> {
    if leg.credit.kind() != AccountKind::Earnings {
        return Ok(vec![leg]);
    }
    let Some(streamer) = leg.credit.owner() else {
        return Ok(vec![leg]);
    };
    let Some(agency) = agency_of(r, streamer)?.and_then(|id| find(r, &id).transpose()) else {
        return Ok(vec![leg]);
    };
    let agency = agency?;
    let (mine, theirs) = commission_split(leg.amount, agency.commission_percent);
    if theirs == 0 {
        return Ok(vec![leg]);
    }
    let commission = Leg {
        debit: leg.debit.clone(),
        credit: Account::agency(&agency.id),
        amount: theirs,
        kind: TransferKind::AgencyCommission,
        reference: commission_reference(&agency.id, agency.commission_percent, &leg.reference),
    };
    Ok(vec![
        Leg {
            amount: mine,
            ..leg
        },
        commission,
    ])
}

/// The agency's balance (commissions not yet asked for) and what its payout requests hold.
pub async fn balances(ctx: &Ctx, agency_id: &str) -> AppResult<(i64, i64)> {
    let id = agency_id.to_owned();
    ctx.store
        .read(move |rtx| {
            Ok((
                balance::balance(rtx, &Account::agency(&id))?,
                balance::balance(rtx, &Account::payout_hold(&id))?,
            ))
        })
        .await
}
