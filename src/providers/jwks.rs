//! A cache of a provider's public keys (a JWKS), loaded from a file or a URL: fetched at start,
//! refetched after the refresh period or on an unknown `kid` (at most once a minute, so junk
//! tokens cannot hammer the URL), and kept as they are while the provider is unreachable.

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::RwLock;

use crate::core::error::{AppError, AppResult, Code};

/// Largest JWKS document accepted from a URL.
const JWKS_BYTES_MAX: usize = 256 * 1024;
/// The least time between two fetches triggered by unknown keys or staleness.
const REFETCH_MIN_MS: i64 = 60_000;

enum Source {
    File(std::path::PathBuf),
    Url(String),
}

struct Keys {
    set: JwkSet,
    fetched_at_ms: i64,
    /// Last fetch attempt, successful or not.
    attempted_at_ms: i64,
}

pub struct JwksCache {
    source: Source,
    refresh_ms: i64,
    http: reqwest::Client,
    keys: RwLock<Keys>,
}

impl JwksCache {
    /// Loads the keys once; a caller configured with a JWKS does not start without it.
    pub async fn new(
        file: &str,
        url: &str,
        refresh_secs: u64,
        now_ms: i64,
    ) -> AppResult<JwksCache> {
        let source = if file.is_empty() {
            Source::Url(url.to_owned())
        } else {
            Source::File(file.into())
        };
        let http = super::http_client();
        let set = fetch(&source, &http).await?;
        Ok(JwksCache {
            source,
            refresh_ms: refresh_secs as i64 * 1000,
            http,
            keys: RwLock::new(Keys {
                set,
                fetched_at_ms: now_ms,
                attempted_at_ms: now_ms,
            }),
        })
    }

    /// The key with this `kid`, if the provider has one.
    pub async fn key(&self, kid: &str, now_ms: i64) -> AppResult<Option<DecodingKey>> {
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
            if !stale && now_ms - keys.attempted_at_ms < REFETCH_MIN_MS {
                return Ok(None);
            }
        }
        let mut keys = self.keys.write().await;
        // Another request may have fetched (or tried) while this one waited for the lock.
        let stale = now_ms - keys.fetched_at_ms > self.refresh_ms;
        let known = keys.set.find(kid).is_some();
        let tried_lately = now_ms - keys.attempted_at_ms < REFETCH_MIN_MS;
        if (stale || !known) && !tried_lately {
            keys.attempted_at_ms = now_ms;
            match fetch(&self.source, &self.http).await {
                Ok(set) => {
                    keys.set = set;
                    keys.fetched_at_ms = now_ms;
                }
                // Keep serving the keys we have; the provider may be briefly unreachable.
                Err(e) => tracing::warn!(error = %e, "refreshing a JWKS failed"),
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
    let bytes = match source {
        Source::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| AppError::internal(format!("reading {}: {e}", path.display())))?,
        Source::Url(url) => {
            let resp = http.get(url).send().await.map_err(|e| {
                AppError::new(Code::ProviderFailed, format!("fetching the JWKS: {e}"))
            })?;
            if !resp.status().is_success() {
                return Err(AppError::new(
                    Code::ProviderFailed,
                    format!("fetching the JWKS: HTTP {}", resp.status()),
                ));
            }
            let body = resp.bytes().await.map_err(|e| {
                AppError::new(Code::ProviderFailed, format!("reading the JWKS: {e}"))
            })?;
            if body.len() > JWKS_BYTES_MAX {
                return Err(AppError::new(Code::ProviderFailed, "the JWKS is too large"));
            }
            body.to_vec()
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| AppError::internal(format!("the JWKS is not valid: {e}")))
}
