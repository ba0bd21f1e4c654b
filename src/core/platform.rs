//! The client platforms: every domain that treats iOS, Android and the web differently names
//! them with this one type.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{AppError, AppResult};

/// The platform a client runs on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    Android,
    Web,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Ios, Platform::Android, Platform::Web];
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Web => "web",
        }
    }
    pub fn parse(s: &str) -> AppResult<Platform> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                AppError::validation(format!("platform `{s}` is not ios, android or web"))
            })
    }
}

/// A dotted numeric app version (`1.2.3`, one to four parts), compared part by part.
/// A build suffix after `+` or `-` (`1.2.3+45`) is accepted and ignored for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppVersion(Vec<u32>);

impl AppVersion {
    pub fn parse(raw: &str) -> AppResult<AppVersion> {
        let bad = || AppError::validation(format!("`{raw}` is not an app version like 1.2.3"));
        let core = raw.split(['+', '-']).next().unwrap_or_default();
        let parts: Vec<u32> = core
            .split('.')
            .map(|p| {
                if p.is_empty() || p.len() > 9 {
                    Err(bad())
                } else {
                    p.parse().map_err(|_| bad())
                }
            })
            .collect::<AppResult<_>>()?;
        if parts.is_empty() || parts.len() > 4 || raw.len() > 64 {
            return Err(bad());
        }
        Ok(AppVersion(parts))
    }

    /// Compares with trailing zeros ignored: 1.2 == 1.2.0.
    pub fn at_least(&self, other: &AppVersion) -> bool {
        let n = self.0.len().max(other.0.len());
        let pad = |v: &AppVersion| {
            (0..n)
                .map(|i| *v.0.get(i).unwrap_or(&0))
                .collect::<Vec<_>>()
        };
        pad(self) >= pad(other)
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}
