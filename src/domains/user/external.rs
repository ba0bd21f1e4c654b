//! Verification of ID tokens issued by an external identity provider that speaks Firebase
//! Auth's format: RS256 JWTs whose key is found by `kid` in a JWKS (a file, or a URL fetched at
//! start, refreshed periodically and on an unknown `kid`).

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::config::ExternalIdpConfig;
use crate::core::error::{AppError, AppResult, Code};

use super::model::EXTERNAL_SUBJECT_CHARS_MAX;

/// Largest JWKS document accepted from a URL.
const JWKS_BYTES_MAX: usize = 256 * 1024;
/// An unknown `kid` triggers a refetch at most this often, so junk tokens cannot hammer the URL.
const UNKNOWN_KID_REFETCH_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub subject: String,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    sub: String,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(default)]
    email: Option<String>,
}

enum Source {
    File(std::path::PathBuf),
    Url(String),
}

struct Keys {
    set: JwkSet,
    fetched_at_ms: i64,
    /// Last fetch attempt, successful or not: bounds refetches while the provider is down.
    attempted_at_ms: i64,
}

pub struct ExternalVerifier {
    project_id: String,
    issuer: String,
    source: Source,
    refresh_ms: i64,
    leeway_secs: i64,
    http: reqwest::Client,
    keys: RwLock<Keys>,
}

impl ExternalVerifier {
    /// Loads the keys once; a server configured for external sign-in does not start without them.
    pub async fn new(cfg: &ExternalIdpConfig, now_ms: i64) -> anyhow::Result<ExternalVerifier> {
        let source = if cfg.jwks_file.is_empty() {
            Source::Url(cfg.jwks_url.clone())
        } else {
            Source::File(cfg.jwks_file.clone().into())
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let set = fetch(&source, &http)
            .await
            .map_err(|e| anyhow::anyhow!("auth.external: {e}"))?;
        Ok(ExternalVerifier {
            issuer: format!("https://securetoken.google.com/{}", cfg.project_id),
            project_id: cfg.project_id.clone(),
            source,
            refresh_ms: cfg.jwks_refresh_secs as i64 * 1000,
            leeway_secs: cfg.leeway_secs as i64,
            http,
            keys: RwLock::new(Keys {
                set,
                fetched_at_ms: now_ms,
                attempted_at_ms: now_ms,
            }),
        })
    }

    pub async fn verify(&self, token: &str, now_ms: i64) -> AppResult<ExternalIdentity> {
        let invalid =
            |why: &str| AppError::unauthorized(format!("the ID token is not valid: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid("alg must be RS256"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid"))?;
        let key = self
            .key(&kid, now_ms)
            .await?
            .ok_or_else(|| invalid("unknown kid"))?;

        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.project_id]);
        v.set_issuer(&[&self.issuer]);
        // Times are checked below against the injected clock.
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<IdTokenClaims>(token, &key, &v)
            .map_err(|e| invalid(&e.to_string()))?
            .claims;
        let now = now_ms / 1000;
        if claims.exp + self.leeway_secs <= now {
            return Err(invalid("expired"));
        }
        if claims.iat - self.leeway_secs > now {
            return Err(invalid("issued in the future"));
        }
        if claims.auth_time - self.leeway_secs > now {
            return Err(invalid("auth_time is in the future"));
        }
        if claims.sub.is_empty() || claims.sub.chars().count() > EXTERNAL_SUBJECT_CHARS_MAX {
            return Err(invalid("sub must be 1–128 characters"));
        }
        Ok(ExternalIdentity {
            subject: claims.sub,
            email: claims.email,
        })
    }

    async fn key(&self, kid: &str, now_ms: i64) -> AppResult<Option<DecodingKey>> {
        {
            let keys = self.keys.read().await;
            let stale = now_ms - keys.fetched_at_ms > self.refresh_ms;
            if let Some(jwk) = keys.set.find(kid)
                && !stale
            {
                return DecodingKey::from_jwk(jwk)
                    .map(Some)
                    .map_err(AppError::internal);
            }
            if !stale && now_ms - keys.attempted_at_ms < UNKNOWN_KID_REFETCH_MS {
                return Ok(None);
            }
        }
        let mut keys = self.keys.write().await;
        // Another request may have fetched (or tried) while this one waited for the lock.
        let stale = now_ms - keys.fetched_at_ms > self.refresh_ms;
        let known = keys.set.find(kid).is_some();
        let tried_lately = now_ms - keys.attempted_at_ms < UNKNOWN_KID_REFETCH_MS;
        if (stale || !known) && !tried_lately {
            keys.attempted_at_ms = now_ms;
            match fetch(&self.source, &self.http).await {
                Ok(set) => {
                    keys.set = set;
                    keys.fetched_at_ms = now_ms;
                }
                // Keep serving the keys we have; the provider may be briefly unreachable.
                Err(e) => tracing::warn!(error = %e, "refreshing the external JWKS failed"),
            }
        }
        match keys.set.find(kid) {
            Some(jwk) => DecodingKey::from_jwk(jwk)
                .map(Some)
                .map_err(AppError::internal),
            None => Ok(None),
        }
    }
}

async fn fetch(source: &Source, http: &reqwest::Client) -> AppResult<JwkSet> {
    let bytes =
        match source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| AppError::internal(format!("reading {}: {e}", path.display())))?,
            Source::Url(url) => {
                let resp = http.get(url).send().await.map_err(|e| {
                    AppError::new(Code::Unavailable, format!("fetching the JWKS: {e}"))
                })?;
                if !resp.status().is_success() {
                    return Err(AppError::new(
                        Code::Unavailable,
                        format!("fetching the JWKS: HTTP {}", resp.status()),
                    ));
                }
                let body = resp.bytes().await.map_err(|e| {
                    AppError::new(Code::Unavailable, format!("reading the JWKS: {e}"))
                })?;
                if body.len() > JWKS_BYTES_MAX {
                    return Err(AppError::new(Code::Unavailable, "the JWKS is too large"));
                }
                body.to_vec()
            }
        };
    serde_json::from_slice(&bytes)
        .map_err(|e| AppError::internal(format!("the JWKS is not valid: {e}")))
}
