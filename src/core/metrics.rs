//! Prometheus metrics, served at `/metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The operation id (bounded cardinality), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// `idle`, `slow_head`, `slow_body` or `evicted`.
    pub reason: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub http_connections: Gauge,
    pub http_connections_refused: Counter,
    pub http_connections_closed: Family<CloseLabels, Counter>,
    pub http_accept_errors: Counter,
    pub ws_connections: Gauge,
    pub ws_frames_out: Counter,
    pub event_seq: Gauge,
    pub commit_latency: Histogram,
    pub commit_ops: Histogram,
    pub online_users: Gauge,
    /// From an event that changes a profile in the gallery to the commit that shows it.
    pub gallery_freshness: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("duet");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let http_connections = Gauge::default();
        let http_connections_refused = Counter::default();
        let http_connections_closed = Family::<CloseLabels, Counter>::default();
        let http_accept_errors = Counter::default();
        let ws_connections = Gauge::default();
        let ws_frames_out = Counter::default();
        let event_seq = Gauge::default();
        let commit_latency = latency_histogram();
        let commit_ops = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let online_users = Gauge::default();
        let gallery_freshness = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_latency.clone(),
        );
        registry.register(
            "http_connections",
            "Open HTTP connections, WebSockets included",
            http_connections.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections answered 503 because every open one was busy",
            http_connections_refused.clone(),
        );
        registry.register(
            "http_connections_closed",
            "Connections the server closed, by reason (idle, slow_head, slow_body, evicted)",
            http_connections_closed.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts (each followed by a backoff)",
            http_accept_errors.clone(),
        );
        registry.register(
            "ws_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        registry.register(
            "ws_frames_out",
            "WebSocket frames sent",
            ws_frames_out.clone(),
        );
        registry.register(
            "event_log_seq",
            "Sequence number of the last committed event",
            event_seq.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Duration of a group commit, from its first operation to durable",
            commit_latency.clone(),
        );
        registry.register(
            "store_commit_ops",
            "Operations per group commit",
            commit_ops.clone(),
        );
        registry.register(
            "online_users",
            "Users with a live, heartbeating connection",
            online_users.clone(),
        );
        registry.register(
            "gallery_freshness_seconds",
            "From a change to a shown profile to the gallery index commit that shows it",
            gallery_freshness.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            http_connections,
            http_connections_refused,
            http_connections_closed,
            http_accept_errors,
            ws_connections,
            ws_frames_out,
            event_seq,
            commit_latency,
            commit_ops,
            online_users,
            gallery_freshness,
        }
    }

    pub fn observe_commit(&self, seconds: f64, ops: usize) {
        self.commit_latency.observe(seconds);
        self.commit_ops.observe(ops as f64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
