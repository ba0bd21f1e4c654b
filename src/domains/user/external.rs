//! Verification of OpenID Connect ID tokens from external identity providers: RS256 JWTs whose
//! key is found by `kid` in the provider's JWKS (a file, or a URL fetched at start, refreshed
//! periodically and on an unknown `kid`). One verifier per provider, each with its own issuers
//! and audiences:
//!
//! - Firebase-compatible tokens (`auth.external`): issuer `https://securetoken.google.com/<id>`,
//!   audience the project id, `auth_time` required;
//! - Sign in with Apple (`auth.apple`): issuer `https://appleid.apple.com`, audience one of the
//!   app's bundle or service ids, and the SHA-256 (hex) of the nonce the app generated;
//! - Google (`auth.google`): issuer `accounts.google.com` or `https://accounts.google.com`,
//!   audience one of the iOS, Android and web client ids.

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::config::{ExternalIdpConfig, OidcProviderConfig};
use crate::core::error::{AppError, AppResult};
use crate::providers::jwks::JwksCache;

use super::model::EXTERNAL_SUBJECT_CHARS_MAX;

/// Who an ID token says the person is.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for the email (Apple's private-relay addresses included).
    pub email_verified: bool,
}

/// `email_verified` is a boolean at Google and, at Apple, sometimes the string `"true"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(s) => s == "true",
        }
    }
}

#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    sub: String,
    exp: i64,
    iat: i64,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
    #[serde(default)]
    nonce: Option<String>,
}

/// What a provider's tokens must say beyond a valid signature.
#[derive(Debug, Clone)]
struct Rules {
    issuers: Vec<String>,
    audiences: Vec<String>,
    /// Firebase tokens carry `auth_time`, which must not be in the future.
    auth_time: bool,
    leeway_secs: i64,
}

pub struct IdTokenVerifier {
    rules: Rules,
    keys: JwksCache,
}

impl IdTokenVerifier {
    /// Loads the keys once; a server configured for a provider does not start without them.
    async fn load(
        section: &str,
        jwks_file: &str,
        jwks_url: &str,
        refresh_secs: u64,
        rules: Rules,
        now_ms: i64,
    ) -> anyhow::Result<IdTokenVerifier> {
        let keys = JwksCache::new(jwks_file, jwks_url, refresh_secs, now_ms)
            .await
            .map_err(|e| anyhow::anyhow!("{section}: {}", e.detail))?;
        Ok(IdTokenVerifier { rules, keys })
    }

    /// Firebase-compatible ID tokens (`auth.external`).
    pub async fn new(cfg: &ExternalIdpConfig, now_ms: i64) -> anyhow::Result<IdTokenVerifier> {
        let rules = Rules {
            issuers: vec![format!("https://securetoken.google.com/{}", cfg.project_id)],
            audiences: vec![cfg.project_id.clone()],
            auth_time: true,
            leeway_secs: cfg.leeway_secs as i64,
        };
        Self::load(
            "auth.external",
            &cfg.jwks_file,
            &cfg.jwks_url,
            cfg.jwks_refresh_secs,
            rules,
            now_ms,
        )
        .await
    }

    /// Sign in with Apple identity tokens (`auth.apple`).
    pub async fn apple(cfg: &OidcProviderConfig, now_ms: i64) -> anyhow::Result<IdTokenVerifier> {
        Self::provider(
            "auth.apple",
            cfg,
            vec!["https://appleid.apple.com".into()],
            now_ms,
        )
        .await
    }

    /// Google ID tokens (`auth.google`).
    pub async fn google(cfg: &OidcProviderConfig, now_ms: i64) -> anyhow::Result<IdTokenVerifier> {
        let issuers = vec![
            "accounts.google.com".into(),
            "https://accounts.google.com".into(),
        ];
        Self::provider("auth.google", cfg, issuers, now_ms).await
    }

    /// Facebook Limited Login tokens (`auth.facebook`, when it names a JWKS): audience the app
    /// id.
    pub async fn facebook_limited(
        cfg: &crate::config::FacebookConfig,
        now_ms: i64,
    ) -> anyhow::Result<IdTokenVerifier> {
        let rules = Rules {
            issuers: vec![
                "https://www.facebook.com".into(),
                "https://limited.facebook.com".into(),
            ],
            audiences: vec![cfg.app_id.clone()],
            auth_time: false,
            leeway_secs: cfg.leeway_secs as i64,
        };
        Self::load(
            "auth.facebook",
            &cfg.jwks_file,
            &cfg.jwks_url,
            cfg.jwks_refresh_secs,
            rules,
            now_ms,
        )
        .await
    }

    async fn provider(
        section: &str,
        cfg: &OidcProviderConfig,
        issuers: Vec<String>,
        now_ms: i64,
    ) -> anyhow::Result<IdTokenVerifier> {
        let rules = Rules {
            issuers,
            audiences: cfg.audiences.clone(),
            auth_time: false,
            leeway_secs: cfg.leeway_secs as i64,
        };
        Self::load(
            section,
            &cfg.jwks_file,
            &cfg.jwks_url,
            cfg.jwks_refresh_secs,
            rules,
            now_ms,
        )
        .await
    }

    /// Checks `token`; with `nonce`, the token must carry its SHA-256 in hex (Apple's rule: the
    /// app sends Apple the hash and keeps the raw nonce, so a stolen token cannot be replayed
    /// by anyone who does not hold it).
    pub async fn verify(
        &self,
        token: &str,
        nonce: Option<&str>,
        now_ms: i64,
    ) -> AppResult<ExternalIdentity> {
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
        v.set_audience(&self.rules.audiences);
        v.set_issuer(&self.rules.issuers);
        // Times are checked below against the injected clock.
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<IdTokenClaims>(token, &key, &v)
            .map_err(|e| invalid(&e.to_string()))?
            .claims;
        let (now, leeway) = (now_ms / 1000, self.rules.leeway_secs);
        if claims.exp + leeway <= now {
            return Err(invalid("expired"));
        }
        if claims.iat - leeway > now {
            return Err(invalid("issued in the future"));
        }
        if self.rules.auth_time {
            match claims.auth_time {
                Some(at) if at - leeway <= now => {}
                Some(_) => return Err(invalid("auth_time is in the future")),
                None => return Err(invalid("no auth_time")),
            }
        }
        if let Some(nonce) = nonce {
            use sha2::{Digest, Sha256};
            let expected: String = Sha256::digest(nonce.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if claims.nonce.as_deref() != Some(expected.as_str()) {
                return Err(invalid("the nonce does not match"));
            }
        }
        if claims.sub.is_empty() || claims.sub.chars().count() > EXTERNAL_SUBJECT_CHARS_MAX {
            return Err(invalid("sub must be 1–128 characters"));
        }
        Ok(ExternalIdentity {
            subject: claims.sub,
            email_verified: claims.email_verified.as_ref().is_some_and(Flag::is_true),
            email: claims.email,
        })
    }
}
