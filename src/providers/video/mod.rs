//! Video providers: each issues the per-call credentials its SDK needs to join a channel.
//! Agora is primary, Twilio the fallback; adding a provider is one file implementing
//! [`VideoProvider`].

pub mod agora;
pub mod twilio;

/// What a participant needs to join a call's media channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderToken {
    pub provider: &'static str,
    pub channel: String,
    pub uid: String,
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A video provider's credential issuer.
pub trait VideoProvider: Send + Sync {
    /// Stable name (`agora`, `twilio`), used in call records and configuration.
    fn name(&self) -> &'static str;
    /// Credentials for participant `uid` (numeric for providers that need it) with display
    /// `identity` to join `channel`, valid from `now_s` for `ttl_s` seconds.
    fn token(
        &self,
        channel: &str,
        uid: u32,
        identity: &str,
        now_s: i64,
        ttl_s: u32,
    ) -> ProviderToken;
}
