//! OneSignal REST: `POST {base}/notifications` with `Authorization: Key <REST API key>`, one
//! subscription id per message.

use serde_json::{Value, json};

use super::{Outcome, PushMessage, by_status, unreachable};
use crate::config::OneSignalConfig;

pub struct OneSignal {
    url: String,
    app_id: String,
    api_key: String,
    http: reqwest::Client,
}

impl OneSignal {
    pub fn new(cfg: &OneSignalConfig) -> OneSignal {
        OneSignal {
            url: format!("{}/notifications", cfg.base_url.trim_end_matches('/')),
            app_id: cfg.app_id.clone(),
            api_key: cfg.api_key.clone(),
            http: crate::providers::http_client(),
        }
    }

    pub async fn send(&self, subscription_id: &str, msg: &PushMessage) -> Outcome {
        let body = json!({
            "app_id": self.app_id,
            "include_subscription_ids": [subscription_id],
            "headings": {"en": msg.title},
            "contents": {"en": msg.body},
            "data": msg.string_data(),
        });
        let resp = match self
            .http
            .post(&self.url)
            .header("authorization", format!("Key {}", self.api_key))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return unreachable(e),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // OneSignal answers 200 with `errors` naming subscriptions that no longer exist, and
        // no notification id when nobody was reached.
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let invalid = v["errors"]["invalid_player_ids"]
            .as_array()
            .is_some_and(|ids| !ids.is_empty())
            || v["errors"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|m| m.as_str().is_some_and(|m| m.contains("not subscribed")))
            });
        if invalid {
            return Outcome::Unregistered;
        }
        by_status(status, &text)
    }
}
