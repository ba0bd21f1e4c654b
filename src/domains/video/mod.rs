//! The video domain: direct calls, server-authoritative for state, duration and billing.
//!
//! ringing → connecting (accepted) → connected (both joined the media channel) → ended, or
//! ringing → declined | missed (ring timeout) | cancelled. One call per person at a time
//! (`call_active`), enforced inside the single writer, so two callers racing for one streamer
//! cannot both win.
//!
//! Billing follows the call's tariff version: at each payer checkpoint the payer's wallet pays
//! the platform's revenue account, at each earner checkpoint the platform's revenue pays the
//! earner. Every charge carries the idempotency key `call:<id>:<side>:<second>`, and each call
//! records how far it was billed, so a checkpoint is billed once even across crashes. Deadlines
//! (ring timeout, next checkpoint, maximum duration) are rows in `call_timer`; the engine
//! ([`tick`]) runs the due ones against the injected clock.

pub mod api;
pub mod events;
pub mod media;
pub mod model;
pub mod roulette;
mod tables;
pub use tables::TABLES;

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::{Principal, Role};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, Consumer, Event, NewEvent, apply_once};
use crate::core::ids::{CallId, new_id};
use crate::core::store::{Store, Tx, get, put};
use crate::domains::balance::{self, model::*};
use crate::domains::billing::{self, model::*};
use crate::domains::blocklist::{self, events::BlockEvent};
use crate::domains::user;
use events::{CallEvent, CallSummary};
use model::*;
use tables::*;

/// Checkpoints billed at most in one pass (a call left unbilled for very long is caught up in
/// several passes).
const CHECKPOINTS_PER_PASS: usize = 1000;
/// Due timers handled at most per engine pass.
const TIMERS_PER_TICK: usize = 4096;

fn call_of(tx: &Tx, id: &str) -> AppResult<Call> {
    get(&tx.read(CALLS)?, id)?.ok_or_else(|| AppError::not_found("no such call"))
}

fn save(tx: &Tx, call: &Call) -> AppResult<()> {
    put(&mut tx.table(CALLS)?, call.id.as_str(), call)
}

fn state_event(call: &Call) -> NewEvent {
    NewEvent::about(
        &call.caller_id,
        CallEvent::State {
            call_id: call.id.clone(),
            state: call.state,
            kind: call.kind,
            caller_id: call.caller_id.clone(),
            callee_id: call.callee_id.clone(),
            charged: call.charged,
            earned: call.earned,
            end_reason: call.end_reason,
        },
    )
    .to(Audience::Users(vec![
        call.caller_id.clone(),
        call.callee_id.clone(),
    ]))
}

fn set_timer(tx: &Tx, call: &mut Call, timer: Timer, due_ms: i64) -> AppResult<()> {
    let key = timer.key(&call.id);
    tx.table(CALL_TIMERS)?.insert((due_ms, key.as_str()), ())?;
    call.timers.push((due_ms, key));
    Ok(())
}

fn clear_timer(tx: &Tx, call: &mut Call, timer: Timer) -> AppResult<()> {
    let key = timer.key(&call.id);
    let mut t = tx.table(CALL_TIMERS)?;
    for (due, k) in call.timers.iter().filter(|(_, k)| *k == key) {
        t.remove((*due, k.as_str()))?;
    }
    call.timers.retain(|(_, k)| *k != key);
    Ok(())
}

/// Starts a direct call; the callee is rung.
pub async fn start(
    ctx: &Ctx,
    caller: &Principal,
    callee_id: &str,
    ring_ms: i64,
) -> AppResult<Call> {
    if caller.user_id == callee_id {
        return Err(AppError::validation("you cannot call yourself"));
    }
    if !ctx.presence.is_online(callee_id).await {
        return Err(AppError::new(
            Code::Unavailable,
            "the person you are calling is offline",
        ));
    }
    let (caller, callee_id) = (caller.clone(), callee_id.to_owned());
    let id = new_id();
    ctx.store
        .write(move |tx| {
            let callee = user::find_user_tx(tx, &callee_id)?
                .filter(|u| u.is_reachable(tx.now_ms()))
                .ok_or_else(|| AppError::not_found("no such user"))?;
            let streamer = [
                (caller.role, caller.user_id.as_str()),
                (callee.role, callee_id.as_str()),
            ]
            .into_iter()
            .find(|(r, _)| *r == Role::Streamer)
            .map(|(_, id)| id.to_owned());
            let tariff = billing::resolve(
                tx,
                CallKind::Direct,
                caller.role,
                callee.role,
                streamer.as_deref(),
            )?
            .ok_or_else(|| AppError::forbidden("no tariff allows a call between these roles"))?;
            blocklist::refuse_if_blocked_tx(tx, &caller.user_id, &callee_id)?;
            {
                let active = tx.read(ACTIVE_CALLS)?;
                if active.get(caller.user_id.as_str())?.is_some()
                    || active.get(callee_id.as_str())?.is_some()
                {
                    return Err(AppError::new(Code::Busy, "one of you is in another call"));
                }
            }
            check_first_charge(tx, &tariff, &caller.user_id, &callee_id)?;
            let now = tx.now_ms();
            let mut call = open_call(
                tx,
                &id,
                CallKind::Direct,
                &caller.user_id,
                &callee_id,
                &tariff,
                CallState::Ringing,
            )?;
            set_timer(tx, &mut call, Timer::Ring, now + ring_ms)?;
            save(tx, &call)?;
            tx.emit(
                NewEvent::about(
                    &call.callee_id,
                    CallEvent::Incoming {
                        call_id: call.id.clone(),
                        caller_id: call.caller_id.clone(),
                        kind: call.kind,
                    },
                )
                .to(Audience::Users(vec![call.callee_id.clone()])),
            )?;
            tx.emit(state_event(&call))?;
            Ok(call)
        })
        .await
}

/// Refuses a call whose payer cannot pay its first checkpoint.
fn check_first_charge(tx: &Tx, tariff: &Tariff, caller: &str, callee: &str) -> AppResult<()> {
    let payer = if tariff.payer == Side::Caller {
        caller
    } else {
        callee
    };
    if let Some((_, first)) = tariff.payer_schedule.next_after(None) {
        let wallet = balance::balance_tx(tx, &Account::wallet(payer))?;
        if wallet < first {
            return Err(AppError::new(
                Code::InsufficientBalance,
                format!("the call starts at {first} coins"),
            ));
        }
    }
    Ok(())
}

/// Writes a new call, marks both people busy and lists it in their histories.
fn open_call(
    tx: &Tx,
    id: &str,
    kind: CallKind,
    caller: &str,
    callee: &str,
    tariff: &Tariff,
    state: CallState,
) -> AppResult<Call> {
    let (payer_id, earner_id) = match tariff.payer {
        Side::Caller => (caller.to_owned(), callee.to_owned()),
        Side::Callee => (callee.to_owned(), caller.to_owned()),
    };
    let call = Call {
        id: id.to_owned().into(),
        kind,
        caller_id: caller.to_owned().into(),
        callee_id: callee.to_owned().into(),
        payer_id: payer_id.into(),
        earner_id: earner_id.into(),
        state,
        tariff_id: tariff.id.clone(),
        tariff_version: tariff.version,
        payer_schedule: tariff.payer_schedule.clone(),
        earner_schedule: tariff.earner_schedule.clone(),
        created_at_ms: tx.now_ms(),
        connected_at_ms: None,
        ended_at_ms: None,
        end_reason: None,
        joined: Vec::new(),
        charged: 0,
        earned: 0,
        payer_billed_upto: None,
        earner_billed_upto: None,
        provider: None,
        timers: Vec::new(),
    };
    let mut active = tx.table(ACTIVE_CALLS)?;
    active.insert(caller, id)?;
    active.insert(callee, id)?;
    drop(active);
    let mut by_user = tx.table(CALLS_BY_USER)?;
    by_user.insert((caller, id), ())?;
    by_user.insert((callee, id), ())?;
    drop(by_user);
    save(tx, &call)?;
    Ok(call)
}

/// What a participant does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Decline,
    Hangup,
    Joined,
}

pub async fn act(
    ctx: &Arc<Ctx>,
    who: &str,
    call_id: &str,
    action: Action,
    max_ms: i64,
) -> AppResult<Call> {
    let (who, call_id) = (who.to_owned(), call_id.to_owned());
    let owner = ctx.clone();
    ctx.store
        .write(move |tx| act_tx(tx, &owner.call_media, &who, &call_id, action, max_ms))
        .await
}

/// [`act`] inside a write.
pub(crate) fn act_tx(
    tx: &Tx,
    media: &media::Media,
    who: &str,
    call_id: &str,
    action: Action,
    max_ms: i64,
) -> AppResult<Call> {
    let who = who.to_owned();
    let mut call = call_of(tx, call_id)?;
    if call.caller_id != who && call.callee_id != who {
        return Err(AppError::not_found("no such call"));
    }
    let is_callee = call.callee_id == who;
    let now = tx.now_ms();
    match (action, call.state) {
        (Action::Accept, CallState::Ringing) if is_callee => {
            clear_timer(tx, &mut call, Timer::Ring)?;
            call.provider = media.choose(tx, now, None)?.map(str::to_owned);
            call.state = CallState::Connecting;
            save(tx, &call)?;
            tx.emit(state_event(&call))?;
        }
        (Action::Decline, CallState::Ringing) if is_callee => {
            finish(tx, &mut call, CallState::Declined, None)?
        }
        (Action::Hangup, CallState::Ringing) => {
            let state = if is_callee {
                CallState::Declined
            } else {
                CallState::Cancelled
            };
            finish(tx, &mut call, state, None)?;
        }
        (Action::Hangup, CallState::Connecting) => {
            finish(tx, &mut call, CallState::Ended, Some(EndReason::Hangup))?
        }
        (Action::Hangup, CallState::Connected) => {
            // Everything due up to the hang-up is billed first, even if the engine lags.
            let reason = bill_due(tx, &mut call, now)?.unwrap_or(EndReason::Hangup);
            finish(tx, &mut call, CallState::Ended, Some(reason))?;
        }
        (Action::Joined, CallState::Connecting) => {
            if !call.joined.contains(&who) {
                call.joined.push(who.clone());
            }
            if call.joined.len() == 2 {
                call.state = CallState::Connected;
                call.connected_at_ms = Some(now);
                set_timer(tx, &mut call, Timer::MaxDuration, now + max_ms)?;
                match bill_due(tx, &mut call, now)? {
                    Some(reason) => finish(tx, &mut call, CallState::Ended, Some(reason))?,
                    None => {
                        schedule_billing(tx, &mut call)?;
                        save(tx, &call)?;
                        tx.emit(state_event(&call))?;
                    }
                }
            } else {
                save(tx, &call)?;
            }
        }
        (Action::Joined, CallState::Connected) => {}
        (_, state) => {
            return Err(AppError::conflict(format!(
                "a {} call cannot be {action:?}ed by you",
                state.as_str()
            )));
        }
    }
    Ok(call)
}

/// Bills every checkpoint due by `now`, in time order; returns a reason to end the call when
/// the payer cannot pay the next one.
fn bill_due(tx: &Tx, call: &mut Call, now_ms: i64) -> AppResult<Option<EndReason>> {
    let seconds = call.seconds_at(now_ms);
    let revenue = Account::system(SystemAccount::PlatformRevenue);
    for _ in 0..CHECKPOINTS_PER_PASS {
        let payer = call
            .payer_schedule
            .next_after(call.payer_billed_upto)
            .filter(|(at, _)| *at <= seconds);
        let earner = call
            .earner_schedule
            .next_after(call.earner_billed_upto)
            .filter(|(at, _)| *at <= seconds);
        // The payer's checkpoint comes first when both fall on the same second.
        match (payer, earner) {
            (Some((at, coins)), e) if e.is_none_or(|(eat, _)| at <= eat) => {
                if coins > 0 {
                    let wallet = Account::wallet(&call.payer_id);
                    let balance = balance::balance_tx(tx, &wallet)?;
                    if balance < coins {
                        return Ok(Some(EndReason::InsufficientBalance));
                    }
                    let leg = Leg {
                        debit: wallet,
                        credit: revenue.clone(),
                        amount: coins,
                        kind: TransferKind::CallCharge,
                        reference: format!("call:{}", call.id),
                    };
                    balance::post(tx, &[leg], Some(&format!("call:{}:payer:{at}", call.id)))?;
                    call.charged += coins;
                }
                call.payer_billed_upto = Some(at);
            }
            (_, Some((at, coins))) => {
                if coins > 0 {
                    let leg = Leg {
                        debit: revenue.clone(),
                        credit: Account::earnings(&call.earner_id),
                        amount: coins,
                        kind: TransferKind::CallEarning,
                        reference: format!("call:{}", call.id),
                    };
                    let legs = crate::domains::agency::split_earning(tx, leg)?;
                    balance::post(tx, &legs, Some(&format!("call:{}:earner:{at}", call.id)))?;
                    call.earned += coins;
                }
                call.earner_billed_upto = Some(at);
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Sets the billing timer at the next checkpoint of either side, and warns the payer when the
/// wallet cannot cover their next charge.
fn schedule_billing(tx: &Tx, call: &mut Call) -> AppResult<()> {
    clear_timer(tx, call, Timer::Billing)?;
    let Some(connected) = call.connected_at_ms else {
        return Ok(());
    };
    let payer = call.payer_schedule.next_after(call.payer_billed_upto);
    let earner = call.earner_schedule.next_after(call.earner_billed_upto);
    let next = [payer.map(|p| p.0), earner.map(|e| e.0)]
        .into_iter()
        .flatten()
        .min();
    if let Some(at) = next {
        set_timer(tx, call, Timer::Billing, connected + at as i64 * 1000)?;
    }
    if let Some((at, coins)) = payer {
        let wallet = balance::balance_tx(tx, &Account::wallet(&call.payer_id))?;
        if wallet < coins {
            tx.emit(
                NewEvent::about(
                    &call.payer_id,
                    CallEvent::BalanceLow {
                        call_id: call.id.clone(),
                        at_seconds: at,
                        coins,
                        balance: wallet,
                    },
                )
                .to(Audience::Users(vec![call.payer_id.clone()])),
            )?;
        }
    }
    Ok(())
}

/// Closes a call: state, the people free again, its timers gone, and the events.
fn finish(tx: &Tx, call: &mut Call, state: CallState, reason: Option<EndReason>) -> AppResult<()> {
    for timer in [Timer::Ring, Timer::Billing, Timer::MaxDuration] {
        clear_timer(tx, call, timer)?;
    }
    call.state = state;
    call.end_reason = reason;
    call.ended_at_ms = Some(tx.now_ms());
    let mut active = tx.table(ACTIVE_CALLS)?;
    for who in [&call.caller_id, &call.callee_id] {
        let mine = active
            .get(who.as_str())?
            .is_some_and(|v| call.id == v.value());
        if mine {
            active.remove(who.as_str())?;
        }
    }
    drop(active);
    save(tx, call)?;
    roulette::requeue(tx, call)?;
    tx.emit(state_event(call))?;
    let duration = call
        .ended_at_ms
        .zip(call.connected_at_ms)
        .map_or(0, |(e, c)| (e - c) / 1000);
    let summary = CallSummary {
        call_id: call.id.clone(),
        kind: call.kind,
        caller_id: call.caller_id.clone(),
        callee_id: call.callee_id.clone(),
        state,
        duration_seconds: duration,
        charged: call.charged,
        earned: call.earned,
        reason,
        connected: call.connected_at_ms.is_some(),
    };
    let event = if state == CallState::Missed {
        CallEvent::Missed { summary }
    } else {
        CallEvent::Ended { summary }
    };
    tx.emit(NewEvent::about(&call.caller_id, event))?;
    Ok(())
}

/// When the earliest timer falls due.
pub async fn next_due(ctx: &Ctx) -> AppResult<Option<i64>> {
    ctx.store
        .read(|rtx| {
            Ok(rtx
                .open_table(CALL_TIMERS)?
                .first()?
                .map(|(k, _)| k.value().0))
        })
        .await
}

/// Runs the due timers and the connection-loss check; returns how many timers ran. The engine runs it as timers fall due; tests call it after
/// moving the clock.
pub async fn tick(ctx: &Arc<Ctx>) -> AppResult<usize> {
    Ok(run_due(ctx).await? + end_lost_calls(ctx).await?)
}

/// Runs the timers that are due; returns how many.
pub async fn run_due(ctx: &Arc<Ctx>) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let due: Vec<(i64, String)> = ctx
        .store
        .read(move |rtx| {
            let t = rtx.open_table(CALL_TIMERS)?;
            let mut out = Vec::new();
            for row in t.range(..(now + 1, ""))?.take(TIMERS_PER_TICK) {
                let (k, _) = row?;
                let (due, key) = k.value();
                out.push((due, key.to_owned()));
            }
            Ok(out)
        })
        .await?;
    let n = due.len();
    // All at once: the writer groups them into a few commits instead of one each.
    let fired = futures_util::future::join_all(due.into_iter().map(|(due_ms, key)| {
        let owner = ctx.clone();
        ctx.store
            .write(move |tx| fire(tx, &owner.call_media, due_ms, &key))
    }))
    .await;
    for r in fired {
        r?;
    }
    Ok(n)
}

fn fire(tx: &Tx, media: &media::Media, due_ms: i64, key: &str) -> AppResult<()> {
    // Handled already (by an earlier pass, or a hang-up that cleared it).
    if tx.read(CALL_TIMERS)?.get((due_ms, key))?.is_none() {
        return Ok(());
    }
    if key == roulette::MATCH_TIMER {
        tx.table(CALL_TIMERS)?.remove((due_ms, key))?;
        roulette::match_waiting(tx, media)?;
        return Ok(());
    }
    let Some((call_id, timer)) = Timer::parse(key) else {
        tx.table(CALL_TIMERS)?.remove((due_ms, key))?;
        return Ok(());
    };
    let mut call = call_of(tx, call_id)?;
    let now = tx.now_ms();
    match (timer, call.state) {
        (Timer::Ring, CallState::Ringing) => finish(tx, &mut call, CallState::Missed, None),
        (Timer::Billing, CallState::Connected) => match bill_due(tx, &mut call, now)? {
            Some(reason) => finish(tx, &mut call, CallState::Ended, Some(reason)),
            None => {
                schedule_billing(tx, &mut call)?;
                save(tx, &call)
            }
        },
        (Timer::MaxDuration, CallState::Connected) => {
            let reason = bill_due(tx, &mut call, now)?.unwrap_or(EndReason::MaxDuration);
            finish(tx, &mut call, CallState::Ended, Some(reason))
        }
        _ => {
            // A timer of a call in another state: drop it.
            clear_timer(tx, &mut call, timer)?;
            save(tx, &call)
        }
    }
}

/// Ends a call for a reason decided elsewhere (a moderation decision, a block): what was due is
/// billed first. A call already over is left as it is.
pub async fn end_call(ctx: &Ctx, call_id: &str, reason: EndReason) -> AppResult<Call> {
    let call_id = call_id.to_owned();
    ctx.store
        .write(move |tx| end_call_tx(tx, &call_id, reason))
        .await
}

/// [`end_call`] inside a write.
fn end_call_tx(tx: &Tx, call_id: &str, reason: EndReason) -> AppResult<Call> {
    let mut call = call_of(tx, call_id)?;
    match call.state {
        CallState::Connected => {
            let reason = bill_due(tx, &mut call, tx.now_ms())?.unwrap_or(reason);
            finish(tx, &mut call, CallState::Ended, Some(reason))?;
        }
        CallState::Ringing | CallState::Connecting => {
            finish(tx, &mut call, CallState::Ended, Some(reason))?
        }
        _ => {}
    }
    Ok(call)
}

/// The `call_blocks` consumer: a block ends a call between the two (`blocked`), billing what
/// was due. It follows the log, so a crash between the block's commit and the end of the call
/// only delays the end to the restart; the end and the consumer's cursor are written in one
/// transaction, so each block ends a call at most once.
pub struct BlockedCalls {
    pub store: Store,
}

pub const BLOCKED_CALLS: &str = blocklist::CALL_BLOCKS_CONSUMER;

impl Consumer for BlockedCalls {
    fn name(&self) -> &'static str {
        BLOCKED_CALLS
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        apply_once(
            &self.store,
            BLOCKED_CALLS,
            events,
            |tx, block| match block {
                BlockEvent::Blocked {
                    blocker_id,
                    blocked_id,
                    ..
                } => end_blocked_call_tx(tx, &blocker_id, &blocked_id),
                _ => Ok(()),
            },
        )
        .await
    }
}

/// Ends the call between `blocker` and `blocked`, if there is one and the block still stands.
fn end_blocked_call_tx(tx: &Tx, blocker: &str, blocked: &str) -> AppResult<()> {
    let Some(call_id) = tx
        .read(ACTIVE_CALLS)?
        .get(blocker)?
        .map(|v| v.value().to_owned())
    else {
        return Ok(());
    };
    let call = call_of(tx, &call_id)?;
    if call.other(blocker) == blocked && blocklist::is_blocked_tx(tx, blocker, blocked)? {
        end_call_tx(tx, &call_id, EndReason::Blocked)?;
    }
    Ok(())
}

/// Whether the call is still ringing, inside a write.
pub fn is_ringing_tx(tx: &Tx, call_id: &str) -> AppResult<bool> {
    Ok(
        get::<&str, Call>(&tx.read(CALLS)?, call_id)?
            .is_some_and(|c| c.state == CallState::Ringing),
    )
}

/// Whether `user_id` is in a call now.
pub fn in_call(rtx: &ReadTransaction, user_id: &str) -> AppResult<bool> {
    Ok(rtx.open_table(ACTIVE_CALLS)?.get(user_id)?.is_some())
}

/// The call `user_id` is in now, if any.
pub async fn active_call_of(ctx: &Ctx, user_id: &str) -> AppResult<Option<Call>> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let Some(id) = rtx
                .open_table(ACTIVE_CALLS)?
                .get(user_id.as_str())?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            find(rtx, &id)
        })
        .await
}

/// The calls someone is in now.
async fn open_calls(ctx: &Ctx) -> AppResult<Vec<Call>> {
    ctx.store
        .read(|rtx| {
            let active = rtx.open_table(ACTIVE_CALLS)?;
            let calls = rtx.open_table(CALLS)?;
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<Call> = Vec::new();
            for row in active.iter()? {
                let id = row?.1.value().to_owned();
                if seen.insert(id.clone())
                    && let Some(c) = get::<&str, Call>(&calls, id.as_str())?
                {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .await
}

/// Ends connected calls one of whose participants has been without a connection too long.
/// It reads only the (person, call) index and asks presence once for everyone in a call, so a
/// pass over 10,000 calls costs milliseconds; only calls with a lost participant are loaded.
pub async fn end_lost_calls(ctx: &Ctx) -> AppResult<usize> {
    let now = ctx.store.now_ms();
    let limit = ctx.config.calls.connection_lost_secs as i64 * 1000;
    let in_calls: Vec<(String, String)> = ctx
        .store
        .read(|rtx| {
            let mut out = Vec::new();
            for row in rtx.open_table(ACTIVE_CALLS)?.iter()? {
                let (who, call) = row?;
                out.push((who.value().to_owned(), call.value().to_owned()));
            }
            Ok(out)
        })
        .await?;
    let lost = ctx
        .presence
        .lost_longer_than(in_calls.iter().map(|(who, _)| who.as_str()), now, limit)
        .await;
    let lost_calls: std::collections::BTreeSet<&str> = in_calls
        .iter()
        .filter(|(who, _)| lost.contains(who.as_str()))
        .map(|(_, call)| call.as_str())
        .collect();
    let mut ended = 0;
    for id in lost_calls {
        let connected = ctx
            .store
            .read({
                let id = id.to_owned();
                move |rtx| Ok(find(rtx, &id)?.is_some_and(|c| c.state == CallState::Connected))
            })
            .await?;
        if connected {
            end_call(ctx, id, EndReason::ConnectionLost).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// After a restart: calls that had not connected are ended (`server_restart`: the people
/// ringing and answering lost their connections); connected calls go on, and the engine bills
/// every checkpoint that fell due while the server was down, each once.
pub async fn recover(ctx: &Ctx) -> AppResult<usize> {
    let open: Vec<CallId> = open_calls(ctx).await?.into_iter().map(|c| c.id).collect();
    let mut ended = 0;
    for id in open {
        let done = ctx
            .store
            .write(move |tx| {
                let mut call = call_of(tx, &id)?;
                if matches!(call.state, CallState::Ringing | CallState::Connecting) {
                    finish(
                        tx,
                        &mut call,
                        CallState::Cancelled,
                        Some(EndReason::ServerRestart),
                    )?;
                    return Ok(true);
                }
                Ok(false)
            })
            .await?;
        ended += usize::from(done);
    }
    Ok(ended)
}

pub fn find(rtx: &ReadTransaction, id: &str) -> AppResult<Option<Call>> {
    get(&rtx.open_table(CALLS)?, id)
}

/// A user's calls, newest first, before call id `before`.
pub fn history(
    rtx: &ReadTransaction,
    user_id: &str,
    before: Option<&str>,
    limit: usize,
) -> AppResult<Vec<Call>> {
    let idx = rtx.open_table(CALLS_BY_USER)?;
    let calls = rtx.open_table(CALLS)?;
    let upper = before.unwrap_or("\u{10ffff}");
    let mut out = Vec::new();
    for row in idx
        .range((user_id, "")..(user_id, upper))?
        .rev()
        .take(limit)
    {
        let (k, _) = row?;
        if let Some(c) = get::<&str, Call>(&calls, k.value().1)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// A call record ([`find`] in its own read).
pub async fn find_call(ctx: &Ctx, id: &str) -> AppResult<Option<Call>> {
    let id = id.to_owned();
    ctx.store.read(move |rtx| find(rtx, &id)).await
}

/// A user's calls, newest first, before call id `before` ([`history`] in its own read).
pub async fn calls_of(
    ctx: &Ctx,
    user_id: &str,
    before: Option<String>,
    limit: usize,
) -> AppResult<Vec<Call>> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| history(rtx, &uid, before.as_deref(), limit))
        .await
}

/// The configured video providers, in the order they are tried, with their switches and
/// whether they are failing now.
pub async fn provider_statuses(ctx: &Arc<Ctx>) -> AppResult<Vec<media::ProviderStatus>> {
    let owner = ctx.clone();
    let now = ctx.store.now_ms();
    ctx.store
        .read(move |rtx| {
            owner
                .call_media
                .status(&rtx.open_table(PROVIDER_SWITCHES)?, now)
        })
        .await
}

/// The media credentials of participant `who` in a call that is connecting or connected.
pub async fn media_for(
    ctx: &Ctx,
    who: &str,
    call_id: &str,
) -> AppResult<crate::providers::video::ProviderToken> {
    let (w, id) = (who.to_owned(), call_id.to_owned());
    let call = ctx
        .store
        .read(move |rtx| find(rtx, &id))
        .await?
        .filter(|c| c.caller_id == w || c.callee_id == w)
        .ok_or_else(|| AppError::not_found("no such call"))?;
    if !matches!(call.state, CallState::Connecting | CallState::Connected) {
        return Err(AppError::conflict(
            "the call is not connecting or connected",
        ));
    }
    let provider = call.provider.ok_or_else(|| {
        AppError::new(
            Code::Unavailable,
            "no video provider is available for this call",
        )
    })?;
    let uid = if call.caller_id == who { 1 } else { 2 };
    ctx.call_media
        .token(&provider, &call.id, uid, who, ctx.store.now_ms() / 1000)
        .ok_or_else(|| {
            AppError::new(
                Code::Unavailable,
                "the call's video provider is no longer configured",
            )
        })
}

/// A participant could not use the call's provider: the failure is counted (enough of them
/// switch new calls to the next provider) and this call moves to another provider at once.
pub async fn provider_failed(
    ctx: &Arc<Ctx>,
    who: &str,
    call_id: &str,
    provider: &str,
) -> AppResult<Call> {
    let now = ctx.store.now_ms();
    ctx.call_media.report_failure(provider, now);
    let (w, id, failed, owner) = (
        who.to_owned(),
        call_id.to_owned(),
        provider.to_owned(),
        ctx.clone(),
    );
    ctx.store
        .write(move |tx| {
            let mut call = call_of(tx, &id)?;
            if call.caller_id != w && call.callee_id != w {
                return Err(AppError::not_found("no such call"));
            }
            if !matches!(call.state, CallState::Connecting | CallState::Connected) {
                return Err(AppError::conflict(
                    "the call is not connecting or connected",
                ));
            }
            if call.provider.as_deref() == Some(failed.as_str()) {
                let next = owner.call_media.choose(tx, tx.now_ms(), Some(&failed))?;
                let Some(next) = next else {
                    return Err(AppError::new(
                        Code::Unavailable,
                        "no other video provider is available",
                    ));
                };
                call.provider = Some(next.to_owned());
                save(tx, &call)?;
                // Both sides fetch their new credentials.
                tx.emit(state_event(&call))?;
            }
            Ok(call)
        })
        .await
}

/// An admin switches a provider on or off for new calls.
pub async fn switch_provider(ctx: &Ctx, actor: &str, name: &str, enabled: bool) -> AppResult<()> {
    if !ctx.call_media.names().contains(&name) {
        return Err(AppError::not_found(format!(
            "no configured video provider `{name}`"
        )));
    }
    let (actor, name) = (actor.to_owned(), name.to_owned());
    ctx.store
        .write(move |tx| {
            tx.table(PROVIDER_SWITCHES)?
                .insert(name.as_str(), enabled)?;
            crate::domains::audit::record_tx(
                tx,
                &actor,
                "video.provider",
                &name,
                json!({"enabled": enabled}),
            )
        })
        .await
}
