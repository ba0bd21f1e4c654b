//! Email ownership and password reset by links.
//!
//! An account that adds an email (registration, `POST /v1/me/credentials`) only *claims* it:
//! the claim is kept in `user_email_claim` until it is verified or expires, and any number of
//! accounts may claim one address, so a claim never stops the real owner from registering it.
//! The first account to open the verification link sent to the address owns it: the email
//! becomes its `email:<address>` identity (the one password sign-in looks up), and every other
//! claim on it is released. Password sign-in needs a verified email.
//!
//! Nothing a caller is told depends on whether an address is registered: registering an owned
//! address answers like any registration (the owner gets an email saying someone tried), and
//! `forgot` answers `202` whoever asks. Emails go out from a bounded in-memory queue after the
//! answer, so response times do not tell either. They are not kept in the durable outbox on
//! purpose: their links are secrets (stored here only as SHA-256), and a lost one is asked for
//! again.

use tokio::sync::mpsc;

use crate::app::Ctx;
use crate::config::{Config, EmailAuthConfig};
use crate::core::error::{AppError, AppResult, Code};
use crate::core::events::NewEvent;
use crate::core::ids::{random_token, secret_hash};
use crate::core::store::{Tx, get, put, second_keys};
use crate::providers::notify::Outcome;
use crate::providers::notify::sendgrid::{Email as Mail, SendGrid};

use super::events::UserEvent;
use super::model::*;
use super::tables::*;
use super::{ClientMeta, Quota, find_user_tx, identities, note, quota_wait_ms};

/// Link tokens are 256-bit random strings.
const LINK_TOKEN_BYTES: usize = 32;
/// Attempts at handing one email to SendGrid before it is dropped.
const SEND_ATTEMPTS: u32 = 3;

/// An email about the account, waiting to be sent.
#[derive(Debug, Clone)]
pub struct AuthMail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// The queue of auth emails and its sender task.
pub struct Mailer {
    queue: mpsc::Sender<AuthMail>,
}

impl Mailer {
    /// The queue, and the task that drains it through SendGrid (when configured).
    pub fn start(config: &Config) -> (Mailer, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(config.auth.email.queue_max);
        let sendgrid = (!config.notifications.sendgrid.api_key.is_empty())
            .then(|| SendGrid::new(&config.notifications.sendgrid));
        (Mailer { queue }, tokio::spawn(send_all(rx, sendgrid)))
    }

    /// Hands `mail` to the sender; a full queue drops it (the person can ask again).
    pub fn queue(&self, mail: AuthMail) {
        if self.queue.try_send(mail).is_err() {
            tracing::warn!("the auth email queue is full; an email was dropped");
        }
    }
}

async fn send_all(mut rx: mpsc::Receiver<AuthMail>, sendgrid: Option<SendGrid>) {
    while let Some(mail) = rx.recv().await {
        let Some(sg) = &sendgrid else {
            tracing::warn!(
                "no email provider is configured ([notifications.sendgrid]); an auth email was not sent"
            );
            continue;
        };
        let email = Mail {
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            unsubscribe_url: None,
        };
        for attempt in 1..=SEND_ATTEMPTS {
            match sg.send(&email).await {
                Outcome::Sent => break,
                Outcome::Retry(why) if attempt < SEND_ATTEMPTS => {
                    tracing::warn!(%why, attempt, "an auth email was not accepted; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                }
                Outcome::Retry(why) | Outcome::Failed(why) => {
                    tracing::warn!(%why, "an auth email could not be sent");
                    break;
                }
                Outcome::Unregistered => break,
            }
        }
    }
}

fn hours_ms(h: u64) -> i64 {
    h as i64 * 3_600_000
}

/// Emails to one address per hour, whoever asks: nobody can flood a mailbox through Duet. It
/// counts every request for the address, registered or not (so how full it is tells nothing),
/// under the address's hash (so the counters of people who are not users hold no address).
fn recipient_quota(cfg: &EmailAuthConfig, email: &str) -> Quota {
    Quota::new(
        recipient_key(email),
        cfg.emails_per_address_per_hour_max,
        hours_ms(1),
    )
}

pub(super) fn recipient_key(email: &str) -> String {
    format!("mail:{}", secret_hash(email))
}

fn issue_link(
    tx: &Tx,
    purpose: LinkPurpose,
    user_id: &str,
    email: &str,
    ttl_ms: i64,
) -> AppResult<String> {
    let token = random_token(LINK_TOKEN_BYTES);
    let now = tx.now_ms();
    let rec = LinkToken {
        purpose,
        user_id: user_id.to_owned(),
        email: email.to_owned(),
        issued_at_ms: now,
        expires_at_ms: now + ttl_ms,
    };
    let key = secret_hash(&token);
    put(&mut tx.table(EMAIL_TOKENS)?, key.as_str(), &rec)?;
    tx.table(EMAIL_TOKENS_BY_USER)?
        .insert((user_id, key.as_str()), ())?;
    Ok(token)
}

/// Removes one link (used, or void).
fn drop_link(tx: &Tx, key: &str, user_id: &str) -> AppResult<()> {
    tx.table(EMAIL_TOKENS)?.remove(key)?;
    tx.table(EMAIL_TOKENS_BY_USER)?.remove((user_id, key))?;
    Ok(())
}

/// Removes the account's links — those for `email` only, when given.
pub(super) fn drop_links_of(tx: &Tx, user_id: &str, email: Option<&str>) -> AppResult<()> {
    for key in second_keys(&tx.read(EMAIL_TOKENS_BY_USER)?, user_id)? {
        let link: Option<LinkToken> = get(&tx.read(EMAIL_TOKENS)?, key.as_str())?;
        if email.is_none() || link.is_none_or(|l| Some(l.email.as_str()) == email) {
            drop_link(tx, &key, user_id)?;
        }
    }
    Ok(())
}

/// Records that `user` claims `email` (replacing an earlier claim of theirs), and says what to
/// send: a verification link, or — when another account owns the address — a note to the
/// owner that someone tried. `None` when the address has had its share of emails this hour.
/// The caller writes `user` back.
pub(super) fn claim_tx(
    tx: &Tx,
    cfg: &EmailAuthConfig,
    user: &mut UserRecord,
    email: &Email,
) -> AppResult<Option<AuthMail>> {
    let address = email.as_str();
    let now = tx.now_ms();
    let mut claims = tx.table(EMAIL_CLAIMS)?;
    if let Some(old) = user.pending_email.take() {
        claims.remove((old.address.as_str(), user.id.as_str()))?;
    }
    let expires_at_ms = now + cfg.claim_ttl_days as i64 * 86_400_000;
    claims.insert((address, user.id.as_str()), expires_at_ms)?;
    drop(claims);
    user.pending_email = Some(PendingEmail {
        address: address.to_owned(),
        expires_at_ms,
    });
    let quota = [recipient_quota(cfg, address)];
    if quota_wait_ms(tx, &quota)?.is_some() {
        return Ok(None);
    }
    note(tx, &quota)?;
    if identities::owner_tx(tx, IdentityKind::Email, address)?.is_some() {
        return Ok(Some(someone_tried(address)));
    }
    verification_mail(tx, cfg, &user.id, address).map(Some)
}

/// A note to the account's verified email that its ways of signing in changed, so the owner
/// learns of a change they did not make; `None` without a verified email or past the
/// address's hourly share.
pub(super) fn sign_in_change_notice_tx(
    tx: &Tx,
    cfg: &EmailAuthConfig,
    user: &UserRecord,
    change: &str,
) -> AppResult<Option<AuthMail>> {
    let Some(address) = user.email.as_deref() else {
        return Ok(None);
    };
    // Their own share, so requests anyone can make (a reset, a registration) cannot use up the
    // hour and silence this note.
    let quota = [Quota::new(
        format!("notice:{}", secret_hash(address)),
        cfg.emails_per_address_per_hour_max,
        hours_ms(1),
    )];
    if quota_wait_ms(tx, &quota)?.is_some() {
        return Ok(None);
    }
    note(tx, &quota)?;
    Ok(Some(AuthMail {
        to: address.to_owned(),
        subject: "How you sign in to Duet changed".into(),
        text: format!(
            "{change}.\n\nIf this was not you, sign in, remove it under your account's sign-in \
             methods, and reset your password."
        ),
    }))
}

fn verification_mail(
    tx: &Tx,
    cfg: &EmailAuthConfig,
    user_id: &str,
    address: &str,
) -> AppResult<AuthMail> {
    let ttl_ms = hours_ms(cfg.verify_link_ttl_hours);
    let token = issue_link(tx, LinkPurpose::VerifyEmail, user_id, address, ttl_ms)?;
    Ok(AuthMail {
        to: address.to_owned(),
        subject: "Confirm your email for Duet".into(),
        text: format!(
            "Confirm that this address is yours:\n\n{}\n\nThe link works for {} hours. If you \
             did not add this address to a Duet account, ignore this email.",
            cfg.verify_link.replace("{token}", &token),
            cfg.verify_link_ttl_hours
        ),
    })
}

/// Sends the caller a new verification link for the email they claimed. The answer does not
/// depend on the address: when another account owns it meanwhile, the owner gets the note that
/// someone tried instead, and past the address's hourly share nothing is sent.
pub async fn resend_verification(ctx: &Ctx, user_id: &str) -> AppResult<()> {
    let cfg = ctx.config.auth.email.clone();
    let user_id = user_id.to_owned();
    let mail = ctx
        .store
        .write(move |tx| {
            let user =
                find_user_tx(tx, &user_id)?.ok_or_else(|| AppError::not_found("no such user"))?;
            let pending = user
                .pending_email
                .filter(|p| p.expires_at_ms > tx.now_ms())
                .ok_or_else(|| AppError::conflict("no email is waiting for verification"))?;
            let mine = [Quota::new(
                format!("resend:{user_id}"),
                cfg.resends_per_hour_max,
                hours_ms(1),
            )];
            super::admit(tx, &mine)?;
            // Decided before anything is written: an error after a write would undo the count.
            let owned = identities::owner_tx(tx, IdentityKind::Email, &pending.address)?.is_some();
            note(tx, &mine)?;
            let recipient = [recipient_quota(&cfg, &pending.address)];
            if quota_wait_ms(tx, &recipient)?.is_some() {
                return Ok(None);
            }
            note(tx, &recipient)?;
            if owned {
                return Ok(Some(someone_tried(&pending.address)));
            }
            verification_mail(tx, &cfg, &user_id, &pending.address).map(Some)
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    Ok(())
}

/// The note to an address's owner that someone tried to register it.
fn someone_tried(address: &str) -> AuthMail {
    AuthMail {
        to: address.to_owned(),
        subject: "Someone tried to register with your email".into(),
        text: "Someone (maybe you) tried to create a Duet account with this address, which \
               already has one. If it was you, sign in, or use \"Forgot password\" to set a \
               new password. Otherwise there is nothing to do."
            .into(),
    }
}

/// Reads a link token: it must exist, be for `purpose` and not have expired.
fn link_token(tx: &Tx, token: &str, purpose: LinkPurpose) -> AppResult<(String, LinkToken)> {
    let key = secret_hash(token);
    let rec: LinkToken = get(&tx.read(EMAIL_TOKENS)?, key.as_str())?
        .filter(|t: &LinkToken| t.purpose == purpose && t.expires_at_ms > tx.now_ms())
        .ok_or_else(|| {
            AppError::new(Code::InvalidToken, "this link is unknown, used or expired")
        })?;
    Ok((key, rec))
}

/// Opens a verification link: the account that claimed the email owns it from now on.
pub async fn verify(ctx: &Ctx, token: &str) -> AppResult<()> {
    let token = token.to_owned();
    ctx.store
        .write(move |tx| {
            let (key, link) = link_token(tx, &token, LinkPurpose::VerifyEmail)?;
            let void = || AppError::new(Code::InvalidToken, "this link is no longer valid");
            let mut user = find_user_tx(tx, &link.user_id)?.ok_or_else(void)?;
            let claimed = user
                .pending_email
                .as_ref()
                .is_some_and(|p| p.address == link.email && p.expires_at_ms > tx.now_ms());
            if !claimed || user.email.is_some() {
                return Err(void());
            }
            if identities::owner_tx(tx, IdentityKind::Email, &link.email)?.is_some() {
                return Err(AppError::new(
                    Code::InvalidToken,
                    "this email was verified by another account",
                ));
            }
            drop_link(tx, &key, &link.user_id)?;
            user.pending_email = None;
            adopt_tx(tx, &mut user, &link.email)?;
            put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
            tx.emit(NewEvent::about(&user.id, UserEvent::EmailLinked {}))?;
            Ok(())
        })
        .await
}

/// Makes a verified `email` the account's (its `email:` identity), releasing every other
/// account's claim on it. The caller writes `user` back.
pub(super) fn adopt_tx(tx: &Tx, user: &mut UserRecord, email: &str) -> AppResult<()> {
    identities::link_tx(tx, IdentityKind::Email, email, &user.id, None)?;
    user.email = Some(email.to_owned());
    let claimants = second_keys(&tx.read(EMAIL_CLAIMS)?, email)?;
    let mut claims = tx.table(EMAIL_CLAIMS)?;
    for uid in &claimants {
        claims.remove((email, uid.as_str()))?;
    }
    drop(claims);
    for uid in claimants
        .iter()
        .filter(|u| **u != user.id)
        .map(String::as_str)
    {
        if let Some(mut other) = find_user_tx(tx, uid)?
            && other
                .pending_email
                .as_ref()
                .is_some_and(|p| p.address == email)
        {
            other.pending_email = None;
            put(&mut tx.table(USERS)?, uid, &other)?;
        }
    }
    Ok(())
}

/// Drops the account's claim on an email it has not verified.
pub(super) fn release_own_claim_tx(tx: &Tx, user: &mut UserRecord) -> AppResult<()> {
    if let Some(p) = user.pending_email.take() {
        tx.table(EMAIL_CLAIMS)?
            .remove((p.address.as_str(), user.id.as_str()))?;
    }
    Ok(())
}

/// Starts a password reset: when the address is an account's verified email, a reset link
/// goes to it. The answer is the same either way.
pub async fn forgot(ctx: &Ctx, email: &str, meta: ClientMeta) -> AppResult<()> {
    let email = Email::parse(email)?;
    super::check_throttle(ctx, None, &meta, super::AddressLimit::Applies).await?;
    let cfg = ctx.config.auth.email.clone();
    let asker = Quota::new(
        format!("forgot:{}", super::counted_address(&meta)),
        ctx.config.auth.throttle.address_failures_max,
        ctx.config.auth.throttle.window_secs as i64 * 1000,
    );
    let mail = ctx
        .store
        .write(move |tx| {
            super::admit(tx, std::slice::from_ref(&asker))?;
            note(tx, std::slice::from_ref(&asker))?;
            let address = email.as_str();
            let owner = identities::owner_tx(tx, IdentityKind::Email, address)?;
            let quota = [recipient_quota(&cfg, address)];
            if quota_wait_ms(tx, &quota)?.is_some() {
                return Ok(None);
            }
            note(tx, &quota)?;
            let Some(owner) = owner else {
                return Ok(None);
            };
            let ttl_ms = cfg.reset_link_ttl_minutes as i64 * 60_000;
            let token = issue_link(tx, LinkPurpose::ResetPassword, &owner, address, ttl_ms)?;
            Ok(Some(AuthMail {
                to: address.to_owned(),
                subject: "Reset your Duet password".into(),
                text: format!(
                    "Set a new password for your Duet account:\n\n{}\n\nThe link works for {} \
                     minutes and signs you out everywhere. If you did not ask for it, ignore \
                     this email: your password stays as it is.",
                    cfg.reset_link.replace("{token}", &token),
                    cfg.reset_link_ttl_minutes
                ),
            }))
        })
        .await?;
    if let Some(mail) = mail {
        ctx.auth_mail.queue(mail);
    }
    Ok(())
}

/// Sets a new password with a reset link, and revokes every session of the account.
pub async fn reset(ctx: &Ctx, token: &str, password: &str) -> AppResult<()> {
    let password = Password::parse(password)?;
    // The link is checked before the (deliberately slow) hash, and again in the write.
    let probe = token.to_owned();
    ctx.store
        .write(move |tx| link_token(tx, &probe, LinkPurpose::ResetPassword).map(drop))
        .await?;
    let hash = {
        let _slot = ctx.sign_in.hashing_slot().await?;
        super::hash_password(password).await?
    };
    let token = token.to_owned();
    ctx.store
        .write(move |tx| {
            let (key, link) = link_token(tx, &token, LinkPurpose::ResetPassword)?;
            let void = || AppError::new(Code::InvalidToken, "this link is no longer valid");
            let mut user = find_user_tx(tx, &link.user_id)?.ok_or_else(void)?;
            if user.email.as_deref() != Some(link.email.as_str())
                || link.issued_at_ms < user.password_set_at_ms
            {
                return Err(void());
            }
            drop_link(tx, &key, &link.user_id)?;
            user.password_hash = Some(hash.clone());
            user.password_set_at_ms = tx.now_ms();
            put(&mut tx.table(USERS)?, user.id.as_str(), &user)?;
            super::revoke_all_sessions_tx(tx, &user.id, "password_reset")?;
            tx.emit(NewEvent::about(
                &user.id,
                UserEvent::PasswordReset {
                    user_id: user.id.clone().into(),
                },
            ))?;
            Ok(())
        })
        .await
}
