//! SendGrid v3: `POST {base}/v3/mail/send` with a bearer API key; 202 means accepted.

use serde_json::json;

use super::{Outcome, by_status, unreachable};
use crate::config::SendGridConfig;

/// One email to one person.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The one-click unsubscribe link (also in the text); none for emails about the account
    /// itself (verification, password reset), which every account gets.
    pub unsubscribe_url: Option<String>,
}

pub struct SendGrid {
    url: String,
    api_key: String,
    from_email: String,
    from_name: String,
    http: reqwest::Client,
}

impl SendGrid {
    pub fn new(cfg: &SendGridConfig) -> SendGrid {
        SendGrid {
            url: format!("{}/v3/mail/send", cfg.base_url.trim_end_matches('/')),
            api_key: cfg.api_key.clone(),
            from_email: cfg.from_email.clone(),
            from_name: cfg.from_name.clone(),
            http: crate::providers::http_client(),
        }
    }

    pub async fn send(&self, email: &Email) -> Outcome {
        let mut body = json!({
            "personalizations": [{"to": [{"email": email.to}]}],
            "from": {"email": self.from_email, "name": self.from_name},
            "subject": email.subject,
            "content": [{"type": "text/plain", "value": email.text}],
        });
        if let Some(url) = &email.unsubscribe_url {
            body["headers"] = json!({
                "List-Unsubscribe": format!("<{url}>"),
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            });
        }
        match self
            .http
            .post(&self.url)
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status();
                by_status(status, &r.text().await.unwrap_or_default())
            }
            Err(e) => unreachable(e),
        }
    }
}
