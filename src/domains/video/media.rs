//! Which video provider a call uses, and the media credentials of its participants.
//!
//! Providers are tried in order (Agora, then Twilio), skipping those not configured, switched
//! off by an admin (persisted), or failing: a provider with `failure_threshold` failures
//! reported within `failure_window_secs` is skipped for new calls until the window has passed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use redb::ReadableTable;

use crate::config::VideoConfig;
use crate::core::error::AppResult;
use crate::core::store::Tx;
use crate::providers::video::agora::Agora;
use crate::providers::video::twilio::Twilio;
use crate::providers::video::{ProviderToken, VideoProvider};

use super::tables::PROVIDER_SWITCHES;

pub struct Media {
    providers: Vec<Arc<dyn VideoProvider>>,
    failures: Mutex<HashMap<&'static str, VecDeque<i64>>>,
    threshold: usize,
    window_ms: i64,
    pub token_ttl_secs: u32,
}

/// What an admin sees of a provider.
pub struct ProviderStatus {
    pub name: &'static str,
    pub enabled: bool,
    pub failing: bool,
}

impl Media {
    pub fn new(cfg: &VideoConfig) -> Media {
        let mut providers: Vec<Arc<dyn VideoProvider>> = Vec::new();
        if !cfg.agora.app_id.is_empty() && !cfg.agora.app_certificate.is_empty() {
            providers.push(Arc::new(Agora::new(
                &cfg.agora.app_id,
                &cfg.agora.app_certificate,
            )));
        }
        let t = &cfg.twilio;
        if !t.account_sid.is_empty() && !t.api_key_sid.is_empty() && !t.api_key_secret.is_empty() {
            providers.push(Arc::new(Twilio::new(
                &t.account_sid,
                &t.api_key_sid,
                &t.api_key_secret,
            )));
        }
        Media {
            providers,
            failures: Mutex::new(HashMap::new()),
            threshold: cfg.failure_threshold as usize,
            window_ms: cfg.failure_window_secs as i64 * 1000,
            token_ttl_secs: cfg.token_ttl_secs,
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    fn failing(&self, name: &str, now_ms: i64) -> bool {
        let mut f = self.failures.lock();
        let Some(q) = f.get_mut(name) else {
            return false;
        };
        while q.front().is_some_and(|at| *at <= now_ms - self.window_ms) {
            q.pop_front();
        }
        q.len() >= self.threshold
    }

    /// Counts a failure a client reported.
    pub fn report_failure(&self, name: &str, now_ms: i64) {
        if let Some(p) = self.providers.iter().find(|p| p.name() == name) {
            let mut f = self.failures.lock();
            let q = f.entry(p.name()).or_default();
            q.push_back(now_ms);
            // Only the last `threshold` reports matter.
            while q.len() > self.threshold {
                q.pop_front();
            }
        }
    }

    /// The provider for a call now, skipping `avoid` (the one that just failed it).
    pub fn choose(
        &self,
        tx: &Tx,
        now_ms: i64,
        avoid: Option<&str>,
    ) -> AppResult<Option<&'static str>> {
        let switches = tx.read(PROVIDER_SWITCHES)?;
        for p in &self.providers {
            let enabled = switches.get(p.name())?.is_none_or(|v| v.value());
            if enabled && Some(p.name()) != avoid && !self.failing(p.name(), now_ms) {
                return Ok(Some(p.name()));
            }
        }
        Ok(None)
    }

    pub fn token(
        &self,
        provider: &str,
        channel: &str,
        uid: u32,
        identity: &str,
        now_s: i64,
    ) -> Option<ProviderToken> {
        let p = self.providers.iter().find(|p| p.name() == provider)?;
        Some(p.token(channel, uid, identity, now_s, self.token_ttl_secs))
    }

    pub fn status(
        &self,
        tx_switches: &impl ReadableTable<&'static str, bool>,
        now_ms: i64,
    ) -> AppResult<Vec<ProviderStatus>> {
        let mut out = Vec::new();
        for p in &self.providers {
            out.push(ProviderStatus {
                name: p.name(),
                enabled: tx_switches.get(p.name())?.is_none_or(|v| v.value()),
                failing: self.failing(p.name(), now_ms),
            });
        }
        Ok(out)
    }
}
