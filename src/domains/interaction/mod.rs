//! interaction: per pair of people, what each did toward the other — profile views, calls and
//! call seconds, text messages, gift coins, favorite state — and when they last interacted.
//! Fed by the event log through the `interactions` consumer, exactly once per event;
//! `between` is the function other domains use. Profile views are collected in memory and
//! written in batches (`ProfileViews`), so reading a profile never waits for a write.

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use std::collections::HashMap;

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::app::Ctx;
use crate::core::error::AppResult;
use crate::core::events::{Audience, Consumer, Event, NewEvent, take_unapplied};
use crate::core::store::{Store, Tx, get, newest_first, put};
use crate::domains::chat::events::ChatEvent;
use crate::domains::chat::model::MessageKind;
use crate::domains::favorites::events::FavoriteEvent;
use crate::domains::gift::events::GiftEvent;
use crate::domains::video::events::CallEvent;
use crate::domains::video::model::CallState;
use events::InteractionEvent;
use tables::*;

/// What one person did toward another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub profile_views: u64,
    /// Calls they made that connected, and their seconds.
    pub calls: u64,
    pub call_seconds: u64,
    /// Text messages they sent.
    pub messages: u64,
    /// Coins they spent on gifts to the other.
    pub gift_coins: u64,
    /// Whether the other is among their favorites.
    pub favorite: bool,
    /// The pair's last interaction (either way), unix ms; 0 for never.
    pub last_at_ms: i64,
}

/// What `a` did toward `b`, and what `b` did toward `a`.
pub fn between(rtx: &ReadTransaction, a: &str, b: &str) -> AppResult<(Stats, Stats)> {
    let t = rtx.open_table(INTERACTIONS)?;
    Ok((
        get(&t, (a, b))?.unwrap_or_default(),
        get(&t, (b, a))?.unwrap_or_default(),
    ))
}

/// [`between`] inside a write.
pub fn between_tx(tx: &Tx, a: &str, b: &str) -> AppResult<(Stats, Stats)> {
    let t = tx.read(INTERACTIONS)?;
    Ok((
        get(&t, (a, b))?.unwrap_or_default(),
        get(&t, (b, a))?.unwrap_or_default(),
    ))
}

/// `me`'s interactions with one person (`with`) or, without `with`, one page of everyone,
/// most recent first, after the `(last interaction ms, other)` cursor, in one read: rows of
/// `(other, what me did, what they did)`, and whether the page was full (more may follow).
pub async fn page(
    ctx: &Ctx,
    me: &str,
    with: Option<String>,
    before: Option<(i64, String)>,
    limit: usize,
) -> AppResult<(Vec<(String, Stats, Stats)>, bool)> {
    let me = me.to_owned();
    ctx.store
        .read(move |rtx| {
            let others: Vec<String> = match with {
                Some(w) => vec![w],
                None => newest_first(
                    &rtx.open_table(INTERACTIONS_BY_TIME)?,
                    &me,
                    before.as_ref(),
                    limit,
                )?
                .into_iter()
                .map(|(_, other)| other)
                .collect(),
            };
            let full = others.len() == limit;
            let mut rows = Vec::with_capacity(others.len());
            for other in others {
                let (mine, theirs) = between(rtx, &me, &other)?;
                rows.push((other, mine, theirs));
            }
            Ok((rows, full))
        })
        .await
}

/// Moves the pair to `at_ms` in `me`'s recent list and returns what `me` did toward `them`.
fn touch(tx: &Tx, me: &str, them: &str, at_ms: i64) -> AppResult<Stats> {
    let mut s: Stats = get(&tx.read(INTERACTIONS)?, (me, them))?.unwrap_or_default();
    if at_ms > s.last_at_ms {
        let mut index = tx.table(INTERACTIONS_BY_TIME)?;
        if s.last_at_ms > 0 {
            index.remove((me, s.last_at_ms, them))?;
        }
        index.insert((me, at_ms, them), ())?;
        s.last_at_ms = at_ms;
    }
    Ok(s)
}

/// Applies `change` to what `actor` did toward `other` at `at_ms`, and moves the pair up both
/// people's recent lists.
fn record(
    tx: &Tx,
    actor: &str,
    other: &str,
    at_ms: i64,
    change: impl FnOnce(&mut Stats),
) -> AppResult<()> {
    if actor == other {
        return Ok(());
    }
    let mut mine = touch(tx, actor, other, at_ms)?;
    change(&mut mine);
    put(&mut tx.table(INTERACTIONS)?, (actor, other), &mine)?;
    let theirs = touch(tx, other, actor, at_ms)?;
    put(&mut tx.table(INTERACTIONS)?, (other, actor), &theirs)?;
    Ok(())
}

/// Whether an event may feed interactions (a cheap check before decoding it).
fn feeds(e: &Event) -> bool {
    // Decoding is cheap next to a commit: only the kinds that feed interactions cost a write.
    e.is::<InteractionEvent>()
        || e.decoded::<ChatEvent>().is_some_and(|c| {
            matches!(
                c,
                ChatEvent::Message {
                    kind: MessageKind::Text,
                    ..
                }
            )
        })
        || e.decoded::<CallEvent>()
            .is_some_and(|c| matches!(c, CallEvent::Ended { .. }))
        || e.is::<GiftEvent>()
        || e.is::<FavoriteEvent>()
}

/// Applies one event of the log; events it does not know change nothing.
fn apply(tx: &Tx, e: &Event) -> AppResult<()> {
    let at = e.at_ms;
    if let Some(InteractionEvent::ProfileViewed {
        viewer_id,
        user_id,
        count,
    }) = e.decoded()
    {
        record(tx, &viewer_id, &user_id, at, |s| s.profile_views += count)?;
    } else if let Some(ChatEvent::Message {
        kind: MessageKind::Text,
        sender_id,
        ..
    }) = e.decoded()
    {
        if let Audience::Users(members) = &e.audience
            && let Some(other) = members.iter().find(|m| **m != sender_id)
        {
            record(tx, &sender_id, other, at, |s| s.messages += 1)?;
        }
    } else if let Some(CallEvent::Ended { summary }) = e.decoded() {
        if summary.state == CallState::Ended && summary.connected {
            let secs = u64::try_from(summary.duration_seconds).unwrap_or(0);
            record(tx, &summary.caller_id, &summary.callee_id, at, |s| {
                s.calls += 1;
                s.call_seconds += secs;
            })?;
        }
    } else if let Some(GiftEvent::Sent {
        from_user_id,
        to_user_id,
        price,
        ..
    }) = e.decoded()
    {
        let coins = u64::try_from(price).unwrap_or(0);
        record(tx, &from_user_id, &to_user_id, at, |s| {
            s.gift_coins += coins
        })?;
    } else if let Some(fav) = e.decoded::<FavoriteEvent>() {
        let (user_id, favorite_id, on) = match fav {
            FavoriteEvent::Added {
                user_id,
                favorite_id,
            } => (user_id, favorite_id, true),
            FavoriteEvent::Removed {
                user_id,
                favorite_id,
            } => (user_id, favorite_id, false),
        };
        record(tx, &user_id, &favorite_id, at, |s| s.favorite = on)?;
    }
    Ok(())
}

/// The consumer's name: whoever reads interactions right after an event waits for it.
pub const CONSUMER: &str = "interactions";
const NAME: &str = CONSUMER;

/// The `interactions` consumer.
pub struct Interactions {
    pub store: Store,
}

impl Consumer for Interactions {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        // Most of the log (ledger postings, presence) is not about interactions: a batch with
        // nothing to apply costs no write; `run_consumer` moves the cursor past it.
        if !events.iter().any(feeds) {
            return Ok(());
        }
        self.store
            .write(move |tx| {
                for e in take_unapplied(tx, NAME, &events)? {
                    apply(tx, e)?;
                }
                Ok(())
            })
            .await
    }
}

/// Views queued before the recorder writes them, at most; past it, views are dropped (they
/// are statistics, and reading a profile must not wait).
const VIEWS_QUEUE_MAX: usize = 65_536;
const VIEWS_BATCH_MAX: usize = 4096;

/// Collects profile views and writes them as `profile_viewed` events, one per pair per batch.
pub struct ProfileViews {
    queue: mpsc::Sender<(String, String)>,
}

impl ProfileViews {
    pub fn start(store: Store) -> ProfileViews {
        let (queue, rx) = mpsc::channel(VIEWS_QUEUE_MAX);
        tokio::spawn(write_views(store, rx));
        ProfileViews { queue }
    }

    /// `viewer` looked at `viewed`'s profile.
    pub fn viewed(&self, viewer: &str, viewed: &str) {
        if viewer != viewed {
            let _ = self.queue.try_send((viewer.to_owned(), viewed.to_owned()));
        }
    }
}

async fn write_views(store: Store, mut rx: mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::with_capacity(VIEWS_BATCH_MAX);
    while rx.recv_many(&mut batch, VIEWS_BATCH_MAX).await > 0 {
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for pair in batch.drain(..) {
            *counts.entry(pair).or_default() += 1;
        }
        let written = store
            .write(move |tx| {
                for ((viewer, viewed), count) in &counts {
                    tx.emit(NewEvent::about(
                        viewed,
                        events::InteractionEvent::ProfileViewed {
                            viewer_id: viewer.to_string().into(),
                            user_id: viewed.to_string().into(),
                            count: *count,
                        },
                    ))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing profile views failed");
        }
    }
}
