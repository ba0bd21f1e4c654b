//! The streamer portal: what the seed's streamer panel showed. Earnings, calls and gifts by
//! day (kept per account and UTC day by the `portal_days` consumer from the ledger's
//! `balance_changed`, `call_ended` and `gift_sent` events, exactly once each), the platform's
//! rules for streamers (Markdown that admins publish as numbered versions, and the version each
//! streamer accepted), and the per-agency report built from the same days. Payout history is
//! `GET /v1/me/payouts` and the balance `GET /v1/me/earnings`, which the portal also shows.

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Date;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, Consumer, Event, NewEvent, take_unapplied};
use crate::core::store::{Reads, Store, Tx, get, put};
use crate::domains::agency;
use crate::domains::audit::record_tx as audit_tx;
use crate::domains::balance::{self, events::BalanceEvent, model::Account, model::TransferKind};
use crate::domains::gift::events::GiftEvent;
use crate::domains::video::events::CallEvent;

use events::PortalEvent;
use tables::*;

/// The consumer's name (its cursor is stored under it).
pub const CONSUMER: &str = "portal_days";
/// Longest period one request covers, in days.
pub const PERIOD_DAYS_MAX: i64 = 366;
/// Longest rules text, in characters.
pub const RULES_CHARS_MAX: usize = 100_000;

/// What one account did on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayStats {
    /// Coins earned from calls (after an agency's commission).
    pub call_coins: i64,
    /// Coins earned from gifts (after an agency's commission).
    pub gift_coins: i64,
    /// For an agency: commissions on its streamers' earnings.
    #[serde(default)]
    pub commission_coins: i64,
    /// Connected calls that ended, and their seconds.
    pub calls: u64,
    pub call_seconds: u64,
    /// Gifts received.
    pub gifts: u64,
}

impl DayStats {
    fn add(&mut self, other: &DayStats) {
        self.call_coins += other.call_coins;
        self.gift_coins += other.gift_coins;
        self.commission_coins += other.commission_coins;
        self.calls += other.calls;
        self.call_seconds += other.call_seconds;
        self.gifts += other.gifts;
    }
}

fn day_of(ms: i64) -> String {
    crate::core::clock::to_datetime(ms).date().to_string()
}

/// What an event adds to whose day.
fn contributions(e: &Event) -> Vec<(String, DayStats)> {
    if let Some(BalanceEvent::Changed {
        kind,
        delta,
        account,
        ..
    }) = e.decoded()
    {
        let Some(owner) = e.subject.clone() else {
            return Vec::new();
        };
        let stats = match (kind, account.as_str()) {
            (TransferKind::CallEarning, "earnings") => DayStats {
                call_coins: delta,
                ..DayStats::default()
            },
            (TransferKind::Gift, "earnings") => DayStats {
                gift_coins: delta,
                ..DayStats::default()
            },
            (TransferKind::AgencyCommission, "agency") => DayStats {
                commission_coins: delta,
                ..DayStats::default()
            },
            _ => return Vec::new(),
        };
        return vec![(owner, stats)];
    }
    if let Some(CallEvent::Ended { summary }) = e.decoded()
        && summary.connected
    {
        let stats = DayStats {
            calls: 1,
            call_seconds: summary.duration_seconds.max(0) as u64,
            ..DayStats::default()
        };
        return vec![
            (summary.caller_id.to_string(), stats.clone()),
            (summary.callee_id.to_string(), stats),
        ];
    }
    if let Some(GiftEvent::Sent { to_user_id, .. }) = e.decoded() {
        return vec![(
            to_user_id.to_string(),
            DayStats {
                gifts: 1,
                ..DayStats::default()
            },
        )];
    }
    Vec::new()
}

/// Keeps the days from the log.
pub struct PortalDays {
    pub store: Store,
}

impl Consumer for PortalDays {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        if events.iter().all(|e| contributions(e).is_empty()) {
            return Ok(());
        }
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, CONSUMER, &events)? {
                    let day = day_of(e.at_ms);
                    for (owner, stats) in contributions(e) {
                        add_tx(tx, &owner, &day, &stats)?;
                    }
                }
                Ok(())
            })
            .await
    }
}

fn add_tx(tx: &Tx, owner: &str, day: &str, stats: &DayStats) -> AppResult<()> {
    let mut current: DayStats = get(&tx.read(DAYS)?, (owner, day))?.unwrap_or_default();
    current.add(stats);
    put(&mut tx.table(DAYS)?, (owner, day), &current)
}

/// A period of whole UTC days, both ends included.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

impl Period {
    /// From `from` to `to` (`YYYY-MM-DD`); by default the 30 days up to `today`.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: Date) -> AppResult<Period> {
        let date = |field: &str, raw: &str| {
            crate::domains::profile::model::parse_date(raw)
                .map_err(|_| AppError::validation(format!("{field} must be a date (YYYY-MM-DD)")))
        };
        let to = to.map(|t| date("to", t)).transpose()?.unwrap_or(today);
        let from = from
            .map(|f| date("from", f))
            .transpose()?
            .unwrap_or(to - time::Duration::days(29));
        let days = (to - from).whole_days() + 1;
        if !(1..=PERIOD_DAYS_MAX).contains(&days) {
            return Err(AppError::validation(format!(
                "a period runs forward and covers 1–{PERIOD_DAYS_MAX} days"
            )));
        }
        Ok(Period { from, to })
    }
}

/// `owner`'s days in `period`, every day included (empty days as zeros), oldest first.
pub fn days_of(r: &impl Reads, owner: &str, period: Period) -> AppResult<Vec<(Date, DayStats)>> {
    let (from, to) = (period.from.to_string(), period.to.to_string());
    let mut stored = std::collections::HashMap::new();
    for row in r
        .read_table(DAYS)?
        .range((owner, from.as_str())..=(owner, to.as_str()))?
    {
        let (k, v) = row?;
        stored.insert(
            k.value().1.to_owned(),
            crate::core::store::dec::<DayStats>(v.value())?,
        );
    }
    let mut out = Vec::new();
    let mut day = period.from;
    loop {
        out.push((day, stored.remove(&day.to_string()).unwrap_or_default()));
        match day.next_day() {
            Some(next) if day < period.to => day = next,
            _ => break,
        }
    }
    Ok(out)
}

/// A streamer's portal page: their days in `period` and their balances now.
pub struct Statement {
    pub days: Vec<(Date, DayStats)>,
    pub totals: DayStats,
    pub earnings: i64,
    pub payout_hold: i64,
}

pub async fn statement(ctx: &Ctx, streamer_id: &str, period: Period) -> AppResult<Statement> {
    let id = streamer_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let days = days_of(rtx, &id, period)?;
            let mut totals = DayStats::default();
            days.iter().for_each(|(_, s)| totals.add(s));
            Ok(Statement {
                days,
                totals,
                earnings: balance::balance(rtx, &Account::earnings(&id))?,
                payout_hold: balance::balance(rtx, &Account::payout_hold(&id))?,
            })
        })
        .await
}

/// One agency over a period: its commissions and a page of its streamers' totals, each counted
/// from the day they joined (what they earned before is not the agency's business).
pub struct AgencyReport {
    pub agency: agency::Agency,
    pub commission_coins: i64,
    pub streamers: Vec<(agency::Member, DayStats)>,
}

/// Which agency a report is about.
pub enum ReportOf {
    Agency(String),
    /// The agency this account manages.
    ManagedBy(String),
}

/// The report of an agency over `period`, for its streamers after `after` (at most `limit`).
pub async fn agency_report(
    ctx: &Ctx,
    of: ReportOf,
    period: Period,
    after: Option<String>,
    limit: usize,
) -> AppResult<AgencyReport> {
    ctx.store
        .read(move |rtx| {
            let id = match of {
                ReportOf::Agency(id) => id,
                ReportOf::ManagedBy(m) => agency::managed_agency(rtx, &m)?
                    .ok_or_else(|| AppError::not_found("you manage no agency"))?,
            };
            let agency =
                agency::find(rtx, &id)?.ok_or_else(|| AppError::not_found("no such agency"))?;
            let commission_coins = total_of(rtx, &id, period.from, period.to)?.commission_coins;
            let mut streamers = Vec::new();
            for m in agency::streamers(rtx, &id, after.as_deref(), limit)? {
                let joined = crate::core::clock::to_datetime(m.joined_at_ms).date();
                let total = if joined > period.to {
                    DayStats::default()
                } else {
                    total_of(rtx, &m.streamer_id, joined.max(period.from), period.to)?
                };
                streamers.push((m, total));
            }
            Ok(AgencyReport {
                agency,
                commission_coins,
                streamers,
            })
        })
        .await
}

/// The sum of `owner`'s stored days from `from` to `to`.
fn total_of(r: &impl Reads, owner: &str, from: Date, to: Date) -> AppResult<DayStats> {
    let (from, to) = (from.to_string(), to.to_string());
    let mut total = DayStats::default();
    for row in r
        .read_table(DAYS)?
        .range((owner, from.as_str())..=(owner, to.as_str()))?
    {
        let (_, v) = row?;
        total.add(&crate::core::store::dec::<DayStats>(v.value())?);
    }
    Ok(total)
}

/// One published version of the rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RulesVersion {
    pub version: u64,
    /// Markdown.
    pub text: String,
    pub published_at_ms: i64,
    pub published_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Acceptance {
    pub version: u64,
    pub at_ms: i64,
}

/// The current rules (none before the first publication) and what `user_id` accepted.
pub async fn rules(
    ctx: &Ctx,
    user_id: &str,
) -> AppResult<(Option<RulesVersion>, Option<Acceptance>)> {
    let id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let current = current_rules(rtx)?;
            let accepted = get(&rtx.read_table(ACCEPTED)?, id.as_str())?;
            Ok((current, accepted))
        })
        .await
}

fn current_rules(r: &impl Reads) -> AppResult<Option<RulesVersion>> {
    match r.read_table(RULES)?.last()? {
        Some((_, v)) => Ok(Some(crate::core::store::dec(v.value())?)),
        None => Ok(None),
    }
}

/// An admin publishes a new version of the rules; audited, announced to everyone connected.
/// The same text as the current version publishes nothing (a retried request asks no
/// streamer to accept again) and answers the current version.
pub async fn publish_rules(ctx: &Ctx, actor: &str, text: &str) -> AppResult<RulesVersion> {
    let text = text.trim().to_owned();
    if text.is_empty() || text.chars().count() > RULES_CHARS_MAX {
        return Err(AppError::validation(format!(
            "text must be 1–{RULES_CHARS_MAX} characters"
        )));
    }
    let actor = actor.to_owned();
    ctx.store
        .write(move |tx| {
            let current = current_rules(tx)?;
            if let Some(c) = current.as_ref().filter(|c| c.text == text) {
                return Ok(c.clone());
            }
            let version = current.map_or(1, |r| r.version + 1);
            let rules = RulesVersion {
                version,
                text: text.clone(),
                published_at_ms: tx.now_ms(),
                published_by: actor.clone(),
            };
            put(&mut tx.table(RULES)?, version, &rules)?;
            tx.emit(
                NewEvent::about(&actor, PortalEvent::RulesPublished { version })
                    .to(Audience::Everyone),
            )?;
            audit_tx(
                tx,
                &actor,
                "streamer_rules.publish",
                &version.to_string(),
                json!({"chars": text.chars().count()}),
            )?;
            Ok(rules)
        })
        .await
}

/// A streamer accepts `version`, which must be the current one (`conflict` otherwise: they
/// read an older text).
pub async fn accept_rules(ctx: &Ctx, streamer_id: &str, version: u64) -> AppResult<Acceptance> {
    let id = streamer_id.to_owned();
    ctx.store
        .write(move |tx| {
            let current = current_rules(tx)?
                .ok_or_else(|| AppError::not_found("no rules are published yet"))?;
            if current.version != version {
                return Err(AppError::conflict(format!(
                    "version {version} is not the current one ({})",
                    current.version
                )));
            }
            let acceptance = Acceptance {
                version,
                at_ms: tx.now_ms(),
            };
            put(&mut tx.table(ACCEPTED)?, id.as_str(), &acceptance)?;
            tx.emit(NewEvent::about(
                &id,
                PortalEvent::RulesAccepted {
                    streamer_id: id.clone().into(),
                    version,
                },
            ))?;
            Ok(acceptance)
        })
        .await
}
