//! Settings types: app versions and feature flags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{AppError, AppResult};
use crate::core::platform::Platform;

/// A flag key: 1–64 characters of `a-z0-9_.-`, starting with a letter.
pub fn parse_flag_key(raw: &str) -> AppResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if !ok {
        return Err(AppError::validation(format!(
            "flag key `{raw}` must be 1–64 characters of a-z, 0-9, _ . -, starting with a letter"
        )));
    }
    Ok(raw.to_owned())
}

/// How a flag behaves on one platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformRule {
    pub enabled: bool,
    /// 0–100: the share of users who get the flag when enabled; `None` is everyone.
    #[serde(default)]
    pub rollout_percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagRecord {
    pub key: String,
    #[serde(default)]
    pub description: String,
    /// Platforms not listed have the flag off.
    pub platforms: BTreeMap<String, PlatformRule>,
    /// When set, only people carrying one of these cohort tags get the flag.
    #[serde(default)]
    pub cohort_tags: Vec<String>,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

impl FlagRecord {
    /// Whether `user_id` (carrying the cohort `tags`) on `platform` gets the flag. Rollout
    /// buckets are stable per user and flag: the same user stays in or out as the percentage
    /// is unchanged, and raising the percentage only adds users.
    pub fn evaluate(&self, platform: Platform, user_id: &str, tags: &[String]) -> bool {
        if !self.cohort_tags.is_empty() && !self.cohort_tags.iter().any(|t| tags.contains(t)) {
            return false;
        }
        match self.platforms.get(platform.as_str()) {
            Some(rule) if rule.enabled => match rule.rollout_percent {
                None => true,
                Some(p) => bucket(&self.key, user_id) < u32::from(p),
            },
            _ => false,
        }
    }
}

/// 0..100, from SHA-256 of `key:user_id`.
pub fn bucket(key: &str, user_id: &str) -> u32 {
    let d = Sha256::digest(format!("{key}:{user_id}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 100
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::core::platform::AppVersion;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn versions_round_trip_and_compare_part_by_part(a in proptest::collection::vec(0u32..1000, 1..=4), b in proptest::collection::vec(0u32..1000, 1..=4)) {
            let text = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let va = AppVersion::parse(&text(&a)).unwrap();
            let vb = AppVersion::parse(&text(&b)).unwrap();
            prop_assert_eq!(va.to_string(), text(&a));
            let pad = |v: &[u32]| { let mut v = v.to_vec(); v.resize(4, 0); v };
            prop_assert_eq!(va.at_least(&vb), pad(&a) >= pad(&b));
        }

        #[test]
        fn junk_is_not_a_version(raw in "[^0-9.+-]{1,10}") {
            prop_assert!(AppVersion::parse(&raw).is_err());
        }

        #[test]
        fn rollout_buckets_are_stable_and_in_range(key in "[a-z]{1,10}", user in "[a-z0-9-]{1,36}") {
            let b = bucket(&key, &user);
            prop_assert!(b < 100);
            prop_assert_eq!(b, bucket(&key, &user));
        }
    }
}
