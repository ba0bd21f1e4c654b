//! The WebSocket at `/v1/ws`: binary MessagePack frames, one connection per client, the
//! protocol in `schema/ws-protocol.md`.
//!
//! The [`Hub`] knows every authenticated connection. One dispatcher task reads committed events
//! from the bus in sequence order and offers each to the bounded queues of the connections in
//! its audience that subscribed to its topic; a connection whose queue is full is closed
//! (`slow_consumer`) rather than slowing anyone else. Resume (`subscribe` with `fromSeq`)
//! replays from the event log and then continues live, with no gap and no duplicate: the
//! connection registers for live events before it reads the head it replays up to, and drops
//! live events at or below what it already sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::RwLock;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig};
use poem::web::{Data, websocket::WebSocketStream};
use poem::{IntoResponse, Request, handler};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, timeout};

use crate::app::Ctx;
use crate::core::auth::{Access, Principal};
use crate::core::error::{AppError, Code};
use crate::core::events::{self, Audience, Event};
use crate::core::ids::UserId;
use crate::domains::chat::events::ChatEvent;
use crate::domains::user::events::UserEvent;
use crate::domains::{self, user};

/// Topics a client may subscribe to, and who may.
pub const TOPICS: &[(&str, Access)] = &[
    ("account", Access::Any),
    ("balance", Access::Any),
    ("chat", Access::Any),
    ("calls", Access::Any),
    ("notifications", Access::Any),
    ("gallery", Access::Any),
    ("settings", Access::Any),
    // Every event of the log, live: the admin panel's feed. It is the event log itself, so it
    // takes its access from the event log's REST route: the two cannot disagree.
    ("admin", domains::event_log::READ_ACCESS),
];

/// Socket read buffer; tungstenite's default (128 KiB, allocated up front) costs 1.3 GB at 10k
/// connections.
const READ_BUFFER_BYTES: usize = 4096;
const WRITE_BUFFER_BYTES: usize = 4096;
/// Frames over `ws.frame_bytes_max` get an `error` frame; frames over this many times it end
/// the connection at the protocol layer before they are buffered whole.
const HARD_FRAME_FACTOR: usize = 4;
/// Live frames written per flush: feeding many and flushing once is ~2× the throughput of a
/// flush per frame.
const FRAMES_PER_FLUSH: usize = 256;
/// Longest a single write (or the close handshake) may take before the peer is taken for gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection checks its heartbeat deadline.
const HEARTBEAT_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
        #[serde(rename = "fromSeq", default)]
        from_seq: Option<u64>,
    },
    Unsubscribe {
        topic: String,
    },
    Ack {
        seq: u64,
    },
    /// The sender is typing in a chat: relayed to the other member, never stored.
    Typing {
        #[serde(rename = "chatId")]
        chat_id: String,
    },
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
}

/// The `type` of a frame, read first: serde would take an integer `type` as the index of a
/// variant (`{type: 5}` = the sixth kind), and MessagePack an array as a struct.
#[derive(Deserialize)]
struct FrameType {
    #[serde(rename = "type")]
    _kind: String,
}

/// A client frame: a MessagePack map whose `type` is a string naming a known kind, with fields
/// of their declared types.
fn decode_client_frame(bytes: &[u8]) -> Result<ClientFrame, String> {
    let is_map = matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf));
    if !is_map {
        return Err("a frame is a MessagePack map".into());
    }
    rmp_serde::from_slice::<FrameType>(bytes).map_err(|e| e.to_string())?;
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Ready {
        #[serde(rename = "userId")]
        user_id: &'a str,
        #[serde(rename = "headSeq")]
        head_seq: u64,
    },
    Subscribed {
        topic: &'a str,
        #[serde(rename = "headSeq")]
        head_seq: u64,
    },
    Unsubscribed {
        topic: &'a str,
    },
    Event {
        seq: u64,
        topic: &'a str,
        #[serde(rename = "eventType")]
        event_type: &'a str,
        at: i64,
        data: &'a serde_json::Value,
    },
    /// The gap since `fromSeq` was larger than the server replays: refetch over REST.
    Reset {
        topic: &'a str,
        #[serde(rename = "headSeq")]
        head_seq: u64,
    },
    Pong {
        nonce: Option<u64>,
    },
    /// The other member of a chat is typing (ephemeral: no `seq`).
    Typing {
        #[serde(rename = "chatId")]
        chat_id: &'a str,
        #[serde(rename = "userId")]
        user_id: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

/// At most one typing signal per chat per connection this often.
const TYPING_EVERY: Duration = Duration::from_secs(1);
/// Chats a connection remembers typing in before forgetting the stale ones.
const TYPING_CHATS_MAX: usize = 64;

/// The seq of ephemeral signals: below every logged event, never stored or replayed.
const EPHEMERAL_SEQ: u64 = 0;

fn encode(frame: &ServerFrame) -> Message {
    // Serialising these plain structs cannot fail.
    Message::Binary(rmp_serde::to_vec_named(frame).unwrap_or_default())
}

/// Why the server closes a connection; the reason text is the stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    AccountBanned,
    SessionRevoked,
    TooManyBadFrames,
    AuthTimeout,
    Unauthorized,
    RoleChanged,
    HeartbeatTimeout,
    ShuttingDown,
    /// The user opened more than `ws.connections_per_user_max`; the oldest gives way.
    TooManyConnections,
}

impl CloseReason {
    fn frame(self) -> (CloseCode, &'static str) {
        match self {
            CloseReason::SlowConsumer => (CloseCode::Policy, "slow_consumer"),
            CloseReason::AccountBanned => (CloseCode::Policy, "account_banned"),
            CloseReason::SessionRevoked => (CloseCode::Policy, "session_revoked"),
            CloseReason::TooManyBadFrames => (CloseCode::Policy, "too_many_bad_frames"),
            CloseReason::AuthTimeout => (CloseCode::Policy, "auth_timeout"),
            CloseReason::Unauthorized => (CloseCode::Policy, "unauthorized"),
            CloseReason::RoleChanged => (CloseCode::Again, "role_changed"),
            CloseReason::HeartbeatTimeout => (CloseCode::Away, "heartbeat_timeout"),
            CloseReason::ShuttingDown => (CloseCode::Away, "going_away"),
            CloseReason::TooManyConnections => (CloseCode::Policy, "too_many_connections"),
        }
    }
}

struct Conn {
    id: u64,
    user_id: UserId,
    session_id: String,
    topics: RwLock<HashSet<&'static str>>,
    queue: mpsc::Sender<Arc<Event>>,
    close: watch::Sender<Option<CloseReason>>,
}

impl Conn {
    /// Queues the event, or marks the connection for closing when its queue is full.
    fn offer(&self, event: &Arc<Event>) {
        if self.queue.try_send(event.clone()).is_err() {
            self.close.send_replace(Some(CloseReason::SlowConsumer));
        }
    }

    /// Queues an ephemeral signal if there is room; a full queue drops it (a typing
    /// indicator is not worth a connection, and a flood of them must not close one).
    fn offer_signal(&self, signal: &Arc<Event>) {
        let _ = self.queue.try_send(signal.clone());
    }

    fn wants(&self, topic: &str) -> bool {
        self.topics.read().contains(topic)
    }
}

/// Every live, authenticated connection.
#[derive(Default)]
pub struct Hub {
    by_user: RwLock<HashMap<UserId, Vec<Arc<Conn>>>>,
    /// Connections subscribed to `admin`, which see every event.
    admins: RwLock<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl crate::core::live::LiveConnections for Hub {
    fn is_connected(&self, user_id: &str) -> bool {
        self.by_user.read().contains_key(user_id)
    }

    fn relay(&self, signal: Event) {
        Hub::relay(self, signal);
    }
}

impl Hub {
    /// Lists a new connection. A user holds at most `max` at once: past it the oldest is
    /// closed (`too_many_connections`), so stale sockets never lock the user out, and one
    /// account cannot hold the server's connections.
    fn register(&self, conn: Arc<Conn>, max: usize) {
        let mut map = self.by_user.write();
        let list = map.entry(conn.user_id.clone()).or_default();
        list.push(conn);
        let excess = list.len().saturating_sub(max.max(1));
        for old in &list[..excess] {
            old.close
                .send_replace(Some(CloseReason::TooManyConnections));
        }
    }

    fn unregister(&self, conn: &Conn) {
        self.admins.write().remove(&conn.id);
        let mut map = self.by_user.write();
        if let Some(list) = map.get_mut(&conn.user_id) {
            list.retain(|c| c.id != conn.id);
            if list.is_empty() {
                map.remove(&conn.user_id);
            }
        }
    }

    /// Closes every connection of a user, or of one of their sessions.
    pub fn close_user(&self, user_id: &str, session_id: Option<&str>, reason: CloseReason) {
        if let Some(list) = self.by_user.read().get(user_id) {
            for c in list
                .iter()
                .filter(|c| session_id.is_none_or(|s| s == c.session_id))
            {
                c.close.send_replace(Some(reason));
            }
        }
    }

    pub fn close_all(&self, reason: CloseReason) {
        for list in self.by_user.read().values() {
            for c in list {
                c.close.send_replace(Some(reason));
            }
        }
    }

    pub fn connection_count(&self) -> usize {
        self.by_user.read().values().map(Vec::len).sum()
    }

    /// Offers an ephemeral signal (seq 0, not in the log: typing indicators) to the
    /// connections of its audience that read its topic.
    pub fn relay(&self, signal: Event) {
        let signal = Arc::new(Event {
            seq: EPHEMERAL_SEQ,
            ..signal
        });
        let Some(topic) = signal.topic.as_deref() else {
            return;
        };
        let map = self.by_user.read();
        let offer = |c: &Arc<Conn>| {
            if c.wants(topic) {
                c.offer_signal(&signal);
            }
        };
        match &signal.audience {
            Audience::Users(ids) => ids
                .iter()
                .filter_map(|id| map.get(id.as_str()))
                .flatten()
                .for_each(offer),
            Audience::Everyone => map.values().flatten().for_each(offer),
            Audience::Nobody => {}
        }
    }

    fn dispatch(&self, event: &Arc<Event>) {
        if let (Some(u), Ok(Some(account))) = (&event.subject, event.decode::<UserEvent>()) {
            match account {
                UserEvent::Banned { .. } => self.close_user(u, None, CloseReason::AccountBanned),
                // What a connection may read was decided with the old role: make it reconnect.
                UserEvent::RoleChanged { .. } => self.close_user(u, None, CloseReason::RoleChanged),
                UserEvent::SessionRevoked { session_id, .. } => {
                    self.close_user(u, Some(&session_id), CloseReason::SessionRevoked)
                }
                _ => {}
            }
        }
        let admins = self.admins.read();
        for c in admins.values() {
            c.offer(event);
        }
        let Some(topic) = event.topic.as_deref() else {
            return;
        };
        // A connection on `admin` already has the event; it must not be queued twice.
        let fresh = |c: &&Arc<Conn>| c.wants(topic) && !admins.contains_key(&c.id);
        let map = self.by_user.read();
        match &event.audience {
            Audience::Nobody => {}
            Audience::Everyone => {
                for c in map.values().flatten().filter(fresh) {
                    c.offer(event);
                }
            }
            Audience::Users(ids) => {
                for c in ids
                    .iter()
                    .filter_map(|id| map.get(id.as_str()))
                    .flatten()
                    .filter(fresh)
                {
                    c.offer(event);
                }
            }
        }
    }
}

/// Feeds committed events to the hub, in order, reading the log to fill any gap the broadcast
/// dropped while this task was behind.
pub async fn run_dispatcher(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut live = ctx.store.bus().subscribe();
    let mut last = ctx.store.head_seq();
    loop {
        let next = tokio::select! {
            r = live.recv() => r,
            _ = stop.changed() => return,
        };
        match next {
            Ok(event) => {
                if event.seq <= last {
                    continue;
                }
                if event.seq > last + 1 {
                    catch_up(&ctx, last, event.seq - 1).await;
                }
                ctx.hub.dispatch(&event);
                last = event.seq;
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let head = ctx.store.head_seq();
                last = catch_up(&ctx, last, head).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn catch_up(ctx: &Arc<Ctx>, mut last: u64, upto: u64) -> u64 {
    while last < upto {
        let after = last;
        let batch = match ctx
            .store
            .read(move |rtx| events::read_after(rtx, after, 1024))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading the event log for the hub failed");
                return last;
            }
        };
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if e.seq > upto {
                return last;
            }
            last = e.seq;
            ctx.hub.dispatch(&Arc::new(e));
        }
    }
    last
}

#[handler]
pub async fn upgrade(ws: WebSocket, req: &Request, ctx: Data<&Arc<Ctx>>) -> impl IntoResponse {
    let ctx = ctx.0.clone();
    let bearer = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let max = ctx.config.ws.frame_bytes_max;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(max * HARD_FRAME_FACTOR))
        .max_frame_size(Some(max * HARD_FRAME_FACTOR));
    ws.config(config).on_upgrade(move |socket| async move {
        ctx.metrics.ws_connections.inc();
        run_session(ctx.clone(), socket, bearer).await;
        ctx.metrics.ws_connections.dec();
    })
}

struct Session {
    ctx: Arc<Ctx>,
    conn: Option<Arc<Conn>>,
    principal: Option<Principal>,
    /// Per topic, the highest seq sent; live events at or below it are duplicates.
    sent_upto: HashMap<&'static str, u64>,
    bad_frames: u32,
    /// `subscribe` frames this connection sent (bounded by `ws.subscribes_max`).
    subscribes: u32,
    last_heard: Instant,
    /// When this connection last relayed a typing signal, per chat (at most one a second).
    typing_sent: HashMap<String, Instant>,
}

type Sink = futures_util::stream::SplitSink<WebSocketStream, Message>;
/// The queue and close signal of a connection, handed to the hub once it authenticates.
type ConnChannels = (mpsc::Sender<Arc<Event>>, watch::Sender<Option<CloseReason>>);

async fn run_session(ctx: Arc<Ctx>, socket: WebSocketStream, bearer: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let (queue_tx, mut queue) = mpsc::channel(ctx.config.ws.outbound_queue_max);
    let (close_tx, mut close_rx) = watch::channel(None);
    let mut shutdown = ctx.shutdown_signal();
    let mut s = Session {
        ctx: ctx.clone(),
        conn: None,
        principal: None,
        sent_upto: HashMap::new(),
        bad_frames: 0,
        subscribes: 0,
        last_heard: Instant::now(),
        typing_sent: HashMap::new(),
    };
    let mut pending = Some((queue_tx, close_tx));
    let auth_deadline = Instant::now() + Duration::from_secs(ctx.config.ws.auth_deadline_secs);
    let heartbeat = Duration::from_secs(ctx.config.ws.heartbeat_timeout_secs);
    let mut tick = tokio::time::interval(HEARTBEAT_CHECK);

    let first = if *shutdown.borrow() {
        Err(CloseReason::ShuttingDown)
    } else if let Some(token) = bearer {
        match timeout(
            WRITE_TIMEOUT,
            s.authenticate(&mut sink, &token, &mut pending),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(CloseReason::SlowConsumer),
        }
    } else {
        Ok(())
    };

    let reason: Option<CloseReason> = if let Err(reason) = first {
        Some(reason)
    } else {
        loop {
            tokio::select! {
                incoming = stream.next() => {
                    let Some(Ok(msg)) = incoming else { break None };
                    s.last_heard = Instant::now();
                    // Every write is bounded: a peer that stops reading cannot park this task.
                    match timeout(WRITE_TIMEOUT, s.on_message(&mut sink, msg, &mut pending)).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => break None,
                        Ok(Err(reason)) => break Some(reason),
                        Err(_) => break Some(CloseReason::SlowConsumer),
                    }
                }
                Some(event) = queue.recv() => {
                    let written = timeout(WRITE_TIMEOUT, async {
                        let mut sent = s.send_live(&mut sink, &event).await;
                        // Drain what is already queued and flush once.
                        let mut n = 1;
                        while sent && n < FRAMES_PER_FLUSH {
                            match queue.try_recv() {
                                Ok(e) => { sent = s.send_live(&mut sink, &e).await; n += 1; }
                                Err(_) => break,
                            }
                        }
                        sent && sink.flush().await.is_ok()
                    })
                    .await;
                    match written {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(_) => break Some(CloseReason::SlowConsumer),
                    }
                }
                _ = close_rx.changed() => {
                    let r = *close_rx.borrow();
                    if let Some(r) = r { break Some(r); }
                }
                _ = shutdown.changed() => break Some(CloseReason::ShuttingDown),
                _ = tick.tick() => {
                    let now = Instant::now();
                    if s.principal.is_none() && now >= auth_deadline {
                        break Some(CloseReason::AuthTimeout);
                    }
                    if now.duration_since(s.last_heard) > heartbeat {
                        break Some(CloseReason::HeartbeatTimeout);
                    }
                }
            }
        }
    };
    // Leave the hub and presence before the close handshake, which a dead peer may not answer.
    // Presence first: once the hub no longer lists the connection, presence knows it left.
    if let Some(conn) = &s.conn {
        ctx.presence.disconnected(&conn.user_id).await;
        ctx.hub.unregister(conn);
    }
    if let Some(reason) = reason {
        let message = match reason {
            CloseReason::AccountBanned => Some((Code::AccountBanned, "the account was banned")),
            _ => None,
        };
        let _ = timeout(WRITE_TIMEOUT, close(&mut sink, reason, message)).await;
    }
}

async fn close(sink: &mut Sink, reason: CloseReason, error: Option<(Code, &str)>) {
    if let Some((code, message)) = error {
        let _ = sink
            .feed(encode(&ServerFrame::Error {
                code: code.as_str(),
                message,
            }))
            .await;
    }
    let (code, text) = reason.frame();
    let _ = sink
        .send(Message::Close(Some((code, text.to_owned()))))
        .await;
    let _ = sink.close().await;
}

impl Session {
    async fn send(&self, sink: &mut Sink, frame: &ServerFrame<'_>) -> bool {
        self.ctx.metrics.ws_frames_out.inc();
        sink.send(encode(frame)).await.is_ok()
    }

    async fn send_error(&mut self, sink: &mut Sink, e: &AppError) -> Result<bool, CloseReason> {
        self.bad_frames += 1;
        let ok = self
            .send(
                sink,
                &ServerFrame::Error {
                    code: e.code.as_str(),
                    message: &e.detail,
                },
            )
            .await;
        if self.bad_frames > self.ctx.config.ws.bad_frames_max {
            return Err(CloseReason::TooManyBadFrames);
        }
        Ok(ok)
    }

    /// Writes a live event on each subscribed topic it belongs to, skipping what the replay
    /// already sent. Returns false when the socket is gone.
    async fn send_live(&mut self, sink: &mut Sink, event: &Event) -> bool {
        let Some(conn) = self.conn.clone() else {
            return true;
        };
        if event.seq == EPHEMERAL_SEQ {
            self.ctx.metrics.ws_frames_out.inc();
            if let Ok(Some(ChatEvent::Typing { chat_id, user_id })) = event.decode() {
                let frame = ServerFrame::Typing {
                    chat_id: &chat_id,
                    user_id: &user_id,
                };
                return sink.feed(encode(&frame)).await.is_ok();
            }
            // Any other signal (`gallery_changed`) is an event frame with seq 0: live only,
            // never replayed, and it moves no resume position.
            let Some(topic) = event.topic.as_deref().and_then(topic_name) else {
                return true;
            };
            let frame = ServerFrame::Event {
                seq: EPHEMERAL_SEQ,
                topic,
                event_type: &event.kind,
                at: event.at_ms,
                data: &event.data,
            };
            return sink.feed(encode(&frame)).await.is_ok();
        }
        let own = event
            .topic
            .as_deref()
            .and_then(topic_name)
            .filter(|t| conn.wants(t) && event.is_for(&conn.user_id));
        let admin = conn.wants("admin").then_some("admin");
        for topic in [own, admin].into_iter().flatten() {
            let upto = self.sent_upto.get(topic).copied().unwrap_or(u64::MAX);
            if event.seq <= upto {
                continue;
            }
            self.sent_upto.insert(topic, event.seq);
            self.ctx.metrics.ws_frames_out.inc();
            let frame = ServerFrame::Event {
                seq: event.seq,
                topic,
                event_type: &event.kind,
                at: event.at_ms,
                data: &event.data,
            };
            if sink.feed(encode(&frame)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Handles one incoming message; `Ok(false)` ends the connection quietly.
    async fn on_message(
        &mut self,
        sink: &mut Sink,
        msg: Message,
        pending: &mut Option<ConnChannels>,
    ) -> Result<bool, CloseReason> {
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return Ok(false),
            Message::Ping(_) | Message::Pong(_) => return Ok(true),
            Message::Text(_) => {
                let e = AppError::validation("frames are binary MessagePack, not text");
                return self.send_error(sink, &e).await;
            }
        };
        if bytes.len() > self.ctx.config.ws.frame_bytes_max {
            let e = AppError::new(
                Code::PayloadTooLarge,
                format!(
                    "frames are at most {} bytes",
                    self.ctx.config.ws.frame_bytes_max
                ),
            );
            return self.send_error(sink, &e).await;
        }
        let frame = match decode_client_frame(&bytes) {
            Ok(f) => f,
            Err(reason) => {
                let e = AppError::new(Code::MalformedJson, format!("not a valid frame: {reason}"));
                return self.send_error(sink, &e).await;
            }
        };
        match frame {
            ClientFrame::Auth { token } => {
                if self.principal.is_some() {
                    let e = AppError::conflict("already authenticated");
                    return self.send_error(sink, &e).await;
                }
                self.authenticate(sink, &token, pending).await?;
                Ok(true)
            }
            _ if self.principal.is_none() => {
                let e = AppError::unauthorized("send an `auth` frame first");
                self.send_error(sink, &e).await
            }
            ClientFrame::Subscribe { topic, from_seq } => {
                self.subscribe(sink, &topic, from_seq).await
            }
            ClientFrame::Unsubscribe { topic } => {
                let Some(name) = topic_name(&topic) else {
                    let e = AppError::validation(format!("unknown topic `{topic}`"));
                    return self.send_error(sink, &e).await;
                };
                if let Some(c) = &self.conn {
                    c.topics.write().remove(name);
                    if name == "admin" {
                        self.ctx.hub.admins.write().remove(&c.id);
                    }
                }
                self.sent_upto.remove(name);
                Ok(self
                    .send(sink, &ServerFrame::Unsubscribed { topic: name })
                    .await)
            }
            // Acks confirm in-app delivery of a notification: its push fallback is cancelled.
            // Nothing is owed back to the client; an ack of anything else changes nothing.
            ClientFrame::Ack { seq } => {
                let me = self
                    .principal
                    .as_ref()
                    .map(|p| p.user_id.clone())
                    .unwrap_or_default();
                // An ack writes: it counts toward the user's write limit like a REST write.
                if let Err(e) = super::count_user_write(&self.ctx, &me) {
                    return self.send_error(sink, &e).await;
                }
                match domains::notification::ack(&self.ctx, &me, seq).await {
                    Ok(_) => Ok(true),
                    Err(e) => self.send_error(sink, &e).await,
                }
            }
            ClientFrame::Typing { chat_id } => {
                // Apps send typing every few seconds while the user types; more than one a
                // second per chat is dropped, so a flood costs the other side nothing.
                if self
                    .typing_sent
                    .get(&chat_id)
                    .is_some_and(|at| at.elapsed() < TYPING_EVERY)
                {
                    return Ok(true);
                }
                if self.typing_sent.len() >= TYPING_CHATS_MAX {
                    self.typing_sent.retain(|_, at| at.elapsed() < TYPING_EVERY);
                    // Typing in this many chats within a second is no person: ignore it.
                    if self.typing_sent.len() >= TYPING_CHATS_MAX {
                        return Ok(true);
                    }
                }
                self.typing_sent.insert(chat_id.clone(), Instant::now());
                let me = self.principal.as_ref().map(|p| p.user_id.clone());
                let me = me.unwrap_or_default();
                match domains::chat::typing_signal(&self.ctx, &me, &chat_id).await {
                    Ok(signal) => {
                        self.ctx.hub.relay(signal);
                        Ok(true)
                    }
                    Err(e) => self.send_error(sink, &e).await,
                }
            }
            ClientFrame::Ping { nonce } => Ok(self.send(sink, &ServerFrame::Pong { nonce }).await),
        }
    }

    async fn authenticate(
        &mut self,
        sink: &mut Sink,
        token: &str,
        pending: &mut Option<ConnChannels>,
    ) -> Result<(), CloseReason> {
        let principal = match user::authenticate(&self.ctx, token, Access::Any).await {
            Ok(p) => p,
            Err(e) => {
                let _ = self
                    .send(
                        sink,
                        &ServerFrame::Error {
                            code: e.code.as_str(),
                            message: &e.detail,
                        },
                    )
                    .await;
                return Err(if e.code == Code::AccountBanned {
                    CloseReason::AccountBanned
                } else {
                    CloseReason::Unauthorized
                });
            }
        };
        let Some((queue, close)) = pending.take() else {
            return Ok(());
        };
        let conn = Arc::new(Conn {
            id: self.ctx.hub.next_id.fetch_add(1, Ordering::Relaxed),
            user_id: principal.user_id.clone(),
            session_id: principal.session_id.clone(),
            topics: RwLock::new(HashSet::new()),
            queue,
            close,
        });
        self.ctx
            .hub
            .register(conn.clone(), self.ctx.config.ws.connections_per_user_max);
        self.conn = Some(conn);
        // A ban or revocation committed between the check above and the registration would
        // have found no connection to close: check once more now that it is registered.
        if let Err(e) = user::authenticate(&self.ctx, token, Access::Any).await {
            let _ = self
                .send(
                    sink,
                    &ServerFrame::Error {
                        code: e.code.as_str(),
                        message: &e.detail,
                    },
                )
                .await;
            return Err(if e.code == Code::AccountBanned {
                CloseReason::AccountBanned
            } else {
                CloseReason::Unauthorized
            });
        }
        self.ctx.presence.connected(&principal.user_id).await;
        let head = self.ctx.store.head_seq();
        self.send(
            sink,
            &ServerFrame::Ready {
                user_id: &principal.user_id,
                head_seq: head,
            },
        )
        .await;
        self.principal = Some(principal);
        Ok(())
    }

    async fn subscribe(
        &mut self,
        sink: &mut Sink,
        topic: &str,
        from_seq: Option<u64>,
    ) -> Result<bool, CloseReason> {
        self.subscribes += 1;
        if self.subscribes > self.ctx.config.ws.subscribes_max {
            let e = AppError::new(
                Code::RateLimited,
                "this connection has subscribed too often; reconnect",
            );
            return self.send_error(sink, &e).await;
        }
        let Some((name, access)) = TOPICS.iter().find(|(t, _)| *t == topic).copied() else {
            let e = AppError::validation(format!("unknown topic `{topic}`"));
            return self.send_error(sink, &e).await;
        };
        let (Some(p), Some(conn)) = (self.principal.clone(), self.conn.clone()) else {
            return Ok(true);
        };
        if !access.allows(p.role) {
            let e = AppError::forbidden(format!(
                "the topic `{name}` is not readable by a {}",
                p.role.as_str()
            ));
            return self.send_error(sink, &e).await;
        }
        // Register first, then read the head: every later event reaches the queue, and every
        // earlier one is in the replay.
        conn.topics.write().insert(name);
        if name == "admin" {
            self.ctx.hub.admins.write().insert(conn.id, conn.clone());
        }
        let head = self.ctx.store.head_seq();
        self.sent_upto.insert(name, head);
        if !self
            .send(
                sink,
                &ServerFrame::Subscribed {
                    topic: name,
                    head_seq: head,
                },
            )
            .await
        {
            return Ok(false);
        }
        let Some(from) = from_seq else {
            return Ok(true);
        };
        let max = self.ctx.config.ws.replay_events_max;
        let skip_max = self.ctx.config.ws.replay_skip_max;
        let user_id = p.user_id.clone();
        let from = from.min(head);
        let replay = self
            .ctx
            .store
            .read(move |rtx| {
                if name == "admin" {
                    events::read_after(rtx, from, max + 1)
                        .map(|v| Some(v.into_iter().filter(|e| e.seq <= head).collect()))
                } else {
                    events::read_for_user(rtx, &user_id, name, from, head, max + 1, skip_max)
                }
            })
            .await;
        let events = match replay {
            Ok(e) => e,
            Err(e) => return self.send_error(sink, &e).await,
        };
        // Too much to replay, or too much to look through to find it: refetch over REST.
        let Some(events) = events.filter(|e| e.len() <= max) else {
            return Ok(self
                .send(
                    sink,
                    &ServerFrame::Reset {
                        topic: name,
                        head_seq: head,
                    },
                )
                .await);
        };
        for e in &events {
            let frame = ServerFrame::Event {
                seq: e.seq,
                topic: name,
                event_type: &e.kind,
                at: e.at_ms,
                data: &e.data,
            };
            if sink.feed(encode(&frame)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(sink.flush().await.is_ok())
    }
}

fn topic_name(t: &str) -> Option<&'static str> {
    TOPICS.iter().map(|(n, _)| *n).find(|n| *n == t)
}
