//! Idempotent requests: the same `Idempotency-Key` with the same request returns the original
//! result and has no second effect; with a different request it is refused
//! (`409 idempotency_conflict`). The record is written in the same transaction as the effect,
//! so a crash can never leave one without the other. Failed requests store nothing: a retry
//! runs again.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{AppError, AppResult, Code};
use super::store::{Tx, dec, enc, get, put};

crate::tables! {
    /// `<scope>|<key>` → IdempotencyRecord.
    IDEMPOTENCY: &str => &[u8] = "idempotency";
}

/// Longest accepted key.
pub const KEY_CHARS_MAX: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyRecord {
    fingerprint: String,
    /// The original result, MessagePack.
    result: Vec<u8>,
    created_at_ms: i64,
}

/// A validated key, scoped to who sent it and what for, with the request's fingerprint.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    scoped: String,
    fingerprint: String,
}

impl Idempotency {
    /// `raw` is the header value; `scope` names the caller and the operation (so two users, or
    /// two routes, never collide); `request` is everything that defines the request.
    pub fn new(raw: Option<&str>, scope: &str, request: &impl Serialize) -> AppResult<Idempotency> {
        let key = raw
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                AppError::new(
                    Code::IdempotencyKeyRequired,
                    "this request needs an Idempotency-Key header",
                )
            })?;
        if key.chars().count() > KEY_CHARS_MAX || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AppError::validation(format!(
                "Idempotency-Key must be 1–{KEY_CHARS_MAX} printable ASCII characters"
            )));
        }
        let bytes = serde_json::to_vec(request).map_err(AppError::internal)?;
        let fingerprint = super::ids::hex(&Sha256::digest(&bytes));
        Ok(Idempotency {
            key: key.to_owned(),
            scoped: format!("{scope}|{key}"),
            fingerprint,
        })
    }

    /// Runs `effect` once per key: a repeat returns the stored result without running it.
    pub fn run<R, F>(&self, tx: &Tx, effect: F) -> AppResult<R>
    where
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> AppResult<R>,
    {
        if let Some(rec) =
            get::<&str, IdempotencyRecord>(&tx.read(IDEMPOTENCY)?, self.scoped.as_str())?
        {
            if rec.fingerprint != self.fingerprint {
                return Err(AppError::new(
                    Code::IdempotencyConflict,
                    "this Idempotency-Key was used for a different request",
                ));
            }
            return dec(&rec.result);
        }
        let result = effect()?;
        let rec = IdempotencyRecord {
            fingerprint: self.fingerprint.clone(),
            result: enc(&result)?,
            created_at_ms: tx.now_ms(),
        };
        put(&mut tx.table(IDEMPOTENCY)?, self.scoped.as_str(), &rec)?;
        Ok(result)
    }
}
