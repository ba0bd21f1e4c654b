//! Service credentials: what an external ML moderation pipeline signs in with. An admin
//! creates one (scoped to moderation; the token is shown once and stored only as its SHA-256),
//! lists and revokes them; each is audited. A credential reads the items waiting for a score and
//! posts scores (`media::moderation::score_external`), which the same thresholds judge as the
//! in-process model's.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::Ctx;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::ids::{new_id, random_token, secret_hash};
use crate::core::store::{get, put};
use crate::domains::audit::record_tx as audit_tx;

use super::tables::{SERVICE_CREDENTIALS, SERVICE_TOKENS};

/// The one scope there is: fetching items waiting for a score, posting scores.
pub const SCOPE_MODERATION: &str = "moderation";
/// Longest credential name, in characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Credentials at most (revoked ones included: they are the record of who could do what).
pub const CREDENTIALS_MAX: usize = 1_000;
/// What every service token starts with, so it is never mistaken for an access token.
const TOKEN_PREFIX: &str = "duet_svc_";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceCredential {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl ServiceCredential {
    /// Who its decisions are by, in media records and events.
    pub fn actor(&self) -> String {
        format!("service:{}", self.id)
    }
}

/// Creates a credential; returns it with its token, which is shown this once.
pub async fn create(ctx: &Ctx, actor: &str, name: &str) -> AppResult<(ServiceCredential, String)> {
    let name = crate::core::text::Text::<1, NAME_CHARS_MAX>::parse("name", name)?.into_string();
    let token = format!("{TOKEN_PREFIX}{}", random_token(32));
    let hash = secret_hash(&token);
    let actor = actor.to_owned();
    let id = new_id();
    let cred = ctx
        .store
        .write(move |tx| {
            if tx.read(SERVICE_CREDENTIALS)?.iter()?.count() >= CREDENTIALS_MAX {
                return Err(AppError::conflict(format!(
                    "at most {CREDENTIALS_MAX} service credentials"
                )));
            }
            let cred = ServiceCredential {
                id: id.clone(),
                name: name.clone(),
                scope: SCOPE_MODERATION.into(),
                created_by: actor.clone(),
                created_at_ms: tx.now_ms(),
                revoked_at_ms: None,
            };
            put(&mut tx.table(SERVICE_CREDENTIALS)?, cred.id.as_str(), &cred)?;
            tx.table(SERVICE_TOKENS)?
                .insert(hash.as_str(), cred.id.as_str())?;
            audit_tx(
                tx,
                &actor,
                "service_credential.create",
                &cred.id,
                json!({"name": cred.name, "scope": cred.scope}),
            )?;
            Ok(cred)
        })
        .await?;
    Ok((cred, token))
}

pub async fn list(ctx: &Ctx) -> AppResult<Vec<ServiceCredential>> {
    ctx.store
        .read(|rtx| {
            rtx.open_table(SERVICE_CREDENTIALS)?
                .iter()?
                .map(|row| crate::core::store::dec(row?.1.value()))
                .collect()
        })
        .await
}

/// Revokes a credential at once: its next request is refused. Audited.
pub async fn revoke(ctx: &Ctx, actor: &str, id: &str) -> AppResult<ServiceCredential> {
    let (actor, id) = (actor.to_owned(), id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut cred: ServiceCredential = get(&tx.read(SERVICE_CREDENTIALS)?, id.as_str())?
                .ok_or_else(|| AppError::not_found("no such service credential"))?;
            if cred.revoked_at_ms.is_none() {
                cred.revoked_at_ms = Some(tx.now_ms());
                put(&mut tx.table(SERVICE_CREDENTIALS)?, cred.id.as_str(), &cred)?;
                audit_tx(tx, &actor, "service_credential.revoke", &cred.id, json!({}))?;
            }
            Ok(cred)
        })
        .await
}

/// The credential a service token belongs to, when it is live and holds `scope`; `401
/// unauthorized` otherwise (the same answer for unknown and revoked tokens).
pub async fn authenticate(ctx: &Ctx, token: &str, scope: &str) -> AppResult<ServiceCredential> {
    let refused = || AppError::new(Code::Unauthorized, "not a live service credential");
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(refused());
    }
    let hash = secret_hash(token);
    let cred = ctx
        .store
        .read(move |rtx| {
            let Some(id) = rtx
                .open_table(SERVICE_TOKENS)?
                .get(hash.as_str())?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            get::<&str, ServiceCredential>(&rtx.open_table(SERVICE_CREDENTIALS)?, id.as_str())
        })
        .await?
        .ok_or_else(refused)?;
    if cred.revoked_at_ms.is_some() || cred.scope != scope {
        return Err(refused());
    }
    Ok(cred)
}
