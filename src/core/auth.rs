//! Access tokens: Duet signs its own short-lived JWTs with an Ed25519 key (EdDSA), kept in the
//! data directory. Roles are not in the token: they live in redb and are read on every request,
//! so a role change or a ban takes effect at once.

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::error::{AppError, AppResult};

/// What a person is on the platform. Stored in redb, never trusted from a token.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    poem_openapi::Enum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum Role {
    User,
    Streamer,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Streamer => "streamer",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> AppResult<Role> {
        match s {
            "user" => Ok(Role::User),
            "streamer" => Ok(Role::Streamer),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(AppError::validation(format!(
                "role `{other}` is not one of user, streamer, moderator, admin"
            ))),
        }
    }
}

/// Who may call a route. Every route names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any signed-in, unbanned account.
    Any,
    /// Users (the paying side) only.
    User,
    /// Streamers only.
    Streamer,
    /// Moderators and admins.
    Staff,
    /// Admins only.
    Admin,
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Any => true,
            Access::User => role == Role::User,
            Access::Streamer => role == Role::Streamer,
            Access::Staff => matches!(role, Role::Moderator | Role::Admin),
            Access::Admin => role == Role::Admin,
        }
    }
}

/// The authenticated caller of a request or a WebSocket.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: super::ids::UserId,
    pub session_id: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    /// The session (refresh-token family) this token belongs to.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Access tokens whose signature was checked, by SHA-256 of the token: an Ed25519
/// verification costs ~50 µs, a hash ~1 µs, and an app sends the same token for up to 15
/// minutes. Only the signature is remembered; expiry is checked on every use against the
/// injected clock, and sessions, roles and bans are re-read by `user::authenticate` anyway.
const VERIFIED_MAX: usize = 100_000;

/// Signs and checks Duet's access tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl_secs: u64,
    verified: parking_lot::RwLock<std::collections::HashMap<[u8; 32], AccessClaims>>,
}

impl TokenIssuer {
    /// Loads the key at `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path, issuer: &str, ttl_secs: u64) -> anyhow::Result<Self> {
        let key = if path.exists() {
            let pem = std::fs::read_to_string(path)?;
            SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: not a PKCS#8 Ed25519 key: {e}", path.display()))?
        } else {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(Default::default())
                .map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, pem.as_bytes())?;
            tracing::info!(path = %path.display(), "created a new token signing key");
            key
        };
        let der = key
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
        Ok(TokenIssuer {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(key.verifying_key().as_bytes()),
            issuer: issuer.to_owned(),
            ttl_secs,
            verified: Default::default(),
        })
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: &str, session_id: &str, now_ms: i64) -> AppResult<String> {
        let iat = now_ms / 1000;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat,
            exp: iat + self.ttl_secs as i64,
            jti: super::ids::new_id(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(AppError::internal)
    }

    /// A long-lived token that proves only `purpose` for `user_id` (an unsubscribe link): it
    /// carries an audience, so it is never accepted as an access token, nor one as it.
    pub fn issue_for(&self, purpose: &str, user_id: &str) -> AppResult<String> {
        let claims = serde_json::json!({"iss": self.issuer, "sub": user_id, "aud": purpose});
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(AppError::internal)
    }

    /// The user a `purpose` token was issued for.
    pub fn verify_for(&self, purpose: &str, token: &str) -> AppResult<String> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[purpose]);
        v.validate_exp = false;
        v.set_required_spec_claims(&["sub", "iss", "aud"]);
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims.sub)
            .map_err(|_| AppError::unauthorized("the link is not valid"))
    }

    /// Checks signature, issuer and expiry against the injected clock.
    pub fn verify(&self, token: &str, now_ms: i64) -> AppResult<AccessClaims> {
        use sha2::{Digest, Sha256};
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.verified.read().get(&key).cloned();
        let claims = match known {
            Some(c) => c,
            None => {
                let c = self.verify_signature(token)?;
                let mut cache = self.verified.write();
                // A full cache starts over: tokens live 15 minutes, so a few are re-verified.
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
                cache.insert(key, c.clone());
                c
            }
        };
        if claims.exp * 1000 <= now_ms {
            return Err(AppError::unauthorized("the access token has expired"));
        }
        Ok(claims)
    }

    /// Signature, issuer and required claims; not expiry.
    fn verify_signature(&self, token: &str) -> AppResult<AccessClaims> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&self.issuer]);
        // Expiry is checked below against the injected clock, not the system clock.
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|_| AppError::unauthorized("the access token is not valid"))
    }
}

/// A random secret of `len` bytes kept in the file at `path` (created, owner-only, on first
/// use): keys that must survive restarts but never leave the data directory.
pub fn load_or_create_secret(path: &Path, len: usize) -> anyhow::Result<Vec<u8>> {
    if path.exists() {
        let secret = std::fs::read(path)?;
        anyhow::ensure!(
            secret.len() == len,
            "{}: expected a {len}-byte secret, found {} bytes",
            path.display(),
            secret.len()
        );
        return Ok(secret);
    }
    let mut secret = vec![0u8; len];
    rand::rng().fill_bytes(&mut secret);
    write_private(path, &secret)?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::TokenIssuer;

    #[test]
    fn a_remembered_signature_still_expires_and_a_forged_token_is_never_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(&dir.path().join("key.pem"), "duet", 900).unwrap();
        let t0 = 1_800_000_000_000;
        let token = issuer.issue("u-1", "s-1", t0).unwrap();
        assert_eq!(issuer.verify(&token, t0).unwrap().sub, "u-1");
        // The second check is served from the cache, with the same answer.
        assert_eq!(issuer.verify(&token, t0 + 1000).unwrap().sid, "s-1");
        assert!(
            issuer.verify(&token, t0 + 900_000).is_err(),
            "expired, cached or not"
        );
        // A token with a tampered payload has a different hash and a bad signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        let forged = parts.join(".");
        assert!(issuer.verify(&forged, t0).is_err());
        assert!(
            issuer.verify(&forged, t0).is_err(),
            "a failure is not remembered as a success"
        );
        // Another server's key: refused although its claims look fine.
        let other =
            TokenIssuer::load_or_create(&dir.path().join("other.pem"), "duet", 900).unwrap();
        assert!(
            issuer
                .verify(&other.issue("u-1", "s-1", t0).unwrap(), t0)
                .is_err()
        );
    }
}
