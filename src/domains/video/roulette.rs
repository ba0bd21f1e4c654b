//! Roulette: users wait for a partner; streamers switch themselves available. The matcher
//! pairs the longest-waiting user with the streamer who has been available longest, skipping a
//! streamer who is in a call or was one of the user's last few partners, and starts a
//! `roulette` call at once (connecting, no ringing) under the roulette tariff. It runs inside
//! the single writer, so a streamer is never booked twice.

use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::new_id;
use crate::core::store::{Tx, dec, get, put};
use crate::domains::billing::{self, model::CallKind};
use crate::domains::{blocklist, profile};

use super::media::Media;
use super::model::{Call, CallState};
use super::tables::{
    ACTIVE_CALLS, CALLS, CALLS_BY_USER, ROULETTE_AVAILABLE, ROULETTE_LANGUAGES, ROULETTE_STREAMERS,
    ROULETTE_USERS,
};
use super::{Action, check_first_charge, open_call, save, state_event};

/// How many of a user's last roulette partners they are not matched with again.
pub const RECENT_PARTNERS: usize = 3;
/// People one matcher pass looks at, at most.
const MATCH_SCAN_MAX: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Waiting {
    pub since_ms: i64,
    #[serde(default)]
    pub languages: Vec<String>,
}

/// What `join` and `next` tell the user.
#[derive(Debug, Clone)]
pub enum Outcome {
    Waiting,
    Matched(Box<Call>),
}

/// The partners of `user_id`'s last few roulette calls.
fn recent_partners(tx: &Tx, user_id: &str) -> AppResult<Vec<String>> {
    let idx = tx.read(CALLS_BY_USER)?;
    let calls = tx.read(CALLS)?;
    let mut out = Vec::new();
    for row in idx
        .range((user_id, "")..(user_id, "\u{10ffff}"))?
        .rev()
        .take(50)
    {
        let (k, _) = row?;
        if let Some(c) = get::<&str, Call>(&calls, k.value().1)?
            && c.kind == CallKind::Roulette
        {
            out.push(c.other(user_id).to_owned());
            if out.len() >= RECENT_PARTNERS {
                break;
            }
        }
    }
    Ok(out)
}

/// Pairs waiting users with available streamers; returns the calls started.
pub fn match_waiting(tx: &Tx, media: &super::media::Media) -> AppResult<Vec<Call>> {
    let mut users: Vec<(String, Waiting)> = Vec::new();
    for row in tx.read(ROULETTE_USERS)?.iter()?.take(MATCH_SCAN_MAX) {
        let (k, v) = row?;
        users.push((k.value().to_owned(), dec(v.value())?));
    }
    users.sort_by_key(|(_, w)| w.since_ms);
    let mut streamers: Vec<(String, Waiting)> = Vec::new();
    for row in tx.read(ROULETTE_STREAMERS)?.iter()?.take(MATCH_SCAN_MAX) {
        let (k, v) = row?;
        streamers.push((k.value().to_owned(), dec(v.value())?));
    }
    streamers.sort_by_key(|(_, w)| w.since_ms);
    let mut started = Vec::new();
    for (user_id, waiting) in users {
        if streamers.is_empty() {
            break;
        }
        let busy = |id: &str| -> AppResult<bool> { Ok(tx.read(ACTIVE_CALLS)?.get(id)?.is_some()) };
        if busy(&user_id)? {
            continue;
        }
        let recent = recent_partners(tx, &user_id)?;
        // The longest-waiting eligible streamer who speaks one of the user's languages; when
        // none does (or the user named none), the longest-waiting eligible streamer.
        let mut first_eligible = None;
        let mut speaks = None;
        for (i, (streamer_id, s)) in streamers.iter().enumerate() {
            if recent.contains(streamer_id)
                || busy(streamer_id)?
                || blocklist::is_blocked_tx(tx, &user_id, streamer_id)?
            {
                continue;
            }
            first_eligible.get_or_insert(i);
            if profile::shares_language(&waiting.languages, &s.languages) {
                speaks = Some(i);
                break;
            }
            if waiting.languages.is_empty() {
                break;
            }
        }
        let Some(i) = speaks.or(first_eligible) else {
            continue;
        };
        let streamer_id = streamers[i].0.clone();
        let Some(tariff) = billing::resolve(
            tx,
            CallKind::Roulette,
            Role::User,
            Role::Streamer,
            Some(&streamer_id),
        )?
        else {
            return Ok(started);
        };
        if check_first_charge(tx, &tariff, &user_id, &streamer_id).is_err() {
            // The user can no longer pay: they leave the queue; the streamer stays available.
            tx.table(ROULETTE_USERS)?.remove(user_id.as_str())?;
            continue;
        }
        streamers.remove(i);
        // Out of the queue while in the call; `requeue` puts them back when it ends.
        tx.table(ROULETTE_STREAMERS)?.remove(streamer_id.as_str())?;
        let mut call = open_call(
            tx,
            &new_id(),
            CallKind::Roulette,
            &user_id,
            &streamer_id,
            &tariff,
            CallState::Connecting,
        )?;
        call.provider = media.choose(tx, tx.now_ms(), None)?.map(str::to_owned);
        save(tx, &call)?;
        tx.table(ROULETTE_USERS)?.remove(user_id.as_str())?;
        tx.emit(
            NewEvent::about(
                &user_id,
                super::events::CallEvent::RouletteMatched {
                    call_id: call.id.clone(),
                    user_id: user_id.clone().into(),
                    streamer_id: streamer_id.clone().into(),
                },
            )
            .to(Audience::Users(vec![
                user_id.clone().into(),
                streamer_id.clone().into(),
            ])),
        )?;
        tx.emit(state_event(&call))?;
        started.push(call);
    }
    Ok(started)
}

/// A user joins the queue (or is matched at once).
/// Joins the queue. `languages` are remembered for later joins (`next`); `None` uses the
/// remembered ones.
pub async fn join(
    ctx: &Arc<Ctx>,
    user_id: &str,
    languages: Option<Vec<String>>,
) -> AppResult<Outcome> {
    let user_id = user_id.to_owned();
    let owner = ctx.clone();
    ctx.store
        .write(move |tx| join_tx(tx, &owner.call_media, &user_id, languages.clone()))
        .await
}

/// Why `user_id` may not join the queue now, if anything: in a call, no roulette tariff, or a
/// wallet that cannot pay its first checkpoint. Reads only.
fn join_refusal(tx: &Tx, user_id: &str) -> AppResult<()> {
    if tx.read(ACTIVE_CALLS)?.get(user_id)?.is_some() {
        return Err(AppError::new(Code::Busy, "you are in a call"));
    }
    let tariff = billing::resolve(tx, CallKind::Roulette, Role::User, Role::Streamer, None)?
        .ok_or_else(|| AppError::forbidden("roulette has no tariff"))?;
    check_first_charge(tx, &tariff, user_id, "")
}

/// [`join`] inside a write: refused (before any write) per [`join_refusal`].
fn join_tx(
    tx: &Tx,
    media: &Media,
    user_id: &str,
    languages: Option<Vec<String>>,
) -> AppResult<Outcome> {
    let user_id = user_id.to_owned();
    join_refusal(tx, &user_id)?;
    let languages = match &languages {
        Some(l) => {
            put(&mut tx.table(ROULETTE_LANGUAGES)?, user_id.as_str(), l)?;
            l.clone()
        }
        None => get(&tx.read(ROULETTE_LANGUAGES)?, user_id.as_str())?.unwrap_or_default(),
    };
    let waiting = Waiting {
        since_ms: tx.now_ms(),
        languages,
    };
    put(&mut tx.table(ROULETTE_USERS)?, user_id.as_str(), &waiting)?;
    let started = match_waiting(tx, media)?;
    Ok(match started.into_iter().find(|c| c.caller_id == user_id) {
        Some(c) => Outcome::Matched(Box::new(c)),
        None => Outcome::Waiting,
    })
}

/// `next`: hangs up the caller's current call, if any, and joins the queue again with the
/// languages of their last `join`, in one commit. The hang-up stands even when joining is
/// refused (the refusal is answered after the commit).
pub async fn next(ctx: &Arc<Ctx>, user_id: &str) -> AppResult<Outcome> {
    let user_id = user_id.to_owned();
    let owner = ctx.clone();
    let max_ms = ctx.config.calls.max_duration_secs as i64 * 1000;
    ctx.store
        .write(move |tx| {
            let current = tx
                .read(ACTIVE_CALLS)?
                .get(user_id.as_str())?
                .map(|v| v.value().to_owned());
            if let Some(call_id) = current {
                super::act_tx(
                    tx,
                    &owner.call_media,
                    &user_id,
                    &call_id,
                    Action::Hangup,
                    max_ms,
                )?;
            }
            // A refusal to rejoin is answered after the hang-up commits; any other failure
            // fails the whole operation (nothing of it is kept).
            if let Err(refused) = join_refusal(tx, &user_id) {
                return Ok(Err(refused));
            }
            join_tx(tx, &owner.call_media, &user_id, None).map(Ok)
        })
        .await?
}

pub async fn leave(ctx: &Ctx, user_id: &str) -> AppResult<()> {
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            tx.table(ROULETTE_USERS)?.remove(user_id.as_str())?;
            Ok(())
        })
        .await
}

/// A streamer switches roulette availability; becoming available may match waiting users.
pub async fn set_available(ctx: &Arc<Ctx>, streamer_id: &str, available: bool) -> AppResult<()> {
    let streamer_id = streamer_id.to_owned();
    let owner = ctx.clone();
    ctx.store
        .write(move |tx| {
            if available {
                let already = tx
                    .read(ROULETTE_AVAILABLE)?
                    .get(streamer_id.as_str())?
                    .is_some();
                if !already {
                    tx.table(ROULETTE_AVAILABLE)?
                        .insert(streamer_id.as_str(), ())?;
                    let in_call = tx.read(ACTIVE_CALLS)?.get(streamer_id.as_str())?.is_some();
                    if !in_call {
                        let w = Waiting {
                            since_ms: tx.now_ms(),
                            languages: profile::languages_tx(tx, &streamer_id)?,
                        };
                        put(&mut tx.table(ROULETTE_STREAMERS)?, streamer_id.as_str(), &w)?;
                    }
                }
                match_waiting(tx, &owner.call_media)?;
            } else {
                tx.table(ROULETTE_AVAILABLE)?.remove(streamer_id.as_str())?;
                tx.table(ROULETTE_STREAMERS)?.remove(streamer_id.as_str())?;
            }
            Ok(())
        })
        .await
}

/// A call ended: a streamer still switched on for roulette goes back to the end of the queue.
/// When a streamer rejoins the queue while users wait, the matcher runs at once, through this
/// call-engine timer (a call can end inside a write that has no media providers to hand).
pub const MATCH_TIMER: &str = "roulette:match";

pub fn requeue(tx: &Tx, call: &Call) -> AppResult<()> {
    let mut rejoined = false;
    for who in [&call.caller_id, &call.callee_id] {
        if tx.read(ROULETTE_AVAILABLE)?.get(who.as_str())?.is_some() {
            let w = Waiting {
                since_ms: tx.now_ms(),
                languages: profile::languages_tx(tx, who)?,
            };
            put(&mut tx.table(ROULETTE_STREAMERS)?, who.as_str(), &w)?;
            rejoined = true;
        }
    }
    if rejoined && !tx.read(ROULETTE_USERS)?.is_empty()? {
        tx.table(super::tables::CALL_TIMERS)?
            .insert((tx.now_ms(), MATCH_TIMER), ())?;
    }
    Ok(())
}

/// A streamer's prerecorded clip, shown to a waiting user when no streamer frees up in time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clip {
    pub id: String,
    pub streamer_id: String,
    pub media_id: String,
    pub duration_seconds: u32,
    pub state: ClipState,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ClipState {
    Pending,
    Approved,
    Rejected,
}

/// Clips one streamer may have.
pub const CLIPS_PER_STREAMER_MAX: usize = 20;
/// Longest clip, in seconds.
pub const CLIP_SECONDS_MAX: u32 = 600;

pub async fn add_clip(
    ctx: &Ctx,
    streamer_id: &str,
    media_id: &str,
    duration_seconds: u32,
) -> AppResult<Clip> {
    if !crate::core::ids::is_valid_id(media_id) {
        return Err(AppError::validation("mediaId is not a media id"));
    }
    if duration_seconds == 0 || duration_seconds > CLIP_SECONDS_MAX {
        return Err(AppError::validation(format!(
            "durationSeconds must be 1–{CLIP_SECONDS_MAX}"
        )));
    }
    let (streamer_id, media_id) = (streamer_id.to_owned(), media_id.to_owned());
    let id = new_id();
    ctx.store
        .write(move |tx| {
            let mine = tx
                .read(super::tables::CLIPS)?
                .iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| dec::<Clip>(v.value()).ok())
                .filter(|c| c.streamer_id == streamer_id)
                .count();
            if mine >= CLIPS_PER_STREAMER_MAX {
                return Err(AppError::conflict(format!(
                    "at most {CLIPS_PER_STREAMER_MAX} clips"
                )));
            }
            let clip = Clip {
                id: id.clone(),
                streamer_id: streamer_id.clone(),
                media_id: media_id.clone(),
                duration_seconds,
                state: ClipState::Pending,
                created_at_ms: tx.now_ms(),
            };
            put(
                &mut tx.table(super::tables::CLIPS)?,
                clip.id.as_str(),
                &clip,
            )?;
            Ok(clip)
        })
        .await
}

pub async fn moderate_clip(
    ctx: &Ctx,
    actor: &str,
    clip_id: &str,
    state: ClipState,
) -> AppResult<Clip> {
    let (actor, clip_id) = (actor.to_owned(), clip_id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut clip: Clip = get(&tx.read(super::tables::CLIPS)?, clip_id.as_str())?
                .ok_or_else(|| AppError::not_found("no such clip"))?;
            clip.state = state;
            put(
                &mut tx.table(super::tables::CLIPS)?,
                clip.id.as_str(),
                &clip,
            )?;
            crate::domains::audit::record_tx(
                tx,
                &actor,
                "clip.moderate",
                &clip.id,
                json!({"state": state}),
            )?;
            Ok(clip)
        })
        .await
}

/// For a user who has waited at least `wait_ms`: an approved clip of an online streamer who is
/// not in a call (the user can call them directly). `None` while they should keep waiting.
pub async fn clip_for(ctx: &Ctx, user_id: &str, wait_ms: i64) -> AppResult<Option<Clip>> {
    let now = ctx.store.now_ms();
    let uid = user_id.to_owned();
    let (waiting, clips, busy) = ctx
        .store
        .read(move |rtx| {
            let waiting: Option<Waiting> = get(&rtx.open_table(ROULETTE_USERS)?, uid.as_str())?;
            let mut clips: Vec<Clip> = Vec::new();
            for row in rtx.open_table(super::tables::CLIPS)?.iter()? {
                let c: Clip = dec(row?.1.value())?;
                if c.state == ClipState::Approved {
                    clips.push(c);
                }
            }
            let active = rtx.open_table(ACTIVE_CALLS)?;
            let mut busy = Vec::new();
            for c in &clips {
                if active.get(c.streamer_id.as_str())?.is_some()
                    || blocklist::is_blocked(rtx, &uid, &c.streamer_id)?
                {
                    busy.push(c.streamer_id.clone());
                }
            }
            Ok((waiting, clips, busy))
        })
        .await?;
    let Some(w) = waiting else {
        return Err(AppError::conflict("join roulette first"));
    };
    if now - w.since_ms < wait_ms {
        return Ok(None);
    }
    for clip in clips {
        if !busy.contains(&clip.streamer_id) && ctx.presence.is_online(&clip.streamer_id).await {
            return Ok(Some(clip));
        }
    }
    Ok(None)
}

/// Erasure (account deletion): the streamer's prerecorded clips go, and they leave the
/// roulette queues. The clips table is the catalogue of a few hundred clips, so it is read
/// whole.
pub fn erase_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    let theirs: Vec<String> = {
        let t = tx.read(super::tables::CLIPS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let clip: Clip = dec(v.value())?;
            if clip.streamer_id == user_id {
                out.push(k.value().to_owned());
            }
        }
        out
    };
    for id in &theirs {
        tx.table(super::tables::CLIPS)?.remove(id.as_str())?;
    }
    tx.table(super::tables::ROULETTE_USERS)?.remove(user_id)?;
    tx.table(super::tables::ROULETTE_STREAMERS)?
        .remove(user_id)?;
    tx.table(super::tables::ROULETTE_AVAILABLE)?
        .remove(user_id)?;
    tx.table(super::tables::ROULETTE_LANGUAGES)?
        .remove(user_id)?;
    Ok(())
}
