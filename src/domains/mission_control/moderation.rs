//! Automatic moderation: what blocks add up to, and the moderators' queue of cases.
//!
//! A block is a claim by the blocker, and a stranger's claim costs nothing to make (a device
//! sign-in is free). So a block counts toward a rule only when the blocker really met the
//! target — a call between them connected, or the target sent them a message or a gift (what
//! the target did, which the blocker cannot fake) — and it weighs by the blocker's standing: 1,
//! plus 1 for an account at least `established_account_days` old, plus 1 for one that has
//! bought coins. `nudity` needs a connected call (nudity is seen on video) against a streamer,
//! and records a penalty.
//!
//! When the counted weight within a rule's window reaches its threshold, the target is
//! suspended for `suspension_secs` (or banned, if `automatic_action = "ban"`) and a case opens
//! in the moderators' queue, where a moderator upholds it (a permanent ban) or lifts it. While
//! a case is open, further blocks add to it rather than opening another. Everything automatic is
//! audited as `system:moderation`.
//!
//! The rules run in the durable `moderation_rules` consumer, once per block. It first waits for
//! the consumers whose writes it reads: `call_blocks` (a block ends a live call, whose record
//! then follows the block in the log) and `interactions` (up to the log head by then).

use std::time::Duration;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{AutomaticAction, ModerationConfig};
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Consumer, Event, take_unapplied, wait_applied};
use crate::core::ids::new_id;
use crate::core::store::{Store, Tx, dec, get, put};
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::blocklist::{self, BlockReason, events::BlockEvent};
use crate::domains::{interaction, payment, user};

use super::tables::{CASES, CASES_BY_STATE, OPEN_CASES, SIGNALS};

/// The actor named on automatic actions in the audit log.
pub const ACTOR: &str = "system:moderation";
/// The consumer's name (its cursor is stored under it).
pub const CONSUMER: &str = "moderation_rules";
/// How long the consumer waits for the consumers it reads before it tries the batch again.
const UPSTREAM_WAIT: Duration = Duration::from_secs(5);

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
pub enum Rule {
    /// Harassment blocks from people who met the target.
    Harassment,
    /// Nudity penalties against a streamer.
    Nudity,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Harassment => "harassment",
            Rule::Nudity => "nudity",
        }
    }

    fn of(reason: BlockReason) -> Option<Rule> {
        match reason {
            BlockReason::Harassment => Some(Rule::Harassment),
            BlockReason::Nudity => Some(Rule::Nudity),
            _ => None,
        }
    }

    fn threshold_and_window_ms(self, config: &ModerationConfig) -> (u32, i64) {
        let (threshold, secs) = match self {
            Rule::Harassment => (config.harassment_threshold, config.harassment_window_secs),
            Rule::Nudity => (config.nudity_threshold, config.nudity_window_secs),
        };
        (threshold, secs as i64 * 1000)
    }
}

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
pub enum CaseState {
    /// Waiting for a moderator.
    Open,
    /// A moderator made the automatic action a permanent ban.
    Upheld,
    /// A moderator lifted the automatic action.
    Lifted,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Upheld => "upheld",
            CaseState::Lifted => "lifted",
        }
    }
}

/// A moderator's decision on an open case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CaseDecision {
    /// Ban the user permanently.
    Uphold,
    /// Lift the suspension or ban.
    Lift,
}

/// One counted block: who, how much it weighs, when. A moderator who lifts a case dismisses
/// its signals: they are kept, so the same person blocking again (after unblocking) cannot
/// reopen it, and never count again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signal {
    weight: u32,
    at_ms: i64,
    #[serde(default)]
    dismissed: bool,
}

/// Reporters listed on one case at most (the weight counts them all).
const CASE_REPORTERS_MAX: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub user_id: String,
    pub rule: Rule,
    pub state: CaseState,
    pub opened_at_ms: i64,
    /// What the rule did: `suspend` or `ban`.
    pub action: AutomaticAction,
    /// For a suspension: when it ends.
    pub suspended_until_ms: Option<i64>,
    /// Counted weight when the case opened, and counted blocks since (while open).
    pub weight: u32,
    /// The people whose counted blocks make up the case, with the weight of each.
    pub reporters: Vec<(String, u32)>,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub note: Option<String>,
}

/// How much `blocker`'s report weighs, or `None` if they never met `target` as `rule` needs.
fn weigh(
    tx: &Tx,
    config: &ModerationConfig,
    rule: Rule,
    blocker: &str,
    target: &str,
) -> AppResult<Option<u32>> {
    let (by_blocker, by_target) = interaction::between_tx(tx, blocker, target)?;
    let called = by_blocker.calls > 0 || by_target.calls > 0;
    let met = match rule {
        Rule::Nudity => called,
        Rule::Harassment => called || by_target.messages > 0 || by_target.gift_coins > 0,
    };
    if !met {
        return Ok(None);
    }
    let Some(account) = user::find_user_tx(tx, blocker)? else {
        return Ok(None);
    };
    let established_ms = i64::from(config.established_account_days) * 86_400_000;
    let aged = tx.now_ms() - account.created_at_ms >= established_ms;
    let bought = payment::has_purchased(tx, blocker)?;
    Ok(Some(1 + u32::from(aged) + u32::from(bought)))
}

/// Applies the rules to one block.
fn on_blocked(
    tx: &Tx,
    config: &ModerationConfig,
    blocker: &str,
    target: &str,
    reason: BlockReason,
    at_ms: i64,
) -> AppResult<()> {
    // A block replaces the blocker's earlier one: its reason no longer counts toward another
    // rule.
    withdraw(tx, blocker, target, Rule::of(reason))?;
    let Some(rule) = Rule::of(reason) else {
        return Ok(());
    };
    // The block may have been replaced or lifted since; only a standing one counts.
    if !blocklist::blocks_for_tx(tx, blocker, target, reason)? {
        return Ok(());
    }
    let Some(account) = user::find_user_tx(tx, target)? else {
        return Ok(());
    };
    let applies = match rule {
        Rule::Harassment => matches!(account.role, Role::User | Role::Streamer),
        Rule::Nudity => account.role == Role::Streamer,
    };
    if !applies {
        return Ok(());
    }
    let key = (target, rule.as_str(), blocker);
    // Each blocker counts once per rule: blocking again changes nothing.
    if get::<_, Signal>(&tx.read(SIGNALS)?, key)?.is_some() {
        return Ok(());
    }
    let Some(weight) = weigh(tx, config, rule, blocker, target)? else {
        return Ok(());
    };
    put(
        &mut tx.table(SIGNALS)?,
        key,
        &Signal {
            weight,
            at_ms,
            dismissed: false,
        },
    )?;
    if rule == Rule::Nudity {
        blocklist::record_penalty_tx(tx, target, reason, blocker, weight)?;
    }

    if let Some(case_id) = tx
        .read(OPEN_CASES)?
        .get((target, rule.as_str()))?
        .map(|v| v.value().to_owned())
    {
        let mut case: Case = get(&tx.read(CASES)?, case_id.as_str())?
            .ok_or_else(|| AppError::internal("an open case without its record"))?;
        if case.reporters.iter().any(|(r, _)| r == blocker) {
            return Ok(());
        }
        case.weight += weight;
        if case.reporters.len() < CASE_REPORTERS_MAX {
            case.reporters.push((blocker.to_owned(), weight));
        }
        // The suspension ran out before a moderator got to the case, and reports keep coming:
        // suspend again rather than let them go on.
        if case.action == AutomaticAction::Suspend && !account.is_banned(tx.now_ms()) {
            act(tx, config, &mut case, true)?;
        }
        put(&mut tx.table(CASES)?, case.id.as_str(), &case)?;
        return Ok(());
    }
    if account.is_banned(tx.now_ms()) {
        return Ok(());
    }
    let (threshold, window_ms) = rule.threshold_and_window_ms(config);
    let since = tx.now_ms() - window_ms;
    let mut reporters = Vec::new();
    let mut total = 0u32;
    for row in tx
        .read(SIGNALS)?
        .range((target, rule.as_str(), "")..=(target, rule.as_str(), "\u{10ffff}"))?
    {
        let (k, v) = row?;
        let signal: Signal = dec(v.value())?;
        if signal.at_ms >= since && !signal.dismissed {
            total += signal.weight;
            reporters.push((k.value().2.to_owned(), signal.weight));
        }
    }
    // Weight alone is not enough: one or two well-standing accounts must not act on anyone.
    if total < threshold || reporters.len() < config.min_reporters as usize {
        return Ok(());
    }
    reporters.truncate(CASE_REPORTERS_MAX);
    open_case(tx, config, target, rule, total, reporters)
}

fn open_case(
    tx: &Tx,
    config: &ModerationConfig,
    target: &str,
    rule: Rule,
    weight: u32,
    reporters: Vec<(String, u32)>,
) -> AppResult<()> {
    let mut case = Case {
        id: new_id(),
        user_id: target.to_owned(),
        rule,
        state: CaseState::Open,
        opened_at_ms: tx.now_ms(),
        action: config.automatic_action,
        suspended_until_ms: None,
        weight,
        reporters,
        decided_by: None,
        decided_at_ms: None,
        note: None,
    };
    act(tx, config, &mut case, false)?;
    store_case(tx, &case, None)?;
    tx.table(OPEN_CASES)?
        .insert((target, rule.as_str()), case.id.as_str())?;
    Ok(())
}

/// Carries out `case`'s automatic action on its user (a suspension from now, or a ban), and
/// audits it; `again` for a suspension renewed while the case waits for a moderator.
fn act(tx: &Tx, config: &ModerationConfig, case: &mut Case, again: bool) -> AppResult<()> {
    let why = suspension_reason(case.rule, case.reporters.len(), case.weight);
    let target = case.user_id.clone();
    case.suspended_until_ms = match case.action {
        AutomaticAction::Suspend => {
            let until = tx.now_ms() + config.suspension_secs as i64 * 1000;
            user::suspend_tx(tx, &target, &why, ACTOR, until)?;
            Some(until)
        }
        AutomaticAction::Ban => {
            user::ban_tx(tx, &target, &why, ACTOR)?;
            None
        }
    };
    audit_tx(
        tx,
        ACTOR,
        match case.action {
            AutomaticAction::Suspend => "user.auto_suspend",
            AutomaticAction::Ban => "user.auto_ban",
        },
        &target,
        json!({
            "caseId": case.id,
            "rule": case.rule.as_str(),
            "weight": case.weight,
            "reporters": case.reporters.len(),
            "untilMs": case.suspended_until_ms,
            "again": again,
        }),
    )
}

fn suspension_reason(rule: Rule, reporters: usize, weight: u32) -> String {
    format!(
        "automatic: reported for {} by {reporters} people who met you (weight {weight})",
        rule.as_str()
    )
}

fn store_case(tx: &Tx, case: &Case, previous: Option<CaseState>) -> AppResult<()> {
    put(&mut tx.table(CASES)?, case.id.as_str(), case)?;
    let mut by_state = tx.table(CASES_BY_STATE)?;
    if let Some(previous) = previous {
        by_state.remove((previous.as_str(), case.id.as_str()))?;
    }
    by_state.insert((case.state.as_str(), case.id.as_str()), ())?;
    Ok(())
}

/// The blocker's signals against `target` stop counting, except for `keep` (the rule of a
/// block that replaced theirs); dismissed ones stay, so they can never count again.
fn withdraw(tx: &Tx, blocker: &str, target: &str, keep: Option<Rule>) -> AppResult<()> {
    let mut signals = tx.table(SIGNALS)?;
    for rule in [Rule::Harassment, Rule::Nudity] {
        if Some(rule) == keep {
            continue;
        }
        let key = (target, rule.as_str(), blocker);
        let dismissed = get::<_, Signal>(&signals, key)?.is_some_and(|s| s.dismissed);
        if !dismissed {
            signals.remove(key)?;
        }
    }
    Ok(())
}

/// A lifted block no longer counts toward a rule.
fn on_unblocked(tx: &Tx, blocker: &str, target: &str) -> AppResult<()> {
    withdraw(tx, blocker, target, None)
}

/// A moderator decides an open case: `uphold` makes it a permanent ban, `lift` ends the
/// suspension (or ban). Audited.
pub async fn decide(
    ctx: &crate::app::Ctx,
    actor: &str,
    case_id: &str,
    decision: CaseDecision,
    note: Option<String>,
) -> AppResult<Case> {
    let note = note
        .map(|n| super::Reason::parse("note", &n).map(|r| r.as_str().to_owned()))
        .transpose()?;
    let (actor, case_id) = (actor.to_owned(), case_id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut case: Case = get(&tx.read(CASES)?, case_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such case"))?;
            if case.state != CaseState::Open {
                return Err(AppError::new(
                    Code::Conflict,
                    format!("the case was already decided ({})", case.state.as_str()),
                ));
            }
            let target = case.user_id.clone();
            let account = user::find_user_tx(tx, &target)?
                .ok_or_else(|| AppError::not_found("the user no longer exists"))?;
            // Only what this rule did is undone or upheld; a ban by a person since stays.
            let ours = account.ban.as_ref().is_some_and(|b| b.by == ACTOR);
            match decision {
                CaseDecision::Uphold => {
                    let why = format!(
                        "banned after review of automatic {} reports",
                        case.rule.as_str()
                    );
                    user::ban_tx(tx, &target, &why, &actor)?;
                    case.state = CaseState::Upheld;
                }
                CaseDecision::Lift => {
                    if ours {
                        user::unban_tx(tx, &target)?;
                    }
                    case.state = CaseState::Lifted;
                }
            }
            case.decided_by = Some(actor.clone());
            case.decided_at_ms = Some(tx.now_ms());
            case.note = note.clone();
            store_case(tx, &case, Some(CaseState::Open))?;
            tx.table(OPEN_CASES)?
                .remove((target.as_str(), case.rule.as_str()))?;
            // A lifted case starts the count over: the reports it rested on are dismissed and
            // never count again, even if their authors unblock and block again.
            if case.state == CaseState::Lifted {
                let mut signals = tx.table(SIGNALS)?;
                let rule = case.rule.as_str();
                let range = (target.as_str(), rule, "")..=(target.as_str(), rule, "\u{10ffff}");
                let mut dismissed = Vec::new();
                for row in signals.range(range)? {
                    let (k, v) = row?;
                    let mut signal: Signal = dec(v.value())?;
                    signal.dismissed = true;
                    dismissed.push((k.value().2.to_owned(), signal));
                }
                for (reporter, signal) in dismissed {
                    put(
                        &mut signals,
                        (target.as_str(), rule, reporter.as_str()),
                        &signal,
                    )?;
                }
            }
            audit_tx(
                tx,
                &actor,
                match decision {
                    CaseDecision::Uphold => "moderation.case_upheld",
                    CaseDecision::Lift => "moderation.case_lifted",
                },
                &target,
                json!({"caseId": case.id, "rule": case.rule.as_str(), "note": note}),
            )?;
            Ok(case)
        })
        .await
}

/// Cases in one state, oldest first (ids are time-ordered).
pub async fn cases(ctx: &crate::app::Ctx, state: CaseState, limit: usize) -> AppResult<Vec<Case>> {
    ctx.store
        .read(move |rtx| {
            let by_state = rtx.open_table(CASES_BY_STATE)?;
            let all = rtx.open_table(CASES)?;
            let mut out = Vec::new();
            for row in by_state.range((state.as_str(), "")..=(state.as_str(), "\u{10ffff}"))? {
                if let Some(case) = get::<&str, Case>(&all, row?.0.value().1)? {
                    out.push(case);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
}

/// The `moderation_rules` consumer.
pub struct ModerationRules {
    pub store: Store,
    pub config: ModerationConfig,
    /// For the batch being retried: its last event and the log head `interactions` must reach.
    /// Kept across retries, so a busy log cannot keep moving the target away.
    pub waiting_for: parking_lot::Mutex<Option<(u64, u64)>>,
}

impl Consumer for ModerationRules {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        let Some(last) = events
            .iter()
            .rev()
            .find(|e| e.is::<BlockEvent>())
            .map(|e| e.seq)
        else {
            return Ok(());
        };
        // What the rules read must be written first: a call the block ended, and the
        // interactions recorded from everything before (the ended call included).
        let blocks_done = wait_applied(
            &self.store,
            &[blocklist::CALL_BLOCKS_CONSUMER],
            last,
            UPSTREAM_WAIT,
        )
        .await?;
        let head = {
            let mut waiting = self.waiting_for.lock();
            match *waiting {
                Some((batch, head)) if batch == last => head,
                _ if blocks_done => {
                    let head = self.store.head_seq();
                    *waiting = Some((last, head));
                    head
                }
                _ => u64::MAX,
            }
        };
        let upstream_ready = blocks_done
            && wait_applied(&self.store, &[interaction::CONSUMER], head, UPSTREAM_WAIT).await?;
        if !upstream_ready {
            return Err(AppError::new(
                Code::Unavailable,
                "the consumers the moderation rules read are behind",
            ));
        }
        let config = self.config.clone();
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, CONSUMER, &events)? {
                    match e.decoded::<BlockEvent>() {
                        Some(BlockEvent::Blocked {
                            blocker_id,
                            blocked_id,
                            reason,
                        }) => on_blocked(tx, &config, &blocker_id, &blocked_id, reason, e.at_ms)?,
                        Some(BlockEvent::Unblocked {
                            blocker_id,
                            blocked_id,
                        }) => on_unblocked(tx, &blocker_id, &blocked_id)?,
                        _ => {}
                    }
                }
                Ok(())
            })
            .await
    }
}
