//! Firebase Cloud Messaging, HTTP v1: `POST {base}/v1/projects/{project}/messages:send` with an
//! OAuth access token from the service account (scope `firebase.messaging`).

use serde_json::{Value, json};

use super::{Outcome, PushMessage, by_status, unreachable};
use crate::config::FcmConfig;
use crate::providers::google_oauth::ServiceAccount;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

pub struct Fcm {
    url: String,
    account: ServiceAccount,
    http: reqwest::Client,
}

impl Fcm {
    pub fn new(cfg: &FcmConfig) -> anyhow::Result<Fcm> {
        Ok(Fcm {
            url: format!(
                "{}/v1/projects/{}/messages:send",
                cfg.base_url.trim_end_matches('/'),
                cfg.project_id
            ),
            account: ServiceAccount::from_file(
                &cfg.service_account_file,
                "notifications.fcm.service_account_file",
                &cfg.token_url,
                SCOPE,
            )?,
            http: crate::providers::http_client(),
        })
    }

    pub async fn send(&self, token: &str, msg: &PushMessage, now_ms: i64) -> Outcome {
        let access = match self.account.access_token(now_ms).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(format!("FCM credentials: {e}")),
        };
        let body = json!({"message": {
            "token": token,
            "notification": {"title": msg.title, "body": msg.body},
            "data": msg.string_data(),
            "android": {"priority": "HIGH"},
        }});
        let resp = match self
            .http
            .post(&self.url)
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return unreachable(e),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 401 {
            self.account.forget().await;
            return Outcome::Retry("FCM refused the access token".into());
        }
        if !status.is_success() && error_code(&text).as_deref() == Some("UNREGISTERED") {
            return Outcome::Unregistered;
        }
        by_status(status, &text)
    }
}

/// `error.details[].errorCode` of an FCM error answer.
fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["error"]["details"]
        .as_array()?
        .iter()
        .find_map(|d| d["errorCode"].as_str().map(str::to_owned))
}
