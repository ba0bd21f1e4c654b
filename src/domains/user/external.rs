//! Verification of ID tokens issued by an external identity provider that speaks Firebase
//! Auth's format: RS256 JWTs whose key is found by `kid` in a JWKS (a file, or a URL fetched at
//! start, refreshed periodically and on an unknown `kid`).

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::config::ExternalIdpConfig;
use crate::core::error::{AppError, AppResult};
use crate::providers::jwks::JwksCache;

use super::model::EXTERNAL_SUBJECT_CHARS_MAX;

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

pub struct ExternalVerifier {
    project_id: String,
    issuer: String,
    leeway_secs: i64,
    keys: JwksCache,
}

impl ExternalVerifier {
    /// Loads the keys once; a server configured for external sign-in does not start without them.
    pub async fn new(cfg: &ExternalIdpConfig, now_ms: i64) -> anyhow::Result<ExternalVerifier> {
        let keys = JwksCache::new(&cfg.jwks_file, &cfg.jwks_url, cfg.jwks_refresh_secs, now_ms)
            .await
            .map_err(|e| anyhow::anyhow!("auth.external: {}", e.detail))?;
        Ok(ExternalVerifier {
            issuer: format!("https://securetoken.google.com/{}", cfg.project_id),
            project_id: cfg.project_id.clone(),
            leeway_secs: cfg.leeway_secs as i64,
            keys,
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
            .keys
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
}
