//! Google Play: the Developer API adapter (service-account JWT exchanged for an OAuth access
//! token, then `purchases.products.get` and `:consume`) and the verification of Real-time
//! Developer Notifications pushed by Pub/Sub (an RS256 OIDC token signed by Google).
//! Base URLs are configurable so tests run against a local fake that speaks Google's format.

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::google_oauth::ServiceAccount;
use super::jwks::JwksCache;
use crate::config::GoogleConfig;
use crate::core::error::{AppError, AppResult, Code};

const SCOPE: &str = "https://www.googleapis.com/auth/androidpublisher";

fn failed(why: impl std::fmt::Display) -> AppError {
    AppError::new(Code::ProviderFailed, format!("Google Play: {why}"))
}

/// `purchases.products` resource, the fields Duet uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPurchase {
    /// 0 purchased, 1 canceled, 2 pending. Required: an answer without it is not a purchase.
    pub purchase_state: i32,
    /// 0 yet to be consumed, 1 consumed.
    #[serde(default)]
    pub consumption_state: i32,
    #[serde(default)]
    pub order_id: String,
    /// 0 test (license testing), 1 promo, 2 rewarded; absent for a real purchase.
    #[serde(default)]
    pub purchase_type: Option<i32>,
    #[serde(default)]
    pub quantity: Option<u32>,
    /// What the app set as `obfuscatedAccountId`: the payment intent's id.
    #[serde(default)]
    pub obfuscated_external_account_id: Option<String>,
}

pub struct GooglePlay {
    package_name: String,
    api_base: String,
    account: ServiceAccount,
    http: reqwest::Client,
    accept_test_purchases: bool,
}

impl GooglePlay {
    pub fn new(cfg: &GoogleConfig) -> anyhow::Result<GooglePlay> {
        let account = ServiceAccount::from_file(
            &cfg.service_account_file,
            "payments.google.service_account_file",
            &cfg.token_url,
            SCOPE,
        )?;
        Ok(GooglePlay {
            package_name: cfg.package_name.clone(),
            api_base: cfg.api_base_url.trim_end_matches('/').to_owned(),
            account,
            http: super::http_client(),
            accept_test_purchases: cfg.accept_test_purchases,
        })
    }

    /// Whether license-test purchases are credited (a staging server).
    pub fn accepts_test_purchases(&self) -> bool {
        self.accept_test_purchases
    }

    async fn access_token(&self, now_ms: i64) -> AppResult<String> {
        self.account.access_token(now_ms).await.map_err(failed)
    }

    fn url(&self, product_id: &str, purchase_token: &str, suffix: &str) -> AppResult<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.api_base)
            .map_err(|e| failed(format!("api base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| failed("api base URL cannot take a path"))?
            .extend([
                "androidpublisher",
                "v3",
                "applications",
                &self.package_name,
                "purchases",
                "products",
                product_id,
                "tokens",
                &format!("{purchase_token}{suffix}"),
            ]);
        Ok(url)
    }

    /// `purchases.products.get`. A token Google does not know is `invalid_receipt`.
    pub async fn get_product(
        &self,
        product_id: &str,
        purchase_token: &str,
        now_ms: i64,
    ) -> AppResult<ProductPurchase> {
        let token = self.access_token(now_ms).await?;
        let resp = self
            .http
            .get(self.url(product_id, purchase_token, "")?)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| failed(format!("purchases.products.get: {e}")))?;
        match resp.status().as_u16() {
            200 => resp
                .json()
                .await
                .map_err(|e| failed(format!("purchases.products.get: {e}"))),
            400 | 404 | 410 => Err(AppError::new(
                Code::InvalidReceipt,
                "Google Play does not know this purchase",
            )),
            s => Err(failed(format!("purchases.products.get: HTTP {s}"))),
        }
    }

    /// `purchases.products.consume` (coin packs are consumables; consuming acknowledges too).
    pub async fn consume(
        &self,
        product_id: &str,
        purchase_token: &str,
        now_ms: i64,
    ) -> AppResult<()> {
        let token = self.access_token(now_ms).await?;
        let resp = self
            .http
            .post(self.url(product_id, purchase_token, ":consume")?)
            .bearer_auth(token)
            .header("content-length", "0")
            .send()
            .await
            .map_err(|e| failed(format!("purchases.products.consume: {e}")))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failed(format!(
                "purchases.products.consume: HTTP {}",
                resp.status()
            )))
        }
    }
}

/// Checks the OIDC token Pub/Sub sends with each push.
pub struct PubSubVerifier {
    keys: JwksCache,
    audience: String,
    service_account: String,
}

#[derive(Deserialize)]
struct PushClaims {
    exp: i64,
    email: String,
    #[serde(default)]
    email_verified: bool,
}

impl PubSubVerifier {
    pub async fn new(cfg: &GoogleConfig, now_ms: i64) -> anyhow::Result<PubSubVerifier> {
        let keys = JwksCache::new(&cfg.pubsub_jwks_file, &cfg.pubsub_jwks_url, 3600, now_ms)
            .await
            .map_err(|e| anyhow::anyhow!("payments.google.pubsub_jwks: {}", e.detail))?;
        Ok(PubSubVerifier {
            keys,
            audience: cfg.pubsub_audience.clone(),
            service_account: cfg.pubsub_service_account.clone(),
        })
    }

    pub async fn verify(&self, bearer: &str, now_ms: i64) -> AppResult<()> {
        let bad = |why: &str| AppError::unauthorized(format!("the push token is not valid: {why}"));
        let header = jsonwebtoken::decode_header(bearer).map_err(|_| bad("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad("alg must be RS256"));
        }
        let kid = header.kid.ok_or_else(|| bad("no kid"))?;
        let key = self
            .keys
            .key(&kid, now_ms)
            .await?
            .ok_or_else(|| bad("unknown kid"))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.audience]);
        v.set_issuer(&["accounts.google.com", "https://accounts.google.com"]);
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<PushClaims>(bearer, &key, &v)
            .map_err(|e| bad(&e.to_string()))?
            .claims;
        if claims.exp * 1000 <= now_ms {
            return Err(bad("expired"));
        }
        if claims.email != self.service_account || !claims.email_verified {
            return Err(bad("not the configured push service account"));
        }
        Ok(())
    }
}
