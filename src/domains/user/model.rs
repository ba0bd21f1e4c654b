//! The user domain's stored records and validated inputs.

use serde::{Deserialize, Serialize};

use crate::core::auth::Role;
use crate::core::error::{AppError, AppResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub role: Role,
    pub created_at_ms: i64,
    /// The platform the account was created on.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// The email the account signs in with, if it registered one.
    #[serde(default)]
    pub email: Option<String>,
    /// argon2id PHC string, when the account has a password.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub ban: Option<Ban>,
    /// An email the account added and has not verified yet.
    #[serde(default)]
    pub pending_email: Option<PendingEmail>,
    /// When the password was last set (unix ms): reset links issued before it are void.
    #[serde(default)]
    pub password_set_at_ms: i64,
    /// The account is to be deleted at this time (unix ms), unless its owner signs in first.
    #[serde(default)]
    pub deletion_due_ms: Option<i64>,
    /// An admin ordered the deletion: signing in does not cancel it.
    #[serde(default)]
    pub deletion_forced: bool,
    /// The account was erased: only this pseudonymous shell is left, for the records that
    /// must be kept (ledger, payouts, audit, penalties).
    #[serde(default)]
    pub erased_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingEmail {
    pub address: String,
    /// The claim is released after this (unix ms).
    pub expires_at_ms: i64,
}

/// What a link in an email lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    VerifyEmail,
    ResetPassword,
}

/// A link's token, stored under its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkToken {
    pub purpose: LinkPurpose,
    pub user_id: String,
    pub email: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The one-time code sent to a phone number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhoneChallenge {
    /// SHA-256 of `<salt>:<number>:<code>`, when Duet made the code; `None` when the SMS
    /// provider keeps it (Twilio Verify).
    #[serde(default)]
    pub code_hash: Option<String>,
    #[serde(default)]
    pub salt: String,
    pub sent_at_ms: i64,
    pub expires_at_ms: i64,
    /// Codes tried against it so far.
    pub attempts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ban {
    pub reason: String,
    pub at_ms: i64,
    pub by: String,
    /// A suspension ends by itself at this time (unix ms); `None`: until lifted.
    #[serde(default)]
    pub until_ms: Option<i64>,
}

impl UserRecord {
    /// The ban in force at `now_ms`, if any: a suspension past its end no longer counts.
    pub fn ban_in_force(&self, now_ms: i64) -> Option<&Ban> {
        self.ban
            .as_ref()
            .filter(|ban| ban.until_ms.is_none_or(|until| until > now_ms))
    }

    /// Whether a ban (or a suspension not over yet) is in force.
    pub fn is_banned(&self, now_ms: i64) -> bool {
        self.ban_in_force(now_ms).is_some()
    }

    /// Whether others can reach the account (call it, message it, send it gifts, see it): it
    /// is neither banned nor erased.
    pub fn is_reachable(&self, now_ms: i64) -> bool {
        !self.is_banned(now_ms) && self.erased_at_ms.is_none()
    }

    /// Refuses a banned account (`account_banned`), saying why and, for a suspension, until when.
    pub fn refuse_if_banned(&self, now_ms: i64) -> crate::core::error::AppResult<()> {
        let Some(ban) = self.ban_in_force(now_ms) else {
            return Ok(());
        };
        Err(crate::core::error::AppError::new(
            crate::core::error::Code::AccountBanned,
            match ban.until_ms {
                Some(until) => format!(
                    "account suspended until {}: {}",
                    crate::core::clock::to_datetime(until)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    ban.reason
                ),
                None => format!("account banned: {}", ban.reason),
            },
        ))
    }
}

/// How an account is reached from a credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    /// For device identities: SHA-256 of the device secret.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// When it was linked (unix ms); 0 for identities linked before this was recorded.
    #[serde(default)]
    pub linked_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    /// The refresh token must be used again before this.
    pub expires_at_ms: i64,
    pub method: SignInMethod,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub client_address: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
    #[serde(default)]
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub session_id: String,
    pub issued_at_ms: i64,
    /// Set when it was exchanged; presenting it again is reuse.
    #[serde(default)]
    pub used_at_ms: Option<i64>,
    /// The refresh token it was exchanged for, sealed with this token itself (only its holder
    /// can open it), for the reuse interval; never stored in clear.
    #[serde(default)]
    pub successor_sealed: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum SignInMethod {
    Device,
    Password,
    External,
    Apple,
    Google,
    Facebook,
    Phone,
}

/// The ways into an account. Each identity is stored under the key `<kind>:<subject>`: a
/// device id, a verified email, an E.164 phone number, or a provider's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum IdentityKind {
    Device,
    Email,
    Phone,
    Apple,
    Google,
    Facebook,
    /// Firebase-compatible ID tokens (`POST /v1/auth/external`).
    Firebase,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 7] = [
        IdentityKind::Device,
        IdentityKind::Email,
        IdentityKind::Phone,
        IdentityKind::Apple,
        IdentityKind::Google,
        IdentityKind::Facebook,
        IdentityKind::Firebase,
    ];

    /// The prefix of its identity keys.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Device => "device",
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::Apple => "apple",
            IdentityKind::Google => "google",
            IdentityKind::Facebook => "facebook",
            IdentityKind::Firebase => "firebase",
        }
    }

    pub fn parse(raw: &str) -> AppResult<IdentityKind> {
        IdentityKind::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                AppError::validation(format!(
                    "provider must be one of device, email, phone, apple, google, facebook, firebase; not `{raw}`"
                ))
            })
    }

    /// The identity key of `subject`.
    pub fn key(self, subject: &str) -> String {
        format!("{}:{subject}", self.as_str())
    }

    /// The kind and subject of a stored identity key.
    pub fn of_key(key: &str) -> Option<(IdentityKind, &str)> {
        let (prefix, subject) = key.split_once(':')?;
        let kind = IdentityKind::ALL
            .into_iter()
            .find(|k| k.as_str() == prefix)?;
        Some((kind, subject))
    }

    pub fn method(self) -> SignInMethod {
        match self {
            IdentityKind::Device => SignInMethod::Device,
            IdentityKind::Email => SignInMethod::Password,
            IdentityKind::Phone => SignInMethod::Phone,
            IdentityKind::Apple => SignInMethod::Apple,
            IdentityKind::Google => SignInMethod::Google,
            IdentityKind::Facebook => SignInMethod::Facebook,
            IdentityKind::Firebase => SignInMethod::External,
        }
    }

    /// The `method` of the `user_signed_up` event (`external` and `password` predate this).
    pub fn signup_method(self) -> &'static str {
        match self {
            IdentityKind::Firebase => "external",
            IdentityKind::Email => "password",
            other => other.as_str(),
        }
    }
}

pub use crate::core::platform::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum PushProvider {
    Fcm,
    Apns,
    ApnsVoip,
    Onesignal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushDevice {
    pub device_id: String,
    pub platform: Platform,
    pub provider: PushProvider,
    pub token: String,
    #[serde(default)]
    pub app_version: Option<String>,
    pub updated_at_ms: i64,
}

/// Who a push token currently belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenOwner {
    pub user_id: String,
    pub device_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct PresenceRecord {
    pub online: bool,
    #[serde(default)]
    pub online_since_ms: Option<i64>,
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginAttempt {
    pub at_ms: i64,
    pub method: SignInMethod,
    /// The account key tried (email or device id); never the secret.
    pub account: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub client_address: Option<String>,
    pub succeeded: bool,
}

/// Failed sign-ins of one account from one address: past the free ones, each further attempt
/// from there waits twice as long as the one before.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Backoff {
    pub failures: u32,
    pub last_ms: i64,
    /// The account signed in from this address: until then it is exempt from the account's
    /// ceiling (the owner is not locked out by guesses from elsewhere).
    #[serde(default)]
    pub trusted_until_ms: i64,
}

impl Backoff {
    /// How long the pair must still wait at `now`, if at all. Failures are forgotten a window
    /// after the last one.
    pub fn wait_ms(&self, now: i64, t: &crate::config::ThrottleConfig) -> Option<i64> {
        let window_ms = t.window_secs as i64 * 1000;
        let since = now - self.last_ms;
        if self.failures < t.pair_free_failures || since >= window_ms {
            return None;
        }
        let doublings = (self.failures - t.pair_free_failures).min(30);
        let delay_ms = (t.pair_delay_base_secs.saturating_mul(1 << doublings))
            .min(t.pair_delay_max_secs) as i64
            * 1000;
        (since < delay_ms).then_some(delay_ms - since)
    }

    /// Counts a failure at `now`.
    pub fn failed(&mut self, now: i64, t: &crate::config::ThrottleConfig) {
        if now - self.last_ms >= t.window_secs as i64 * 1000 {
            self.failures = 0;
        }
        self.failures += 1;
        self.last_ms = now;
    }
}

pub use crate::core::rate_limit::Throttle;

/// Length limits of credentials, in characters.
pub const EMAIL_CHARS_MAX: usize = 254;
pub const PASSWORD_CHARS_MIN: usize = 8;
pub const PASSWORD_CHARS_MAX: usize = 256;
pub const DEVICE_ID_CHARS_MAX: usize = 128;
pub const DEVICE_SECRET_CHARS_MIN: usize = 16;
pub const DEVICE_SECRET_CHARS_MAX: usize = 256;
pub const PUSH_TOKEN_CHARS_MAX: usize = 4096;
pub const EXTERNAL_SUBJECT_CHARS_MAX: usize = 128;
/// A user keeps at most this many push devices; the least recently updated goes first.
pub const PUSH_DEVICES_MAX: usize = 20;

/// A syntactically valid email address, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> AppResult<Email> {
        let s = raw.trim().to_lowercase();
        let bad = || AppError::validation(format!("`{raw}` is not a valid email address"));
        if s.is_empty() || s.chars().count() > EMAIL_CHARS_MAX || s.chars().any(char::is_whitespace)
        {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Email(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password within the length limits.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> AppResult<Password> {
        let n = raw.chars().count();
        if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&n) {
            return Err(AppError::validation(format!(
                "password must be {PASSWORD_CHARS_MIN}–{PASSWORD_CHARS_MAX} characters"
            )));
        }
        Ok(Password(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An opaque client-chosen identifier (device ids): printable ASCII without spaces.
pub fn parse_token_like(field: &str, raw: &str, min: usize, max: usize) -> AppResult<String> {
    let n = raw.chars().count();
    if n < min || n > max || !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(AppError::validation(format!(
            "{field} must be {min}–{max} printable ASCII characters without spaces"
        )));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn emails_are_lowercased_and_parsing_is_idempotent(local in "[A-Za-z0-9._+-]{1,20}", domain in "[A-Za-z0-9-]{1,20}\\.[a-z]{2,6}") {
            let raw = format!("{local}@{domain}");
            let e = Email::parse(&raw).unwrap();
            prop_assert_eq!(e.as_str(), raw.to_lowercase());
            prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
        }

        #[test]
        fn strings_without_an_at_are_not_emails(raw in "[^@]{0,40}") {
            prop_assert!(Email::parse(&raw).is_err());
        }

        #[test]
        fn passwords_are_accepted_exactly_within_the_limits(raw in "\\PC{0,300}") {
            let n = raw.chars().count();
            prop_assert_eq!(Password::parse(&raw).is_ok(), (PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&n));
        }

        #[test]
        fn token_like_ids_are_printable_ascii(raw in "\\PC{0,40}") {
            if let Ok(v) = parse_token_like("x", &raw, 1, 32) {
                prop_assert!(v.chars().all(|c| c.is_ascii_graphic()));
                prop_assert!((1..=32).contains(&v.len()));
            }
        }
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::Throttle;
    use proptest::prelude::*;

    const W: i64 = 900_000;

    #[test]
    fn the_limit_holds_within_a_window_and_lifts_after_the_wait() {
        let mut t = Throttle::default();
        for _ in 0..5 {
            assert_eq!(t.wait_ms(1_000, W, 5), None);
            t.record(1_000, W);
        }
        let wait = t.wait_ms(1_000, W, 5).expect("throttled at the limit");
        assert!(t.wait_ms(1_000 + wait - 1, W, 5).is_some());
        assert_eq!(t.wait_ms(1_000 + wait, W, 5), None);
    }

    proptest! {
        #[test]
        fn the_advertised_wait_is_exact(times in proptest::collection::vec(0i64..3 * W, 1..40), max in 1u64..10) {
            let mut sorted = times.clone();
            sorted.sort_unstable();
            let mut t = Throttle::default();
            for at in &sorted {
                t.record(*at, W);
            }
            let now = *sorted.last().unwrap();
            if let Some(wait) = t.wait_ms(now, W, max) {
                prop_assert!((1..=2 * W + 1).contains(&wait));
                prop_assert!(t.wait_ms(now + wait, W, max).is_none(), "free after the wait");
                prop_assert!(wait == 1 || t.wait_ms(now + wait - 1, W, max).is_some(), "not free before it");
            }
        }
    }
}
