//! Google's OAuth 2.0 for service accounts: a JWT signed with the account's RS256 key is
//! exchanged at the token endpoint for an access token, cached until shortly before it
//! expires. Google Play and FCM both use it, each with its own scope.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

/// A cached access token is renewed this long before it expires.
const TOKEN_MARGIN_MS: i64 = 60_000;

#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: i64,
}

fn default_expiry() -> i64 {
    3600
}

pub struct ServiceAccount {
    client_email: String,
    key: EncodingKey,
    token_url: String,
    scope: &'static str,
    http: reqwest::Client,
    token: Mutex<Option<(String, i64)>>,
}

impl ServiceAccount {
    /// Reads a service-account JSON key file; `setting` names the config key in errors.
    pub fn from_file(
        path: &str,
        setting: &str,
        token_url: &str,
        scope: &'static str,
    ) -> anyhow::Result<ServiceAccount> {
        let raw = std::fs::read(path).map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
        let sa: ServiceAccountFile =
            serde_json::from_slice(&raw).map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
        let key = EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
            .map_err(|e| anyhow::anyhow!("{setting}: private_key: {e}"))?;
        Ok(ServiceAccount {
            client_email: sa.client_email,
            key,
            token_url: token_url.to_owned(),
            scope,
            http: super::http_client(),
            token: Mutex::new(None),
        })
    }

    /// A valid access token, from the cache or a new exchange. The error says what failed.
    pub async fn access_token(&self, now_ms: i64) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((t, expires)) = cached.as_ref()
            && *expires - TOKEN_MARGIN_MS > now_ms
        {
            return Ok(t.clone());
        }
        let iat = now_ms / 1000;
        let assertion = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &json!({"iss": self.client_email, "scope": self.scope, "aud": self.token_url, "iat": iat, "exp": iat + 3600}),
            &self.key,
        )
        .map_err(|e| format!("signing the token request: {e}"))?;
        let resp = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("token exchange: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("token exchange: HTTP {}", resp.status()));
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| format!("token exchange: {e}"))?;
        *cached = Some((t.access_token.clone(), now_ms + t.expires_in * 1000));
        Ok(t.access_token)
    }

    /// Forgets the cached token (the API refused it).
    pub async fn forget(&self) {
        *self.token.lock().await = None;
    }
}
