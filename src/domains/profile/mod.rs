//! The profile domain: the private profile (email, phone, birth date, KYC status, payout
//! details) and the public profile everyone else sees. Only [`api::PublicProfile`] ever leaves
//! this domain towards other people, on REST and in events alike.

pub mod api;
pub mod events;
pub mod model;
mod tables;
pub use tables::TABLES;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, NewEvent};
use crate::core::store::{Reads, Tx, get, put};
use crate::domains::user::{self, model::PresenceRecord, model::UserRecord};
use crate::domains::{favorites, media};
use api::PublicProfile;
use model::*;
use tables::*;

/// Everything about the caller.
pub struct OwnProfile {
    pub user: UserRecord,
    pub profile: ProfileRecord,
    pub presence: PresenceRecord,
    pub counts: favorites::Counts,
    /// The profile's media ids that anyone may see.
    pub approved_media: Vec<String>,
}

/// The media ids among the profile's that anyone may see (approved and public).
pub fn approved_media(r: &impl Reads, p: &ProfileRecord) -> AppResult<Vec<String>> {
    Ok(media::public_among(r, &p.media_ids())?
        .into_iter()
        .map(|m| m.id)
        .collect())
}

pub fn profile_of(r: &impl Reads, user_id: &str) -> AppResult<ProfileRecord> {
    Ok(get(&r.read_table(PROFILES)?, user_id)?.unwrap_or_default())
}

/// Whether two lists of BCP 47 tags share a language (by primary subtag: `en-US` matches `en`).
/// Accounts whose display name contains `needle` (case-insensitively): at most `limit`,
/// looking at no more than `scan_max` profiles. Also returns how many it looked at.
pub fn search_names(
    r: &impl Reads,
    needle: &str,
    limit: usize,
    scan_max: usize,
) -> AppResult<(Vec<(String, String)>, usize)> {
    use redb::ReadableTable as _;
    let needle = needle.to_lowercase();
    let mut out = Vec::new();
    let mut scanned = 0;
    for row in r.read_table(PROFILES)?.iter()? {
        if out.len() >= limit || scanned >= scan_max {
            break;
        }
        scanned += 1;
        let (k, v) = row?;
        let p: ProfileRecord = crate::core::store::dec(v.value())?;
        if let Some(name) = p.display_name
            && name.to_lowercase().contains(&needle)
        {
            out.push((k.value().to_owned(), name));
        }
    }
    Ok((out, scanned))
}

pub fn shares_language(a: &[String], b: &[String]) -> bool {
    let primary = |t: &String| t.split('-').next().unwrap_or("").to_ascii_lowercase();
    a.iter().any(|x| b.iter().any(|y| primary(x) == primary(y)))
}

/// A streamer's payout details, inside a write (private data: only payouts reads it).
pub fn payout_details_tx(tx: &Tx, user_id: &str) -> AppResult<Option<PayoutDetails>> {
    Ok(get::<&str, ProfileRecord>(&tx.read(PROFILES)?, user_id)?.and_then(|p| p.payout))
}

/// The name to show for someone in a notification or email, inside a write.
pub fn display_name_tx(tx: &Tx, user_id: &str) -> AppResult<String> {
    Ok(get::<&str, ProfileRecord>(&tx.read(PROFILES)?, user_id)?
        .and_then(|p| p.display_name)
        .unwrap_or_else(|| "Someone".to_owned()))
}

/// The languages someone speaks (BCP 47 tags), inside a write.
pub fn languages_tx(r: &impl Reads, user_id: &str) -> AppResult<Vec<String>> {
    Ok(
        get::<&str, ProfileRecord>(&r.read_table(PROFILES)?, user_id)?
            .map(|p| p.languages)
            .unwrap_or_default(),
    )
}

pub async fn own(ctx: &Ctx, user_id: &str) -> AppResult<OwnProfile> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let user = user::find_user(rtx, &user_id)?
                .ok_or_else(|| AppError::not_found("no such user"))?;
            let profile = profile_of(rtx, &user_id)?;
            Ok(OwnProfile {
                approved_media: approved_media(rtx, &profile)?,
                profile,
                presence: user::presence_of(rtx, &user_id)?,
                counts: favorites::counts(rtx, &user_id)?,
                user,
            })
        })
        .await
}

/// Someone's public profile. Banned accounts are not shown.
pub async fn public(ctx: &Ctx, user_id: &str) -> AppResult<PublicProfile> {
    let user_id = user_id.to_owned();
    let today = today(ctx);
    let now = ctx.store.now_ms();
    ctx.store
        .read(move |rtx| {
            let user = user::find_user(rtx, &user_id)?
                .filter(|u| u.is_reachable(now))
                .ok_or_else(|| AppError::not_found("no such profile"))?;
            let profile = profile_of(rtx, &user_id)?;
            let presence = user::presence_of(rtx, &user_id)?;
            let counts = favorites::counts(rtx, &user_id)?;
            let approved = approved_media(rtx, &profile)?;
            Ok(PublicProfile::build(
                &user, &profile, &presence, counts, today, &approved,
            ))
        })
        .await
}

/// A change to the caller's profile. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Default)]
pub struct ProfilePatch {
    pub display_name: Option<Option<String>>,
    pub birth_date: Option<Option<String>>,
    pub gender: Option<Option<Gender>>,
    pub country: Option<Option<String>>,
    pub languages: Option<Vec<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_media_id: Option<Option<String>>,
    pub photo_media_ids: Option<Vec<String>>,
    pub phone: Option<Option<String>>,
    pub payout: Option<Option<PayoutDetails>>,
    pub hidden_from_gallery: Option<bool>,
}

pub fn today(ctx: &Ctx) -> time::Date {
    crate::core::clock::to_datetime(ctx.store.now_ms()).date()
}

/// Applies a validated patch; the public part goes on the event log as `profile_updated`.
pub async fn update(ctx: &Ctx, user_id: &str, patch: ProfilePatch) -> AppResult<OwnProfile> {
    let user_id = user_id.to_owned();
    let today = today(ctx);
    ctx.store
        .write(move |tx| {
            let user = user::find_user_tx(tx, &user_id)?
                .ok_or_else(|| AppError::not_found("no such user"))?;
            let mut t = tx.table(PROFILES)?;
            let mut p: ProfileRecord = get(&t, user_id.as_str())?.unwrap_or_default();
            let p0 = p.clone();
            if let Some(v) = &patch.display_name {
                p.display_name = v.clone();
            }
            if let Some(v) = &patch.birth_date {
                p.birth_date = v.clone();
            }
            if let Some(v) = patch.gender {
                p.gender = v;
            }
            if let Some(v) = &patch.country {
                p.country = v.clone();
            }
            if let Some(v) = &patch.languages {
                p.languages = v.clone();
            }
            if let Some(v) = &patch.bio {
                p.bio = v.clone();
            }
            if let Some(v) = &patch.avatar_media_id {
                p.avatar_media_id = v.clone();
            }
            if let Some(v) = &patch.photo_media_ids {
                p.photo_media_ids = v.clone();
            }
            // What the patch names must be the caller's own public photos (checked here, in
            // the write, so one deleted meanwhile cannot slip in).
            for id in patch
                .avatar_media_id
                .iter()
                .flatten()
                .chain(patch.photo_media_ids.iter().flatten())
            {
                media::check_profile_photo(tx, &user_id, id)?;
            }
            if let Some(v) = &patch.phone {
                p.phone = v.clone();
            }
            if let Some(v) = &patch.payout {
                p.payout = v.clone();
            }
            if let Some(v) = patch.hidden_from_gallery {
                p.hidden_from_gallery = v;
            }
            if p != p0 {
                p.updated_at_ms = tx.now_ms();
                put(&mut t, user_id.as_str(), &p)?;
            }
            drop(t);
            let presence: PresenceRecord = user::presence_of_tx(tx, &user_id)?;
            let counts = favorites::counts_tx(tx, &user_id)?;
            let approved = approved_media(tx, &p)?;
            if p != p0 {
                let public = PublicProfile::build(&user, &p, &presence, counts, today, &approved);
                tx.emit(
                    NewEvent::about(
                        &user_id,
                        events::ProfileEvent::Updated {
                            profile: public.clone(),
                        },
                    )
                    .to(Audience::Users(vec![user_id.clone().into()])),
                )?;
            }
            Ok(OwnProfile {
                user,
                profile: p,
                presence,
                counts,
                approved_media: approved,
            })
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Erasure (account deletion).

/// Erases the person's profile, and what their public profile said in their
/// `profile_updated` events (`own_events`: the events indexed under the person).
pub fn erase_tx(
    tx: &Tx,
    user_id: &str,
    own_events: &[crate::core::events::Event],
) -> AppResult<()> {
    tx.table(PROFILES)?.remove(user_id)?;
    let theirs = |e: &&crate::core::events::Event| {
        e.subject.as_deref() == Some(user_id)
            && matches!(
                e.decoded::<events::ProfileEvent>(),
                Some(events::ProfileEvent::Updated { .. })
            )
    };
    for e in own_events.iter().filter(theirs) {
        crate::core::events::rewrite_tx(tx, e.seq, |data| {
            if let Some(p) = data.get_mut("profile").and_then(|p| p.as_object_mut()) {
                p.insert("photoMediaIds".into(), serde_json::json!([]));
                for field in [
                    "displayName",
                    "bio",
                    "avatarMediaId",
                    "country",
                    "gender",
                    "age",
                ] {
                    p.insert(field.into(), serde_json::Value::Null);
                }
                p.insert("languages".into(), serde_json::json!([]));
            }
        })?;
    }
    Ok(())
}
