//! The billing domain: call tariffs, fully dynamic. A tariff applies to a call kind and a pair
//! of roles (caller, callee), names the paying side, and holds a payer and an earner schedule.
//! Tariffs are versioned: an edit makes a new version, and a call keeps the version it
//! connected with.
//!
//! Which tariff applies (most specific first): one scoped to the streamer in the call, then one
//! scoped to a cohort tag the streamer carries (the oldest such tariff if several match), then
//! the default for the kind and roles. No tariff for the pair of roles means such calls are not
//! allowed.

pub mod api;
pub mod events;
pub mod model;
mod tables;
pub use tables::TABLES;

use redb::{ReadTransaction, ReadableTable};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};
use crate::core::events::NewEvent;
use crate::core::ids::new_id;
use crate::core::store::{Reads, Tx, dec, get, put};
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::{panel, user};
use model::*;
use tables::*;

/// Who installs the default tariffs.
const SYSTEM_ACTOR: &str = "system";
/// Tariffs kept at most.
pub const TARIFFS_MAX: usize = 1000;
pub const NAME_CHARS_MAX: usize = 80;

/// A tariff's editable fields.
#[derive(Debug, Clone)]
pub struct TariffInput {
    pub name: String,
    pub kind: CallKind,
    pub caller_role: Role,
    pub callee_role: Role,
    pub payer: Side,
    pub scope: Scope,
    pub payer_schedule: Schedule,
    pub earner_schedule: Schedule,
    pub active: bool,
}

impl TariffInput {
    fn validate(&self) -> AppResult<()> {
        crate::core::text::Text::<1, NAME_CHARS_MAX>::parse("name", &self.name)?;
        if matches!(&self.scope, Scope::Streamer(v) | Scope::Cohort(v) if v.is_empty() || v.len() > 128)
        {
            return Err(AppError::validation(
                "a scoped tariff needs a streamer id or cohort tag (1–128 characters)",
            ));
        }
        self.payer_schedule.validate("payerSchedule")?;
        self.earner_schedule.validate("earnerSchedule")
    }
}

fn store_version(tx: &Tx, t: &Tariff) -> AppResult<()> {
    put(&mut tx.table(TARIFFS)?, t.id.as_str(), t)?;
    put(
        &mut tx.table(TARIFF_VERSIONS)?,
        (t.id.as_str(), t.version),
        t,
    )?;
    tx.emit(NewEvent::about(
        &t.updated_by,
        events::TariffEvent::Changed {
            tariff_id: t.id.clone(),
            version: t.version,
            kind: t.kind,
            active: t.active,
        },
    ))?;
    Ok(())
}

/// Creates a tariff (`id` = None) or a new version of one. Audited.
pub async fn save(
    ctx: &Ctx,
    actor: &str,
    id: Option<String>,
    input: TariffInput,
) -> AppResult<Tariff> {
    input.validate()?;
    let actor = actor.to_owned();
    let fresh = new_id();
    ctx.store
        .write(move |tx| {
            let (id, version) = match &id {
                Some(id) => {
                    let current: Tariff = get(&tx.read(TARIFFS)?, id.as_str())?
                        .ok_or_else(|| AppError::not_found(format!("no tariff {id}")))?;
                    (id.clone(), current.version + 1)
                }
                None => {
                    if redb::ReadableTableMetadata::len(&tx.read(TARIFFS)?)? as usize >= TARIFFS_MAX
                    {
                        return Err(AppError::validation(format!(
                            "at most {TARIFFS_MAX} tariffs"
                        )));
                    }
                    (fresh.clone(), 1)
                }
            };
            let t = Tariff {
                id: id.clone(),
                version,
                name: input.name.trim().to_owned(),
                kind: input.kind,
                caller_role: input.caller_role,
                callee_role: input.callee_role,
                payer: input.payer,
                scope: input.scope.clone(),
                payer_schedule: input.payer_schedule.clone(),
                earner_schedule: input.earner_schedule.clone(),
                active: input.active,
                updated_at_ms: tx.now_ms(),
                updated_by: actor.clone(),
            };
            store_version(tx, &t)?;
            // The defaults installed at first start are not an admin's action.
            if actor != SYSTEM_ACTOR {
                audit_tx(
                    tx,
                    &actor,
                    "tariff.save",
                    &id,
                    json!({"version": version, "name": t.name}),
                )?;
            }
            Ok(t)
        })
        .await
}

pub fn list(rtx: &ReadTransaction) -> AppResult<Vec<Tariff>> {
    let mut out = Vec::new();
    for row in rtx.open_table(TARIFFS)?.iter()? {
        out.push(dec(row?.1.value())?);
    }
    Ok(out)
}

pub fn version(rtx: &ReadTransaction, id: &str, version: u32) -> AppResult<Option<Tariff>> {
    get(&rtx.open_table(TARIFF_VERSIONS)?, (id, version))
}

/// The tariff for a call of `kind` from a `caller_role` to a `callee_role`, with the streamer
/// in the call (if any): that streamer's own override, else one for a cohort tag they carry,
/// else the default. In a read or inside a write.
pub fn resolve(
    r: &impl Reads,
    kind: CallKind,
    caller_role: Role,
    callee_role: Role,
    streamer_id: Option<&str>,
) -> AppResult<Option<Tariff>> {
    let mut all = Vec::new();
    for row in r.read_table(TARIFFS)?.iter()? {
        all.push(dec(row?.1.value())?);
    }
    // The streamer's tags matter only when some tariff is scoped to a cohort.
    let tags = match streamer_id {
        Some(s)
            if all
                .iter()
                .any(|t: &Tariff| matches!(t.scope, Scope::Cohort(_))) =>
        {
            panel::tags(r, s)?
        }
        _ => Vec::new(),
    };
    Ok(pick(
        all,
        kind,
        caller_role,
        callee_role,
        streamer_id,
        &tags,
    ))
}

/// Every tariff, current versions, in its own read.
pub async fn tariffs(ctx: &Ctx) -> AppResult<Vec<Tariff>> {
    ctx.store.read(list).await
}

/// One version of a tariff, in its own read.
pub async fn tariff_version(ctx: &Ctx, id: &str, version_no: u32) -> AppResult<Option<Tariff>> {
    let id = id.to_owned();
    ctx.store
        .read(move |rtx| version(rtx, &id, version_no))
        .await
}

/// The tariff that applies now to a call of `kind` from the caller to `callee_id`: the callee
/// must exist and not be banned (`not_found`), and some tariff must allow the call
/// (`forbidden`).
pub async fn tariff_for_call(
    ctx: &Ctx,
    kind: CallKind,
    caller_id: &str,
    caller_role: Role,
    callee_id: &str,
) -> AppResult<Tariff> {
    let (caller_id, callee) = (caller_id.to_owned(), callee_id.to_owned());
    let now = ctx.store.now_ms();
    ctx.store
        .read(move |rtx| {
            let callee_user = user::find_user(rtx, &callee)?
                .filter(|u| u.is_reachable(now))
                .ok_or_else(|| AppError::not_found("no such user"))?;
            let streamer = [
                (caller_role, caller_id.as_str()),
                (callee_user.role, callee.as_str()),
            ]
            .into_iter()
            .find(|(r, _)| *r == Role::Streamer)
            .map(|(_, id)| id.to_owned());
            resolve(
                rtx,
                kind,
                caller_role,
                callee_user.role,
                streamer.as_deref(),
            )
        })
        .await?
        .ok_or_else(|| AppError::forbidden("no tariff allows this call"))
}

fn pick(
    all: Vec<Tariff>,
    kind: CallKind,
    caller_role: Role,
    callee_role: Role,
    streamer_id: Option<&str>,
    tags: &[String],
) -> Option<Tariff> {
    let candidates: Vec<Tariff> = all
        .into_iter()
        .filter(|t| {
            t.active
                && t.kind == kind
                && t.caller_role == caller_role
                && t.callee_role == callee_role
        })
        .collect();
    let by_streamer = candidates
        .iter()
        .find(|t| matches!(&t.scope, Scope::Streamer(s) if Some(s.as_str()) == streamer_id));
    let by_cohort = || {
        let mut c: Vec<&Tariff> = candidates
            .iter()
            .filter(|t| matches!(&t.scope, Scope::Cohort(tag) if tags.contains(tag)))
            .collect();
        c.sort_by(|a, b| a.id.cmp(&b.id));
        c.first().copied()
    };
    let default = || candidates.iter().find(|t| t.scope == Scope::Default);
    by_streamer.or_else(by_cohort).or_else(default).cloned()
}

/// Installs the default tariffs on a store that has none: the seed's schedule for roulette
/// (the user calls, the user pays) and for direct calls in both directions (the user pays).
pub async fn seed_defaults(ctx: &Ctx) -> AppResult<usize> {
    let empty = ctx
        .store
        .read(|rtx| Ok(rtx.open_table(TARIFFS)?.first()?.is_none()))
        .await?;
    if !empty {
        return Ok(0);
    }
    let (payer, earner) = seed_schedules();
    let defaults = [
        (
            "Roulette: user → streamer",
            CallKind::Roulette,
            Role::User,
            Role::Streamer,
            Side::Caller,
        ),
        (
            "Direct: user → streamer",
            CallKind::Direct,
            Role::User,
            Role::Streamer,
            Side::Caller,
        ),
        (
            "Direct: streamer → user",
            CallKind::Direct,
            Role::Streamer,
            Role::User,
            Side::Callee,
        ),
    ];
    for (name, kind, caller_role, callee_role, payer_side) in defaults {
        let input = TariffInput {
            name: name.to_owned(),
            kind,
            caller_role,
            callee_role,
            payer: payer_side,
            scope: Scope::Default,
            payer_schedule: payer.clone(),
            earner_schedule: earner.clone(),
            active: true,
        };
        save(ctx, SYSTEM_ACTOR, None, input).await?;
    }
    Ok(defaults.len())
}
