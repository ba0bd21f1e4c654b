//! Apple Push Notification service over HTTP/2: `POST {base}/3/device/{token}` with an ES256
//! provider token (`iss` team id, `kid` key id) renewed every 50 minutes, `apns-push-type`
//! alert or voip, and the topic (the bundle id; `<bundle>.voip` for VoIP pushes).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Outcome, PushMessage, by_status, unreachable};
use crate::config::ApnsConfig;

/// Apple refuses provider tokens older than an hour and throttles renewals under 20 minutes.
const PROVIDER_TOKEN_TTL_MS: i64 = 50 * 60 * 1000;
/// A VoIP push for a call is useless after the ring would have ended.
const VOIP_EXPIRY_SECS: i64 = 30;
/// How long Apple keeps trying to reach an offline device with an alert.
const ALERT_EXPIRY_SECS: i64 = 86_400;

pub struct Apns {
    base: String,
    team_id: String,
    key_id: String,
    bundle_id: String,
    key: EncodingKey,
    http: reqwest::Client,
    token: Mutex<Option<(String, i64)>>,
}

impl Apns {
    pub fn new(cfg: &ApnsConfig) -> anyhow::Result<Apns> {
        let pem = std::fs::read(&cfg.private_key_file)
            .map_err(|e| anyhow::anyhow!("notifications.apns.private_key_file: {e}"))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|e| anyhow::anyhow!("notifications.apns.private_key_file: {e}"))?;
        crate::cli::install_crypto_provider();
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(Apns {
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            team_id: cfg.team_id.clone(),
            key_id: cfg.key_id.clone(),
            bundle_id: cfg.bundle_id.clone(),
            key,
            http,
            token: Mutex::new(None),
        })
    }

    async fn provider_token(&self, now_ms: i64, renew: bool) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if !renew
            && let Some((t, made)) = cached.as_ref()
            && now_ms - made < PROVIDER_TOKEN_TTL_MS
        {
            return Ok(t.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let t = jsonwebtoken::encode(
            &header,
            &json!({"iss": self.team_id, "iat": now_ms / 1000}),
            &self.key,
        )
        .map_err(|e| format!("signing the provider token: {e}"))?;
        *cached = Some((t.clone(), now_ms));
        Ok(t)
    }

    pub async fn send(&self, token: &str, msg: &PushMessage, now_ms: i64) -> Outcome {
        let mut renew = false;
        // One more try with a fresh provider token when Apple says ours expired.
        for _ in 0..2 {
            let jwt = match self.provider_token(now_ms, renew).await {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(e),
            };
            let mut payload = msg.string_data();
            let (push_type, topic, expiration) = if msg.voip {
                payload.insert("aps".into(), json!({}));
                (
                    "voip",
                    format!("{}.voip", self.bundle_id),
                    now_ms / 1000 + VOIP_EXPIRY_SECS,
                )
            } else {
                payload.insert(
                    "aps".into(),
                    json!({"alert": {"title": msg.title, "body": msg.body}, "sound": "default"}),
                );
                (
                    "alert",
                    self.bundle_id.clone(),
                    now_ms / 1000 + ALERT_EXPIRY_SECS,
                )
            };
            let resp = match self
                .http
                .post(format!("{}/3/device/{token}", self.base))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-push-type", push_type)
                .header("apns-topic", topic)
                .header("apns-priority", "10")
                .header("apns-expiration", expiration.to_string())
                .header("apns-id", &msg.notification_id)
                .json(&Value::Object(payload))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return unreachable(e),
            };
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            match (status.as_u16(), reason.as_str()) {
                (410, _) | (400, "BadDeviceToken") | (400, "DeviceTokenNotForTopic") => {
                    return Outcome::Unregistered;
                }
                (403, "ExpiredProviderToken") if !renew => renew = true,
                _ => return by_status(status, &text),
            }
        }
        Outcome::Retry("APNs refused a fresh provider token".into())
    }
}
