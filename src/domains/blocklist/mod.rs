//! blocklist: people block each other with a reason. A block takes effect at once — chat,
//! calls, gifts and favorites between the two are refused, and neither is matched with or shown
//! to the other. Other domains ask `is_blocked` / `is_blocked_tx`. The reasons feed the
//! automatic moderation rules, which need to know whether the two really met and so live above
//! this domain (`mission_control::moderation`); this domain stores the penalties they record.
//!
//! What a block undoes in other domains follows from its `user_blocked` event, through durable
//! consumers of the domains that own it: video ends a call between the two (`blocked`) and
//! favorites removes them from each other's favorites. A crash right after the block's commit
//! therefore cannot leave either in place: the consumers pick the event up after a restart.

pub mod api;
pub mod events;
mod tables;
pub use tables::TABLES;

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{NewEvent, wait_applied};
use crate::core::ids::new_id;
use crate::core::store::{SecondKeys, Tx, dec, get, put};
use crate::domains::user;
use events::BlockEvent;
use tables::*;

/// Longest comment on a block, in characters.
pub const COMMENT_CHARS_MAX: usize = 500;

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
pub enum BlockReason {
    Nudity,
    Harassment,
    Spam,
    Fake,
    Underage,
    Other,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Nudity => "nudity",
            BlockReason::Harassment => "harassment",
            BlockReason::Spam => "spam",
            BlockReason::Fake => "fake",
            BlockReason::Underage => "underage",
            BlockReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Block {
    pub blocker_id: String,
    pub blocked_id: String,
    pub reason: BlockReason,
    #[serde(default)]
    pub comment: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Penalty {
    pub id: String,
    pub user_id: String,
    pub reason: BlockReason,
    /// Who blocked them.
    pub by_user_id: String,
    pub at_ms: i64,
    /// How much the blocker's report weighs (see `ModerationConfig`).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

fn blocked_in<T: ReadableTable<(&'static str, &'static str), &'static [u8]>>(
    blocks: &T,
    a: &str,
    b: &str,
) -> AppResult<bool> {
    Ok(blocks.get((a, b))?.is_some() || blocks.get((b, a))?.is_some())
}

/// Whether either of the two blocked the other, inside a write.
pub fn is_blocked_tx(tx: &Tx, a: &str, b: &str) -> AppResult<bool> {
    blocked_in(&tx.read(BLOCKS)?, a, b)
}

/// Whether either of the two blocked the other.
pub fn is_blocked(rtx: &ReadTransaction, a: &str, b: &str) -> AppResult<bool> {
    blocked_in(&rtx.open_table(BLOCKS)?, a, b)
}

/// `blocked` when either of the two blocked the other, inside a write: the refusal every
/// domain gives (calls, chat, gifts, favorites).
pub fn refuse_if_blocked_tx(tx: &Tx, a: &str, b: &str) -> AppResult<()> {
    refusal(is_blocked_tx(tx, a, b)?)
}

/// `blocked` when either of the two blocked the other.
pub fn refuse_if_blocked(rtx: &ReadTransaction, a: &str, b: &str) -> AppResult<()> {
    refusal(is_blocked(rtx, a, b)?)
}

fn refusal(blocked: bool) -> AppResult<()> {
    if blocked {
        return Err(AppError::new(
            Code::Blocked,
            "one of you has blocked the other",
        ));
    }
    Ok(())
}

/// Blocks `blocked_id` for `blocker_id` (again: the reason and comment are replaced) and ends
/// a call between the two.
pub async fn block(
    ctx: &Ctx,
    blocker_id: &str,
    blocked_id: &str,
    reason: BlockReason,
    comment: Option<String>,
) -> AppResult<Block> {
    if blocker_id == blocked_id {
        return Err(AppError::validation("you cannot block yourself"));
    }
    let comment = comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > COMMENT_CHARS_MAX)
    {
        return Err(AppError::validation(format!(
            "comment must be at most {COMMENT_CHARS_MAX} characters"
        )));
    }
    let (blocker, blocked) = (blocker_id.to_owned(), blocked_id.to_owned());
    let (block, seq) = ctx
        .store
        .write(move |tx| block_tx(tx, &blocker, &blocked, reason, comment.clone()))
        .await?;
    // The block is in force now. Its effects in other domains follow from its event; wait
    // (briefly) for them, so the caller sees the call ended and the favorites gone, as a block
    // "at once" promises. Past the wait they still happen: the consumers are durable.
    let done = wait_applied(&ctx.store, &BLOCK_EFFECTS, seq, BLOCK_EFFECTS_WAIT).await?;
    if !done {
        tracing::warn!(seq, "a block's effects are still pending after the wait");
    }
    Ok(block)
}

/// The consumers that carry out a block in the domains it affects: `video::BlockedCalls`
/// (ends a call between the two) and `favorites::BlockedFavorites` (removes their favorites).
/// They take their names from here.
pub const CALL_BLOCKS_CONSUMER: &str = "call_blocks";
pub const FAVORITE_BLOCKS_CONSUMER: &str = "favorite_blocks";
const BLOCK_EFFECTS: [&str; 2] = [CALL_BLOCKS_CONSUMER, FAVORITE_BLOCKS_CONSUMER];
/// How long a block waits for its effects before answering.
const BLOCK_EFFECTS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`block`] inside a write, after its input checks: the block and its event, in one commit.
pub fn block_tx(
    tx: &Tx,
    blocker: &str,
    blocked: &str,
    reason: BlockReason,
    comment: Option<String>,
) -> AppResult<(Block, u64)> {
    let (blocker, blocked) = (blocker.to_owned(), blocked.to_owned());
    if user::find_user_tx(tx, &blocked)?.is_none() {
        return Err(AppError::not_found("no such user"));
    }
    let block = Block {
        blocker_id: blocker.clone(),
        blocked_id: blocked.clone(),
        reason,
        comment: comment.clone(),
        at_ms: tx.now_ms(),
    };
    put(
        &mut tx.table(BLOCKS)?,
        (blocker.as_str(), blocked.as_str()),
        &block,
    )?;
    put(
        &mut tx.table(BLOCKED_BY)?,
        (blocked.as_str(), blocker.as_str()),
        &block,
    )?;
    // What a block undoes elsewhere (favorites both ways, a call between the two) and what the
    // moderation rules make of it follow from this event, durably: each owning domain
    // consumes it.
    let seq = tx.emit(NewEvent::about(
        &blocker,
        BlockEvent::Blocked {
            blocker_id: blocker.clone().into(),
            blocked_id: blocked.clone().into(),
            reason,
        },
    ))?;
    Ok((block, seq))
}

/// Records a penalty against `user_id` from `by_user_id`'s block, weighing `weight`, with its
/// event; the moderation rules decide when a block earns one.
pub fn record_penalty_tx(
    tx: &Tx,
    user_id: &str,
    reason: BlockReason,
    by_user_id: &str,
    weight: u32,
) -> AppResult<Penalty> {
    let penalty = Penalty {
        id: new_id(),
        user_id: user_id.to_owned(),
        reason,
        by_user_id: by_user_id.to_owned(),
        at_ms: tx.now_ms(),
        weight,
    };
    put(&mut tx.table(PENALTIES)?, penalty.id.as_str(), &penalty)?;
    tx.table(PENALTIES_BY_USER)?
        .insert((user_id, penalty.id.as_str()), ())?;
    tx.emit(NewEvent::about(
        user_id,
        BlockEvent::Penalty {
            penalty_id: penalty.id.clone(),
            user_id: user_id.to_owned().into(),
            reason,
            by_user_id: by_user_id.to_owned().into(),
        },
    ))?;
    Ok(penalty)
}

/// Whether `blocker` currently blocks `blocked` for `reason` (a block since replaced by another
/// reason, or lifted, no longer counts).
pub fn blocks_for_tx(
    tx: &Tx,
    blocker: &str,
    blocked: &str,
    reason: BlockReason,
) -> AppResult<bool> {
    let b: Option<Block> = get(&tx.read(BLOCKS)?, (blocker, blocked))?;
    Ok(b.is_some_and(|b| b.reason == reason))
}

/// Lifts a block; `not_found` when there was none.
pub async fn unblock(ctx: &Ctx, blocker_id: &str, blocked_id: &str) -> AppResult<()> {
    let (blocker, blocked) = (blocker_id.to_owned(), blocked_id.to_owned());
    ctx.store
        .write(move |tx| {
            // Checked before any write: a refused request must not cost the group a re-run.
            if tx
                .read(BLOCKS)?
                .get((blocker.as_str(), blocked.as_str()))?
                .is_none()
            {
                return Err(AppError::not_found("you have not blocked this user"));
            }
            tx.table(BLOCKS)?
                .remove((blocker.as_str(), blocked.as_str()))?;
            tx.table(BLOCKED_BY)?
                .remove((blocked.as_str(), blocker.as_str()))?;
            tx.emit(NewEvent::about(
                &blocker,
                BlockEvent::Unblocked {
                    blocker_id: blocker.clone().into(),
                    blocked_id: blocked.clone().into(),
                },
            ))?;
            Ok(())
        })
        .await
}

/// The people `blocker_id` blocked, in id order after `after`.
pub async fn list(
    ctx: &Ctx,
    blocker_id: &str,
    after: Option<String>,
    limit: usize,
) -> AppResult<Vec<Block>> {
    let blocker = blocker_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let t = rtx.open_table(BLOCKS)?;
            let from = after.unwrap_or_default();
            let mut out = Vec::new();
            for row in
                t.range((blocker.as_str(), from.as_str())..(blocker.as_str(), "\u{10ffff}"))?
            {
                let (k, v) = row?;
                if k.value().1 == from {
                    continue;
                }
                out.push(dec(v.value())?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
}

/// Penalties, newest first: one user's, or everyone's.
pub async fn penalties(
    ctx: &Ctx,
    user_id: Option<String>,
    limit: usize,
) -> AppResult<Vec<Penalty>> {
    ctx.store
        .read(move |rtx| {
            let all = rtx.open_table(PENALTIES)?;
            let mut out: Vec<Penalty> = Vec::new();
            match user_id {
                Some(u) => {
                    let mine = rtx.open_table(PENALTIES_BY_USER)?;
                    for row in mine
                        .range((u.as_str(), "")..(u.as_str(), "\u{10ffff}"))?
                        .rev()
                    {
                        out.extend(get::<&str, Penalty>(&all, row?.0.value().1)?);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                None => {
                    for row in all.iter()?.rev().take(limit) {
                        out.push(dec(row?.1.value())?);
                    }
                }
            }
            Ok(out)
        })
        .await
}

/// One block, if `blocker_id` blocked `blocked_id`.
pub fn find(rtx: &ReadTransaction, blocker_id: &str, blocked_id: &str) -> AppResult<Option<Block>> {
    get(&rtx.open_table(BLOCKS)?, (blocker_id, blocked_id))
}

// ---------------------------------------------------------------------------------------------
// Erasure (account deletion).

/// Removes what the person wrote in their blocks (the comments about the people they blocked).
/// The blocks themselves, and the penalties, stay: they are the moderation record, by id only.
pub fn erase_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    let blocks: Vec<Block> = crate::core::store::records_under(&tx.read(BLOCKS)?, user_id)?;
    for mut b in blocks.into_iter().filter(|b| b.comment.is_some()) {
        b.comment = None;
        let (blocker, blocked) = (b.blocker_id.as_str(), b.blocked_id.as_str());
        put(&mut tx.table(BLOCKS)?, (blocker, blocked), &b)?;
        put(&mut tx.table(BLOCKED_BY)?, (blocked, blocker), &b)?;
    }
    Ok(())
}

/// The blocks either way between one person and anyone else, for walking a list (a feed
/// page): both directions are read into sets once when small, looked up one by one otherwise.
pub struct BlockCheck {
    blocked: SecondKeys<&'static [u8]>,
    blocked_by: SecondKeys<&'static [u8]>,
}

/// Blocks in one direction read into memory for a [`BlockCheck`], at most; past it, lookups.
/// A page checks a few dozen people: reading more blocks than that costs more than looking
/// each of them up (measured: at 1,000, a viewer with 200 blocks made feed pages 3× slower).
const BLOCK_CHECK_SET_MAX: usize = 32;

impl BlockCheck {
    pub fn open(rtx: &ReadTransaction, user_id: &str) -> AppResult<BlockCheck> {
        Ok(BlockCheck {
            blocked: SecondKeys::open(rtx, BLOCKS, user_id, BLOCK_CHECK_SET_MAX)?,
            blocked_by: SecondKeys::open(rtx, BLOCKED_BY, user_id, BLOCK_CHECK_SET_MAX)?,
        })
    }

    /// Whether the person blocked `other` or `other` blocked them.
    pub fn either_way(&self, other: &str) -> AppResult<bool> {
        Ok(self.blocked.contains(other)? || self.blocked_by.contains(other)?)
    }
}
