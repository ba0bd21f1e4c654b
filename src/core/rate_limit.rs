//! Rate limits. One counting rule, [`Throttle`] (a sliding-window counter), serves everything
//! that is limited: stored where the count must survive a restart (failed sign-ins, sign-ups,
//! chat messages, each in its domain's table), and in memory in [`RateLimiter`] for the
//! per-caller request limits of every write route (`rate_limits` in the config), which would
//! otherwise cost a write per request.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::{AppError, AppResult};

/// A sliding-window counter of occurrences (failed sign-ins, sign-ups, messages, requests) for one key: the count
/// of the current fixed window plus the previous window's count weighted by how much of it the
/// sliding window still covers. Storage is three numbers whatever the limit.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Throttle {
    pub window_start_ms: i64,
    pub current: u64,
    pub previous: u64,
}

impl Throttle {
    fn rolled(&self, now: i64, window: i64) -> Throttle {
        let mut t = self.clone();
        let elapsed = now - t.window_start_ms;
        if (t.current == 0 && t.previous == 0) || elapsed >= 2 * window {
            t = Throttle {
                window_start_ms: now,
                current: 0,
                previous: 0,
            };
        } else if elapsed >= window {
            t = Throttle {
                window_start_ms: t.window_start_ms + window,
                current: 0,
                previous: t.current,
            };
        }
        t
    }

    /// Counts one occurrence at `now`.
    pub fn record(&mut self, now: i64, window: i64) {
        *self = self.rolled(now, window);
        self.current += 1;
    }

    /// `None` while under `max`; otherwise how many milliseconds until it is.
    pub fn wait_ms(&self, now: i64, window: i64, max: u64) -> Option<i64> {
        let t = self.rolled(now, window);
        let (w, p, c, m) = (
            window as u128,
            t.previous as u128,
            t.current as u128,
            max as u128,
        );
        let elapsed = (now - t.window_start_ms).clamp(0, window) as u128;
        // estimate >= max  ⟺  p·(w − elapsed) + c·w >= m·w
        if p * (w - elapsed) + c * w < m * w {
            return None;
        }
        // The first instant the estimate is below `max` if nothing else happens:
        let offset = if c >= m {
            // not in this window (the estimate stays >= c); in the next one the current count
            // becomes the previous, weighted c·(2w − t)/w, which is < m once t > 2w − m·w/c;
            (2 * w * c - m * w) / c + 1
        } else {
            // in this window p·(w − t)/w + c < m once t > w − (m − c)·w/p.
            (p * w - (m - c) * w) / p.max(1) + 1
        };
        let free_at = t.window_start_ms as u128 + offset;
        Some((free_at as i64 - now).max(1))
    }
}

/// The unit one client holds, for counting: an IPv4 address, or an IPv6 /64 (what one
/// subscriber gets; counting single IPv6 addresses would give everyone 2^64 allowances).
pub fn address_group(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).into()
            }
        },
        v4 => v4,
    }
}

/// The counting key of a client address as given (a peer address or a proxy's header):
/// its [`address_group`], or, if it is no IP address, at most 64 characters of it.
pub fn address_key(raw: &str) -> String {
    match raw.trim().parse::<std::net::IpAddr>() {
        Ok(ip) => address_group(ip).to_string(),
        Err(_) => raw.chars().take(64).collect(),
    }
}

/// A named limit: at most `max` within any `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window_ms: i64,
}

/// Counters by (limit name, key), each with the window of its limit, to know when it is idle.
type Shard = HashMap<(&'static str, String), (Throttle, i64)>;

/// Independent locks, so callers on different keys rarely wait for each other.
const SHARDS: usize = 64;

/// In-memory counters of named limits per key (a user id or a client address), bounded in
/// size: at `keys_max` keys, counters idle for two windows are dropped, and if none is, the
/// one that started longest ago makes room — a flood of new keys cannot grow memory, and
/// cannot lock out callers who were not part of it either.
pub struct RateLimiter {
    shards: Vec<Mutex<Shard>>,
    per_shard_max: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimiter {
    pub fn new(keys_max: usize) -> RateLimiter {
        RateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard_max: keys_max.div_ceil(SHARDS).max(1),
            hasher: Default::default(),
        }
    }

    /// Counts one use of `limit` by `key` at `now_ms`, or refuses with `rate_limited` and how
    /// many seconds to wait.
    pub fn check(&self, limit: &Limit, key: &str, now_ms: i64) -> AppResult<()> {
        let shard = self.hasher.hash_one((limit.name, key)) as usize % SHARDS;
        let mut shard = self.shards[shard].lock();
        let id = (limit.name, key.to_owned());
        if !shard.contains_key(&id) && shard.len() >= self.per_shard_max {
            // Counters idle for two windows count nothing any more.
            shard.retain(|_, (t, window)| now_ms - t.window_start_ms < 2 * *window);
            if shard.len() >= self.per_shard_max {
                let oldest = shard
                    .iter()
                    .min_by_key(|(_, (t, _))| t.window_start_ms)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    shard.remove(&oldest);
                }
            }
        }
        let (throttle, _) = shard
            .entry(id)
            .or_insert_with(|| (Throttle::default(), limit.window_ms));
        if let Some(ms) = throttle.wait_ms(now_ms, limit.window_ms, u64::from(limit.max)) {
            return Err(AppError::rate_limited((ms as u64).div_ceil(1000)));
        }
        throttle.record(now_ms, limit.window_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_A_MINUTE: Limit = Limit {
        name: "test",
        max: 10,
        window_ms: 60_000,
    };

    #[test]
    fn a_key_gets_its_max_then_waits_and_others_are_unaffected() {
        let limiter = RateLimiter::new(1000);
        for _ in 0..10 {
            limiter.check(&TEN_A_MINUTE, "a", 0).unwrap();
        }
        let refused = limiter.check(&TEN_A_MINUTE, "a", 0).unwrap_err();
        let wait = refused.retry_after_secs.unwrap();
        assert!((1..=120).contains(&wait), "{wait}");
        limiter.check(&TEN_A_MINUTE, "b", 0).unwrap();
        limiter
            .check(&TEN_A_MINUTE, "a", wait as i64 * 1000)
            .expect("allowed after the wait");
    }

    #[test]
    fn memory_is_bounded_and_a_flood_of_keys_locks_nobody_out() {
        let limiter = RateLimiter::new(SHARDS);
        for i in 0..SHARDS * 4 {
            limiter
                .check(&TEN_A_MINUTE, &i.to_string(), 0)
                .expect("a new key is always admitted");
        }
        let held: usize = limiter.shards.iter().map(|s| s.lock().len()).sum();
        assert!(held <= SHARDS, "{held} counters held");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_junk_is_bounded() {
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1"),
            address_key("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(
            address_key("2001:db8:1:2::1"),
            address_key("2001:db8:1:3::1")
        );
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key(&"x".repeat(500)).len(), 64);
    }
}
