//! The settings domain: the minimum app version per platform and feature flags per platform
//! with stable per-user rollout. Changes are audited and pushed to every connected client on
//! the `settings` topic.

pub mod api;
pub mod events;
pub mod model;
mod tables;
pub use tables::TABLES;

use std::collections::BTreeMap;

use redb::{ReadableTable, ReadableTableMetadata};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult};
use crate::core::events::{Audience, NewEvent};
use crate::core::platform::{AppVersion, Platform};
use crate::core::store::{dec, get, put};
use crate::domains::{audit, panel};

/// Cohort tags one flag may target, at most.
pub const FLAG_COHORTS_MAX: usize = 20;
use model::*;
use tables::*;

/// Flags kept at most; each is evaluated on every settings fetch.
pub const FLAGS_MAX: usize = 500;

/// What a client sees.
pub struct ClientSettings {
    pub min_version: Option<String>,
    pub update_required: bool,
    pub flags: BTreeMap<String, bool>,
}

pub async fn for_client(
    ctx: &Ctx,
    platform: Platform,
    version: AppVersion,
    user_id: &str,
) -> AppResult<ClientSettings> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let min: Option<String> = rtx
                .open_table(MIN_VERSIONS)?
                .get(platform.as_str())?
                .map(|v| v.value().to_owned());
            let update_required = match &min {
                Some(m) => !version.at_least(&AppVersion::parse(m)?),
                None => false,
            };
            let tags = panel::tags(rtx, &user_id)?;
            let mut flags = BTreeMap::new();
            for row in rtx.open_table(FEATURE_FLAGS)?.iter()? {
                let flag: FlagRecord = dec(row?.1.value())?;
                flags.insert(flag.key.clone(), flag.evaluate(platform, &user_id, &tags));
            }
            Ok(ClientSettings {
                min_version: min,
                update_required,
                flags,
            })
        })
        .await
}

pub async fn all(ctx: &Ctx) -> AppResult<(BTreeMap<String, String>, Vec<FlagRecord>)> {
    ctx.store
        .read(|rtx| {
            let mut mins = BTreeMap::new();
            for row in rtx.open_table(MIN_VERSIONS)?.iter()? {
                let (k, v) = row?;
                mins.insert(k.value().to_owned(), v.value().to_owned());
            }
            let mut flags = Vec::new();
            for row in rtx.open_table(FEATURE_FLAGS)?.iter()? {
                flags.push(dec(row?.1.value())?);
            }
            Ok((mins, flags))
        })
        .await
}

fn changed(key: &str, what: &str) -> NewEvent {
    NewEvent::new(events::SettingsEvent::Changed {
        what: what.to_owned(),
        key: key.to_owned(),
    })
    .to(Audience::Everyone)
}

pub async fn set_min_version(
    ctx: &Ctx,
    actor: &str,
    platform: Platform,
    version: AppVersion,
) -> AppResult<()> {
    let actor = actor.to_owned();
    let version = version.to_string();
    ctx.store
        .write(move |tx| {
            tx.table(MIN_VERSIONS)?
                .insert(platform.as_str(), version.as_str())?;
            audit::record_tx(
                tx,
                &actor,
                "settings.min_version",
                platform.as_str(),
                json!({"version": version}),
            )?;
            tx.emit(changed(platform.as_str(), "min_version"))?;
            Ok(())
        })
        .await
}

pub async fn put_flag(
    ctx: &Ctx,
    actor: &str,
    key: String,
    description: String,
    platforms: BTreeMap<String, PlatformRule>,
    cohort_tags: Vec<String>,
) -> AppResult<FlagRecord> {
    panel::model::check_tags(&cohort_tags, FLAG_COHORTS_MAX, "cohortTags")?;
    let actor = actor.to_owned();
    ctx.store
        .write(move |tx| {
            let t = tx.read(FEATURE_FLAGS)?;
            let exists = t.get(key.as_str())?.is_some();
            if !exists && t.len()? as usize >= FLAGS_MAX {
                return Err(AppError::validation(format!("at most {FLAGS_MAX} flags")));
            }
            drop(t);
            let flag = FlagRecord {
                key: key.clone(),
                description: description.clone(),
                platforms: platforms.clone(),
                cohort_tags: cohort_tags.clone(),
                updated_at_ms: tx.now_ms(),
                updated_by: actor.clone(),
            };
            put(&mut tx.table(FEATURE_FLAGS)?, key.as_str(), &flag)?;
            audit::record_tx(
                tx,
                &actor,
                "settings.flag_put",
                &key,
                json!({"platforms": platforms, "cohortTags": cohort_tags}),
            )?;
            tx.emit(changed(&key, "flag"))?;
            Ok(flag)
        })
        .await
}

pub async fn delete_flag(ctx: &Ctx, actor: &str, key: String) -> AppResult<()> {
    let actor = actor.to_owned();
    ctx.store
        .write(move |tx| {
            if get::<&str, FlagRecord>(&tx.read(FEATURE_FLAGS)?, key.as_str())?.is_none() {
                return Err(AppError::not_found(format!("no flag `{key}`")));
            }
            tx.table(FEATURE_FLAGS)?.remove(key.as_str())?;
            audit::record_tx(tx, &actor, "settings.flag_delete", &key, json!({}))?;
            tx.emit(changed(&key, "flag"))?;
            Ok(())
        })
        .await
}
