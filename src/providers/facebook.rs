//! Facebook Login: a user access token from the app is checked through the Graph API's
//! `debug_token` with the app's own access token (`<app id>|<app secret>`) — it must be valid,
//! a user token, and issued to this app — and then `me?fields=id,email` with the user's token,
//! whose id must be the one `debug_token` named. (iOS Limited Login's OIDC token is checked
//! against Facebook's JWKS by `user::external`, like Apple's.)

use serde::Deserialize;

use crate::config::FacebookConfig;
use crate::core::error::{AppError, AppResult, Code};

/// Longest Graph API answer read.
const ANSWER_BYTES_MAX: usize = 64 * 1024;

pub struct FacebookGraph {
    http: reqwest::Client,
    base: String,
    app_id: String,
    app_token: String,
}

/// Who a verified access token belongs to.
#[derive(Debug, Clone)]
pub struct FacebookUser {
    /// The app-scoped user id.
    pub id: String,
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct DebugToken {
    data: DebugData,
}

#[derive(Deserialize)]
struct DebugData {
    #[serde(default)]
    app_id: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    is_valid: bool,
    #[serde(default)]
    user_id: String,
}

#[derive(Deserialize)]
struct Me {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

impl FacebookGraph {
    pub fn new(cfg: &FacebookConfig) -> FacebookGraph {
        FacebookGraph {
            http: super::http_client(),
            base: cfg.graph_base_url.trim_end_matches('/').to_owned(),
            app_id: cfg.app_id.clone(),
            app_token: format!("{}|{}", cfg.app_id, cfg.app_secret),
        }
    }

    /// The person `access_token` belongs to, if Facebook vouches for it for this app.
    pub async fn verify(&self, access_token: &str) -> AppResult<FacebookUser> {
        let invalid = |why: &str| {
            AppError::unauthorized(format!("the Facebook access token is not valid: {why}"))
        };
        let debug: DebugToken = self
            .get(
                "debug_token",
                &[
                    ("input_token", access_token),
                    ("access_token", &self.app_token),
                ],
            )
            .await?;
        let d = debug.data;
        if !d.is_valid {
            return Err(invalid("Facebook says it is not valid"));
        }
        if d.app_id != self.app_id {
            return Err(invalid("it was issued to another app"));
        }
        if d.kind != "USER" || d.user_id.is_empty() {
            return Err(invalid("it is not a user token"));
        }
        let me: Me = self
            .get(
                "me",
                &[("fields", "id,email"), ("access_token", access_token)],
            )
            .await?;
        if me.id != d.user_id {
            return Err(invalid("it names another user"));
        }
        Ok(FacebookUser {
            id: me.id,
            email: me.email,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> AppResult<T> {
        let failed = |why: String| AppError::new(Code::ProviderFailed, format!("Facebook: {why}"));
        let url = reqwest::Url::parse_with_params(&format!("{}/{path}", self.base), query)
            .map_err(|e| failed(format!("graph_base_url: {e}")))?;
        let (status, body) = super::answer(self.http.get(url), ANSWER_BYTES_MAX)
            .await
            .map_err(failed)?;
        // Graph answers a bad user token with 400 and an `error` object: not our failure.
        if status.is_client_error() {
            return Err(AppError::unauthorized(
                "the Facebook access token is not valid: Facebook refused it",
            ));
        }
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| failed(format!("unexpected answer: {e}")))
    }
}
