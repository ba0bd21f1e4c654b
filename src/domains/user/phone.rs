//! Sign-in by phone number: a one-time code by SMS, then the code back.
//!
//! Numbers are E.164. Each send is counted before it is made against four quotas — per number,
//! per client address, per hour over everyone, and per 24 hours over everyone (the ceiling of
//! the SMS bill) — and a number gets at most one code per `resend_interval_secs`. A code lives
//! `code_ttl_secs` and takes `attempts_max` tries. With Twilio Messaging Duet makes the code and
//! keeps only a salted SHA-256 of it; with Twilio Verify, Twilio keeps it and Duet still counts
//! the tries and the lifetime. Starting answers the same whether the number has an account:
//! the first verified code creates one.

use rand::Rng;

use crate::app::Ctx;
use crate::config::PhoneConfig;
use crate::core::error::{AppError, AppResult, Code};
use crate::core::ids::{random_token, secret_hash};
use crate::core::store::{get, put};
use crate::providers::sms::{CheckResult, Twilio};

use super::model::*;
use super::tables::*;
use super::{ClientMeta, Quota};

/// Shortest and longest E.164 numbers, in digits after the `+`.
const PHONE_DIGITS_MIN: usize = 8;
const PHONE_DIGITS_MAX: usize = 15;

/// An E.164 number: `+`, then 8–15 digits, the first not 0. Spaces, dashes, dots and brackets
/// people type are removed first.
pub fn parse_phone(raw: &str) -> AppResult<String> {
    let s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = s.strip_prefix('+').unwrap_or("");
    let ok = (PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        return Err(AppError::validation(
            "phone must be an E.164 number: + and 8–15 digits, with the country code",
        ));
    }
    Ok(s)
}

/// A number this server serves (`auth.phone.allowed_prefixes`), parsed.
fn served(cfg: &PhoneConfig, raw: &str) -> AppResult<String> {
    let phone = parse_phone(raw)?;
    if !cfg.allowed_prefixes.is_empty()
        && !cfg
            .allowed_prefixes
            .iter()
            .any(|p| phone.starts_with(p.as_str()))
    {
        return Err(AppError::validation(
            "phone sign-in is not offered for numbers of this country",
        ));
    }
    Ok(phone)
}

/// The key under which a number's counters are kept: its hash, so counters of numbers that
/// never became accounts hold no number.
pub(super) fn number_key(kind: &str, phone: &str) -> String {
    format!("sms:{kind}:{}", secret_hash(phone))
}

fn sms(ctx: &Ctx) -> AppResult<&Twilio> {
    ctx.sms.as_ref().ok_or_else(|| {
        AppError::new(
            Code::Unavailable,
            "phone sign-in is not configured on this server",
        )
    })
}

const HOUR_MS: i64 = 3_600_000;

fn send_quotas(cfg: &PhoneConfig, phone: &str, meta: &ClientMeta) -> [Quota; 4] {
    [
        Quota::new(
            number_key("number", phone),
            cfg.sends_per_number_max,
            HOUR_MS,
        ),
        Quota::new(
            format!("sms:address:{}", super::counted_address(meta)),
            cfg.sends_per_address_max,
            HOUR_MS,
        ),
        Quota::new("sms:hour".into(), cfg.sends_per_hour_max, HOUR_MS),
        Quota::new("sms:day".into(), cfg.sends_per_day_max, 24 * HOUR_MS),
    ]
}

/// What the app is told after a code was sent.
#[derive(Debug, Clone, Copy)]
pub struct CodeSent {
    pub expires_in_secs: u64,
    pub resend_in_secs: u64,
}

/// Sends a one-time code to `phone`.
pub async fn start(ctx: &Ctx, phone: &str, meta: ClientMeta) -> AppResult<CodeSent> {
    let twilio = sms(ctx)?;
    let cfg = ctx.config.auth.phone.clone();
    let phone = served(&cfg, phone)?;
    // Duet's own code, when it makes them; only its salted hash is stored.
    let code = (!twilio.makes_codes()).then(|| {
        let n = rand::rng().random_range(0..10u64.pow(cfg.code_digits));
        format!("{n:0width$}", width = cfg.code_digits as usize)
    });
    let (p, c) = (phone.clone(), code.clone());
    let quotas = send_quotas(&cfg, &phone, &meta);
    ctx.store
        .write(move |tx| {
            let now = tx.now_ms();
            let resend_ms = cfg.resend_interval_secs as i64 * 1000;
            let previous: Option<PhoneChallenge> = get(&tx.read(PHONE_CODES)?, p.as_str())?;
            if let Some(prev) = previous
                && now - prev.sent_at_ms < resend_ms
            {
                let wait = resend_ms - (now - prev.sent_at_ms);
                return Err(AppError::rate_limited((wait as u64).div_ceil(1000)));
            }
            // Counted before the SMS goes out: the bill's ceiling holds under any concurrency.
            super::admit(tx, &quotas)?;
            super::note(tx, &quotas)?;
            let salt = random_token(16);
            let challenge = PhoneChallenge {
                code_hash: c.as_ref().map(|c| code_hash(&salt, &p, c)),
                salt,
                sent_at_ms: now,
                expires_at_ms: now + cfg.code_ttl_secs as i64 * 1000,
                attempts: 0,
            };
            put(&mut tx.table(PHONE_CODES)?, p.as_str(), &challenge)
        })
        .await?;
    let sent = match &code {
        None => twilio.start_verification(&phone).await,
        Some(code) => {
            let text = format!("Your Duet code is {code}. Do not share it with anyone.");
            twilio.send_text(&phone, &text).await
        }
    };
    if let Err(e) = sent {
        // Nothing went out: the number may ask again at once (the quotas keep their count).
        forget_code(ctx, &phone).await?;
        return Err(e);
    }
    let cfg = &ctx.config.auth.phone;
    Ok(CodeSent {
        expires_in_secs: cfg.code_ttl_secs,
        resend_in_secs: cfg.resend_interval_secs,
    })
}

fn code_hash(salt: &str, phone: &str, code: &str) -> String {
    secret_hash(&format!("{salt}:{phone}:{code}"))
}

/// What one try of a code found.
enum Try {
    /// Duet's code matched (the challenge is used up).
    Matched,
    /// Duet's code did not match.
    Wrong,
    /// Twilio keeps the code: ask it (the try is counted).
    AskProvider,
    Expired,
    Exhausted,
}

/// Checks `code` for `phone` and uses it up; returns the number. Wrong codes count towards the
/// code's attempts and the sign-in throttle of the number.
pub async fn check_code(
    ctx: &Ctx,
    phone: &str,
    code: &str,
    meta: &ClientMeta,
) -> AppResult<String> {
    let twilio = sms(ctx)?;
    let phone = served(&ctx.config.auth.phone, phone)?;
    if !(4..=10).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::validation("code must be 4–10 digits"));
    }
    let account = IdentityKind::Phone.key(&phone);
    let _claim = ctx.sign_in.claim(&account)?;
    super::check_throttle(ctx, Some(&account), meta, super::AddressLimit::Applies).await?;
    let attempts_max = ctx.config.auth.phone.attempts_max;
    // Per number and client address: a stranger trying codes from elsewhere cannot use up the
    // owner's tries (guessing from many addresses stays bounded by the sends: 5 codes an hour
    // of 5 tries each).
    let tries = [Quota::new(
        number_key(
            "tries",
            &format!("{phone}|{}", super::counted_address(meta)),
        ),
        ctx.config.auth.phone.code_tries_per_day_max,
        24 * HOUR_MS,
    )];
    let (p, c) = (phone.clone(), code.to_owned());
    // Each try is committed whatever its result: a refusal must not roll the count back.
    let tried = ctx
        .store
        .write(move |tx| {
            super::admit(tx, &tries)?;
            let Some(mut ch) = get::<&str, PhoneChallenge>(&tx.read(PHONE_CODES)?, p.as_str())?
            else {
                return Ok(Try::Expired);
            };
            if ch.expires_at_ms <= tx.now_ms() {
                tx.table(PHONE_CODES)?.remove(p.as_str())?;
                return Ok(Try::Expired);
            }
            if ch.attempts >= attempts_max {
                return Ok(Try::Exhausted);
            }
            super::note(tx, &tries)?;
            ch.attempts += 1;
            let result = match &ch.code_hash {
                None => Try::AskProvider,
                Some(h) if *h == code_hash(&ch.salt, &p, &c) => Try::Matched,
                Some(_) => Try::Wrong,
            };
            match result {
                Try::Matched => {
                    tx.table(PHONE_CODES)?.remove(p.as_str())?;
                }
                _ => put(&mut tx.table(PHONE_CODES)?, p.as_str(), &ch)?,
            }
            Ok(result)
        })
        .await?;
    let asked_provider = matches!(tried, Try::AskProvider);
    let matched = match tried {
        Try::Matched => true,
        Try::Wrong => false,
        Try::AskProvider => twilio.check_verification(&phone, code).await? == CheckResult::Approved,
        Try::Expired => {
            return Err(AppError::new(
                Code::InvalidCode,
                "no code is pending for this number, or it expired; ask for a new one",
            ));
        }
        Try::Exhausted => {
            return Err(AppError::new(
                Code::CodeAttemptsExhausted,
                "this code was tried too often; ask for a new one",
            ));
        }
    };
    if !matched {
        super::record_failure(ctx, Some(&account), SignInMethod::Phone, meta).await?;
        return Err(AppError::new(Code::InvalidCode, "the code is not right"));
    }
    if asked_provider {
        // Twilio approved it: the challenge is used up here too.
        forget_code(ctx, &phone).await?;
    }
    Ok(phone)
}

/// Drops the code pending for `phone`.
async fn forget_code(ctx: &Ctx, phone: &str) -> AppResult<()> {
    let p = phone.to_owned();
    ctx.store
        .write(move |tx| {
            tx.table(PHONE_CODES)?.remove(p.as_str())?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::parse_phone;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_e164_after_typing_separators_are_removed() {
        assert_eq!(parse_phone("+1 (555) 010-9999").unwrap(), "+15550109999");
        for bad in [
            "",
            "+",
            "15550109999",
            "+0555010999",
            "+1555",
            "+1234567890123456",
            "+1555abc9999",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_parsed_number_parses_to_itself(raw in "\\+[1-9][0-9]{7,14}") {
            let p = parse_phone(&raw).unwrap();
            prop_assert_eq!(&p, &raw);
            prop_assert_eq!(parse_phone(&p).unwrap(), p);
        }
    }
}
