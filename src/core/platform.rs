//! The client platforms: every domain that treats iOS, Android and the web differently names
//! them with this one type.

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
