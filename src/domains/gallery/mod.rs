//! The gallery: each viewer's feed of partners. Users see online streamers, the ones online
//! longest first; streamers see online users, those who can pay for a call first, then the
//! most recently online. Nobody sees themselves, anyone blocked either way, banned or erased
//! accounts, or profiles not approved.
//!
//! How it stays fast under presence churn:
//! - a tantivy index (`index.rs`) holds one small document per account, fed by a durable
//!   consumer that re-reads each touched account from redb and commits once per batch — a
//!   burst of presence changes is a few commits, not thousands;
//! - the ranked list for a (viewer role, filters) pair is kept for `gallery.ranked_cache_ms`
//!   and shared by every viewer; each viewer's exclusions (self, blocks) are applied when a page
//!   is cut from it, so one list serves everyone;
//! - the first page pins the list it was cut from (a cursor names it), so paging on while
//!   people come and go never repeats or skips anyone; a pinned list lives
//!   `gallery.cursor_ttl_secs` (`cursor_expired` after), and at most `gallery.cursors_max` are
//!   kept.

pub mod api;
pub mod events;
pub mod index;
pub mod rules;
mod tables;
pub use tables::TABLES;

use std::collections::HashMap;
use std::sync::Arc;

use redb::ReadTransaction;

use crate::app::Ctx;
use crate::config::GalleryConfig;
use crate::core::auth::{Principal, Role};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Consumer, Event};
use crate::core::ids::random_token;
use crate::core::store::Store;
use crate::domains::balance::model::Account;
use crate::domains::billing::model::CallKind;
use crate::domains::{balance, billing, blocklist, favorites, media, panel, profile, user, video};
use index::{Entry, Filters, GalleryIndex};

/// The consumer's name (its cursor).
pub const CONSUMER: &str = "gallery";
/// Events the consumer takes at once, at most.
const BATCH_MAX: usize = 4_096;
/// Accounts read and written to the index at once while rebuilding.
const REBUILD_CHUNK: usize = 1_000;
/// Page sizes.
pub const PAGE_DEFAULT: usize = 20;
/// Entries of a ranked list one page looks at, at most.
pub const SCAN_PER_PAGE: usize = 1_000;
pub const PAGE_MAX: usize = 50;

/// A ranked list, as built from the index: pinned under its id the moment it is built, so
/// every first page cut from it shares one pin.
pub struct RankedList {
    id: String,
    items: Vec<(String, bool)>,
}

type Ranked = Arc<RankedList>;

/// Pinned lists by id (with when they were pinned, unix ms), and their ids in pinning order.
type Pins = (
    HashMap<String, (i64, Ranked)>,
    std::collections::VecDeque<String>,
);

/// Ids one live signal lists per kind of change, at most; past it the signal says `refresh`.
const SIGNAL_IDS_MAX: usize = 500;

/// Changes waiting for the next live signal.
#[derive(Debug, Default)]
struct Pending {
    offline: Vec<String>,
    busy: Vec<String>,
    free: Vec<String>,
    available: Vec<String>,
    refresh: bool,
}

impl Pending {
    fn push(list: &mut Vec<String>, refresh: &mut bool, id: &str) {
        if list.len() < SIGNAL_IDS_MAX {
            list.push(id.to_owned());
        } else {
            *refresh = true;
        }
    }

    fn is_empty(&self) -> bool {
        self.offline.is_empty()
            && self.busy.is_empty()
            && self.free.is_empty()
            && self.available.is_empty()
            && !self.refresh
    }
}

/// What a card shows, kept in memory beside the index (the consumer refreshes it with the
/// document), so cutting a page reads no profile from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct CardBase {
    pub display_name: Option<String>,
    pub age: Option<i32>,
    pub country: Option<String>,
    pub languages: Vec<String>,
    pub avatar_media_id: Option<String>,
    pub online_since_ms: Option<i64>,
    /// Still shown at all (a pinned list may name someone banned or hidden since).
    pub listed: bool,
    /// Every cohort tag they carry (rules boost and filter by them).
    pub tags: Vec<String>,
    /// The tags clients may see.
    pub visible_tags: Vec<String>,
}

/// A ranked list shared by every viewer of one (rule, filters).
struct Shared {
    built: std::time::Instant,
    list: Ranked,
    /// One request is building its successor: the others keep using this one meanwhile.
    rebuilding: bool,
}

/// Whether an entry is shown at all, and busy.
fn shown(e: Option<&Entry>) -> Option<bool> {
    e.filter(|e| e.listed && e.online).map(|e| e.busy)
}

/// The index and the caches in front of it.
pub struct Gallery {
    pub index: GalleryIndex,
    config: GalleryConfig,
    ranked: parking_lot::Mutex<HashMap<(rules::Rule, Filters), Shared>>,
    /// list id → (pinned at, unix ms; the list), and the ids in pinning order (the oldest goes
    /// first when `cursors_max` are kept).
    pinned: parking_lot::Mutex<Pins>,
    /// What each indexed account last was in the feeds (shown, busy), to tell what changed.
    shown: parking_lot::Mutex<HashMap<String, bool>>,
    pending: parking_lot::Mutex<Pending>,
    cards: parking_lot::RwLock<HashMap<String, Arc<CardBase>>>,
    /// The rules by viewer role, as last read or saved.
    rules: parking_lot::RwLock<HashMap<Role, rules::Rule>>,
}

impl Gallery {
    /// Opens the index under the data directory; `true` when it must be filled from redb.
    pub fn open(data_dir: &std::path::Path, config: &GalleryConfig) -> AppResult<(Gallery, bool)> {
        let (index, fresh) = GalleryIndex::open(&data_dir.join("gallery"))?;
        Ok((
            Gallery {
                index,
                config: config.clone(),
                ranked: Default::default(),
                pinned: Default::default(),
                shown: Default::default(),
                pending: Default::default(),
                cards: Default::default(),
                rules: Default::default(),
            },
            fresh,
        ))
    }

    /// Notes what `entries` change in the feeds, for the next live signal.
    fn note_changes(&self, entries: &[(String, Option<Entry>)]) {
        let mut shown_now = self.shown.lock();
        let mut p = self.pending.lock();
        let p = &mut *p;
        for (id, entry) in entries {
            let before = shown_now.get(id).copied();
            let after = shown(entry.as_ref());
            match after {
                Some(busy) => shown_now.insert(id.clone(), busy),
                None => shown_now.remove(id),
            };
            match (before, after) {
                (Some(_), None) => Pending::push(&mut p.offline, &mut p.refresh, id),
                (None, Some(_)) => Pending::push(&mut p.available, &mut p.refresh, id),
                (Some(false), Some(true)) => Pending::push(&mut p.busy, &mut p.refresh, id),
                (Some(true), Some(false)) => Pending::push(&mut p.free, &mut p.refresh, id),
                _ => {}
            }
        }
    }

    /// Drops the shared ranked lists and the rules read (a rule changed).
    fn forget_ranked(&self) {
        self.ranked.lock().clear();
        self.rules.write().clear();
    }

    fn note_cards(&self, cards: Vec<(String, Option<CardBase>)>) {
        let mut map = self.cards.write();
        for (id, card) in cards {
            match card {
                Some(c) => map.insert(id, Arc::new(c)),
                None => map.remove(&id),
            };
        }
    }

    /// The feed rule of a viewer role.
    async fn rule(&self, store: &crate::core::store::Store, role: Role) -> AppResult<rules::Rule> {
        if let Some(r) = self.rules.read().get(&role) {
            return Ok(r.clone());
        }
        let rule = store.read(move |rtx| rules::rule_for(rtx, role)).await?;
        self.rules.write().insert(role, rule.clone());
        Ok(rule)
    }

    /// The shared list for (rule, filters): the cached one while it is younger than
    /// `ranked_cache_ms`; past that one request rebuilds it while the others (within twice
    /// the age) still get the old one, so expiry is one index query, not one per request.
    fn ranked(&self, rule: &rules::Rule, filters: &Filters, now_ms: i64) -> AppResult<Ranked> {
        let key = (rule.clone(), filters.clone());
        let ttl = std::time::Duration::from_millis(self.config.ranked_cache_ms);
        if let Some(shared) = self.ranked.lock().get_mut(&key) {
            let age = shared.built.elapsed();
            if age < ttl || (shared.rebuilding && age < 2 * ttl) {
                return Ok(shared.list.clone());
            }
            shared.rebuilding = true;
        }
        let built = self.build_ranked(rule, filters, now_ms);
        let mut cache = self.ranked.lock();
        let list = match built {
            Ok(list) => list,
            Err(e) => {
                if let Some(shared) = cache.get_mut(&key) {
                    shared.rebuilding = false;
                }
                return Err(e);
            }
        };
        if cache.len() >= self.config.ranked_lists_max {
            cache.clear();
        }
        cache.insert(
            key,
            Shared {
                built: std::time::Instant::now(),
                list: list.clone(),
                rebuilding: false,
            },
        );
        Ok(list)
    }

    /// Reads a ranked list from the index, applies the rule's busy mode and boosts, and pins it.
    fn build_ranked(
        &self,
        rule: &rules::Rule,
        filters: &Filters,
        now_ms: i64,
    ) -> AppResult<Ranked> {
        let mut list = self.index.ranked(rule, filters)?;
        if rule.busy == rules::BusyMode::Hide {
            list.retain(|(_, busy)| !busy);
        }
        if !rule.boost_tags.is_empty() {
            // A stable sort: each boosted group keeps the index's order.
            let cards = self.cards.read();
            list.sort_by_cached_key(|(id, _)| {
                cards
                    .get(id)
                    .map_or(rule.boost_tags.len(), |c| rule.boost_group(&c.tags))
            });
        }
        let list: Ranked = Arc::new(RankedList {
            id: random_token(12),
            items: list,
        });
        self.pin(&list, now_ms);
        Ok(list)
    }

    fn pin(&self, list: &Ranked, now_ms: i64) {
        let mut guard = self.pinned.lock();
        let (pinned, order) = &mut *guard;
        while pinned.len() >= self.config.cursors_max {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            pinned.remove(&oldest);
        }
        pinned.insert(list.id.clone(), (now_ms, list.clone()));
        order.push_back(list.id.clone());
    }

    fn pinned(&self, id: &str, now_ms: i64) -> AppResult<Ranked> {
        let ttl_ms = self.config.cursor_ttl_secs as i64 * 1000;
        let mut guard = self.pinned.lock();
        let (pinned, order) = &mut *guard;
        match pinned.get(id) {
            Some((at, list)) if now_ms - *at < ttl_ms => Ok(list.clone()),
            _ => {
                // Expired lists go with the oldest: they were pinned before every later one.
                while let Some(first) = order.front()
                    && pinned
                        .get(first)
                        .is_none_or(|(at, _)| now_ms - *at >= ttl_ms)
                {
                    let first = order.pop_front().unwrap_or_default();
                    pinned.remove(&first);
                }
                Err(AppError::new(
                    Code::CursorExpired,
                    "this feed's cursor expired; start again from the first page",
                ))
            }
        }
    }
}

/// One profile in a feed.
#[derive(Debug, Clone)]
pub struct Card {
    pub user_id: String,
    /// What the card shows of them, as kept beside the index.
    pub base: Arc<CardBase>,
    /// Their avatar, checked still approved as the page is cut (the index may lag a
    /// moderator's take-down by moments, and a URL must never be issued for it).
    pub avatar_media_id: Option<String>,
    pub busy: bool,
    pub following: bool,
}

pub struct Page {
    pub items: Vec<Card>,
    pub next_cursor: Option<String>,
}

/// A page of `viewer`'s feed: the first (no cursor) cut from the current ranked list, which
/// it pins; the next ones from the list their cursor names.
pub async fn feed(
    ctx: &Ctx,
    viewer: &Principal,
    filters: Filters,
    cursor: Option<&str>,
    limit: usize,
) -> AppResult<Page> {
    let now = ctx.store.now_ms();
    let (list_id, list, start) = match cursor {
        None => {
            let rule = ctx.gallery.rule(&ctx.store, viewer.role).await?;
            let list = ctx.gallery.ranked(&rule, &filters, now)?;
            (list.id.clone(), list, 0)
        }
        Some(c) => {
            let (id, offset) = c
                .split_once('.')
                .and_then(|(id, o)| Some((id, o.parse::<usize>().ok()?)))
                .ok_or_else(|| AppError::validation("cursor is not one this server gave"))?;
            (id.to_owned(), ctx.gallery.pinned(id, now)?, offset)
        }
    };
    let limit = limit.clamp(1, PAGE_MAX);
    let viewer_id = viewer.user_id.as_str();
    // A page is a few dozen point lookups over hot pages: read inline, not on the blocking
    // pool. Exclusions are the viewer's own, so they are applied here, to the shared list: a
    // block made while paging takes effect on the next page.
    let (items, next) = ctx.store.read_inline(|rtx| {
        let blocks = blocklist::BlockCheck::open(rtx, viewer_id)?;
        let mut picked = Vec::with_capacity(limit);
        let mut at = start;
        // At most `SCAN_PER_PAGE` entries are looked at for one page (someone who blocked
        // thousands gets shorter pages, each with a cursor). Blocks are looked up first, with
        // no lock held; the cards' lock is then taken once per round, only to copy cards.
        let end = list.items.len().min(start + SCAN_PER_PAGE);
        while at < end && picked.len() < limit {
            let wanted = limit - picked.len();
            let mut allowed = Vec::with_capacity(wanted);
            while at < end && allowed.len() < wanted {
                let (id, busy) = &list.items[at];
                at += 1;
                if id != viewer_id && !blocks.either_way(id)? {
                    allowed.push((id, *busy));
                }
            }
            // Someone banned or hidden since the list was built is left out here.
            let cards = ctx.gallery.cards.read();
            for (id, busy) in allowed {
                if let Some(base) = cards.get(id).filter(|c| c.listed) {
                    picked.push((id.clone(), busy, base.clone()));
                }
            }
        }
        let favorites = favorites::Favorites::open(rtx, viewer_id)?;
        let items = picked
            .into_iter()
            .map(|(user_id, busy, base)| {
                Ok(Card {
                    following: favorites.contains(&user_id)?,
                    avatar_media_id: match &base.avatar_media_id {
                        Some(id) if media::is_public(rtx, id)? => Some(id.clone()),
                        _ => None,
                    },
                    user_id,
                    base,
                    busy,
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        Ok((items, (at < list.items.len()).then_some(at)))
    })?;
    Ok(Page {
        items,
        next_cursor: next.map(|at| format!("{list_id}.{at}")),
    })
}

/// What the index should hold for `user_id` now (`None`: nothing, e.g. erased).
/// What a streamer needs to be shown (`approved`): an approved avatar, a verified KYC case.
#[derive(Debug, Clone, Copy)]
struct Needs {
    photo: bool,
    kyc: bool,
}

fn entry_of(
    rtx: &ReadTransaction,
    user_id: &str,
    today: time::Date,
    now: i64,
    need: Needs,
) -> AppResult<Option<(Entry, CardBase)>> {
    let Some(u) = user::find_user(rtx, user_id)? else {
        return Ok(None);
    };
    if u.erased_at_ms.is_some() {
        return Ok(None);
    }
    let p = profile::profile_of(rtx, user_id)?;
    let presence = user::presence_of(rtx, user_id)?;
    let age = p
        .birth_date
        .as_deref()
        .and_then(|d| profile::model::parse_date(d).ok())
        .map(|b| profile::model::age_on(b, today).max(0) as u64);
    // A user can pay when their wallet covers the first charge of a direct call to a streamer.
    let can_pay = u.role == Role::User && {
        let first = billing::resolve(rtx, CallKind::Direct, Role::User, Role::Streamer, None)?
            .and_then(|t| t.payer_schedule.next_after(None))
            .map_or(0, |(_, coins)| coins);
        balance::balance(rtx, &Account::wallet(user_id))? >= first.max(1)
    };
    let listed = !u.is_banned(now) && !p.hidden_from_gallery;
    // Only an approved avatar is shown; a streamer without one is not shown at all (when the
    // rule is on).
    let avatar = match &p.avatar_media_id {
        Some(id) if !media::public_among(rtx, std::slice::from_ref(id))?.is_empty() => {
            Some(id.clone())
        }
        _ => None,
    };
    let approved = u.role != Role::Streamer
        || ((avatar.is_some() || !need.photo)
            && (!need.kyc || crate::domains::mission_control::kyc::is_verified(rtx, user_id)?));
    let tags = panel::tags_with_visibility(rtx, user_id)?;
    let card = CardBase {
        display_name: p.display_name.clone(),
        age: age.map(|a| a as i32),
        country: p.country.clone(),
        languages: p.languages.clone(),
        avatar_media_id: avatar,
        online_since_ms: presence.online_since_ms,
        listed,
        tags: tags.iter().map(|(t, _)| t.clone()).collect(),
        visible_tags: tags
            .iter()
            .filter(|(_, visible)| *visible)
            .map(|(t, _)| t.clone())
            .collect(),
    };
    let entry = Entry {
        user_id: user_id.to_owned(),
        role: u.role,
        listed,
        approved,
        online: presence.online,
        online_since_ms: presence.online_since_ms.unwrap_or(0),
        busy: video::in_call(rtx, user_id)?,
        can_pay,
        country: p.country.clone(),
        languages: p
            .languages
            .iter()
            .map(|l| l.split('-').next().unwrap_or("").to_ascii_lowercase())
            .collect(),
        gender: p
            .gender
            .and_then(|g| serde_json::to_value(g).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        age,
        tags: card.tags.clone(),
    };
    Ok(Some((entry, card)))
}

/// Re-reads `ids` from redb and writes them to the index in one commit.
async fn refresh(store: &Store, gallery: &Arc<Gallery>, ids: Vec<String>) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let now = store.now_ms();
    let today = crate::core::clock::to_datetime(now).date();
    let need = Needs {
        photo: gallery.config.streamers_need_approved_photo,
        kyc: gallery.config.streamers_need_kyc,
    };
    let entries = store
        .read(move |rtx| {
            ids.into_iter()
                .map(|id| Ok((id.clone(), entry_of(rtx, &id, today, now, need)?)))
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    let (entries, cards): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .map(|(id, both)| match both {
            Some((e, c)) => ((id.clone(), Some(e)), (id, Some(c))),
            None => ((id.clone(), None), (id, None)),
        })
        .unzip();
    // A commit writes and syncs segment files: off the async workers.
    let gallery = gallery.clone();
    tokio::task::spawn_blocking(move || {
        gallery.index.apply(&entries)?;
        gallery.note_changes(&entries);
        gallery.note_cards(cards);
        Ok(())
    })
    .await
    .map_err(AppError::internal)?
}

/// Sends what changed in the feeds since the last call to every live connection subscribed to
/// `gallery` (the server calls it once a second); whether there was anything.
pub fn send_signal(ctx: &Ctx) -> AppResult<bool> {
    let p = std::mem::take(&mut *ctx.gallery.pending.lock());
    if p.is_empty() {
        return Ok(false);
    }
    let ids = |v: Vec<String>| v.into_iter().map(Into::into).collect();
    let signal = crate::core::events::NewEvent::new(events::GalleryEvent::Changed {
        offline: ids(p.offline),
        busy: ids(p.busy),
        free: ids(p.free),
        available: ids(p.available),
        refresh: p.refresh,
    })
    .to(crate::core::events::Audience::Everyone)
    .into_signal(ctx.store.now_ms())?;
    ctx.live.relay(signal);
    Ok(true)
}

/// Fills the index from redb from scratch (a new or outdated index, `duet gallery reindex`),
/// then points the consumer at the log head read before: what happened since is applied on
/// top. `progress(done, total)` follows it. Returns how many accounts.
pub async fn rebuild(
    store: &Store,
    gallery: &Arc<Gallery>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> AppResult<u64> {
    let head = store.head_seq();
    let total = store.read(user::count).await?;
    gallery.index.clear()?;
    let mut pages = user::AccountPages::new(REBUILD_CHUNK);
    let mut n = 0;
    loop {
        let ids = pages.next(store).await?;
        if ids.is_empty() {
            break;
        }
        n += ids.len() as u64;
        refresh(store, gallery, ids).await?;
        progress(n, total.max(n));
    }
    crate::core::events::set_cursor(store, CONSUMER, head).await?;
    Ok(n)
}

/// Which accounts an event may change in the index: the people an account, profile, presence,
/// call, wallet, cohort or media event is about (a photo approved or taken down decides whether
/// a streamer is shown).
fn touched(e: &Event) -> Vec<String> {
    use crate::domains::video::events::CallEvent;
    use crate::domains::{balance::events::BalanceEvent, profile::events::ProfileEvent};
    use crate::domains::{panel::events::CohortEvent, user::events::UserEvent};
    if let Some(CohortEvent::Joined { user_id, .. } | CohortEvent::Left { user_id, .. }) =
        e.decoded::<CohortEvent>()
    {
        return vec![user_id.to_string()];
    }
    let relevant = e.is::<UserEvent>()
        || e.is::<ProfileEvent>()
        || e.is::<crate::domains::media::events::MediaEvent>()
        || e.is::<crate::domains::mission_control::events::KycEvent>()
        || e.is::<CallEvent>()
        || e.is::<BalanceEvent>();
    if !relevant {
        return Vec::new();
    }
    let mut ids: Vec<String> = e.subject.iter().cloned().collect();
    if let crate::core::events::Audience::Users(users) = &e.audience {
        ids.extend(users.iter().map(|u| u.to_string()));
    }
    if let Some(CallEvent::State {
        caller_id,
        callee_id,
        ..
    }) = e.decoded::<CallEvent>()
    {
        ids.push(caller_id.to_string());
        ids.push(callee_id.to_string());
    }
    if let Some(
        UserEvent::PresenceChanged { user_id, .. }
        | UserEvent::RoleChanged { user_id, .. }
        | UserEvent::Banned { user_id, .. }
        | UserEvent::Unbanned { user_id }
        | UserEvent::SignedUp { user_id, .. }
        | UserEvent::Erased { user_id },
    ) = e.decoded::<UserEvent>()
    {
        ids.push(user_id.to_string());
    }
    ids
}

/// Re-reads every member of a cohort into the index, a chunk per commit.
async fn refresh_members(ctx: &Ctx, cohort_id: &str) -> AppResult<()> {
    let mut after: Option<String> = None;
    loop {
        let (id, a) = (cohort_id.to_owned(), after.clone());
        let page = ctx
            .store
            .read(move |rtx| panel::members_after(rtx, &id, a.as_deref(), REBUILD_CHUNK))
            .await?;
        let Some((last, _)) = page.last().cloned() else {
            return Ok(());
        };
        refresh(
            &ctx.store,
            &ctx.gallery,
            page.into_iter().map(|(u, _)| u).collect(),
        )
        .await?;
        after = Some(last);
    }
}

/// The durable consumer that keeps the index in step with redb.
pub struct GalleryFeeder {
    pub ctx: Arc<Ctx>,
}

impl Consumer for GalleryFeeder {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    /// A commit costs about the same for 10 changes or 4,000: under churn, or behind after a
    /// busy spell, one batch takes everything waiting.
    fn batch_max(&self) -> usize {
        BATCH_MAX
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        let mut oldest = None;
        let mut ids = Vec::new();
        for e in &events {
            let touched = touched(e);
            if !touched.is_empty() {
                oldest = oldest.or(Some(e.at_ms));
                ids.extend(touched);
            }
        }
        ids.sort();
        ids.dedup();
        // A cohort's new tag or visibility: its members' documents and cards are re-read.
        for e in &events {
            if let Some(crate::domains::panel::events::CohortEvent::Saved { cohort_id, .. }) =
                e.decoded()
            {
                refresh_members(&self.ctx, &cohort_id).await?;
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        // A commit costs the same for one change or a thousand: under churn, wait until the
        // oldest change is `commit_interval_ms` old, so the changes arriving meanwhile share the
        // commit; a backlog (its oldest change already that old) is committed at once.
        let interval_ms = self.ctx.config.gallery.commit_interval_ms as i64;
        let age_ms = oldest.map_or(interval_ms, |at| self.ctx.store.now_ms() - at);
        if age_ms < interval_ms {
            tokio::time::sleep(std::time::Duration::from_millis(
                (interval_ms - age_ms) as u64,
            ))
            .await;
        }
        refresh(&self.ctx.store, &self.ctx.gallery, ids).await?;
        if let Some(at) = oldest {
            let lag_ms = (self.ctx.store.now_ms() - at).max(0);
            self.ctx
                .metrics
                .gallery_freshness
                .observe(lag_ms as f64 / 1000.0);
            if lag_ms as u64 > self.ctx.config.gallery.freshness_ms_max {
                tracing::warn!(lag_ms, "the gallery index is behind its freshness target");
            }
        }
        Ok(())
    }
}
