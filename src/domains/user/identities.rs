//! Linked identities: every way into an account (device, verified email, phone, Apple, Google,
//! Facebook, Firebase) is a row of `user_identity` keyed `<kind>:<subject>` and indexed by
//! account, so an account can list, add and remove its ways in. The last one cannot be
//! removed. Each change is a `user_identity_linked` / `user_identity_unlinked` event.

use redb::ReadableTable;

use crate::app::Ctx;
use crate::core::auth::Principal;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::NewEvent;
use crate::core::ids::secret_hash;
use crate::core::store::{Tx, get, put, second_keys};

use super::events::UserEvent;
use super::model::*;
use super::tables::*;
use super::{ClientMeta, Freshness, IdProvider, find_user_tx};

/// One of an account's ways in, as its owner (or an admin) sees it.
#[derive(Debug, Clone)]
pub struct IdentityInfo {
    /// Opaque and stable: what `DELETE /v1/me/identities/{provider}/{id}` takes.
    pub id: String,
    pub kind: IdentityKind,
    /// The device id, email address, phone number or the provider's subject.
    pub subject: String,
    pub linked_at_ms: i64,
    /// `false` only for an email the account added and has not verified.
    pub verified: bool,
}

/// The opaque id of an identity key.
fn id_of(key: &str) -> String {
    secret_hash(&format!("identity:{key}"))[..32].to_owned()
}

/// The account `subject` of `kind` belongs to, if any.
pub(super) fn owner_tx(tx: &Tx, kind: IdentityKind, subject: &str) -> AppResult<Option<String>> {
    let identity: Option<Identity> = get(&tx.read(IDENTITIES)?, kind.key(subject).as_str())?;
    Ok(identity.map(|i| i.user_id))
}

/// Gives `user_id` the identity `subject` of `kind`, with its index row and event.
pub(super) fn link_tx(
    tx: &Tx,
    kind: IdentityKind,
    subject: &str,
    user_id: &str,
    secret_hash: Option<String>,
) -> AppResult<()> {
    let key = kind.key(subject);
    let identity = Identity {
        user_id: user_id.to_owned(),
        secret_hash,
        linked_at_ms: tx.now_ms(),
    };
    put(&mut tx.table(IDENTITIES)?, key.as_str(), &identity)?;
    tx.table(IDENTITIES_BY_USER)?
        .insert((user_id, key.as_str()), ())?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::IdentityLinked {
            user_id: user_id.to_owned().into(),
            provider: kind.as_str().to_owned(),
        },
    ))?;
    Ok(())
}

/// The identity keys of an account, inside a write.
pub(super) fn keys_tx(tx: &Tx, user_id: &str) -> AppResult<Vec<String>> {
    second_keys(&tx.read(IDENTITIES_BY_USER)?, user_id)
}

/// Removes identity `key` of `user_id`, with its index row and event.
pub(super) fn unlink_key_tx(tx: &Tx, user_id: &str, key: &str) -> AppResult<()> {
    tx.table(IDENTITIES)?.remove(key)?;
    tx.table(IDENTITIES_BY_USER)?.remove((user_id, key))?;
    let provider = IdentityKind::of_key(key).map_or("unknown", |(k, _)| k.as_str());
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::IdentityUnlinked {
            user_id: user_id.to_owned().into(),
            provider: provider.to_owned(),
        },
    ))?;
    Ok(())
}

/// Indexes by account the identities written before the index existed. Runs at start; does
/// nothing once done.
pub fn index_identities_by_user(tx: &Tx) -> AppResult<u64> {
    if tx.read(USER_META)?.get("identity_index")?.is_some() {
        return Ok(0);
    }
    let rows: Vec<(String, String)> = {
        let ids = tx.read(IDENTITIES)?;
        let mut out = Vec::new();
        for row in ids.iter()? {
            let (k, v) = row?;
            let identity: Identity = crate::core::store::dec(v.value())?;
            out.push((identity.user_id, k.value().to_owned()));
        }
        out
    };
    let mut index = tx.table(IDENTITIES_BY_USER)?;
    for (user_id, key) in &rows {
        index.insert((user_id.as_str(), key.as_str()), ())?;
    }
    drop(index);
    tx.table(USER_META)?.insert("identity_index", 1)?;
    Ok(rows.len() as u64)
}

fn info(key: &str, identity: &Identity) -> Option<IdentityInfo> {
    let (kind, subject) = IdentityKind::of_key(key)?;
    Some(IdentityInfo {
        id: id_of(key),
        kind,
        subject: subject.to_owned(),
        linked_at_ms: identity.linked_at_ms,
        verified: true,
    })
}

/// An account's identities, oldest first, and the email it claimed but has not verified.
pub async fn list(ctx: &Ctx, user_id: &str) -> AppResult<Vec<IdentityInfo>> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let ids = rtx.open_table(IDENTITIES)?;
            let mut out = Vec::new();
            for key in second_keys(&rtx.open_table(IDENTITIES_BY_USER)?, &user_id)? {
                if let Some(identity) = get::<&str, Identity>(&ids, key.as_str())?
                    && let Some(i) = info(&key, &identity)
                {
                    out.push(i);
                }
            }
            out.sort_by_key(|i| i.linked_at_ms);
            let user = super::find_user(rtx, &user_id)?;
            if let Some(p) = user.and_then(|u| u.pending_email) {
                out.push(IdentityInfo {
                    id: id_of(&IdentityKind::Email.key(&p.address)),
                    kind: IdentityKind::Email,
                    subject: p.address,
                    linked_at_ms: 0,
                    verified: false,
                });
            }
            Ok(out)
        })
        .await
}

/// Removes one of the caller's ways in (or the email they have not verified). The last
/// verified one stays: an account nobody can sign in to is lost.
pub async fn unlink(ctx: &Ctx, who: &Principal, kind: IdentityKind, id: &str) -> AppResult<()> {
    let fresh = Freshness::of(ctx, who);
    let cfg = ctx.config.auth.email.clone();
    let (user_id, id) = (who.user_id.to_string(), id.to_owned());
    let mail = ctx
        .store
        .write(move |tx| {
            fresh.check_tx(tx)?;
            let mut user =
                find_user_tx(tx, &user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            if let Some(p) = &user.pending_email
                && kind == IdentityKind::Email
                && id_of(&IdentityKind::Email.key(&p.address)) == id
            {
                super::email::release_own_claim_tx(tx, &mut user)?;
                put(&mut tx.table(USERS)?, user_id.as_str(), &user)?;
                return Ok(None);
            }
            let keys = keys_tx(tx, &user_id)?;
            let key = keys
                .iter()
                .find(|k| id_of(k) == id && IdentityKind::of_key(k).is_some_and(|(k, _)| k == kind))
                .ok_or_else(|| AppError::not_found("no such identity"))?;
            if keys.len() == 1 {
                return Err(AppError::new(
                    Code::LastIdentity,
                    "this is the account's only way to sign in; link another first",
                ));
            }
            // Told before an email is removed, so its owner hears of it too.
            let change = format!(
                "A way to sign in ({}) was removed from your account",
                kind.as_str()
            );
            let mail = super::email::sign_in_change_notice_tx(tx, &cfg, &user, &change)?;
            if let Some((IdentityKind::Email, _)) = IdentityKind::of_key(key) {
                user.email = None;
                user.password_hash = None;
                put(&mut tx.table(USERS)?, user_id.as_str(), &user)?;
            }
            unlink_key_tx(tx, &user_id, key)?;
            Ok(mail)
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    Ok(())
}

/// What proves the caller holds the identity they link.
pub enum Proof {
    Device {
        device_id: String,
        device_secret: String,
    },
    Email {
        email: String,
        password: String,
    },
    Phone {
        phone: String,
        code: String,
    },
    IdToken {
        provider: IdProvider,
        id_token: String,
        nonce: Option<String>,
    },
    FacebookAccessToken(String),
}

impl Proof {
    fn kind(&self) -> IdentityKind {
        match self {
            Proof::Device { .. } => IdentityKind::Device,
            Proof::Email { .. } => IdentityKind::Email,
            Proof::Phone { .. } => IdentityKind::Phone,
            Proof::IdToken { provider, .. } => provider.kind(),
            Proof::FacebookAccessToken(_) => IdentityKind::Facebook,
        }
    }
}

/// Links another way in to the caller's account. An email is claimed (and a verification link
/// sent); every other identity is checked with its proof first and linked at once. An identity
/// of another account is refused (`identity_in_use`).
pub async fn link(ctx: &Ctx, who: &Principal, proof: Proof, meta: ClientMeta) -> AppResult<()> {
    let fresh = Freshness::of(ctx, who);
    fresh.check(ctx).await?;
    let kind = proof.kind();
    let (subject, secret) = match proof {
        Proof::Email { email, password } => {
            return super::add_email(ctx, &who.user_id, &email, &password, meta).await;
        }
        Proof::Device {
            device_id,
            device_secret,
        } => {
            let (id, secret) = super::parse_device(&device_id, &device_secret)?;
            (id, Some(secret_hash(&secret)))
        }
        Proof::Phone { phone, code } => (
            super::phone::check_code(ctx, &phone, &code, &meta).await?,
            None,
        ),
        Proof::IdToken {
            provider,
            id_token,
            nonce,
        } => {
            let verified =
                super::verify_id_token(ctx, provider, &id_token, nonce.as_deref(), &meta).await?;
            (verified.subject, None)
        }
        Proof::FacebookAccessToken(token) => {
            (super::verify_facebook(ctx, &token, &meta).await?.id, None)
        }
    };
    let user_id = who.user_id.to_string();
    let cfg = ctx.config.auth.email.clone();
    let mail = ctx
        .store
        .write(move |tx| {
            fresh.check_tx(tx)?;
            match owner_tx(tx, kind, &subject)? {
                Some(owner) if owner == user_id => return Ok(None),
                Some(_) => {
                    return Err(AppError::new(
                        Code::IdentityInUse,
                        format!("this {} sign-in belongs to another account", kind.as_str()),
                    ));
                }
                None => {}
            }
            let user =
                find_user_tx(tx, &user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            let change = format!(
                "A way to sign in ({}) was added to your account",
                kind.as_str()
            );
            let mail = super::email::sign_in_change_notice_tx(tx, &cfg, &user, &change)?;
            link_tx(tx, kind, &subject, &user_id, secret.clone())?;
            Ok(mail)
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    Ok(())
}
