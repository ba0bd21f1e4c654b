//! The panel: cohorts that label people with tags. A cohort has a name, a tag, and either a
//! rule (role, country, language, gender, age, platform, registration, activity, spending,
//! purchases, wallet) or a list an admin keeps by hand. The tags are read by the gallery
//! (filters, boosts), tariffs (a cohort's override), chat auto-add, feature flags and the
//! admin's broadcasts.
//!
//! Rule membership is kept current two ways: the `panel` consumer re-judges the people the
//! events are about (sign-up, role, profile, purchases, spending, coming online), and a
//! periodic pass re-judges everyone (`panel.recompute_interval_secs`): conditions that change
//! with time alone (age, "registered within", "active within") move there. Each join and
//! leave is an event (`cohort_joined`, `cohort_left`), which the gallery reads.
//!
//! Every membership writer (consumer, periodic pass, admin edits) reads its facts and writes
//! its verdicts under one lock, so no verdict from an older read overwrites a newer one.

pub mod api;
pub mod events;
pub mod model;
mod tables;
pub use tables::TABLES;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde_json::json;

use crate::app::Ctx;
use crate::config::PanelConfig;
use crate::core::auth::Principal;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Consumer, Event, NewEvent, take_unapplied};
use crate::core::ids::new_id;
use crate::core::store::{Reads, Tx, dec, get, put, second_keys};
use crate::domains::balance::model::{Account, TransferKind};
use crate::domains::{audit, balance, payment, profile, user};
use events::CohortEvent;
use model::{Cohort, CohortRule, Facts, Membership};
use tables::*;

/// The consumer's name (its cursor).
pub const CONSUMER: &str = "panel";
/// Ids a preview returns as a sample.
pub const PREVIEW_SAMPLE: usize = 20;
/// Membership changes one write carries, at most (each is an event).
const CHANGES_PER_WRITE: usize = 2_000;
/// Where the consumer keeps how far it has counted spending (apart from its own cursor, which
/// moves only once the batch's verdicts are written too).
const SPENT_CURSOR: &str = "panel_coins_spent";

/// The panel's shared state.
pub struct Panel {
    /// Held by whoever judges and writes memberships (see the module's notes).
    membership: tokio::sync::Mutex<()>,
    /// A preview reads every account: one at a time.
    previews: tokio::sync::Semaphore,
}

impl Default for Panel {
    fn default() -> Self {
        Panel {
            membership: tokio::sync::Mutex::new(()),
            previews: tokio::sync::Semaphore::new(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading tags and cohorts.

/// The tags of the cohorts `user_id` is in, sorted, without repeats (two cohorts may share one).
pub fn tags(r: &impl Reads, user_id: &str) -> AppResult<Vec<String>> {
    Ok(tags_with_visibility(r, user_id)?
        .into_iter()
        .map(|(t, _)| t)
        .collect())
}

/// Each tag of `user_id` with whether clients may see it (any of its cohorts shows it).
pub fn tags_with_visibility(r: &impl Reads, user_id: &str) -> AppResult<Vec<(String, bool)>> {
    Ok(tag_visibility(&cohorts_of(r, user_id)?))
}

/// The tags of `cohorts`, sorted, without repeats, each with whether any of its cohorts shows
/// it to clients.
pub fn tag_visibility(cohorts: &[Cohort]) -> Vec<(String, bool)> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for c in cohorts {
        *out.entry(c.tag.clone()).or_default() |= c.visible;
    }
    out.into_iter().collect()
}

/// The cohorts `user_id` is in.
pub fn cohorts_of(r: &impl Reads, user_id: &str) -> AppResult<Vec<Cohort>> {
    let cohorts = r.read_table(COHORTS)?;
    let mut out = Vec::new();
    for cohort_id in second_keys(&r.read_table(USER_COHORTS)?, user_id)? {
        if let Some(c) = get::<_, Cohort>(&cohorts, cohort_id.as_str())? {
            out.push(c);
        }
    }
    Ok(out)
}

fn all_cohorts(r: &impl Reads) -> AppResult<Vec<Cohort>> {
    r.read_table(COHORTS)?
        .iter()?
        .map(|row| dec(row?.1.value()))
        .collect()
}

pub async fn list(ctx: &Ctx) -> AppResult<Vec<Cohort>> {
    ctx.store.read(all_cohorts).await
}

pub async fn find(ctx: &Ctx, cohort_id: &str) -> AppResult<Cohort> {
    let id = cohort_id.to_owned();
    ctx.store
        .read(move |rtx| get(&rtx.open_table(COHORTS)?, id.as_str()))
        .await?
        .ok_or_else(|| AppError::not_found("no such cohort"))
}

/// A page of a cohort's members by user id: `(user id, joined at ms)`.
pub fn members_after(
    rtx: &ReadTransaction,
    cohort_id: &str,
    after: Option<&str>,
    limit: usize,
) -> AppResult<Vec<(String, i64)>> {
    let t = rtx.open_table(MEMBERS)?;
    let lo = (cohort_id, after.unwrap_or(""));
    let mut out = Vec::new();
    for row in t.range(lo..=(cohort_id, "\u{10ffff}"))? {
        let (k, v) = row?;
        let id = k.value().1;
        if after == Some(id) {
            continue;
        }
        out.push((id.to_owned(), v.value()));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

pub async fn members_page(
    ctx: &Ctx,
    cohort_id: &str,
    after: Option<String>,
    limit: usize,
) -> AppResult<Vec<(String, i64)>> {
    find(ctx, cohort_id).await?;
    let id = cohort_id.to_owned();
    ctx.store
        .read(move |rtx| members_after(rtx, &id, after.as_deref(), limit))
        .await
}

// ---------------------------------------------------------------------------------------------
// Facts and verdicts.

/// What a rule looks at for `user_id` (`None`: no such account, or erased).
pub fn facts_of(r: &impl Reads, user_id: &str, today: time::Date) -> AppResult<Option<Facts>> {
    let Some(u) = user::find_user(r, user_id)? else {
        return Ok(None);
    };
    if u.erased_at_ms.is_some() {
        return Ok(None);
    }
    let p = profile::profile_of(r, user_id)?;
    let presence = user::presence_of(r, user_id)?;
    let age = p
        .birth_date
        .as_deref()
        .and_then(|d| profile::model::parse_date(d).ok())
        .map(|b| profile::model::age_on(b, today).max(0) as u32);
    Ok(Some(Facts {
        role: u.role,
        country: p.country,
        languages: p
            .languages
            .iter()
            .map(|l| l.split('-').next().unwrap_or("").to_ascii_lowercase())
            .collect(),
        gender: p.gender,
        age,
        platform: u.platform,
        created_at_ms: u.created_at_ms,
        online: presence.online,
        last_seen_ms: presence.last_seen_ms,
        coins_spent: r
            .read_table(COINS_SPENT)?
            .get(user_id)?
            .map_or(0, |v| v.value()),
        has_purchased: payment::has_purchased(r, user_id)?,
        wallet: balance::balance(r, &Account::wallet(user_id))?,
    }))
}

/// One membership to change: (cohort, user, joins).
type Change = (String, String, bool);

/// The joins and leaves that bring the rule cohorts among `cohorts` up to date for `ids`.
fn verdicts(
    rtx: &ReadTransaction,
    cohorts: &[Cohort],
    ids: &[String],
    now_ms: i64,
) -> AppResult<Vec<Change>> {
    if !cohorts.iter().any(|c| c.rule().is_some()) {
        return Ok(Vec::new());
    }
    let today = crate::core::clock::to_datetime(now_ms).date();
    let members = rtx.open_table(MEMBERS)?;
    let mut out = Vec::new();
    for id in ids {
        let facts = facts_of(rtx, id, today)?;
        for c in cohorts {
            let Some(rule) = c.rule() else { continue };
            let wants = facts.as_ref().is_some_and(|f| rule.matches(f, now_ms));
            let has = members.get((c.id.as_str(), id.as_str()))?.is_some();
            if wants != has {
                out.push((c.id.clone(), id.clone(), wants));
            }
        }
    }
    Ok(out)
}

/// Applies changes, each with its event; a cohort removed meanwhile is skipped. Member counts
/// move with them.
fn apply_tx(tx: &Tx, changes: &[Change]) -> AppResult<()> {
    let mut cohorts: HashMap<String, Option<Cohort>> = HashMap::new();
    for (cohort_id, user_id, joins) in changes {
        let cohort = match cohorts.get_mut(cohort_id) {
            Some(c) => c,
            None => {
                let c = get(&tx.read(COHORTS)?, cohort_id.as_str())?;
                cohorts.entry(cohort_id.clone()).or_insert(c)
            }
        };
        let Some(cohort) = cohort else { continue };
        let key = (cohort_id.as_str(), user_id.as_str());
        let (tag, user) = (cohort.tag.clone(), user_id.clone().into());
        if *joins {
            // Judged before an erasure that committed since: an erased account joins nothing.
            if user::find_user(tx, user_id)?.is_none_or(|u| u.erased_at_ms.is_some()) {
                continue;
            }
            if tx.table(MEMBERS)?.insert(key, tx.now_ms())?.is_some() {
                continue;
            }
            tx.table(USER_COHORTS)?
                .insert((user_id.as_str(), cohort_id.as_str()), ())?;
            cohort.members += 1;
            tx.emit(NewEvent::about(
                user_id,
                CohortEvent::Joined {
                    cohort_id: cohort_id.clone(),
                    tag,
                    user_id: user,
                },
            ))?;
        } else {
            if tx.table(MEMBERS)?.remove(key)?.is_none() {
                continue;
            }
            tx.table(USER_COHORTS)?
                .remove((user_id.as_str(), cohort_id.as_str()))?;
            cohort.members = cohort.members.saturating_sub(1);
            tx.emit(NewEvent::about(
                user_id,
                CohortEvent::Left {
                    cohort_id: cohort_id.clone(),
                    tag,
                    user_id: user,
                },
            ))?;
        }
    }
    let mut t = tx.table(COHORTS)?;
    for c in cohorts.into_values().flatten() {
        put(&mut t, c.id.as_str(), &c)?;
    }
    Ok(())
}

/// Re-judges `ids` against the rule cohorts (`only` one, or all) and writes what changed.
/// The caller holds the membership lock. Returns how many memberships changed.
async fn settle(ctx: &Ctx, ids: Vec<String>, only: Option<&str>) -> AppResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = ctx.store.now_ms();
    let only = only.map(str::to_owned);
    let changes = ctx
        .store
        .read(move |rtx| {
            let mut cohorts = all_cohorts(rtx)?;
            cohorts.retain(|c| c.rule().is_some() && only.as_ref().is_none_or(|o| *o == c.id));
            verdicts(rtx, &cohorts, &ids, now)
        })
        .await?;
    let n = changes.len();
    for part in changes.chunks(CHANGES_PER_WRITE) {
        let part = part.to_vec();
        ctx.store.write(move |tx| apply_tx(tx, &part)).await?;
    }
    Ok(n)
}

/// Re-judges every account against the rule cohorts (`only` one, or all), a chunk per write,
/// taking the membership lock for each chunk (so the consumer is never held up for a whole
/// pass).
async fn settle_everyone(ctx: &Ctx, only: Option<&str>) -> AppResult<usize> {
    let mut pages = user::AccountPages::new(ctx.config.panel.recompute_chunk);
    let mut changed = 0;
    loop {
        let ids = pages.next(&ctx.store).await?;
        if ids.is_empty() {
            return Ok(changed);
        }
        let _lock = ctx.panel.membership.lock().await;
        changed += settle(ctx, ids, only).await?;
    }
}

/// The periodic pass: every account against every rule cohort. Returns memberships changed.
pub async fn recompute_all(ctx: &Ctx) -> AppResult<usize> {
    settle_everyone(ctx, None).await
}

// ---------------------------------------------------------------------------------------------
// Admin edits.

/// A cohort as an admin gives it.
pub struct CohortInput {
    pub name: String,
    pub tag: String,
    pub visible: bool,
    pub membership: Membership,
}

impl CohortInput {
    fn validate(self) -> AppResult<CohortInput> {
        let name = crate::core::text::Text::<1, 80>::parse("name", &self.name)?;
        Ok(CohortInput {
            name: name.into_string(),
            tag: model::parse_tag(&self.tag)?,
            visible: self.visible,
            membership: match self.membership {
                Membership::Rule(r) => Membership::Rule(r.validate()?),
                Membership::Hand => Membership::Hand,
            },
        })
    }
}

/// Creates (`cohort_id` none) or replaces a cohort; a rule cohort's members are judged before
/// this returns. Audited.
pub async fn save(
    ctx: &Ctx,
    admin: &Principal,
    cohort_id: Option<&str>,
    input: CohortInput,
) -> AppResult<Cohort> {
    let input = input.validate()?;
    let cfg: PanelConfig = ctx.config.panel.clone();
    let lock = ctx.panel.membership.lock().await;
    let actor = admin.user_id.to_string();
    let id = cohort_id.map(str::to_owned);
    // A new tag or visibility reaches whoever keeps tags through `cohort_saved` (the gallery
    // re-reads the members); membership itself moves only when the rule does.
    let saved = ctx
        .store
        .write(move |tx| {
            let now = tx.now_ms();
            let mut t = tx.table(COHORTS)?;
            let before: Option<Cohort> = match &id {
                Some(id) => Some(
                    get(&t, id.as_str())?.ok_or_else(|| AppError::not_found("no such cohort"))?,
                ),
                None => None,
            };
            if before.is_none() && t.len()? >= cfg.cohorts_max as u64 {
                return Err(AppError::conflict(format!(
                    "there are {} cohorts already, the most kept (panel.cohorts_max)",
                    cfg.cohorts_max
                )));
            }
            let c = Cohort {
                id: id.clone().unwrap_or_else(new_id),
                name: input.name.clone(),
                tag: input.tag.clone(),
                visible: input.visible,
                membership: input.membership.clone(),
                members: before.as_ref().map_or(0, |b| b.members),
                created_at_ms: before.as_ref().map_or(now, |b| b.created_at_ms),
                updated_at_ms: now,
                updated_by: actor.clone(),
            };
            put(&mut t, c.id.as_str(), &c)?;
            drop(t);
            tx.emit(NewEvent::new(CohortEvent::Saved {
                cohort_id: c.id.clone(),
                tag: c.tag.clone(),
            }))?;
            audit::record_tx(
                tx,
                &actor,
                "panel.cohort_save",
                &c.id,
                json!({"name": c.name, "tag": c.tag, "membership": c.membership}),
            )?;
            let rule_changed = before.is_none_or(|b| b.rule() != c.rule());
            Ok((c, rule_changed))
        })
        .await?;
    drop(lock);
    let (saved, rule_changed) = saved;
    if rule_changed && saved.rule().is_some() {
        settle_everyone(ctx, Some(&saved.id)).await?;
    }
    find(ctx, &saved.id).await
}

/// Removes a cohort: its members leave it (a chunk per write, each with `cohort_left`), then
/// the cohort goes. Audited.
pub async fn delete(ctx: &Ctx, admin: &Principal, cohort_id: &str) -> AppResult<()> {
    let _lock = ctx.panel.membership.lock().await;
    let cohort = find(ctx, cohort_id).await?;
    if cohort.rule().is_some() {
        // No verdict may add members while they are taken out: the rule goes first.
        let id = cohort.id.clone();
        ctx.store
            .write(move |tx| {
                let mut t = tx.table(COHORTS)?;
                if let Some(mut c) = get::<_, Cohort>(&t, id.as_str())? {
                    c.membership = Membership::Hand;
                    put(&mut t, id.as_str(), &c)?;
                }
                Ok(())
            })
            .await?;
    }
    let chunk = ctx.config.panel.recompute_chunk;
    loop {
        let id = cohort.id.clone();
        let members = ctx
            .store
            .read(move |rtx| members_after(rtx, &id, None, chunk))
            .await?;
        if members.is_empty() {
            break;
        }
        let changes: Vec<Change> = members
            .into_iter()
            .map(|(u, _)| (cohort.id.clone(), u, false))
            .collect();
        ctx.store.write(move |tx| apply_tx(tx, &changes)).await?;
    }
    let actor = admin.user_id.to_string();
    ctx.store
        .write(move |tx| {
            tx.table(COHORTS)?.remove(cohort.id.as_str())?;
            tx.emit(NewEvent::new(CohortEvent::Deleted {
                cohort_id: cohort.id.clone(),
                tag: cohort.tag.clone(),
            }))?;
            audit::record_tx(
                tx,
                &actor,
                "panel.cohort_delete",
                &cohort.id,
                json!({"name": cohort.name, "tag": cohort.tag}),
            )
        })
        .await
}

/// Adds people to a hand-made cohort (those already in are skipped); how many joined.
/// Audited.
pub async fn add_members(
    ctx: &Ctx,
    admin: &Principal,
    cohort_id: &str,
    user_ids: Vec<String>,
) -> AppResult<usize> {
    edit_hand_list(ctx, admin, cohort_id, user_ids, true).await
}

/// Removes someone from a hand-made cohort. Audited.
pub async fn remove_member(
    ctx: &Ctx,
    admin: &Principal,
    cohort_id: &str,
    user_id: &str,
) -> AppResult<()> {
    edit_hand_list(ctx, admin, cohort_id, vec![user_id.to_owned()], false).await?;
    Ok(())
}

async fn edit_hand_list(
    ctx: &Ctx,
    admin: &Principal,
    cohort_id: &str,
    mut user_ids: Vec<String>,
    joins: bool,
) -> AppResult<usize> {
    let max = ctx.config.panel.hand_members_per_request_max;
    if user_ids.is_empty() || user_ids.len() > max {
        return Err(AppError::validation(format!(
            "give 1–{max} user ids (panel.hand_members_per_request_max)"
        )));
    }
    user_ids.sort();
    user_ids.dedup();
    let _lock = ctx.panel.membership.lock().await;
    let actor = admin.user_id.to_string();
    let id = cohort_id.to_owned();
    ctx.store
        .write(move |tx| {
            let cohort: Cohort = get(&tx.read(COHORTS)?, id.as_str())?
                .ok_or_else(|| AppError::not_found("no such cohort"))?;
            if cohort.rule().is_some() {
                return Err(AppError::conflict(
                    "this cohort's members come from its rule; only a hand-made cohort's list \
                     is edited",
                ));
            }
            let members = tx.read(MEMBERS)?;
            let mut changes = Vec::new();
            for u in &user_ids {
                let listed = members.get((id.as_str(), u.as_str()))?.is_some();
                if joins && !listed {
                    user::find_user(tx, u)?
                        .filter(|r| r.erased_at_ms.is_none())
                        .ok_or_else(|| AppError::not_found(format!("no such user: {u}")))?;
                    changes.push((id.clone(), u.clone(), true));
                } else if !joins && listed {
                    changes.push((id.clone(), u.clone(), false));
                }
            }
            drop(members);
            if changes.is_empty() && !joins {
                return Err(AppError::not_found("they are not in this cohort"));
            }
            apply_tx(tx, &changes)?;
            audit::record_tx(
                tx,
                &actor,
                if joins {
                    "panel.members_add"
                } else {
                    "panel.members_remove"
                },
                &id,
                json!({"userIds": user_ids, "changed": changes.len()}),
            )?;
            Ok(changes.len())
        })
        .await
}

/// How many accounts a rule matches now, and the first few of them (by id). Reads every
/// account; one preview runs at a time.
pub async fn preview(ctx: &Ctx, rule: CohortRule) -> AppResult<(u64, Vec<String>)> {
    let rule = rule.validate()?;
    let _one = ctx
        .panel
        .previews
        .acquire()
        .await
        .map_err(AppError::internal)?;
    let now = ctx.store.now_ms();
    let rule = Arc::new(rule);
    let mut pages = user::AccountPages::new(ctx.config.panel.recompute_chunk);
    let (mut size, mut sample) = (0u64, Vec::new());
    loop {
        let ids = pages.next(&ctx.store).await?;
        if ids.is_empty() {
            break;
        }
        let r = rule.clone();
        let matched = ctx
            .store
            .read(move |rtx| {
                let today = crate::core::clock::to_datetime(now).date();
                let mut matched = Vec::new();
                for id in ids {
                    if facts_of(rtx, &id, today)?.is_some_and(|f| r.matches(&f, now)) {
                        matched.push(id);
                    }
                }
                Ok(matched)
            })
            .await?;
        size += matched.len() as u64;
        sample.extend(matched.into_iter().take(PREVIEW_SAMPLE - sample.len()));
    }
    Ok((size, sample))
}

// ---------------------------------------------------------------------------------------------
// Erasure.

/// Takes an erased account out of every cohort (no events: the log keeps nothing of them).
pub fn erase_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    for cohort_id in second_keys(&tx.read(USER_COHORTS)?, user_id)? {
        tx.table(USER_COHORTS)?
            .remove((user_id, cohort_id.as_str()))?;
        if tx
            .table(MEMBERS)?
            .remove((cohort_id.as_str(), user_id))?
            .is_some()
        {
            let mut t = tx.table(COHORTS)?;
            if let Some(mut c) = get::<_, Cohort>(&t, cohort_id.as_str())? {
                c.members = c.members.saturating_sub(1);
                put(&mut t, cohort_id.as_str(), &c)?;
            }
        }
    }
    tx.table(COINS_SPENT)?.remove(user_id)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The consumer.

/// Coins that count as spent: what a wallet (or the coins held from it) pays for calls and
/// gifts. A `balance_changed` event names the account by its label and is about its owner.
fn spent_by(e: &Event) -> Option<(String, i64)> {
    use crate::domains::balance::events::BalanceEvent;
    let Some(BalanceEvent::Changed {
        account,
        delta,
        kind,
        ..
    }) = e.decoded::<BalanceEvent>()
    else {
        return None;
    };
    let spending = matches!(
        kind,
        TransferKind::CallCharge
            | TransferKind::Gift
            | TransferKind::GiftFee
            | TransferKind::HoldSettle
    );
    let wallet_like = account == "wallet" || account == "held";
    if spending && wallet_like && delta < 0 {
        Some((e.subject.clone()?, -delta))
    } else {
        None
    }
}

/// The people an event may move between rule cohorts.
fn touched(e: &Event) -> Option<String> {
    use crate::domains::balance::events::BalanceEvent;
    use crate::domains::payment::events::PaymentEvent;
    use crate::domains::profile::events::ProfileEvent;
    use crate::domains::user::events::UserEvent;
    if let Some(u) = e.decoded::<UserEvent>() {
        return match u {
            UserEvent::SignedUp { user_id, .. }
            | UserEvent::RoleChanged { user_id, .. }
            | UserEvent::Erased { user_id }
            | UserEvent::PresenceChanged {
                user_id,
                online: true,
                ..
            } => Some(user_id.to_string()),
            _ => None,
        };
    }
    if e.is::<ProfileEvent>() {
        return e.subject.clone();
    }
    if let Some(p) = e.decoded::<PaymentEvent>() {
        return Some(match p {
            PaymentEvent::PurchaseCompleted { user_id, .. }
            | PaymentEvent::PurchaseRefunded { user_id, .. }
            | PaymentEvent::PurchaseRefundReversed { user_id, .. } => user_id.to_string(),
        });
    }
    if let Some(BalanceEvent::Changed { account, .. }) = e.decoded::<BalanceEvent>() {
        return (account == "wallet" || account == "held")
            .then(|| e.subject.clone())
            .flatten();
    }
    None
}

/// Keeps spending totals (each ledger event counted once) and rule memberships current.
pub struct PanelFeeder {
    pub ctx: Arc<Ctx>,
}

impl Consumer for PanelFeeder {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        let ids: HashSet<String> = events.iter().filter_map(touched).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let _lock = self.ctx.panel.membership.lock().await;
        if events.iter().any(|e| spent_by(e).is_some()) {
            self.ctx
                .store
                .write(move |tx| {
                    for e in take_unapplied(tx, SPENT_CURSOR, &events)? {
                        if let Some((user_id, coins)) = spent_by(e) {
                            let mut t = tx.table(COINS_SPENT)?;
                            let total = t.get(user_id.as_str())?.map_or(0, |v| v.value());
                            t.insert(user_id.as_str(), total.saturating_add(coins))?;
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        // Spending has its own cursor, so a batch whose verdicts fail is judged again when
        // the consumer retries it (its own cursor moves only after this returns).
        settle(&self.ctx, ids.into_iter().collect(), None).await?;
        Ok(())
    }
}
