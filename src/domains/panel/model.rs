//! Cohorts as stored, their rules, and the facts about a person a rule is judged on.

use serde::{Deserialize, Serialize};

use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};
use crate::core::platform::Platform;
use crate::domains::profile::model::Gender;

/// Days a "within N days" condition may span, at most (ten years).
pub const DAYS_MAX: u32 = 3_650;
/// Values one list condition (countries, languages) may hold, at most.
pub const LIST_MAX: usize = 50;

/// A cohort tag: 1–32 characters of `a-z0-9_-`, starting with a letter. Tags are what the
/// rest of the platform sees (gallery filters and boosts, tariffs, flags, auto-add).
pub fn parse_tag(raw: &str) -> AppResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(AppError::validation(format!(
            "tag `{raw}` must be 1–32 characters of a-z, 0-9, _ and -, starting with a letter"
        )));
    }
    Ok(raw.to_owned())
}

/// A list of cohort tags as another domain takes it (gallery rules, flags, auto-add): each a
/// tag, at most `max`, none twice; `what` names the list in the error.
pub fn check_tags(tags: &[String], max: usize, what: &str) -> AppResult<()> {
    if tags.len() > max {
        return Err(AppError::validation(format!(
            "{what} lists at most {max} tags"
        )));
    }
    for (i, t) in tags.iter().enumerate() {
        parse_tag(t)?;
        if tags[..i].contains(t) {
            return Err(AppError::validation(format!(
                "{what} lists tag `{t}` twice"
            )));
        }
    }
    Ok(())
}

/// Who belongs to a rule cohort. Every condition given must hold; a list condition holds
/// when any of its values matches; conditions left out hold for everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CohortRule {
    #[serde(default)]
    pub role: Option<Role>,
    /// ISO 3166 alpha-2, upper case.
    #[serde(default)]
    #[oai(default)]
    pub countries: Vec<String>,
    /// Primary language subtags, lower case (`en` matches `en-US`).
    #[serde(default)]
    #[oai(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    #[oai(default)]
    pub genders: Vec<Gender>,
    #[serde(default)]
    pub min_age: Option<u32>,
    #[serde(default)]
    pub max_age: Option<u32>,
    /// The platform the account was created on.
    #[serde(default)]
    #[oai(default)]
    pub platforms: Vec<Platform>,
    #[serde(default)]
    pub registered_within_days: Option<u32>,
    /// Online now, or last seen within this many days.
    #[serde(default)]
    pub active_within_days: Option<u32>,
    /// Coins spent on calls and gifts, ever.
    #[serde(default)]
    pub min_coins_spent: Option<i64>,
    /// Bought coins in a store at least once (`true`) or never (`false`).
    #[serde(default)]
    pub has_purchased: Option<bool>,
    #[serde(default)]
    pub min_wallet_balance: Option<i64>,
}

impl CohortRule {
    /// Normalises the lists (case, duplicates) and checks every bound.
    pub fn validate(mut self) -> AppResult<CohortRule> {
        let bad = |m: &str| Err(AppError::validation(m.to_owned()));
        if self.countries.len() > LIST_MAX || self.languages.len() > LIST_MAX {
            return bad("countries and languages hold at most 50 values each");
        }
        for c in &mut self.countries {
            *c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                return bad("countries are ISO 3166 alpha-2 codes like DE");
            }
        }
        for l in &mut self.languages {
            *l = l.trim().to_ascii_lowercase();
            if !(2..=8).contains(&l.len()) || !l.chars().all(|ch| ch.is_ascii_lowercase()) {
                return bad("languages are primary language subtags like en");
            }
        }
        for list in [&mut self.countries, &mut self.languages] {
            list.sort();
            list.dedup();
        }
        let mut seen = Vec::new();
        self.genders.retain(|g| {
            let fresh = !seen.contains(g);
            seen.push(*g);
            fresh
        });
        let mut seen = Vec::new();
        self.platforms.retain(|p| {
            let fresh = !seen.contains(p);
            seen.push(*p);
            fresh
        });
        if let (Some(lo), Some(hi)) = (self.min_age, self.max_age)
            && lo > hi
        {
            return bad("minAge must not be above maxAge");
        }
        if self.min_age.is_some_and(|a| a > 150) || self.max_age.is_some_and(|a| a > 150) {
            return bad("ages are 0–150");
        }
        for days in [self.registered_within_days, self.active_within_days]
            .into_iter()
            .flatten()
        {
            if days == 0 || days > DAYS_MAX {
                return bad("a number of days is 1–3650");
            }
        }
        if self.min_coins_spent.is_some_and(|c| c < 0)
            || self.min_wallet_balance.is_some_and(|c| c < 0)
        {
            return bad("coin amounts are 0 or more");
        }
        Ok(self)
    }

    /// Whether someone with `facts` belongs, at `now_ms`.
    pub fn matches(&self, f: &Facts, now_ms: i64) -> bool {
        let day_ms = 86_400_000i64;
        let any = |list: &[String], value: &Option<String>| {
            list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
        };
        self.role.is_none_or(|r| r == f.role)
            && any(&self.countries, &f.country)
            && (self.languages.is_empty() || f.languages.iter().any(|l| self.languages.contains(l)))
            && (self.genders.is_empty() || f.gender.is_some_and(|g| self.genders.contains(&g)))
            && self
                .min_age
                .is_none_or(|a| f.age.is_some_and(|age| age >= a))
            && self
                .max_age
                .is_none_or(|a| f.age.is_some_and(|age| age <= a))
            && (self.platforms.is_empty()
                || f.platform.is_some_and(|p| self.platforms.contains(&p)))
            && self
                .registered_within_days
                .is_none_or(|d| now_ms - f.created_at_ms <= i64::from(d) * day_ms)
            && self.active_within_days.is_none_or(|d| {
                f.online
                    || f.last_seen_ms
                        .is_some_and(|s| now_ms - s <= i64::from(d) * day_ms)
            })
            && self.min_coins_spent.is_none_or(|c| f.coins_spent >= c)
            && self.has_purchased.is_none_or(|p| f.has_purchased == p)
            && self.min_wallet_balance.is_none_or(|c| f.wallet >= c)
    }
}

/// How a cohort gets its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// Everyone the rule matches, kept up to date by the server.
    Rule(CohortRule),
    /// The people an admin listed.
    Hand,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub id: String,
    pub name: String,
    pub tag: String,
    /// The tag is shown to clients (on gallery cards); otherwise only the server uses it.
    pub visible: bool,
    pub membership: Membership,
    pub members: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

impl Cohort {
    pub fn rule(&self) -> Option<&CohortRule> {
        match &self.membership {
            Membership::Rule(r) => Some(r),
            Membership::Hand => None,
        }
    }
}

/// What a rule looks at, for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub role: Role,
    pub country: Option<String>,
    /// Primary subtags, lower case.
    pub languages: Vec<String>,
    pub gender: Option<Gender>,
    pub age: Option<u32>,
    pub platform: Option<Platform>,
    pub created_at_ms: i64,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    pub coins_spent: i64,
    pub has_purchased: bool,
    pub wallet: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            role: Role::User,
            country: Some("DE".into()),
            languages: vec!["de".into(), "en".into()],
            gender: Some(Gender::Female),
            age: Some(30),
            platform: Some(Platform::Ios),
            created_at_ms: 0,
            online: false,
            last_seen_ms: Some(0),
            coins_spent: 100,
            has_purchased: true,
            wallet: 50,
        }
    }

    #[test]
    fn an_empty_rule_matches_everyone_and_each_condition_can_exclude() {
        let f = facts();
        let day = 86_400_000;
        assert!(CohortRule::default().matches(&f, 10 * day));
        let cases: Vec<CohortRule> = vec![
            CohortRule {
                role: Some(Role::Streamer),
                ..Default::default()
            },
            CohortRule {
                countries: vec!["FR".into()],
                ..Default::default()
            },
            CohortRule {
                languages: vec!["fr".into()],
                ..Default::default()
            },
            CohortRule {
                genders: vec![Gender::Male],
                ..Default::default()
            },
            CohortRule {
                min_age: Some(31),
                ..Default::default()
            },
            CohortRule {
                max_age: Some(29),
                ..Default::default()
            },
            CohortRule {
                platforms: vec![Platform::Android],
                ..Default::default()
            },
            CohortRule {
                registered_within_days: Some(9),
                ..Default::default()
            },
            CohortRule {
                active_within_days: Some(9),
                ..Default::default()
            },
            CohortRule {
                min_coins_spent: Some(101),
                ..Default::default()
            },
            CohortRule {
                has_purchased: Some(false),
                ..Default::default()
            },
            CohortRule {
                min_wallet_balance: Some(51),
                ..Default::default()
            },
        ];
        for rule in cases {
            assert!(!rule.matches(&f, 10 * day), "{rule:?} should not match");
        }
        let all = CohortRule {
            role: Some(Role::User),
            countries: vec!["DE".into(), "AT".into()],
            languages: vec!["en".into()],
            genders: vec![Gender::Female],
            min_age: Some(30),
            max_age: Some(30),
            platforms: vec![Platform::Ios],
            registered_within_days: Some(10),
            active_within_days: Some(10),
            min_coins_spent: Some(100),
            has_purchased: Some(true),
            min_wallet_balance: Some(50),
        };
        assert!(all.matches(&f, 10 * day));
    }

    #[test]
    fn rules_are_normalised_and_bounded() {
        let r = CohortRule {
            countries: vec!["de".into(), "DE".into()],
            languages: vec!["EN".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(r.countries, vec!["DE".to_owned()]);
        assert_eq!(r.languages, vec!["en".to_owned()]);
        for bad in [
            CohortRule {
                min_age: Some(40),
                max_age: Some(20),
                ..Default::default()
            },
            CohortRule {
                registered_within_days: Some(0),
                ..Default::default()
            },
            CohortRule {
                countries: vec!["Germany".into()],
                ..Default::default()
            },
            CohortRule {
                min_wallet_balance: Some(-1),
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
        assert!(parse_tag("vip").is_ok());
        for bad in ["", "VIP", "1st", "a b", &"a".repeat(33)] {
            assert!(parse_tag(bad).is_err(), "{bad}");
        }
    }
}
