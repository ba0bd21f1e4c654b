//! Push and email delivery adapters: FCM HTTP v1, APNs (HTTP/2, token auth), OneSignal REST
//! and SendGrid v3. Each sends one message to one address and says what happened in the
//! provider-independent terms the notification outbox acts on.

pub mod apns;
pub mod fcm;
pub mod onesignal;
pub mod sendgrid;

use serde_json::{Map, Value};

/// One push to one device.
#[derive(Debug, Clone)]
pub struct PushMessage {
    pub notification_id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// Extra fields for the app (an object).
    pub data: Value,
    /// A VoIP push (incoming call on iOS): no alert, delivered at once or not at all.
    pub voip: bool,
    /// When the notification was made: VoIP pushes expire counted from it, not from a retry.
    pub created_at_ms: i64,
}

impl PushMessage {
    /// `data` with the kind and id, every value a string (FCM's `data` requires strings).
    pub fn string_data(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("kind".into(), self.kind.clone().into());
        out.insert("notificationId".into(), self.notification_id.clone().into());
        if let Some(obj) = self.data.as_object() {
            for (k, v) in obj {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), s.into());
            }
        }
        out
    }
}

/// What a provider said about one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The address is gone (app uninstalled, token expired): remove it, do not retry.
    Unregistered,
    /// Not delivered this time (provider down, throttled): try again later.
    Retry(String),
    /// Refused for good (a malformed request, a bad credential): do not retry.
    Failed(String),
}

/// The outcome of an HTTP status that the provider did not explain further.
pub fn by_status(status: reqwest::StatusCode, body: &str) -> Outcome {
    let why = format!(
        "HTTP {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    if status.is_success() {
        Outcome::Sent
    } else if status.as_u16() == 429 || status.is_server_error() {
        Outcome::Retry(why)
    } else {
        Outcome::Failed(why)
    }
}

/// A transport error. When the connection could not even be made, nothing reached the
/// provider: retry. Otherwise the request may have arrived (a timeout waiting for the answer),
/// and sending again could deliver it twice: it fails for good, as a crash mid-send does.
pub fn unreachable(e: reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Retry(format!("unreachable: {e}"))
    } else {
        Outcome::Failed(format!("no answer, delivery unknown: {e}"))
    }
}
