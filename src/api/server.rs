//! The HTTP listener: Duet's own accept loop and connection handling around hyper, serving the
//! poem routes.
//!
//! poem's `Server` retries a failing `accept` at once (with `EMFILE` it spins on the CPU and
//! answers nobody) and bounds no phase of a connection in time. Here every connection is in
//! one of three phases, each bounded (`server.connections` in the config):
//!
//! - **idle**: no request in flight and no byte of the next one received; closed after
//!   `idle_timeout_ms` (this is the keep-alive timeout, and also bounds a connection that never
//!   sends anything);
//! - **head**: bytes of a request head have arrived but not the whole head; closed
//!   `header_read_timeout_ms` after the first of them (slowloris);
//! - **busy**: a request is being served. Its body must arrive within `body_read_timeout_ms`
//!   plus its length at `body_min_bytes_per_sec`, or the connection is closed.
//!
//! At most `max` connections are open (further capped by the descriptor limit). When full, the
//! connection that has been idle or reading its head the longest is closed to make room, since
//! nobody is waiting on it; only when every connection is busy is a newcomer refused with a bare
//! `503` and `Retry-After`. An `accept` that fails (out of descriptors, say) is retried after a
//! backoff that doubles up to `accept_backoff_max_ms`, and also frees the oldest idle
//! connection. WebSocket connections leave this accounting's phases when upgraded (their own
//! deadlines and heartbeat apply, see `api::ws`) but keep counting as open until closed.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ConnectionsConfig;
use crate::core::error::{AppError, Code};
use crate::core::metrics::Metrics;

/// How far past `max` connections may be open while evicted ones are still closing: evicting
/// is asynchronous, so without this slack a flood could outrun it.
const EVICTION_SLACK: usize = 32;
/// Connections evicted at once when full: evicted ones close asynchronously, so making room
/// for several newcomers per eviction round keeps a flood of them from waiting on each close.
const EVICTION_BATCH: usize = 8;
/// How long a newcomer waits for evicted connections to close before it is refused.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// What a refused connection is told: a problem document like any other error, in HTTP/1.1
/// (the form nearly every client speaks first).
fn refusal() -> Vec<u8> {
    let problem = crate::api::problem::Problem::from_error(&AppError::new(
        Code::Unavailable,
        "every connection is busy; retry in a moment",
    ));
    let body = problem.to_json_value().to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        crate::api::problem::PROBLEM_CONTENT_TYPE,
        body.len()
    )
    .into_bytes()
}

/// The limits of one listener, resolved from the config and the descriptor limit.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub body_min_bytes_per_sec: u64,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub accept_backoff_max: Duration,
    /// Open connections from one peer address at most; `None` behind a proxy (every peer is
    /// the proxy).
    pub per_address_max: Option<usize>,
}

impl Limits {
    /// The configured limits, with the connection cap lowered to fit in `descriptors` (the soft
    /// `RLIMIT_NOFILE`) minus the descriptors the rest of the process needs.
    pub fn new(config: &ConnectionsConfig, behind_proxy: bool, descriptors: u64) -> Limits {
        let fit = descriptors
            .saturating_sub(config.reserved_descriptors as u64)
            .saturating_sub(EVICTION_SLACK as u64)
            .max(1);
        let max_connections = (config.max as u64).min(fit) as usize;
        if max_connections < config.max {
            tracing::warn!(
                configured = config.max,
                descriptors,
                max_connections,
                "the descriptor limit caps the number of open connections"
            );
        }
        Limits {
            max_connections,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
            body_min_bytes_per_sec: config.body_min_bytes_per_sec,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            accept_backoff_max: Duration::from_millis(config.accept_backoff_max_ms),
            per_address_max: (!behind_proxy).then_some(config.per_address_max),
        }
    }
}

/// Raises the soft descriptor limit to the hard one (a server needs many; the default soft
/// limit is often 1024) and returns the soft limit in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        // An unlimited hard limit cannot be the soft one: Linux caps it at fs.nr_open.
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
            .map_or(limit.rlim_max, |nr_open| limit.rlim_max.min(nr_open));
        if limit.rlim_cur < ceiling {
            let raised = libc::rlimit {
                rlim_cur: ceiling,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Why the server closed a connection (a label of `duet_http_connections_closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    Idle,
    SlowHead,
    SlowBody,
    Stalled,
    Evicted,
}

impl CloseReason {
    fn label(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::SlowHead => "slow_head",
            CloseReason::SlowBody => "slow_body",
            CloseReason::Stalled => "stalled",
            CloseReason::Evicted => "evicted",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing in flight since `since`; `key` orders it among the evictable connections.
    Idle { since: Instant, key: u64 },
    /// Part of a request head arrived; the first byte at `since`. Still evictable under `key`.
    Head { since: Instant, key: u64 },
    /// `requests` requests are being served (more than one only over HTTP/2); `since` is the
    /// last time one started or finished: a connection that makes no progress for
    /// `request_timeout` (a response the client never reads) is closed.
    Busy { requests: usize, since: Instant },
    /// The connection task is gone (closed or upgraded to a WebSocket).
    Done,
}

/// One connection's phase, shared by its socket, its requests and its watchdog.
struct Connection {
    phase: Mutex<Phase>,
    changed: tokio::sync::Notify,
    /// Cancelled to close the connection at once, with the reason in `closed_for`.
    kill: CancellationToken,
    closed_for: Mutex<Option<CloseReason>>,
    /// Chosen for eviction (under the evictable map's lock); counted in `Registry::closing`
    /// until its task has let go of the socket.
    evicted: std::sync::atomic::AtomicBool,
}

impl Connection {
    fn close(&self, reason: CloseReason) {
        self.closed_for.lock().get_or_insert(reason);
        self.kill.cancel();
    }
}

/// Every open connection of a listener.
struct Registry {
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Sockets open, counting upgraded ones until they close (see `Counted`).
    open: AtomicUsize,
    /// Connections nobody is waiting on (idle or reading a head), oldest first.
    evictable: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_key: AtomicU64,
    /// Open connections per peer address group (when `per_address_max` applies).
    per_address: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// The bytes of `refusal()`, made once.
    refusal: Vec<u8>,
    /// Evicted connections whose tasks have not finished closing them yet.
    closing: AtomicUsize,
    /// Notified whenever a socket closes.
    closed: tokio::sync::Notify,
}

impl Registry {
    /// A sixteenth of the connections, at most `EVICTION_BATCH`: small pools give up one at a
    /// time.
    fn eviction_batch(&self) -> usize {
        (self.limits.max_connections / 16).clamp(1, EVICTION_BATCH)
    }

    fn key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Puts a connection that has just been accepted among the idle ones.
    fn accepted(&self, conn: &Arc<Connection>) {
        let mut phase = conn.phase.lock();
        self.make_idle(conn, &mut phase);
    }

    /// Idle from now, and evictable: under the phase lock, so no other transition (a request
    /// starting, the task forgetting the connection) can come between the two.
    fn make_idle(&self, conn: &Arc<Connection>, phase: &mut Phase) {
        let key = self.key();
        *phase = Phase::Idle {
            since: Instant::now(),
            key,
        };
        self.evictable.lock().insert(key, conn.clone());
        conn.changed.notify_one();
    }

    /// A request starts on `conn`: it is no longer evictable.
    fn request_started(&self, conn: &Arc<Connection>) {
        let mut phase = conn.phase.lock();
        let now = Instant::now();
        *phase = match *phase {
            Phase::Idle { key, .. } | Phase::Head { key, .. } => {
                self.evictable.lock().remove(&key);
                Phase::Busy {
                    requests: 1,
                    since: now,
                }
            }
            Phase::Busy { requests, .. } => Phase::Busy {
                requests: requests + 1,
                since: now,
            },
            Phase::Done => Phase::Done,
        };
        drop(phase);
        conn.changed.notify_one();
    }

    fn request_finished(&self, conn: &Arc<Connection>) {
        let mut phase = conn.phase.lock();
        match *phase {
            Phase::Busy { requests, .. } if requests > 1 => {
                *phase = Phase::Busy {
                    requests: requests - 1,
                    since: Instant::now(),
                };
                drop(phase);
                conn.changed.notify_one();
            }
            Phase::Busy { .. } => self.make_idle(conn, &mut phase),
            // Done stays done: a request finishing after its connection is gone changes nothing.
            _ => {}
        }
    }

    /// Bytes arrived on `conn`: an idle connection has started sending a request head.
    fn bytes_arrived(&self, conn: &Connection) {
        let mut phase = conn.phase.lock();
        if let Phase::Idle { key, .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
                key,
            };
            drop(phase);
            conn.changed.notify_one();
        }
    }

    fn forget(&self, conn: &Connection) {
        let mut phase = conn.phase.lock();
        if let Phase::Idle { key, .. } | Phase::Head { key, .. } = *phase {
            self.evictable.lock().remove(&key);
        }
        *phase = Phase::Done;
    }

    /// Closes the `n` connections that have waited longest for a request; false if none was
    /// waiting (every connection is busy).
    fn evict_oldest(&self, n: usize) -> bool {
        let mut evictable = self.evictable.lock();
        let mut evicted = false;
        for _ in 0..n {
            let Some((_, conn)) = evictable.pop_first() else {
                break;
            };
            conn.evicted.store(true, Ordering::Release);
            self.closing.fetch_add(1, Ordering::AcqRel);
            conn.close(CloseReason::Evicted);
            evicted = true;
        }
        evicted
    }

    /// Whether a newly accepted connection may be served, making room if needed. Past `max`
    /// (not counting connections already being evicted) the longest-waiting ones are evicted;
    /// past `max + EVICTION_SLACK` open sockets the newcomer waits, briefly, for evicted ones to
    /// finish closing. Refused when every connection is busy, or when room does not come soon.
    async fn admit(&self) -> bool {
        let give_up = Instant::now() + EVICTION_WAIT;
        loop {
            let room = self.closed.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let staying = self
                .open
                .load(Ordering::Acquire)
                .saturating_sub(self.closing.load(Ordering::Acquire));
            if staying >= self.limits.max_connections && !self.evict_oldest(self.eviction_batch()) {
                return false;
            }
            if self.open.load(Ordering::Acquire) < self.limits.max_connections + EVICTION_SLACK {
                return true;
            }
            if tokio::time::timeout_at(give_up, room).await.is_err() {
                return false;
            }
        }
    }
}

/// A socket that counts as open until dropped (wherever it ends up: a WebSocket keeps it) and
/// reports arriving bytes to its connection's phase.
struct Counted {
    stream: TcpStream,
    peer: std::net::IpAddr,
    conn: Arc<Connection>,
    registry: Arc<Registry>,
}

impl Counted {
    /// Counts a new socket from `peer`, or gives it back if that address already holds its
    /// share of connections.
    fn new(
        stream: TcpStream,
        peer: std::net::IpAddr,
        conn: Arc<Connection>,
        registry: Arc<Registry>,
    ) -> Result<Counted, TcpStream> {
        let peer = crate::core::rate_limit::address_group(peer);
        if let Some(max) = registry.limits.per_address_max {
            let mut per_address = registry.per_address.lock();
            let held = per_address.entry(peer).or_insert(0);
            if *held >= max {
                return Err(stream);
            }
            *held += 1;
        }
        let open = registry.open.fetch_add(1, Ordering::AcqRel) + 1;
        registry.metrics.http_connections.set(open as i64);
        Ok(Counted {
            stream,
            peer,
            conn,
            registry,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.registry.limits.per_address_max.is_some() {
            let mut per_address = self.registry.per_address.lock();
            if let Some(held) = per_address.get_mut(&self.peer) {
                *held -= 1;
                if *held == 0 {
                    per_address.remove(&self.peer);
                }
            }
        }
        let open = self.registry.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.registry.metrics.http_connections.set(open as i64);
        self.registry.closed.notify_waiters();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.registry.bytes_arrived(&this.conn);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Held while a request is in flight, until its response body has been sent or dropped.
struct InFlight {
    conn: Arc<Connection>,
    registry: Arc<Registry>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.registry.request_finished(&self.conn);
    }
}

/// Resolves when the connection has been idle or reading a head for too long.
async fn phase_expired(conn: &Connection, limits: &Limits) -> CloseReason {
    loop {
        let changed = conn.changed.notified();
        tokio::pin!(changed);
        // Registered before reading the phase, so no change can slip between the two.
        changed.as_mut().enable();
        let deadline = match *conn.phase.lock() {
            Phase::Idle { since, .. } => Some((since + limits.idle_timeout, CloseReason::Idle)),
            Phase::Head { since, .. } => {
                Some((since + limits.header_read_timeout, CloseReason::SlowHead))
            }
            Phase::Busy { since, .. } => {
                Some((since + limits.request_timeout, CloseReason::Stalled))
            }
            Phase::Done => None,
        };
        match deadline {
            Some((at, reason)) if at <= Instant::now() => return reason,
            Some((at, _)) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = changed => {}
                }
            }
            None => changed.await,
        }
    }
}

/// A request body that must be complete by `deadline`; past it the connection is closed.
fn deadline_body(body: poem::Body, deadline: Instant, conn: Arc<Connection>) -> poem::Body {
    let stream = body.into_bytes_stream();
    let timed = futures_util::stream::unfold(
        (Box::pin(stream), conn),
        move |(mut stream, conn)| async move {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => Some((item, (stream, conn))),
                Ok(None) => None,
                Err(_) => {
                    conn.close(CloseReason::SlowBody);
                    Some((
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the request body arrived too slowly",
                        )),
                        (stream, conn),
                    ))
                }
            }
        },
    );
    poem::Body::from_bytes_stream(timed)
}

/// When the body of `req` must have arrived, if it has one: any body not already complete
/// (HTTP/2 bodies need no `Content-Length`), with its declared length at the minimum rate.
fn body_deadline(req: &http::Request<Incoming>, limits: &Limits) -> Option<Instant> {
    use hyper::body::Body;
    if req.body().is_end_stream() {
        return None;
    }
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let transfer_ms = declared
        .saturating_mul(1000)
        .checked_div(limits.body_min_bytes_per_sec)
        .unwrap_or(0);
    Some(Instant::now() + limits.body_read_timeout + Duration::from_millis(transfer_ms))
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish for at most `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let local = listener.local_addr()?;
    let endpoint: Arc<BoxEndpoint<'static>> = Arc::new(endpoint.map_to_response().boxed());
    let registry = Arc::new(Registry {
        limits: limits.clone(),
        metrics,
        open: AtomicUsize::new(0),
        evictable: Mutex::new(BTreeMap::new()),
        next_key: AtomicU64::new(0),
        closed: tokio::sync::Notify::new(),
        closing: AtomicUsize::new(0),
        refusal: refusal(),
        per_address: Mutex::new(HashMap::new()),
    });
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                if !registry.admit().await {
                    refuse(stream, &registry);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                // Counted and registered here, not in the task: the next admission must see
                // this connection, and eviction order must be accept order.
                let conn = Arc::new(Connection {
                    phase: Mutex::new(Phase::Done),
                    changed: tokio::sync::Notify::new(),
                    kill: CancellationToken::new(),
                    closed_for: Mutex::new(None),
                    evicted: std::sync::atomic::AtomicBool::new(false),
                });
                let stream = match Counted::new(stream, peer.ip(), conn.clone(), registry.clone()) {
                    Ok(counted) => counted,
                    Err(stream) => {
                        refuse(stream, &registry);
                        continue;
                    }
                };
                registry.accepted(&conn);
                tasks.spawn(serve_connection(
                    stream,
                    conn,
                    local,
                    peer,
                    endpoint.clone(),
                    registry.clone(),
                    stopping.clone(),
                ));
            }
            Err(e) => {
                // Out of descriptors or memory: an idle connection's descriptor is the one to
                // give up. Whatever the error, wait before trying again instead of spinning.
                if is_resource_exhaustion(&e) {
                    registry.evict_oldest(registry.eviction_batch());
                }
                backoff = (backoff * 2)
                    .max(Duration::from_millis(1))
                    .min(limits.accept_backoff_max);
                registry.metrics.http_accept_errors.inc();
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    drop(listener);
    stopping.cancel();
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Answers a connection there is no room for, without waiting on it.
fn refuse(stream: TcpStream, registry: &Registry) {
    registry.metrics.http_connections_refused.inc();
    // Whatever the client already sent is read first: closing a socket with unread data
    // resets it, and the client might lose the answer. A fresh socket's send buffer is empty,
    // so the small write completes (or fails) at once.
    let _ = stream.try_read(&mut [0u8; 4096]);
    let _ = stream.try_write(&registry.refusal);
}

async fn serve_connection(
    stream: Counted,
    conn: Arc<Connection>,
    local: SocketAddr,
    peer: SocketAddr,
    endpoint: Arc<BoxEndpoint<'static>>,
    registry: Arc<Registry>,
    stopping: CancellationToken,
) {
    let io = TokioIo::new(stream);
    let service = hyper::service::service_fn({
        let conn = conn.clone();
        let registry = registry.clone();
        move |req: http::Request<Incoming>| {
            registry.request_started(&conn);
            let in_flight = InFlight {
                conn: conn.clone(),
                registry: registry.clone(),
            };
            let deadline = body_deadline(&req, &registry.limits);
            let endpoint = endpoint.clone();
            let conn = conn.clone();
            async move {
                let mut req: poem::Request = (
                    req,
                    LocalAddr(Addr::SocketAddr(local)),
                    RemoteAddr(Addr::SocketAddr(peer)),
                    http::uri::Scheme::HTTP,
                )
                    .into();
                if let Some(deadline) = deadline {
                    let body = req.take_body();
                    req.set_body(deadline_body(body, deadline, conn));
                }
                let resp: http::Response<BoxBody<Bytes, io::Error>> =
                    endpoint.get_response(req).await.into();
                // The request stays in flight until its response body is done with.
                Ok::<_, Infallible>(resp.map(|body| {
                    body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    })
                    .boxed()
                }))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(32)
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    // Boxed rather than pinned on the stack, so that it can be dropped (closing the socket)
    // before the eviction bookkeeping below.
    let mut connection = Box::pin(builder.serve_connection_with_upgrades(io, service));
    let closed = tokio::select! {
        _ = connection.as_mut() => None,
        _ = conn.kill.cancelled() => *conn.closed_for.lock(),
        reason = phase_expired(&conn, &registry.limits) => Some(reason),
        _ = stopping.cancelled() => {
            // In-flight requests may finish; nothing else is waited for (the server's grace
            // period bounds the whole shutdown).
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = conn.kill.cancelled() => {}
            }
            None
        }
    };
    // Once forgotten it cannot be evicted any more, so `evicted` is final; the socket closes
    // with `connection` (unless a WebSocket took it over).
    registry.forget(&conn);
    drop(connection);
    if conn.evicted.load(Ordering::Acquire) {
        registry.closing.fetch_sub(1, Ordering::AcqRel);
        registry.closed.notify_waiters();
    }
    if let Some(reason) = closed {
        tracing::debug!(%peer, reason = reason.label(), "closing connection");
        registry
            .metrics
            .http_connections_closed
            .get_or_create(&crate::core::metrics::CloseLabels {
                reason: reason.label(),
            })
            .inc();
    }
}
