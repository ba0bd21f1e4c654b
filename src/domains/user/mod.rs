//! The user domain: accounts, sign-in (device, password, phone, Apple, Google, Facebook,
//! Firebase-compatible ID tokens), linked identities, verified emails and password reset,
//! sessions with refresh-token rotation and reuse detection, login attempts and throttling,
//! push registration tokens, roles and bans, scheduled account deletion, and presence.

pub mod api;
pub mod deletion;
pub mod email;
pub mod events;
pub mod external;
pub mod identities;
pub mod model;
pub mod phone;
pub mod presence;
mod tables;
pub use tables::TABLES;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use redb::{ReadTransaction, ReadableTable};

use crate::app::Ctx;
use crate::core::auth::{Access, Principal, Role};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::{Audience, NewEvent};
use crate::core::ids::{new_id, random_token, secret_hash};
use crate::core::store::{Reads, Store, Tx, get, put};
use events::UserEvent;
use model::*;
use tables::*;

/// Who is signing in, for the session list and throttling.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub platform: Option<Platform>,
}

/// What every sign-in returns.
#[derive(Debug, Clone)]
pub struct AuthTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user_id: String,
}

/// Refresh tokens are 256-bit random strings.
const REFRESH_TOKEN_BYTES: usize = 32;

// ---------------------------------------------------------------------------------------------
// Reads other domains use.

pub fn find_user(r: &impl Reads, user_id: &str) -> AppResult<Option<UserRecord>> {
    get(&r.read_table(USERS)?, user_id)
}

/// How many accounts there are.
pub fn count(rtx: &ReadTransaction) -> AppResult<u64> {
    use redb::ReadableTableMetadata;
    Ok(rtx.open_table(USERS)?.len()?)
}

/// Every account id, in order, after `after` (exclusive), at most `limit`: for rebuilding what
/// other domains derive from accounts.
/// Every account id in order, a page per read: for passes over all accounts (the gallery's
/// rebuild, cohort recomputes and previews) that must not keep one read open for long.
pub struct AccountPages {
    after: Option<String>,
    size: usize,
}

impl AccountPages {
    pub fn new(size: usize) -> AccountPages {
        AccountPages { after: None, size }
    }

    /// The next page of ids; empty at the end.
    pub async fn next(&mut self, store: &Store) -> AppResult<Vec<String>> {
        let (after, size) = (self.after.clone(), self.size);
        let ids = store
            .read(move |rtx| ids_after(rtx, after.as_deref(), size))
            .await?;
        if let Some(last) = ids.last() {
            self.after = Some(last.clone());
        }
        Ok(ids)
    }
}

fn ids_after(rtx: &ReadTransaction, after: Option<&str>, limit: usize) -> AppResult<Vec<String>> {
    let t = rtx.open_table(USERS)?;
    let rows = match after {
        Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
        None => t.iter()?,
    };
    let mut out = Vec::new();
    for row in rows.take(limit) {
        out.push(row?.0.value().to_owned());
    }
    Ok(out)
}

pub fn presence_of(r: &impl Reads, user_id: &str) -> AppResult<PresenceRecord> {
    Ok(get(&r.read_table(PRESENCE)?, user_id)?.unwrap_or_default())
}

/// A user's stored presence, inside a write.
pub fn presence_of_tx(tx: &Tx, user_id: &str) -> AppResult<PresenceRecord> {
    presence_of(tx, user_id)
}

/// Reads a user inside a write operation.
/// The account that holds an identity (`email`, `phone`, …) with this subject, if any.
pub fn owner_of_identity(
    r: &impl Reads,
    kind: IdentityKind,
    subject: &str,
) -> AppResult<Option<String>> {
    let identity: Option<Identity> = get(&r.read_table(IDENTITIES)?, kind.key(subject).as_str())?;
    Ok(identity.map(|i| i.user_id))
}

pub fn find_user_tx(tx: &Tx, user_id: &str) -> AppResult<Option<UserRecord>> {
    find_user(tx, user_id)
}

// ---------------------------------------------------------------------------------------------
// Authentication of requests.

/// Checks a bearer token and the caller's standing: the session is live, the account is not
/// banned (`account_banned`), and its role passes `access` (`forbidden`).
pub async fn authenticate(ctx: &Ctx, token: &str, access: Access) -> AppResult<Principal> {
    let claims = ctx.tokens.verify(token, ctx.store.now_ms())?;
    let (user_id, session_id) = (claims.sub, claims.sid);
    // Two point lookups on every request: inline, the hop to the blocking pool costs more.
    let (user, session) = ctx.store.read_inline(|rtx| {
        let user: Option<UserRecord> = get(&rtx.open_table(USERS)?, user_id.as_str())?;
        let session: Option<SessionRecord> = get(&rtx.open_table(SESSIONS)?, session_id.as_str())?;
        Ok((user, session))
    })?;
    let user = user
        .filter(|u| u.erased_at_ms.is_none())
        .ok_or_else(|| AppError::unauthorized("the account no longer exists"))?;
    match session {
        Some(s) if s.revoked_at_ms.is_none() && s.user_id == user.id => {}
        _ => return Err(AppError::unauthorized("the session has been revoked")),
    }
    user.refuse_if_banned(ctx.store.now_ms())?;
    if !access.allows(user.role) {
        return Err(AppError::forbidden(format!(
            "this needs {access:?} access; the account is a {}",
            user.role.as_str()
        )));
    }
    Ok(Principal {
        user_id: user_id.into(),
        session_id,
        role: user.role,
    })
}

/// What a change to how an account signs in, its deletion or its export asks of the caller's
/// session: that it is live and was opened within `auth.fresh_sign_in_secs` — a session
/// continued by refreshing, or a token taken from a log, is not enough — and, when the account
/// has any other way in, not by device: the device secret stays on the phone, so whoever holds
/// the unlocked phone could sign in by device again.
#[derive(Debug, Clone)]
pub struct Freshness {
    session_id: String,
    within_ms: i64,
}

impl Freshness {
    pub fn of(ctx: &Ctx, who: &Principal) -> Freshness {
        Freshness {
            session_id: who.session_id.clone(),
            within_ms: ctx.config.auth.fresh_sign_in_secs as i64 * 1000,
        }
    }

    /// Refuses (`reauthentication_required`) unless the session is fresh; reads only.
    pub fn check_tx(&self, tx: &Tx) -> AppResult<SessionRecord> {
        self.check_in(
            &tx.read(SESSIONS)?,
            &tx.read(IDENTITIES_BY_USER)?,
            tx.now_ms(),
        )
    }

    /// The same check before any work (a slow hash, a provider call, an export).
    pub async fn check(&self, ctx: &Ctx) -> AppResult<()> {
        let (me, now) = (self.clone(), ctx.store.now_ms());
        ctx.store
            .read(move |rtx| {
                let (sessions, index) = (
                    rtx.open_table(SESSIONS)?,
                    rtx.open_table(IDENTITIES_BY_USER)?,
                );
                me.check_in(&sessions, &index, now).map(drop)
            })
            .await
    }

    fn check_in(
        &self,
        sessions: &impl ReadableTable<&'static str, &'static [u8]>,
        identities: &impl ReadableTable<(&'static str, &'static str), ()>,
        now_ms: i64,
    ) -> AppResult<SessionRecord> {
        let session: SessionRecord = get(sessions, self.session_id.as_str())?
            .filter(|s: &SessionRecord| s.revoked_at_ms.is_none())
            .ok_or_else(|| AppError::unauthorized("the session has been revoked"))?;
        let again = |why: String| Err(AppError::new(Code::ReauthenticationRequired, why));
        if now_ms - session.created_at_ms > self.within_ms {
            return again(format!(
                "this needs a sign-in within the last {} seconds; sign in again",
                self.within_ms / 1000
            ));
        }
        if session.method == SignInMethod::Device {
            let keys = crate::core::store::second_keys(identities, &session.user_id)?;
            let device = IdentityKind::Device.as_str();
            if keys.iter().any(|k| !k.starts_with(device)) {
                return again(
                    "sign in with your email, phone or provider first; a device sign-in is \
                     not enough for this"
                        .into(),
                );
            }
        }
        Ok(session)
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in.

/// Anonymous sign-in by device: the first use creates the account.
pub async fn sign_in_device(
    ctx: &Ctx,
    device_id: &str,
    device_secret: &str,
    platform: Platform,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let (device_id, secret) = parse_device(device_id, device_secret)?;
    let account = format!("device:{device_id}");
    let _claim = ctx.sign_in.claim(&account)?;
    check_throttle(ctx, Some(&account), &meta, AddressLimit::Ignored).await?;
    let secret_hash = secret_hash(&secret);
    let meta = ClientMeta {
        platform: Some(platform),
        ..meta
    };
    let refresh = random_token(REFRESH_TOKEN_BYTES);
    let ttl_ms = refresh_ttl_ms(ctx);
    let (m, acc, r) = (meta.clone(), account.clone(), refresh.clone());
    let limit = Quota::signups(ctx, &meta);
    let device_id = device_id.clone();
    let result = ctx
        .store
        .write(move |tx| {
            let existing: Option<Identity> = get(&tx.read(IDENTITIES)?, acc.as_str())?;
            let user_id = match existing {
                Some(identity) => {
                    if identity.secret_hash.as_deref() != Some(secret_hash.as_str()) {
                        return Err(AppError::new(
                            Code::InvalidCredentials,
                            "the device secret does not match",
                        ));
                    }
                    identity.user_id
                }
                None => {
                    admit(tx, std::slice::from_ref(&limit))?;
                    let user = create_user(tx, Some(platform), None, "device")?;
                    note(tx, std::slice::from_ref(&limit))?;
                    let hash = Some(secret_hash.clone());
                    identities::link_tx(tx, IdentityKind::Device, &device_id, &user.id, hash)?;
                    user.id
                }
            };
            signed_in(tx, &acc, &user_id, SignInMethod::Device, &m)?;
            open_session(tx, &user_id, SignInMethod::Device, &m, &r, ttl_ms)
        })
        .await;
    finish_sign_in(ctx, result, &account, SignInMethod::Device, &meta, refresh).await
}

/// The device id and secret of a device sign-in, checked.
fn parse_device(device_id: &str, device_secret: &str) -> AppResult<(String, String)> {
    Ok((
        parse_token_like("deviceId", device_id, 1, DEVICE_ID_CHARS_MAX)?,
        parse_token_like(
            "deviceSecret",
            device_secret,
            DEVICE_SECRET_CHARS_MIN,
            DEVICE_SECRET_CHARS_MAX,
        )?,
    ))
}

/// Creates an account with email and password, or, when `linking` is given, adds them to that
/// (typically anonymous) account so it can sign in from another device once the email is
/// verified. Either way the email is only claimed until its owner opens the verification link,
/// and the answer is the same whether the address is registered (see [`email`]).
pub async fn register(
    ctx: &Ctx,
    email: &str,
    password: &str,
    linking: Option<Principal>,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let fresh = linking.as_ref().map(|p| Freshness::of(ctx, p));
    if let Some(f) = &fresh {
        f.check(ctx).await?;
    }
    let claimant = linking.as_ref().map(|p| p.user_id.to_string());
    let (email, hash) = email_and_hash(ctx, email, password, claimant.as_deref(), &meta).await?;
    let refresh = random_token(REFRESH_TOKEN_BYTES);
    let ttl_ms = refresh_ttl_ms(ctx);
    let (m, r) = (meta.clone(), refresh.clone());
    let limit = Quota::signups(ctx, &meta);
    let cfg = ctx.config.auth.email.clone();
    let (session, mail) = ctx
        .store
        .write(move |tx| {
            // Linking continues the caller's sign-in: the session it opens is no fresher.
            let caller = fresh.as_ref().map(|f| f.check_tx(tx)).transpose()?;
            let mut user = match &linking {
                Some(p) => find_user_tx(tx, &p.user_id)?
                    .ok_or_else(|| AppError::not_found("account not found"))?,
                None => {
                    admit(tx, std::slice::from_ref(&limit))?;
                    let user = create_user(tx, m.platform, Some(&hash), "password")?;
                    note(tx, std::slice::from_ref(&limit))?;
                    user
                }
            };
            let mail = claim_email(tx, &cfg, &mut user, &email, &hash)?;
            let mut session = open_session(tx, &user.id, SignInMethod::Password, &m, &r, ttl_ms)?;
            if let Some(caller) = caller {
                session.created_at_ms = caller.created_at_ms;
                session.method = caller.method;
                put(&mut tx.table(SESSIONS)?, session.id.as_str(), &session)?;
            }
            Ok((session, mail))
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    tokens(ctx, session, refresh)
}

/// Checks an email and a password, and hashes the password. The slow hash is paid for first:
/// each claim counts against the client address (`auth.throttle.signups_per_address_max` per
/// window) and, for an account adding an email, the account (`auth.email.
/// resends_per_hour_max` an hour), so nobody floods mailboxes or the hashing slots.
async fn email_and_hash(
    ctx: &Ctx,
    email: &str,
    password: &str,
    claimant: Option<&str>,
    meta: &ClientMeta,
) -> AppResult<(Email, String)> {
    let email = Email::parse(email)?;
    let password = Password::parse(password)?;
    check_throttle(ctx, None, meta, AddressLimit::Applies).await?;
    let t = &ctx.config.auth.throttle;
    let mut quotas = vec![Quota::new(
        format!("claim:{}", counted_address(meta)),
        t.signups_per_address_max,
        t.window_secs as i64 * 1000,
    )];
    if let Some(user_id) = claimant {
        quotas.push(Quota::new(
            format!("claim:{user_id}"),
            ctx.config.auth.email.resends_per_hour_max,
            3_600_000,
        ));
    }
    ctx.store
        .write(move |tx| {
            admit(tx, &quotas)?;
            note(tx, &quotas)
        })
        .await?;
    let _slot = ctx.sign_in.hashing_slot().await?;
    Ok((email, hash_password(password).await?))
}

/// Claims `email` with `password_hash` for `user` (written back here). An account whose email
/// is already verified changes it by unlinking that one first.
fn claim_email(
    tx: &Tx,
    cfg: &crate::config::EmailAuthConfig,
    user: &mut UserRecord,
    email: &Email,
    password_hash: &str,
) -> AppResult<Option<email::AuthMail>> {
    if user.email.is_some() {
        return Err(AppError::conflict(
            "this account already has a verified email",
        ));
    }
    user.password_hash = Some(password_hash.to_owned());
    user.password_set_at_ms = tx.now_ms();
    let mail = email::claim_tx(tx, cfg, user, email)?;
    put(&mut tx.table(USERS)?, user.id.as_str(), user)?;
    Ok(mail)
}

/// Adds email and password to the caller's account as a claim (a verification link goes out).
async fn add_email(
    ctx: &Ctx,
    user_id: &str,
    email: &str,
    password: &str,
    meta: ClientMeta,
) -> AppResult<()> {
    let (email, hash) = email_and_hash(ctx, email, password, Some(user_id), &meta).await?;
    let cfg = ctx.config.auth.email.clone();
    let user_id = user_id.to_owned();
    let mail = ctx
        .store
        .write(move |tx| {
            let mut user =
                find_user_tx(tx, &user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            claim_email(tx, &cfg, &mut user, &email, &hash)
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    Ok(())
}

/// Email + password sign-in.
pub async fn login(
    ctx: &Ctx,
    email: &str,
    password: &str,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let email = Email::parse(email)
        .map_err(|_| AppError::new(Code::InvalidCredentials, "wrong email or password"))?;
    let account = format!("email:{}", email.as_str());
    let _claim = ctx.sign_in.claim(&account)?;
    check_throttle(ctx, Some(&account), &meta, AddressLimit::Applies).await?;
    let acc = account.clone();
    let user = ctx
        .store
        .read(move |rtx| {
            let identity: Option<Identity> = get(&rtx.open_table(IDENTITIES)?, acc.as_str())?;
            match identity {
                Some(i) => find_user(rtx, &i.user_id),
                None => Ok(None),
            }
        })
        .await?;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // An unknown email still costs one hash, so response time does not tell which emails exist.
    let ok = {
        let _slot = ctx.sign_in.hashing_slot().await?;
        verify_password(password.to_owned(), stored_hash).await?
    };
    let refresh = random_token(REFRESH_TOKEN_BYTES);
    let result = match (ok, user) {
        (true, Some(user)) => {
            let ttl_ms = refresh_ttl_ms(ctx);
            let (m, r, acc) = (meta.clone(), refresh.clone(), account.clone());
            ctx.store
                .write(move |tx| {
                    signed_in(tx, &acc, &user.id, SignInMethod::Password, &m)?;
                    open_session(tx, &user.id, SignInMethod::Password, &m, &r, ttl_ms)
                })
                .await
        }
        _ => Err(AppError::new(
            Code::InvalidCredentials,
            "wrong email or password",
        )),
    };
    finish_sign_in(
        ctx,
        result,
        &account,
        SignInMethod::Password,
        &meta,
        refresh,
    )
    .await
}

/// Sign-in with an external provider's ID token (Firebase-compatible). The first use creates
/// the account and links the provider's subject to it.
pub async fn sign_in_external(
    ctx: &Ctx,
    id_token: &str,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    sign_in_with_id_token(ctx, IdProvider::Firebase, id_token, None, meta).await
}

/// Signs in with a one-time code sent by SMS: the first use of a number creates the account.
pub async fn sign_in_phone(
    ctx: &Ctx,
    phone: &str,
    code: &str,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let phone = phone::check_code(ctx, phone, code, &meta).await?;
    sign_in_identity(ctx, IdentityKind::Phone, &phone, None, meta).await
}

/// The identity providers whose ID tokens sign people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProvider {
    /// Firebase-compatible tokens (`auth.external`), so Firebase users keep their UIDs.
    Firebase,
    Apple,
    Google,
    /// iOS Limited Login's OIDC token; a classic access token goes through
    /// [`sign_in_facebook`].
    Facebook,
}

impl IdProvider {
    /// The kind of identity its subjects are.
    pub fn kind(self) -> IdentityKind {
        match self {
            IdProvider::Firebase => IdentityKind::Firebase,
            IdProvider::Apple => IdentityKind::Apple,
            IdProvider::Google => IdentityKind::Google,
            IdProvider::Facebook => IdentityKind::Facebook,
        }
    }

    fn verifier(self, ctx: &Ctx) -> AppResult<&external::IdTokenVerifier> {
        let (verifier, name) = match self {
            IdProvider::Firebase => (ctx.external.as_ref(), "external sign-in"),
            IdProvider::Apple => (ctx.apple_id.as_ref(), "Sign in with Apple"),
            IdProvider::Google => (ctx.google_id.as_ref(), "Sign in with Google"),
            IdProvider::Facebook => (ctx.facebook_limited.as_ref(), "Facebook Limited Login"),
        };
        verifier.ok_or_else(|| {
            AppError::new(
                Code::Unavailable,
                format!("{name} is not configured on this server"),
            )
        })
    }
}

/// Longest nonce accepted with an Apple identity token.
pub const NONCE_CHARS_MAX: usize = 256;

/// Signs in with a provider's ID token: the first use creates the account, keyed by the
/// provider's `sub`. `nonce` (Apple) must hash to the token's `nonce` claim.
pub async fn sign_in_with_id_token(
    ctx: &Ctx,
    provider: IdProvider,
    id_token: &str,
    nonce: Option<&str>,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let identity = verify_id_token(ctx, provider, id_token, nonce, &meta).await?;
    let email = identity.email_verified.then_some(identity.email).flatten();
    sign_in_identity(ctx, provider.kind(), &identity.subject, email, meta).await
}

/// Checks a provider's ID token (throttled per address; a bad token counts as a failure).
async fn verify_id_token(
    ctx: &Ctx,
    provider: IdProvider,
    id_token: &str,
    nonce: Option<&str>,
    meta: &ClientMeta,
) -> AppResult<external::ExternalIdentity> {
    let verifier = provider.verifier(ctx)?;
    if nonce.is_some_and(|n| n.is_empty() || n.chars().count() > NONCE_CHARS_MAX) {
        return Err(AppError::validation(format!(
            "nonce must be 1–{NONCE_CHARS_MAX} characters"
        )));
    }
    // The subject is unknown until the token is verified, so only the address is throttled.
    check_throttle(ctx, None, meta, AddressLimit::Applies).await?;
    match verifier.verify(id_token, nonce, ctx.store.now_ms()).await {
        Ok(i) => Ok(i),
        Err(e) => {
            record_failure(ctx, None, provider.kind().method(), meta).await?;
            Err(e)
        }
    }
}

/// Facebook Login with a user access token, checked through the Graph API. The account is
/// keyed by the app-scoped user id, the same as Limited Login's `sub`.
pub async fn sign_in_facebook(
    ctx: &Ctx,
    access_token: &str,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let person = verify_facebook(ctx, access_token, &meta).await?;
    // The Graph API does not say whether the email was confirmed: it is not taken as verified.
    sign_in_identity(ctx, IdentityKind::Facebook, &person.id, None, meta).await
}

/// Checks a Facebook user access token through the Graph API.
async fn verify_facebook(
    ctx: &Ctx,
    access_token: &str,
    meta: &ClientMeta,
) -> AppResult<crate::providers::facebook::FacebookUser> {
    let graph = ctx.facebook.as_ref().ok_or_else(|| {
        AppError::new(
            Code::Unavailable,
            "Facebook Login is not configured on this server",
        )
    })?;
    if access_token.is_empty() || access_token.len() > ACCESS_TOKEN_BYTES_MAX {
        return Err(AppError::validation(format!(
            "accessToken must be 1–{ACCESS_TOKEN_BYTES_MAX} bytes"
        )));
    }
    check_throttle(ctx, None, meta, AddressLimit::Applies).await?;
    match graph.verify(access_token).await {
        Ok(p) => Ok(p),
        Err(e) => {
            if e.code == Code::Unauthorized {
                record_failure(ctx, None, SignInMethod::Facebook, meta).await?;
            }
            Err(e)
        }
    }
}

/// Longest provider access token accepted.
const ACCESS_TOKEN_BYTES_MAX: usize = 4096;

/// Signs `subject` of `kind` in, creating the account on first use. A new account takes the
/// provider's verified `email` as its own — unless another account has it, in which case the
/// person is asked to sign in there and link this provider (`link_required`), never merged
/// silently.
async fn sign_in_identity(
    ctx: &Ctx,
    kind: IdentityKind,
    subject: &str,
    email: Option<String>,
    meta: ClientMeta,
) -> AppResult<AuthTokens> {
    let method = kind.method();
    let account = kind.key(subject);
    let email = email.and_then(|e| Email::parse(&e).ok());
    let refresh = random_token(REFRESH_TOKEN_BYTES);
    let ttl_ms = refresh_ttl_ms(ctx);
    let (m, r, subject) = (meta.clone(), refresh.clone(), subject.to_owned());
    let limit = Quota::signups(ctx, &meta);
    let session = ctx
        .store
        .write(move |tx| {
            let user_id = match identities::owner_tx(tx, kind, &subject)? {
                Some(user_id) => user_id,
                None => {
                    let email = email.as_ref().map(Email::as_str);
                    if let Some(e) = email
                        && identities::owner_tx(tx, IdentityKind::Email, e)?.is_some()
                    {
                        return Err(AppError::new(
                            Code::LinkRequired,
                            format!(
                                "an account with this {} email exists: sign in to it and link {} \
                                 (POST /v1/me/identities/{})",
                                kind.as_str(),
                                kind.as_str(),
                                kind.as_str()
                            ),
                        ));
                    }
                    admit(tx, std::slice::from_ref(&limit))?;
                    let mut user = create_user(tx, m.platform, None, kind.signup_method())?;
                    note(tx, std::slice::from_ref(&limit))?;
                    identities::link_tx(tx, kind, &subject, &user.id, None)?;
                    if let Some(e) = email {
                        email::adopt_tx(tx, &mut user, e)?;
                        put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
                    }
                    user.id
                }
            };
            signed_in(tx, &account, &user_id, method, &m)?;
            open_session(tx, &user_id, method, &m, &r, ttl_ms)
        })
        .await?;
    tokens(ctx, session, refresh)
}

/// What a refresh found.
enum RefreshOutcome {
    Rotated(SessionRecord),
    /// The token was exchanged moments ago: the same successor again.
    Again(SessionRecord, String),
    Reused,
}

/// Seals (or opens: the same operation) `data` with a keystream derived from a refresh token,
/// so a successor stored for the reuse interval can be read only by whoever presents the token
/// it replaced.
fn seal(token: &str, data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    data.chunks(32)
        .enumerate()
        .flat_map(|(block, chunk)| {
            let pad = Sha256::new()
                .chain_update(b"duet refresh successor")
                .chain_update(token.as_bytes())
                .chain_update((block as u64).to_be_bytes())
                .finalize();
            chunk
                .iter()
                .zip(pad)
                .map(|(b, p)| b ^ p)
                .collect::<Vec<u8>>()
        })
        .collect()
}

/// Exchanges a refresh token for a new pair. A token used twice revokes its whole session.
pub async fn refresh(ctx: &Ctx, refresh_token: &str) -> AppResult<AuthTokens> {
    let presented = secret_hash(refresh_token);
    let next = random_token(REFRESH_TOKEN_BYTES);
    let ttl_ms = refresh_ttl_ms(ctx);
    let reuse_ms = ctx.config.auth.refresh_reuse_interval_secs as i64 * 1000;
    let refresh_token = refresh_token.to_owned();
    let n = next.clone();
    let outcome = ctx
        .store
        .write(move |tx| {
            let now = tx.now_ms();
            // Read and decide first; write after.
            let rec: RefreshRecord = get(&tx.read(REFRESH_TOKENS)?, presented.as_str())?
                .ok_or_else(|| AppError::unauthorized("unknown refresh token"))?;
            let mut session: SessionRecord = get(&tx.read(SESSIONS)?, rec.session_id.as_str())?
                .ok_or_else(|| AppError::unauthorized("the session no longer exists"))?;
            if session.revoked_at_ms.is_some() {
                return Err(AppError::unauthorized("the session has been revoked"));
            }
            // The same token again within the reuse interval (two clients refreshing at once):
            // the same successor, so both keep the session.
            if let (Some(used), Some(sealed)) = (rec.used_at_ms, &rec.successor_sealed)
                && now - used <= reuse_ms
                && session.expires_at_ms > now
            {
                if let Some(user) = find_user_tx(tx, &session.user_id)? {
                    user.refuse_if_banned(now)?;
                }
                let again =
                    String::from_utf8(seal(&refresh_token, sealed)).map_err(AppError::internal)?;
                return Ok(RefreshOutcome::Again(session, again));
            }
            if rec.used_at_ms.is_some() {
                // A rotated token came back: someone holds a copy. End the family.
                session.revoked_at_ms = Some(now);
                session.revoked_reason = Some("refresh_token_reused".into());
                put(&mut tx.table(SESSIONS)?, session.id.as_str(), &session)?;
                tx.emit(NewEvent::about(
                    &session.user_id,
                    UserEvent::SessionRevoked {
                        session_id: session.id.clone(),
                        reason: "refresh_token_reused".into(),
                    },
                ))?;
                return Ok(RefreshOutcome::Reused);
            }
            if session.expires_at_ms <= now {
                return Err(AppError::unauthorized(
                    "the session has expired; sign in again",
                ));
            }
            // Refused before the token is used up: it works again if the ban is lifted.
            if let Some(user) = find_user_tx(tx, &session.user_id)? {
                user.refuse_if_banned(now)?;
            }
            let mut refresh = tx.table(REFRESH_TOKENS)?;
            put(
                &mut refresh,
                presented.as_str(),
                &RefreshRecord {
                    used_at_ms: Some(now),
                    successor_sealed: (reuse_ms > 0).then(|| seal(&refresh_token, n.as_bytes())),
                    ..rec.clone()
                },
            )?;
            let new_rec = RefreshRecord {
                session_id: session.id.clone(),
                issued_at_ms: now,
                used_at_ms: None,
                successor_sealed: None,
            };
            put(&mut refresh, secret_hash(&n).as_str(), &new_rec)?;
            session.last_used_at_ms = now;
            session.expires_at_ms = now + ttl_ms;
            put(&mut tx.table(SESSIONS)?, session.id.as_str(), &session)?;
            Ok(RefreshOutcome::Rotated(session))
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated(session) => tokens(ctx, session, next),
        RefreshOutcome::Again(session, successor) => tokens(ctx, session, successor),
        RefreshOutcome::Reused => Err(AppError::new(
            Code::RefreshTokenReused,
            "this refresh token was already used; the session is revoked, sign in again",
        )),
    }
}

/// Ends the caller's session.
pub async fn logout(ctx: &Ctx, who: &Principal) -> AppResult<()> {
    revoke_session(ctx, &who.user_id, &who.session_id, "logout").await
}

// ---------------------------------------------------------------------------------------------
// Sessions.

pub async fn list_sessions(ctx: &Ctx, user_id: &str) -> AppResult<Vec<SessionRecord>> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| {
            let by_user = rtx.open_table(SESSIONS_BY_USER)?;
            let sessions = rtx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for row in by_user.range((user_id.as_str(), "")..)? {
                let (k, _) = row?;
                let (u, sid) = k.value();
                if u != user_id {
                    break;
                }
                if let Some(s) = get::<&str, SessionRecord>(&sessions, sid)?
                    && s.revoked_at_ms.is_none()
                {
                    out.push(s);
                }
            }
            out.sort_by_key(|s| std::cmp::Reverse(s.last_used_at_ms));
            Ok(out)
        })
        .await
}

pub async fn revoke_session(
    ctx: &Ctx,
    user_id: &str,
    session_id: &str,
    reason: &'static str,
) -> AppResult<()> {
    let (user_id, session_id) = (user_id.to_owned(), session_id.to_owned());
    ctx.store
        .write(move |tx| {
            let mut sessions = tx.table(SESSIONS)?;
            let mut s: SessionRecord = get(&sessions, session_id.as_str())?
                .filter(|s: &SessionRecord| s.user_id == user_id)
                .ok_or_else(|| AppError::not_found("no such session"))?;
            if s.revoked_at_ms.is_some() {
                return Ok(());
            }
            s.revoked_at_ms = Some(tx.now_ms());
            s.revoked_reason = Some(reason.into());
            put(&mut sessions, s.id.as_str(), &s)?;
            drop(sessions);
            tx.emit(NewEvent::about(
                &user_id,
                UserEvent::SessionRevoked {
                    session_id: session_id.clone(),
                    reason: reason.to_string(),
                },
            ))?;
            Ok(())
        })
        .await
}

/// Revokes every live session of the user, inside a write (a password reset, a deletion).
pub(crate) fn revoke_all_sessions_tx(tx: &Tx, user_id: &str, reason: &str) -> AppResult<u32> {
    let ids = crate::core::store::second_keys(&tx.read(SESSIONS_BY_USER)?, user_id)?;
    let mut revoked = 0;
    for sid in ids {
        let Some(mut s) = get::<&str, SessionRecord>(&tx.read(SESSIONS)?, sid.as_str())? else {
            continue;
        };
        if s.revoked_at_ms.is_some() {
            continue;
        }
        s.revoked_at_ms = Some(tx.now_ms());
        s.revoked_reason = Some(reason.to_owned());
        put(&mut tx.table(SESSIONS)?, sid.as_str(), &s)?;
        tx.emit(NewEvent::about(
            user_id,
            UserEvent::SessionRevoked {
                session_id: sid,
                reason: reason.to_owned(),
            },
        ))?;
        revoked += 1;
    }
    Ok(revoked)
}

/// Revokes every live session of the user but `keep`; returns how many.
pub async fn revoke_other_sessions(ctx: &Ctx, user_id: &str, keep: &str) -> AppResult<u32> {
    let live = list_sessions(ctx, user_id).await?;
    let mut n = 0;
    for s in live.into_iter().filter(|s| s.id != keep) {
        revoke_session(ctx, user_id, &s.id, "revoked_by_user").await?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Push registration tokens.

/// Registers a device's push token. A token belongs to one device of one user: when a phone
/// changes hands (sign-out, another account signs in), the previous owner's entry is removed so
/// their pushes never reach the new user.
pub async fn put_device(ctx: &Ctx, user_id: &str, device: PushDevice) -> AppResult<()> {
    let user_id = user_id.to_owned();
    ctx.store
        .write(move |tx| {
            let mut t = tx.table(PUSH_DEVICES)?;
            let mut owners = tx.table(PUSH_TOKEN_OWNERS)?;
            let token_key = secret_hash(&device.token);
            if let Some(prev) = get::<&str, TokenOwner>(&owners, token_key.as_str())?
                && (prev.user_id != user_id || prev.device_id != device.device_id)
            {
                t.remove((prev.user_id.as_str(), prev.device_id.as_str()))?;
            }
            let mut others: Vec<(String, i64, String)> = Vec::new();
            for row in t.range((user_id.as_str(), "")..)? {
                let (k, v) = row?;
                let (u, d) = k.value();
                if u != user_id {
                    break;
                }
                let rec: PushDevice = crate::core::store::dec(v.value())?;
                if d == device.device_id {
                    // The device's previous token no longer points here.
                    if rec.token != device.token {
                        owners.remove(secret_hash(&rec.token).as_str())?;
                    }
                } else {
                    others.push((d.to_owned(), rec.updated_at_ms, rec.token));
                }
            }
            // Keep the newest devices; a phone that was reset many times leaves old tokens.
            others.sort_by_key(|(_, at, _)| std::cmp::Reverse(*at));
            for (old, _, token) in others.iter().skip(PUSH_DEVICES_MAX - 1) {
                t.remove((user_id.as_str(), old.as_str()))?;
                owners.remove(secret_hash(token).as_str())?;
            }
            let rec = PushDevice {
                updated_at_ms: tx.now_ms(),
                ..device.clone()
            };
            put(&mut t, (user_id.as_str(), device.device_id.as_str()), &rec)?;
            let owner = TokenOwner {
                user_id: user_id.clone(),
                device_id: device.device_id.clone(),
            };
            put(&mut owners, token_key.as_str(), &owner)?;
            Ok(())
        })
        .await
}

pub async fn delete_device(ctx: &Ctx, user_id: &str, device_id: &str) -> AppResult<()> {
    let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
    ctx.store
        .write(move |tx| {
            let rec: PushDevice = get(
                &tx.read(PUSH_DEVICES)?,
                (user_id.as_str(), device_id.as_str()),
            )?
            .ok_or_else(|| AppError::not_found("no such device"))?;
            tx.table(PUSH_DEVICES)?
                .remove((user_id.as_str(), device_id.as_str()))?;
            tx.table(PUSH_TOKEN_OWNERS)?
                .remove(secret_hash(&rec.token).as_str())?;
            Ok(())
        })
        .await
}

fn devices_in(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    user_id: &str,
) -> AppResult<Vec<PushDevice>> {
    let mut out = Vec::new();
    for row in t.range((user_id, "")..(user_id, "\u{10ffff}"))? {
        out.push(crate::core::store::dec(row?.1.value())?);
    }
    Ok(out)
}

pub async fn list_devices(ctx: &Ctx, user_id: &str) -> AppResult<Vec<PushDevice>> {
    let user_id = user_id.to_owned();
    ctx.store
        .read(move |rtx| devices_in(&rtx.open_table(PUSH_DEVICES)?, &user_id))
        .await
}

/// A user's push devices, inside a write.
pub fn devices_tx(tx: &Tx, user_id: &str) -> AppResult<Vec<PushDevice>> {
    devices_in(&tx.read(PUSH_DEVICES)?, user_id)
}

/// Removes a device whose token a push provider reported as unregistered, if it still has
/// that token (the app may have registered a new one since). Returns whether it was removed.
pub fn forget_token_tx(tx: &Tx, user_id: &str, device_id: &str, token: &str) -> AppResult<bool> {
    let current: Option<PushDevice> = get(&tx.read(PUSH_DEVICES)?, (user_id, device_id))?;
    if current.is_none_or(|d| d.token != token) {
        return Ok(false);
    }
    tx.table(PUSH_DEVICES)?.remove((user_id, device_id))?;
    tx.table(PUSH_TOKEN_OWNERS)?
        .remove(secret_hash(token).as_str())?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::PushTokenRemoved {
            user_id: user_id.to_owned().into(),
            device_id: device_id.to_owned(),
            reason: "unregistered".into(),
        },
    ))?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Roles and bans (called by mission_control, which audits them).

/// Keeps `user_online_streamer` true to the user's presence and role.
fn index_online_streamer(tx: &Tx, user_id: &str) -> AppResult<()> {
    let online = tx.read(ONLINE_USERS)?.get(user_id)?.is_some();
    let streamer = find_user_tx(tx, user_id)?.is_some_and(|u| u.role == Role::Streamer);
    if online && streamer {
        tx.table(ONLINE_STREAMERS)?.insert(user_id, ())?;
    } else {
        tx.table(ONLINE_STREAMERS)?.remove(user_id)?;
    }
    Ok(())
}

pub fn set_role_tx(tx: &Tx, user_id: &str, role: Role) -> AppResult<Role> {
    let mut user = find_user_tx(tx, user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
    let before = user.role;
    user.role = role;
    put(&mut tx.table(USERS)?, user_id, &user)?;
    index_online_streamer(tx, user_id)?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::RoleChanged {
            user_id: user_id.to_owned().into(),
            from: before,
            to: role,
        },
    ))?;
    Ok(before)
}

pub fn ban_tx(tx: &Tx, user_id: &str, reason: &str, by: &str) -> AppResult<()> {
    restrict_tx(tx, user_id, reason, by, None)
}

/// Bans `user_id` until `until_ms` (a suspension), after which they may sign in again.
pub fn suspend_tx(tx: &Tx, user_id: &str, reason: &str, by: &str, until_ms: i64) -> AppResult<()> {
    restrict_tx(tx, user_id, reason, by, Some(until_ms))
}

fn restrict_tx(
    tx: &Tx,
    user_id: &str,
    reason: &str,
    by: &str,
    until_ms: Option<i64>,
) -> AppResult<()> {
    let mut user = find_user_tx(tx, user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
    user.ban = Some(Ban {
        reason: reason.to_owned(),
        at_ms: tx.now_ms(),
        by: by.to_owned(),
        until_ms,
    });
    put(&mut tx.table(USERS)?, user_id, &user)?;
    tx.emit(
        NewEvent::about(
            user_id,
            UserEvent::Banned {
                user_id: user_id.to_owned().into(),
                reason: reason.to_owned(),
                until_ms,
            },
        )
        .to(Audience::Users(vec![user_id.to_owned().into()])),
    )?;
    Ok(())
}

pub fn unban_tx(tx: &Tx, user_id: &str) -> AppResult<()> {
    let mut user = find_user_tx(tx, user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
    if user.ban.take().is_none() {
        return Err(AppError::conflict("the user is not banned"));
    }
    put(&mut tx.table(USERS)?, user_id, &user)?;
    tx.emit(NewEvent::about(
        user_id,
        UserEvent::Unbanned {
            user_id: user_id.to_owned().into(),
        },
    ))?;
    Ok(())
}

/// Creates (or promotes) an account with email and password offline, on the data directory:
/// `duet admin create`. Returns the user id.
pub fn bootstrap_account(
    store: &Store,
    email: &str,
    password: &str,
    role: Role,
) -> AppResult<String> {
    let email = Email::parse(email)?;
    let password = Password::parse(password)?;
    let hash = hash_password_blocking(&password)?;
    let account = format!("email:{}", email.as_str());
    store.write_blocking(move |tx| {
        let existing: Option<Identity> = get(&tx.read(IDENTITIES)?, account.as_str())?;
        let user_id = match existing {
            Some(i) => {
                let mut user =
                    find_user_tx(tx, &i.user_id)?.ok_or_else(|| AppError::not_found("account"))?;
                user.password_hash = Some(hash.clone());
                user.password_set_at_ms = tx.now_ms();
                put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
                user.id
            }
            None => {
                // The operator vouches for the address: it is verified.
                let mut user = create_user(tx, None, Some(&hash), "cli")?;
                email::adopt_tx(tx, &mut user, email.as_str())?;
                put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
                user.id
            }
        };
        set_role_tx(tx, &user_id, role)?;
        Ok(user_id)
    })
}

// ---------------------------------------------------------------------------------------------
// Internals.

fn refresh_ttl_ms(ctx: &Ctx) -> i64 {
    ctx.config.auth.refresh_token_ttl_days as i64 * 86_400_000
}

fn create_user(
    tx: &Tx,
    platform: Option<Platform>,
    password_hash: Option<&str>,
    method: &str,
) -> AppResult<UserRecord> {
    let user = UserRecord {
        id: new_id(),
        role: Role::User,
        created_at_ms: tx.now_ms(),
        platform,
        email: None,
        password_hash: password_hash.map(str::to_owned),
        ban: None,
        pending_email: None,
        password_set_at_ms: if password_hash.is_some() {
            tx.now_ms()
        } else {
            0
        },
        deletion_due_ms: None,
        deletion_forced: false,
        erased_at_ms: None,
    };
    put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
    tx.emit(NewEvent::about(
        &user.id,
        UserEvent::SignedUp {
            user_id: user.id.clone().into(),
            method: method.to_string(),
            platform,
        },
    ))?;
    Ok(user)
}

fn open_session(
    tx: &Tx,
    user_id: &str,
    method: SignInMethod,
    meta: &ClientMeta,
    refresh_token: &str,
    ttl_ms: i64,
) -> AppResult<SessionRecord> {
    let mut user =
        find_user_tx(tx, user_id)?.ok_or_else(|| AppError::unauthorized("no such account"))?;
    user.refuse_if_banned(tx.now_ms())?;
    if user.deletion_due_ms.is_some() {
        // Signing in again is how the owner takes a deletion request back (not an admin's).
        deletion::cancel_tx(tx, &mut user)?;
    }
    let now = tx.now_ms();
    let session = SessionRecord {
        id: new_id(),
        user_id: user_id.to_owned(),
        created_at_ms: now,
        last_used_at_ms: now,
        expires_at_ms: now + ttl_ms,
        method,
        platform: meta.platform,
        client_address: meta.address.clone(),
        user_agent: meta.user_agent.clone(),
        revoked_at_ms: None,
        revoked_reason: None,
    };
    put(&mut tx.table(SESSIONS)?, session.id.as_str(), &session)?;
    tx.table(SESSIONS_BY_USER)?
        .insert((user_id, session.id.as_str()), ())?;
    let rec = RefreshRecord {
        session_id: session.id.clone(),
        issued_at_ms: now,
        used_at_ms: None,
        successor_sealed: None,
    };
    put(
        &mut tx.table(REFRESH_TOKENS)?,
        secret_hash(refresh_token).as_str(),
        &rec,
    )?;
    Ok(session)
}

fn tokens(ctx: &Ctx, session: SessionRecord, refresh_token: String) -> AppResult<AuthTokens> {
    Ok(AuthTokens {
        access_token: ctx
            .tokens
            .issue(&session.user_id, &session.id, ctx.store.now_ms())?,
        refresh_token,
        expires_in: ctx.tokens.ttl_secs(),
        user_id: session.user_id,
    })
}

/// Turns the result of a sign-in write into tokens, recording a failed attempt (which counts
/// towards throttling) when the credentials were wrong.
async fn finish_sign_in(
    ctx: &Ctx,
    result: AppResult<SessionRecord>,
    account: &str,
    method: SignInMethod,
    meta: &ClientMeta,
    refresh_token: String,
) -> AppResult<AuthTokens> {
    match result {
        Ok(session) => tokens(ctx, session, refresh_token),
        Err(e) if e.code == Code::InvalidCredentials => {
            record_failure(ctx, Some(account), method, meta).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// One counted limit on `login_throttle`: at most `max` occurrences of `key` within a sliding
/// `window_ms`. Sign-ups per address, SMS sends and auth emails are all counted this way.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    key: String,
    max: u64,
    window_ms: i64,
}

impl Quota {
    pub(crate) fn new(key: String, max: u32, window_ms: i64) -> Quota {
        Quota {
            key,
            max: u64::from(max),
            window_ms,
        }
    }

    /// Accounts one client address may create within the throttle window.
    fn signups(ctx: &Ctx, meta: &ClientMeta) -> Quota {
        let t = &ctx.config.auth.throttle;
        Quota::new(
            format!("signup:{}", counted_address(meta)),
            t.signups_per_address_max,
            t.window_secs as i64 * 1000,
        )
    }
}

/// How long until every quota has room for one more, if any is full. Reads only, so it runs
/// before an operation writes anything.
pub(crate) fn quota_wait_ms(tx: &Tx, quotas: &[Quota]) -> AppResult<Option<i64>> {
    let table = tx.read(LOGIN_THROTTLE)?;
    let mut wait = None;
    for q in quotas {
        let th: Throttle = get(&table, q.key.as_str())?.unwrap_or_default();
        if let Some(ms) = th.wait_ms(tx.now_ms(), q.window_ms, q.max) {
            wait = Some(wait.unwrap_or(0).max(ms));
        }
    }
    Ok(wait)
}

/// Refuses (`rate_limited`, with the wait) when a quota is full.
pub(crate) fn admit(tx: &Tx, quotas: &[Quota]) -> AppResult<()> {
    match quota_wait_ms(tx, quotas)? {
        Some(ms) => Err(AppError::rate_limited((ms as u64).div_ceil(1000))),
        None => Ok(()),
    }
}

/// Counts one occurrence against each quota.
pub(crate) fn note(tx: &Tx, quotas: &[Quota]) -> AppResult<()> {
    for q in quotas {
        note_occurrence(tx, &q.key, q.window_ms)?;
    }
    Ok(())
}

/// Bounds password hashing (argon2id takes ~19 MiB and tens of ms each) and lets only one
/// sign-in per account be checked at a time, so a burst of parallel guesses cannot all pass
/// the throttle before the first failure is recorded.
pub struct SignInGuard {
    hashing: tokio::sync::Semaphore,
    in_flight: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// How long a sign-in waits for a hashing slot before the server says it is busy.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl SignInGuard {
    pub fn new(parallel_hashes: usize) -> SignInGuard {
        SignInGuard {
            hashing: tokio::sync::Semaphore::new(parallel_hashes.max(1)),
            in_flight: parking_lot::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Claims `account` for one attempt; a second concurrent attempt is refused.
    fn claim(&self, account: &str) -> AppResult<AccountClaim<'_>> {
        if !self.in_flight.lock().insert(account.to_owned()) {
            return Err(AppError::rate_limited(1));
        }
        Ok(AccountClaim {
            guard: self,
            account: account.to_owned(),
        })
    }

    async fn hashing_slot(&self) -> AppResult<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(HASHING_WAIT, self.hashing.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(AppError::new(
                Code::Unavailable,
                "too many sign-ins at once; retry shortly",
            )),
        }
    }
}

struct AccountClaim<'a> {
    guard: &'a SignInGuard,
    account: String,
}

impl Drop for AccountClaim<'_> {
    fn drop(&mut self) {
        self.guard.in_flight.lock().remove(&self.account);
    }
}

/// Records a failed sign-in; it counts towards throttling the account (from this address, and
/// from all) and, except for device sign-ins, the address.
async fn record_failure(
    ctx: &Ctx,
    account: Option<&str>,
    method: SignInMethod,
    meta: &ClientMeta,
) -> AppResult<()> {
    let (acc, m) = (account.map(str::to_owned), meta.clone());
    let t = ctx.config.auth.throttle.clone();
    let window_ms = t.window_secs as i64 * 1000;
    ctx.store
        .write(move |tx| {
            record_attempt(
                tx,
                acc.as_deref().unwrap_or("unknown"),
                None,
                method,
                &m,
                false,
            )?;
            if let Some(acc) = &acc {
                note_occurrence(tx, &format!("account:{acc}"), window_ms)?;
                let key = backoff_key(acc, &m);
                let mut backoffs = tx.table(SIGN_IN_BACKOFF)?;
                let mut backoff: Backoff = get(&backoffs, key.as_str())?.unwrap_or_default();
                backoff.failed(tx.now_ms(), &t);
                put(&mut backoffs, key.as_str(), &backoff)?;
            }
            if method == SignInMethod::Device {
                return Ok(());
            }
            note_occurrence(tx, &address_key(&m), window_ms)
        })
        .await
}

/// How long an address the account signed in from stays exempt from the account's ceiling.
const TRUSTED_ADDRESS_MS: i64 = 90 * 86_400_000;

/// The client's address as throttling counts it (an IPv6 /64 is one client).
fn counted_address(meta: &ClientMeta) -> String {
    crate::core::rate_limit::address_key(meta.address.as_deref().unwrap_or(""))
}

fn backoff_key(account: &str, meta: &ClientMeta) -> String {
    format!("{account}|{}", counted_address(meta))
}

fn address_key(meta: &ClientMeta) -> String {
    format!("address:{}", counted_address(meta))
}

/// A successful sign-in: recorded, and the pair's failures forgotten.
fn signed_in(
    tx: &Tx,
    account: &str,
    user_id: &str,
    method: SignInMethod,
    meta: &ClientMeta,
) -> AppResult<()> {
    record_attempt(tx, account, Some(user_id), method, meta, true)?;
    let mut backoffs = tx.table(SIGN_IN_BACKOFF)?;
    let trusted = Backoff {
        failures: 0,
        last_ms: tx.now_ms(),
        trusted_until_ms: tx.now_ms() + TRUSTED_ADDRESS_MS,
    };
    put(&mut backoffs, backoff_key(account, meta).as_str(), &trusted)
}

fn record_attempt(
    tx: &Tx,
    account: &str,
    user_id: Option<&str>,
    method: SignInMethod,
    meta: &ClientMeta,
    succeeded: bool,
) -> AppResult<()> {
    let attempt = LoginAttempt {
        at_ms: tx.now_ms(),
        method,
        account: account.to_owned(),
        user_id: user_id.map(str::to_owned),
        client_address: meta.address.clone(),
        succeeded,
    };
    put(&mut tx.table(LOGIN_ATTEMPTS)?, new_id().as_str(), &attempt)
}

/// Counts one failure (or sign-up) for `key`.
fn note_occurrence(tx: &Tx, key: &str, window_ms: i64) -> AppResult<()> {
    let mut t = tx.table(LOGIN_THROTTLE)?;
    let mut th: Throttle = get(&t, key)?.unwrap_or_default();
    th.record(tx.now_ms(), window_ms);
    put(&mut t, key, &th)
}

/// Whether the address-wide failure limit applies to a sign-in: it does for passwords and
/// tokens (guessing over many accounts), not for devices (whose secrets cannot be guessed, and
/// whose sign-up must not be blocked by someone's password failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressLimit {
    Applies,
    Ignored,
}

/// Refuses with `rate_limited` (and how long to wait) while the account's failures from this
/// address call for a pause, the account has reached its ceiling from all addresses, or (when
/// it applies) the address has had too many failures over all accounts.
async fn check_throttle(
    ctx: &Ctx,
    account: Option<&str>,
    meta: &ClientMeta,
    address_limit: AddressLimit,
) -> AppResult<()> {
    let cfg = ctx.config.auth.throttle.clone();
    let mut keys = Vec::new();
    if address_limit == AddressLimit::Applies {
        keys.push((address_key(meta), cfg.address_failures_max));
    }
    if let Some(account) = account {
        keys.push((format!("account:{account}"), cfg.account_failures_max));
    }
    let pair = account.map(|a| backoff_key(a, meta));
    let now = ctx.store.now_ms();
    let window_ms = cfg.window_secs as i64 * 1000;
    let retry_ms = ctx
        .store
        .read(move |rtx| {
            let t = rtx.open_table(LOGIN_THROTTLE)?;
            let backoff: Backoff = match &pair {
                Some(pair) => {
                    get(&rtx.open_table(SIGN_IN_BACKOFF)?, pair.as_str())?.unwrap_or_default()
                }
                None => Backoff::default(),
            };
            // An address the account signed in from lately is the owner's: a guess spread over
            // other addresses must not lock it out (its own failures still slow it).
            let trusted = backoff.trusted_until_ms > now;
            let mut retry_ms = backoff.wait_ms(now, &cfg).unwrap_or(0);
            for (key, max) in &keys {
                if trusted && key.starts_with("account:") {
                    continue;
                }
                let th: Throttle = get(&t, key.as_str())?.unwrap_or_default();
                if let Some(ms) = th.wait_ms(now, window_ms, u64::from(*max)) {
                    retry_ms = retry_ms.max(ms);
                }
            }
            Ok(retry_ms)
        })
        .await?;
    if retry_ms > 0 {
        return Err(AppError::rate_limited((retry_ms as u64).div_ceil(1000)));
    }
    Ok(())
}

async fn hash_password(password: Password) -> AppResult<String> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(AppError::internal)?
}

fn hash_password_blocking(password: &Password) -> AppResult<String> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(AppError::internal)?;
    Argon2::default()
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

/// A fixed hash to verify against when the account does not exist (equal timing).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2hJ2Wc5N3QEzZk8yq8mJtTn1oQ7n2sU0fRr4p9B6bYc";

async fn verify_password(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = match PasswordHash::new(&phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
        ok && known
    })
    .await
    .map_err(AppError::internal)
}
