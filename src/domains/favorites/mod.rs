//! favorites: people mark others as favorites (users follow streamers, mostly). Streamers list
//! their followers, public profiles show both counts, and `favorite_added` / `favorite_removed`
//! feed interactions; when a favorite comes online, the notification domain tells followers.

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use redb::{ReadTransaction, ReadableTable};

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Consumer, Event, NewEvent, apply_once};
use crate::core::store::{SecondKeys, Store, Tx, newest_first};
use crate::domains::blocklist::{self, events::BlockEvent};
use crate::domains::user;
use events::FavoriteEvent;
use tables::*;

/// Favorites one person may have.
pub const FAVORITES_MAX: u64 = 5000;

/// Followers and following of someone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub followers: u64,
    pub following: u64,
}

fn counts_in(t: &impl ReadableTable<&'static str, (u64, u64)>, user_id: &str) -> AppResult<Counts> {
    Ok(t.get(user_id)?
        .map(|v| {
            let (followers, following) = v.value();
            Counts {
                followers,
                following,
            }
        })
        .unwrap_or_default())
}

pub fn counts(rtx: &ReadTransaction, user_id: &str) -> AppResult<Counts> {
    counts_in(&rtx.open_table(FAVORITE_COUNTS)?, user_id)
}

pub fn counts_tx(tx: &Tx, user_id: &str) -> AppResult<Counts> {
    counts_in(&tx.read(FAVORITE_COUNTS)?, user_id)
}

fn bump(tx: &Tx, user_id: &str, followers: i64, following: i64) -> AppResult<()> {
    let c = counts_tx(tx, user_id)?;
    let value = (
        c.followers.saturating_add_signed(followers),
        c.following.saturating_add_signed(following),
    );
    tx.table(FAVORITE_COUNTS)?.insert(user_id, value)?;
    Ok(())
}

/// Adds a favorite; adding one again changes nothing.
pub async fn add(ctx: &Ctx, user_id: &str, favorite_id: &str) -> AppResult<()> {
    if user_id == favorite_id {
        return Err(AppError::validation("you cannot favorite yourself"));
    }
    let (me, them) = (user_id.to_owned(), favorite_id.to_owned());
    ctx.store
        .write(move |tx| {
            user::find_user_tx(tx, &them)?
                .filter(|u| u.is_reachable(tx.now_ms()))
                .ok_or_else(|| AppError::not_found("no such user"))?;
            if tx
                .read(FAVORITES)?
                .get((me.as_str(), them.as_str()))?
                .is_some()
            {
                return Ok(());
            }
            blocklist::refuse_if_blocked_tx(tx, &me, &them)?;
            if counts_tx(tx, &me)?.following >= FAVORITES_MAX {
                return Err(AppError::conflict(format!(
                    "at most {FAVORITES_MAX} favorites"
                )));
            }
            let now = tx.now_ms();
            tx.table(FAVORITES)?
                .insert((me.as_str(), them.as_str()), now)?;
            tx.table(FAVORITES_BY_TIME)?
                .insert((me.as_str(), now, them.as_str()), ())?;
            tx.table(FOLLOWERS_BY_TIME)?
                .insert((them.as_str(), now, me.as_str()), ())?;
            bump(tx, &me, 0, 1)?;
            bump(tx, &them, 1, 0)?;
            tx.emit(NewEvent::about(
                &me,
                FavoriteEvent::Added {
                    user_id: me.clone().into(),
                    favorite_id: them.clone().into(),
                },
            ))?;
            Ok(())
        })
        .await
}

/// Removes a favorite; removing one that is not there changes nothing.
pub async fn remove(ctx: &Ctx, user_id: &str, favorite_id: &str) -> AppResult<()> {
    let (me, them) = (user_id.to_owned(), favorite_id.to_owned());
    ctx.store.write(move |tx| remove_tx(tx, &me, &them)).await
}

/// The `favorite_blocks` consumer: a block removes the two from each other's favorites (so
/// neither hears when the other comes online). It follows the log, durably; the removal and
/// the consumer's cursor are written in one transaction.
pub struct BlockedFavorites {
    pub store: Store,
}

pub const BLOCKED_FAVORITES: &str = blocklist::FAVORITE_BLOCKS_CONSUMER;

impl Consumer for BlockedFavorites {
    fn name(&self) -> &'static str {
        BLOCKED_FAVORITES
    }

    async fn handle(&self, events: Vec<Event>) -> AppResult<()> {
        apply_once(&self.store, BLOCKED_FAVORITES, events, |tx, block| {
            if let BlockEvent::Blocked {
                blocker_id,
                blocked_id,
                ..
            } = block
                // A block lifted since (and a favorite added again) is left alone.
                && blocklist::is_blocked_tx(tx, &blocker_id, &blocked_id)?
            {
                remove_tx(tx, &blocker_id, &blocked_id)?;
                remove_tx(tx, &blocked_id, &blocker_id)?;
            }
            Ok(())
        })
        .await
    }
}

/// Removes a favorite inside a write.
fn remove_tx(tx: &Tx, me: &str, them: &str) -> AppResult<()> {
    let Some(since) = tx.read(FAVORITES)?.get((me, them))?.map(|v| v.value()) else {
        return Ok(());
    };
    tx.table(FAVORITES)?.remove((me, them))?;
    tx.table(FAVORITES_BY_TIME)?.remove((me, since, them))?;
    tx.table(FOLLOWERS_BY_TIME)?.remove((them, since, me))?;
    bump(tx, me, 0, -1)?;
    bump(tx, them, -1, 0)?;
    tx.emit(NewEvent::about(
        me,
        FavoriteEvent::Removed {
            user_id: me.to_owned().into(),
            favorite_id: them.to_owned().into(),
        },
    ))?;
    Ok(())
}

/// Favorites read into memory for [`Favorites::open`], at most; past it, lookups (a page
/// checks at most 50 people, so reading more than a few dozen costs more than it saves).
const FAVORITES_SET_MAX: usize = 32;

/// One person's favorites, for checking the people of a list (a feed page) against them.
pub struct Favorites(SecondKeys<i64>);

impl Favorites {
    pub fn open(rtx: &ReadTransaction, user_id: &str) -> AppResult<Favorites> {
        Ok(Favorites(SecondKeys::open(
            rtx,
            FAVORITES,
            user_id,
            FAVORITES_SET_MAX,
        )?))
    }

    /// Whether `other` is among them.
    pub fn contains(&self, other: &str) -> AppResult<bool> {
        self.0.contains(other)
    }
}

/// Which side of the favorites relation a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The people `user_id` has among their favorites.
    Favorites,
    /// The people who have `user_id` among their favorites.
    Followers,
}

/// One page of `user_id`'s favorites or followers, newest first, after the `(since, user)`
/// cursor, in its own read: `(since ms, user id)` rows.
pub async fn page(
    ctx: &Ctx,
    listing: Listing,
    user_id: &str,
    before: Option<(i64, String)>,
    limit: usize,
) -> AppResult<Vec<(i64, String)>> {
    let uid = user_id.to_owned();
    ctx.store
        .read(move |rtx| match listing {
            Listing::Favorites => newest_first(
                &rtx.open_table(FAVORITES_BY_TIME)?,
                &uid,
                before.as_ref(),
                limit,
            ),
            Listing::Followers => followers_page(rtx, &uid, before.as_ref(), limit),
        })
        .await
}

/// One page of `user_id`'s followers, newest first, after the `(since, follower)` cursor.
pub fn followers_page(
    rtx: &ReadTransaction,
    user_id: &str,
    before: Option<&(i64, String)>,
    limit: usize,
) -> AppResult<Vec<(i64, String)>> {
    newest_first(&rtx.open_table(FOLLOWERS_BY_TIME)?, user_id, before, limit)
}
