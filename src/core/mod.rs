//! What every domain stands on: error codes, the store, the event log, auth tokens, ids, time
//! and metrics.

pub mod auth;
pub mod browse;
pub mod clock;
pub mod cursor;
pub mod erasure;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod platform;
pub mod rate_limit;
pub mod store;
pub mod text;
