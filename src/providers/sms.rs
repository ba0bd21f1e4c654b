//! One-time codes by SMS through Twilio, in either of its two ways:
//!
//! - **Verify**: `POST {verify}/v2/Services/{sid}/Verifications` (`To`, `Channel=sms`) makes
//!   and sends the code; `POST …/VerificationCheck` (`To`, `Code`) answers `status: approved`
//!   when it matches. Twilio keeps the code.
//! - **Messaging**: `POST {api}/2010-04-01/Accounts/{account}/Messages.json` (`To`, `Body`, and
//!   `MessagingServiceSid` or `From`) sends a text Duet wrote, with Duet's own code in it.
//!
//! Both authenticate with HTTP basic auth (account sid and auth token) and take form bodies.

use serde::Deserialize;

use crate::config::{PhoneConfig, SmsProvider};
use crate::core::error::{AppError, AppResult, Code};

/// Longest Twilio answer read.
const ANSWER_BYTES_MAX: usize = 64 * 1024;

pub struct Twilio {
    http: reqwest::Client,
    provider: SmsProvider,
    account_sid: String,
    auth_token: String,
    verify_url: String,
    messages_url: String,
    /// `MessagingServiceSid` or `From`, and its value.
    sender: (&'static str, String),
}

#[derive(Deserialize)]
struct VerifyAnswer {
    #[serde(default)]
    status: String,
}

/// What Twilio said about a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    Approved,
    /// Wrong, or no verification is pending for the number (expired, used, too many checks).
    Refused,
}

impl Twilio {
    pub fn new(cfg: &PhoneConfig) -> Twilio {
        let verify = cfg.verify_base_url.trim_end_matches('/');
        let api = cfg.api_base_url.trim_end_matches('/');
        Twilio {
            http: super::http_client(),
            provider: cfg.provider,
            account_sid: cfg.account_sid.clone(),
            auth_token: cfg.auth_token.clone(),
            verify_url: format!("{verify}/v2/Services/{}", cfg.verify_service_sid),
            messages_url: format!(
                "{api}/2010-04-01/Accounts/{}/Messages.json",
                cfg.account_sid
            ),
            sender: if cfg.messaging_service_sid.is_empty() {
                ("From", cfg.from_number.clone())
            } else {
                ("MessagingServiceSid", cfg.messaging_service_sid.clone())
            },
        }
    }

    /// Whether Twilio keeps and checks the codes (Verify) rather than Duet.
    pub fn makes_codes(&self) -> bool {
        self.provider == SmsProvider::TwilioVerify
    }

    /// Verify: asks Twilio to send a code to `phone`.
    pub async fn start_verification(&self, phone: &str) -> AppResult<()> {
        let url = format!("{}/Verifications", self.verify_url);
        self.post(&url, &[("To", phone), ("Channel", "sms")])
            .await
            .map(drop)
    }

    /// Verify: asks Twilio whether `code` is the one it sent to `phone`.
    pub async fn check_verification(&self, phone: &str, code: &str) -> AppResult<CheckResult> {
        let url = format!("{}/VerificationCheck", self.verify_url);
        match self.post(&url, &[("To", phone), ("Code", code)]).await {
            Ok(body) => {
                let answer: VerifyAnswer = serde_json::from_slice(&body).map_err(|e| {
                    AppError::new(
                        Code::ProviderFailed,
                        format!("Twilio: unexpected answer: {e}"),
                    )
                })?;
                Ok(match answer.status.as_str() {
                    "approved" => CheckResult::Approved,
                    _ => CheckResult::Refused,
                })
            }
            // 404: no pending verification for the number (expired, approved, or checked too
            // often); Twilio refuses further checks of the number with 429 (60202).
            Err(e) if e.code == Code::InvalidCode => Ok(CheckResult::Refused),
            Err(e) => Err(e),
        }
    }

    /// Messaging: sends `text` to `phone`.
    pub async fn send_text(&self, phone: &str, text: &str) -> AppResult<()> {
        let (field, value) = (self.sender.0, self.sender.1.as_str());
        self.post(
            &self.messages_url,
            &[("To", phone), (field, value), ("Body", text)],
        )
        .await
        .map(drop)
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> AppResult<bytes::Bytes> {
        let failed = |why: String| AppError::new(Code::ProviderFailed, format!("Twilio: {why}"));
        let request = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(form);
        let (status, body) = super::answer(request, ANSWER_BYTES_MAX)
            .await
            .map_err(failed)?;
        match status.as_u16() {
            200..=299 => Ok(body),
            // Twilio's answer to a number it cannot send to (21211, 60200): the caller's input.
            400 => Err(AppError::validation(
                "the SMS provider refused the phone number",
            )),
            404 | 429 if url.ends_with("/VerificationCheck") => Err(AppError::new(
                Code::InvalidCode,
                "no code is pending for this number",
            )),
            _ => Err(failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }
}
