//! The feeds' rules, per viewer role, as data admins edit on the fly (like tariffs): which role
//! is shown, in which order, and whether people in a call are shown (as busy) or hidden.

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};

use crate::app::Ctx;
use crate::core::auth::{Principal, Role};
use crate::core::error::AppResult;
use crate::core::store::{get, put};
use crate::domains::{audit, panel};

use super::tables::RULES;

/// The order a feed ranks its profiles in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Sort {
    /// Online the longest first.
    OnlineLongest,
    /// Most recently online first.
    OnlineNewest,
    /// Those whose wallet covers a call's first charge first, then most recently online.
    PayersFirst,
}

/// People in a call: shown (marked busy) or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum BusyMode {
    Show,
    Hide,
}

/// What one viewer role's feed shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub shows: Role,
    pub sort: Sort,
    pub busy: BusyMode,
    /// Cohort tags ranked first, in this order (those with the first tag, then the second…),
    /// each group in the rule's order, then everyone else.
    #[serde(default)]
    pub boost_tags: Vec<String>,
    /// When set, only profiles carrying one of these tags are shown.
    #[serde(default)]
    pub only_tags: Vec<String>,
    /// Profiles carrying one of these tags are not shown.
    #[serde(default)]
    pub hidden_tags: Vec<String>,
}

/// Tags one list of a rule holds, at most.
pub const RULE_TAGS_MAX: usize = 20;

impl Rule {
    /// Checks the tag lists: each a cohort tag, at most [`RULE_TAGS_MAX`], no repeats.
    pub fn validate(self) -> AppResult<Rule> {
        for (list, what) in [
            (&self.boost_tags, "boostTags"),
            (&self.only_tags, "onlyTags"),
            (&self.hidden_tags, "hiddenTags"),
        ] {
            panel::model::check_tags(list, RULE_TAGS_MAX, what)?;
        }
        Ok(self)
    }

    /// The group a profile with `tags` ranks in: the first boosted tag it carries, or after
    /// every boosted group.
    pub fn boost_group(&self, tags: &[String]) -> usize {
        self.boost_tags
            .iter()
            .position(|b| tags.contains(b))
            .unwrap_or(self.boost_tags.len())
    }
}

impl Rule {
    /// The seed's: users (and staff) see streamers online longest first; streamers see users,
    /// payers first, then the most recently online.
    pub fn default_for(viewer: Role) -> Rule {
        match viewer {
            Role::Streamer => Rule {
                shows: Role::User,
                sort: Sort::PayersFirst,
                busy: BusyMode::Show,
                boost_tags: Vec::new(),
                only_tags: Vec::new(),
                hidden_tags: Vec::new(),
            },
            _ => Rule {
                shows: Role::Streamer,
                sort: Sort::OnlineLongest,
                busy: BusyMode::Show,
                boost_tags: Vec::new(),
                only_tags: Vec::new(),
                hidden_tags: Vec::new(),
            },
        }
    }
}

/// The rule for a viewer role (its default until an admin saved one).
pub fn rule_for(rtx: &ReadTransaction, viewer: Role) -> AppResult<Rule> {
    Ok(get(&rtx.open_table(RULES)?, viewer.as_str())?.unwrap_or_else(|| Rule::default_for(viewer)))
}

/// Every viewer role's rule.
pub async fn all(ctx: &Ctx) -> AppResult<Vec<(Role, Rule)>> {
    ctx.store
        .read(|rtx| {
            [Role::User, Role::Streamer, Role::Moderator, Role::Admin]
                .into_iter()
                .map(|r| Ok((r, rule_for(rtx, r)?)))
                .collect()
        })
        .await
}

/// Saves a viewer role's rule; audited. Feeds use it from their next first page.
pub async fn save(ctx: &Ctx, admin: &Principal, viewer: Role, rule: Rule) -> AppResult<()> {
    let rule = rule.validate()?;
    let actor = admin.user_id.to_string();
    let r = rule.clone();
    ctx.store
        .write(move |tx| {
            put(&mut tx.table(RULES)?, viewer.as_str(), &r)?;
            audit::record_tx(
                tx,
                &actor,
                "gallery.rule",
                viewer.as_str(),
                serde_json::to_value(&r).unwrap_or_default(),
            )
        })
        .await?;
    ctx.gallery.forget_ranked();
    Ok(())
}
