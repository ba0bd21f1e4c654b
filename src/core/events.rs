//! The event log (the seed's `event_log`, the platform's ESB) and the bus that wakes its readers.
//!
//! Every domain event is appended by [`super::store::Tx::emit`] in the same write transaction as
//! the change that caused it, under a gap-free increasing sequence number (the writer is single,
//! so numbers are handed out in commit order). After the commit the bus broadcasts the events in
//! order; durable consumers ([`run_consumer`]) read the log itself from their stored cursor, so
//! they get every event at least once across restarts.

use std::sync::Arc;
use std::time::Duration;

use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::error::AppResult;
use super::store::{Store, Tx, dec, get, put};

crate::tables! {
    /// seq → Event.
    EVENT_LOG: u64 => &[u8] = "event_log";
    /// (user id, seq): events about a user (subject) or for them (audience); `*` is the
    /// audience everyone. One index serves the admin query and WebSocket replay, which filter
    /// the events they read; most events are about the user they are for, so one row is
    /// written where two indexes would write two.
    EVENT_BY_USER: (&str, u64) => () = "event_by_user";
    /// consumer name → last handled seq.
    CONSUMER_CURSOR: &str => u64 = "consumer_cursor";
}

/// The audience key of events every connected client may read.
pub const EVERYONE: &str = "*";

/// Who may receive an event over the WebSocket. Events with no audience are still in the log
/// (for consumers and admins) but are pushed to no client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "users")]
pub enum Audience {
    #[default]
    Nobody,
    Users(Vec<super::ids::UserId>),
    Everyone,
}

/// What the catalogue says of one event kind. Written once, next to the kind, by
/// [`domain_events!`](crate::domain_events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// snake_case, e.g. `user_signed_up`: the `type` of the stored event and of its frame.
    pub kind: &'static str,
    /// The WebSocket topic it is delivered on; `None`: on the log only (consumers, admins).
    pub topic: Option<&'static str>,
    /// Who receives it on that topic, in words, for the catalogue.
    pub audience: &'static str,
    /// Relayed live and never stored (typing indicators): seq 0, no replay.
    pub ephemeral: bool,
}

/// The first version of every payload; events stored before versions existed are this one.
pub const FIRST_VERSION: u16 = 1;

/// A domain's events: one enum per emitting domain, a variant per kind with named fields.
/// Declared with [`domain_events!`](crate::domain_events), which keeps the kind's name, topic
/// and audience beside its fields.
///
/// Versioning: a field added later is `#[serde(default)]` (or an `Option`) and needs nothing
/// else; a change an old payload cannot absorb bumps [`DomainEvent::version`] for that kind and
/// teaches [`DomainEvent::upgrade`] to rewrite the older payloads, so every stored event still
/// decodes.
pub trait DomainEvent:
    Serialize + serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static
{
    /// The domain that owns (and alone emits) these kinds.
    const DOMAIN: &'static str;
    /// Every kind of this type.
    const KINDS: &'static [KindSpec];
    /// This event's kind.
    fn kind(&self) -> &'static str;
    /// The version this build writes for `kind`.
    fn version(_kind: &str) -> u16 {
        FIRST_VERSION
    }
    /// Rewrites a payload stored under an older `version` of `kind` into the current shape.
    fn upgrade(_kind: &str, _version: u16, data: serde_json::Value) -> serde_json::Value {
        data
    }
    /// The spec of this event's kind.
    fn spec(&self) -> &'static KindSpec {
        let kind = self.kind();
        Self::KINDS
            .iter()
            .find(|k| k.kind == kind)
            .expect("domain_events! lists every variant")
    }
}

/// Declares a domain's event enum: each variant is a kind with its name, the topic it is
/// delivered on and to whom (`on "topic" to "who"`; left out: the log only), and its payload
/// fields (camelCase on the wire). Implements [`DomainEvent`] and the JSON Schema the
/// catalogue is generated from.
#[macro_export]
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $domain:literal {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $kind:literal $(on $topic:literal to $aud:literal)? $(, $ephemeral:ident)? {
                    $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
                }
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(tag = "type", content = "data")]
        // An event is built once and encoded at once: boxing its larger variants saves nothing.
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $kind, rename_all = "camelCase")]
                $variant { $( $(#[$fmeta])* $field: $fty ),* },
            )*
        }

        impl $crate::core::events::DomainEvent for $name {
            const DOMAIN: &'static str = $domain;
            const KINDS: &'static [$crate::core::events::KindSpec] = &[
                $( $crate::core::events::KindSpec {
                    kind: $kind,
                    topic: $crate::domain_events!(@topic $($topic)?),
                    audience: $crate::domain_events!(@audience $($aud)?),
                    ephemeral: $crate::domain_events!(@ephemeral $($ephemeral)?),
                }, )*
            ];
            fn kind(&self) -> &'static str {
                match self {
                    $( Self::$variant { .. } => $kind, )*
                }
            }
        }
    };
    (@topic) => { None };
    (@topic $t:literal) => { Some($t) };
    (@audience) => { "nobody: the log only" };
    (@audience $a:literal) => { $a };
    (@ephemeral) => { false };
    (@ephemeral ephemeral) => { true };
}

/// An event as a domain emits it: a typed payload, the user it is about, and who receives it.
/// The kind and topic come from the payload's type, never from a string at the call site.
#[derive(Debug)]
pub struct NewEvent {
    kind: &'static str,
    version: u16,
    subject: Option<String>,
    topic: Option<&'static str>,
    audience: Audience,
    /// The encoded payload (encoding fails only on a type bug; [`append`] reports it).
    data: Result<serde_json::Value, String>,
}

impl NewEvent {
    /// An event about `subject`. It goes to nobody until [`NewEvent::to`] names an audience.
    pub fn about<E: DomainEvent>(subject: &str, event: E) -> Self {
        let mut new = Self::new(event);
        new.subject = Some(subject.to_owned());
        new
    }

    /// An event about no one in particular (settings for everyone).
    pub fn new<E: DomainEvent>(event: E) -> Self {
        let spec = event.spec();
        let data = match serde_json::to_value(&event) {
            Ok(serde_json::Value::Object(mut tagged)) => Ok(tagged
                .remove("data")
                .unwrap_or_else(|| serde_json::json!({}))),
            Ok(other) => Err(format!("event {} encoded as {other}", spec.kind)),
            Err(e) => Err(format!("event {} does not encode: {e}", spec.kind)),
        };
        NewEvent {
            kind: spec.kind,
            version: E::version(spec.kind),
            subject: None,
            topic: spec.topic,
            audience: Audience::Nobody,
            data,
        }
    }

    /// Deliver it on its kind's topic to `audience`.
    pub fn to(mut self, audience: Audience) -> Self {
        debug_assert!(
            self.topic.is_some() || audience == Audience::Nobody,
            "event {} has no topic to deliver it on",
            self.kind
        );
        self.audience = audience;
        self
    }

    /// The stored shape of an ephemeral signal (never appended: relayed by the WebSocket hub).
    pub fn into_signal(self, at_ms: i64) -> AppResult<Event> {
        Ok(Event {
            seq: 0,
            kind: self.kind.to_owned(),
            version: self.version,
            at_ms,
            subject: self.subject,
            topic: self.topic.map(str::to_owned),
            audience: self.audience,
            data: self.data.map_err(super::error::AppError::internal)?,
        })
    }
}

fn is_first_version(v: &u16) -> bool {
    *v == FIRST_VERSION
}

fn first_version() -> u16 {
    FIRST_VERSION
}

/// An event as stored. The payload stays JSON inside the MessagePack record, so the envelope
/// reads the same whatever the kind; [`Event::decode`] gives the typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload's version (absent, so 1, on events stored before versions existed).
    #[serde(
        rename = "v",
        default = "first_version",
        skip_serializing_if = "is_first_version"
    )]
    pub version: u16,
    pub at_ms: i64,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub audience: Audience,
    pub data: serde_json::Value,
}

impl Event {
    /// Whether `user_id`'s connection may see this event.
    pub fn is_for(&self, user_id: &str) -> bool {
        match &self.audience {
            Audience::Nobody => false,
            Audience::Everyone => true,
            Audience::Users(ids) => ids.iter().any(|u| u == user_id),
        }
    }

    /// Whether this is one of `E`'s kinds.
    pub fn is<E: DomainEvent>(&self) -> bool {
        E::KINDS.iter().any(|k| k.kind == self.kind)
    }

    /// [`Event::decode`] for consumers: a payload of `E`'s kind that does not decode is logged
    /// as an error and passed over, so one bad event cannot stop a consumer (and every event
    /// after it) for good.
    pub fn decoded<E: DomainEvent>(&self) -> Option<E> {
        match self.decode::<E>() {
            Ok(typed) => typed,
            Err(e) => {
                tracing::error!(seq = self.seq, kind = %self.kind, error = ?e, "an event that does not decode was passed over");
                None
            }
        }
    }

    /// The typed payload when this event is one of `E`'s kinds; `None` for other kinds. A
    /// payload of `E`'s kind that does not decode is an error, never a default.
    pub fn decode<E: DomainEvent>(&self) -> AppResult<Option<E>> {
        if !self.is::<E>() {
            return Ok(None);
        }
        let data = E::upgrade(&self.kind, self.version, self.data.clone());
        let tagged = serde_json::json!({"type": self.kind, "data": data});
        serde_json::from_value(tagged).map(Some).map_err(|e| {
            super::error::AppError::internal(format!(
                "event {} ({}) does not decode: {e}",
                self.seq, self.kind
            ))
        })
    }
}

/// [`catalogue_of`] of one type: its entries, and the types they refer to added to the defs.
pub type CatalogueOf = fn(&mut Defs) -> Vec<(String, serde_json::Value)>;
/// The `$defs` of the catalogue: shared type schemas by name.
pub type Defs = serde_json::Map<String, serde_json::Value>;

/// One domain's event type, as the registry of every event type (`domains::EVENT_TYPES`)
/// lists it: what the catalogue and decoding checks need, without naming the type.
pub struct EventType {
    pub domain: &'static str,
    pub kinds: &'static [KindSpec],
    /// [`catalogue_of`] for this type.
    pub catalogue: CatalogueOf,
    /// Decodes an event of this type's kinds and encodes its payload again (`Ok(None)`: not
    /// one of them); a payload that reads back the same has lost nothing.
    pub roundtrip: fn(&Event) -> AppResult<Option<serde_json::Value>>,
}

impl EventType {
    pub const fn of<E: DomainEvent>() -> EventType {
        EventType {
            domain: E::DOMAIN,
            kinds: E::KINDS,
            catalogue: catalogue_of::<E>,
            roundtrip: roundtrip::<E>,
        }
    }
}

fn roundtrip<E: DomainEvent>(e: &Event) -> AppResult<Option<serde_json::Value>> {
    let Some(typed) = e.decode::<E>()? else {
        return Ok(None);
    };
    NewEvent::new(typed)
        .data
        .map(Some)
        .map_err(super::error::AppError::internal)
}

/// The catalogue entries of one domain's kinds: JSON Schema of each payload with its topic,
/// audience and version, keyed by kind; the types they refer to go into `defs` (the
/// document's `$defs`). `schema/events.json` is built from these.
pub fn catalogue_of<E: DomainEvent>(defs: &mut Defs) -> Vec<(String, serde_json::Value)> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<E>();
    let root = schema.as_value();
    if let Some(more) = root.get("$defs").and_then(|d| d.as_object()) {
        defs.extend(more.clone());
    }
    let variants = root
        .get("oneOf")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in variants {
        let kind = v["properties"]["type"]["const"]
            .as_str()
            .or_else(|| v["properties"]["type"]["enum"][0].as_str())
            .unwrap_or_default()
            .to_owned();
        let Some(spec) = E::KINDS.iter().find(|k| k.kind == kind) else {
            continue;
        };
        let payload = v["properties"]["data"].clone();
        let mut entry = serde_json::json!({
            "domain": E::DOMAIN,
            "topic": spec.topic,
            "audience": spec.audience,
            "version": E::version(spec.kind),
            "data": payload,
        });
        if let Some(d) = v.get("description") {
            entry["description"] = d.clone();
        }
        if spec.ephemeral {
            entry["ephemeral"] = true.into();
        }
        out.push((kind, entry));
    }
    out
}

/// The event log's tables, opened once per group commit and kept open for all its operations
/// (opening a redb table costs a lookup and several allocations, and every write emits events).
pub(crate) struct EventTables<'t> {
    log: Table<'t, u64, &'static [u8]>,
    by_user: Table<'t, (&'static str, u64), ()>,
}

impl<'t> EventTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> AppResult<EventTables<'t>> {
        Ok(EventTables {
            log: txn.open_table(EVENT_LOG)?,
            by_user: txn.open_table(EVENT_BY_USER)?,
        })
    }
}

/// Appends one event under `seq`, which the single writer hands out gap-free.
pub(crate) fn append(
    t: &mut EventTables<'_>,
    seq: u64,
    at_ms: i64,
    new: NewEvent,
) -> AppResult<Event> {
    let event = Event {
        seq,
        kind: new.kind.to_owned(),
        version: new.version,
        at_ms,
        subject: new.subject,
        topic: new.topic.map(str::to_owned),
        audience: new.audience,
        data: new.data.map_err(super::error::AppError::internal)?,
    };
    put(&mut t.log, seq, &event)?;
    let subject = event.subject.as_deref();
    if let Some(s) = subject {
        t.by_user.insert((s, seq), ())?;
    }
    match &event.audience {
        Audience::Nobody => {}
        Audience::Everyone => {
            t.by_user.insert((EVERYONE, seq), ())?;
        }
        Audience::Users(ids) => {
            for id in ids.iter().filter(|id| Some(id.as_str()) != subject) {
                t.by_user.insert((id.as_str(), seq), ())?;
            }
        }
    }
    Ok(event)
}

pub fn head_seq(rtx: &ReadTransaction) -> AppResult<u64> {
    let log = rtx.open_table(EVENT_LOG)?;
    Ok(log.last()?.map(|(k, _)| k.value()).unwrap_or(0))
}

/// Events with `seq > after`, in order, at most `limit`.
pub fn read_after(rtx: &ReadTransaction, after: u64, limit: usize) -> AppResult<Vec<Event>> {
    let log = rtx.open_table(EVENT_LOG)?;
    let mut out = Vec::new();
    for row in log.range(after.saturating_add(1)..)?.take(limit) {
        let (_, v) = row?;
        out.push(dec(v.value())?);
    }
    Ok(out)
}

/// Events a user's connection may see on `topic` with `after < seq <= upto`, in order, at most
/// `limit`: the WebSocket's replay on resume. Merges the user's and everyone's index ranges
/// lazily, so it stops as soon as it has `limit` events. The work is bounded by what it
/// returns: past `skip_max` index rows that are not for this topic it gives up (`None`; the
/// client refetches over REST), so a tiny frame cannot make it read a whole history.
pub fn read_for_user(
    rtx: &ReadTransaction,
    user_id: &str,
    topic: &str,
    after: u64,
    upto: u64,
    limit: usize,
    skip_max: usize,
) -> AppResult<Option<Vec<Event>>> {
    let log = rtx.open_table(EVENT_LOG)?;
    let idx = rtx.open_table(EVENT_BY_USER)?;
    let from = after.saturating_add(1);
    let seqs = |key| -> AppResult<_> {
        Ok(idx
            .range((key, from)..=(key, upto))?
            .map(|r| r.map(|(k, _)| k.value().1))
            .peekable())
    };
    let (mut mine, mut all) = (seqs(user_id)?, seqs(EVERYONE)?);
    let mut out: Vec<Event> = Vec::new();
    let mut skipped = 0usize;
    while out.len() < limit {
        let a = mine
            .peek()
            .map(|r| r.as_ref().map(|s| *s).map_err(|e| e.to_string()));
        let b = all
            .peek()
            .map(|r| r.as_ref().map(|s| *s).map_err(|e| e.to_string()));
        let seq = match (a, b) {
            (None, None) => break,
            (Some(Err(e)), _) | (_, Some(Err(e))) => {
                return Err(super::error::AppError::internal(e));
            }
            (Some(Ok(x)), Some(Ok(y))) if x <= y => mine.next().expect("peeked")?,
            (Some(Ok(_)), None) => mine.next().expect("peeked")?,
            _ => all.next().expect("peeked")?,
        };
        // An event about the user and for everyone is in both ranges: take it once.
        if out.last().is_some_and(|e| e.seq == seq) {
            continue;
        }
        // The index also lists events merely about the user: keep those meant for them.
        match get::<u64, Event>(&log, seq)? {
            Some(event) if event.topic.as_deref() == Some(topic) && event.is_for(user_id) => {
                out.push(event);
            }
            _ => {
                skipped += 1;
                if skipped > skip_max {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(out))
}

/// One page of the admin query.
pub struct QueryPage {
    pub items: Vec<Event>,
    /// The last seq the scan looked at (matching or not): where the next page starts.
    pub scanned_upto: u64,
    /// The scan reached the end of what matches; no next page.
    pub exhausted: bool,
}

/// The admin query: filters by type and by a user the events are about or for, pages by seq. Scans at most `scan_max` rows,
/// so a rare type cannot make one request read the whole log; the caller continues from
/// `scanned_upto`.
pub fn query(
    rtx: &ReadTransaction,
    kind: Option<&str>,
    subject: Option<&str>,
    after: u64,
    limit: usize,
    scan_max: usize,
) -> AppResult<QueryPage> {
    let log = rtx.open_table(EVENT_LOG)?;
    let mut page = QueryPage {
        items: Vec::new(),
        scanned_upto: after,
        exhausted: false,
    };
    let mut scanned = 0usize;
    let keep = |e: &Event| kind.is_none_or(|k| e.kind == k);
    let from = after.saturating_add(1);
    match subject {
        Some(subject) => {
            let idx = rtx.open_table(EVENT_BY_USER)?;
            for row in idx
                .range((subject, from)..=(subject, u64::MAX))?
                .take(scan_max)
            {
                let seq = row?.0.value().1;
                page.scanned_upto = seq;
                scanned += 1;
                if let Some(e) = get::<u64, Event>(&log, seq)?
                    && keep(&e)
                {
                    page.items.push(e);
                    if page.items.len() >= limit {
                        break;
                    }
                }
            }
        }
        None => {
            for row in log.range(from..)?.take(scan_max) {
                let (k, v) = row?;
                page.scanned_upto = k.value();
                scanned += 1;
                let e: Event = dec(v.value())?;
                if keep(&e) {
                    page.items.push(e);
                    if page.items.len() >= limit {
                        break;
                    }
                }
            }
        }
    }
    page.exhausted = page.items.len() < limit && scanned < scan_max;
    Ok(page)
}

/// How many committed events the broadcast keeps for slow live readers before they must read
/// the log instead.
pub const BUS_CAPACITY: usize = 16_384;

/// Wakes readers after each commit.
pub struct Bus {
    live: broadcast::Sender<Arc<Event>>,
    head: watch::Sender<u64>,
    /// Commits so far (with events or not): a waiter for a stored value (a consumer's cursor)
    /// reads it again after each, instead of polling.
    commits: watch::Sender<u64>,
}

impl Bus {
    pub fn new(head: u64) -> Bus {
        let (live, _) = broadcast::channel(BUS_CAPACITY);
        let (head, _) = watch::channel(head);
        let (commits, _) = watch::channel(0);
        Bus {
            live,
            head,
            commits,
        }
    }

    /// Called after every successful commit, events or none.
    pub(crate) fn committed(&self) {
        self.commits.send_modify(|n| *n += 1);
    }

    /// Changes after every commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub(crate) fn publish(&self, events: Vec<Event>) {
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        for e in events {
            // No receivers is fine: nobody is listening live.
            let _ = self.live.send(Arc::new(e));
        }
        self.head.send_replace(last);
    }

    /// Committed events, live, in order. A receiver that falls behind by more than
    /// [`BUS_CAPACITY`] gets `Lagged` and must read the missed range from the log.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    /// The last committed sequence number, changing after each commit with events.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

/// A durable reader of the event log.
pub trait Consumer: Send + Sync + 'static {
    /// Unique, stable: the cursor is stored under it.
    fn name(&self) -> &'static str;
    /// Handles a batch, in order. It may see an event again after a crash, so it must be
    /// idempotent. An error retries the same batch after a back-off.
    fn handle(&self, events: Vec<Event>)
    -> impl std::future::Future<Output = AppResult<()>> + Send;
    /// Events handed to one `handle`, at most. A consumer whose every batch costs the same
    /// whatever it holds (one index commit) takes more, so a burst is one batch, not many.
    fn batch_max(&self) -> usize {
        CONSUMER_BATCH_MAX
    }
}

/// Inside a consumer's write: the events of `batch` the consumer has not applied yet, and its
/// cursor moved past the batch in the same transaction. A consumer whose effects are writes
/// uses it to apply each event exactly once, even when the process dies between those writes
/// and `run_consumer`'s own cursor update.
pub fn take_unapplied<'e>(
    tx: &Tx,
    name: &'static str,
    batch: &'e [Event],
) -> AppResult<Vec<&'e Event>> {
    let mut t = tx.table(CONSUMER_CURSOR)?;
    let applied = t.get(name)?.map(|v| v.value()).unwrap_or(0);
    let fresh: Vec<&Event> = batch.iter().filter(|e| e.seq > applied).collect();
    if let Some(last) = fresh.last() {
        t.insert(name, last.seq)?;
    }
    Ok(fresh)
}

/// A consumer's handling when its effects are writes about one domain's events: `apply` runs
/// for each event of `E`'s kinds in `batch` not applied yet, and the consumer's cursor moves
/// past the batch, in one commit, so each event is applied exactly once. A batch with none of
/// `E`'s kinds costs no write.
pub async fn apply_once<E, F>(
    store: &Store,
    name: &'static str,
    batch: Vec<Event>,
    apply: F,
) -> AppResult<()>
where
    E: DomainEvent,
    F: Fn(&Tx, E) -> AppResult<()> + Send + 'static,
{
    if !batch.iter().any(Event::is::<E>) {
        return Ok(());
    }
    store
        .write(move |tx| {
            for e in take_unapplied(tx, name, &batch)? {
                if let Some(event) = e.decoded::<E>() {
                    apply(tx, event)?;
                }
            }
            Ok(())
        })
        .await
}

/// Waits until every consumer in `names` has handled the event `seq` (or `wait` passed:
/// `false`). For a write whose promised effects are carried out by consumers.
pub async fn wait_applied(
    store: &Store,
    names: &[&'static str],
    seq: u64,
    wait: Duration,
) -> AppResult<bool> {
    let deadline = tokio::time::Instant::now() + wait;
    // A cursor only moves in a commit: look again after each one, not on a timer.
    let mut commits = store.bus().commits();
    for name in names {
        loop {
            commits.borrow_and_update();
            if cursor(store, name).await? >= seq {
                break;
            }
            match tokio::time::timeout_at(deadline, commits.changed()).await {
                Ok(Ok(())) => {}
                // Past the deadline, or the store closed.
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Erasure: the log keeps every event, but not what it said about a person who was erased.

/// The events indexed under `user_id` (as subject or audience) with `seq > after`: what the
/// log says to or about a person, for their erasure. A read, off the writer.
pub fn of_user(rtx: &ReadTransaction, user_id: &str, after: u64) -> AppResult<Vec<Event>> {
    of_user_in(
        &rtx.open_table(EVENT_BY_USER)?,
        &rtx.open_table(EVENT_LOG)?,
        user_id,
        after,
    )
}

/// [`of_user`] inside a write: the events appended since a read looked.
pub fn of_user_tx(tx: &Tx, user_id: &str, after: u64) -> AppResult<Vec<Event>> {
    of_user_in(
        &tx.read(EVENT_BY_USER)?,
        &tx.read(EVENT_LOG)?,
        user_id,
        after,
    )
}

fn of_user_in(
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    log: &impl ReadableTable<u64, &'static [u8]>,
    user_id: &str,
    after: u64,
) -> AppResult<Vec<Event>> {
    let mut out = Vec::new();
    for row in idx.range((user_id, after.saturating_add(1))..=(user_id, u64::MAX))? {
        let seq = row?.0.value().1;
        if let Some(event) = get::<u64, Event>(log, seq)? {
            out.push(event);
        }
    }
    Ok(out)
}

/// Rewrites what event `seq` says through `f`; its seq, kind, subject, audience and version
/// stay. `f` must leave a payload its kind still decodes (replace text, keep the shape).
pub fn rewrite_tx(tx: &Tx, seq: u64, f: impl FnOnce(&mut serde_json::Value)) -> AppResult<()> {
    let Some(mut event) = get::<u64, Event>(&tx.read(EVENT_LOG)?, seq)? else {
        return Ok(());
    };
    let before = event.data.clone();
    f(&mut event.data);
    if event.data != before {
        put(&mut tx.table(EVENT_LOG)?, seq, &event)?;
    }
    Ok(())
}

/// Starts a consumer that has never run at the head of the log, so one added to an existing
/// data directory does not replay history its domain already reflects. Call it before the
/// consumer runs and before the server takes requests.
/// Sets a consumer's cursor to `seq`: after it rebuilt its state from the store as of `seq`.
pub async fn set_cursor(store: &Store, name: &'static str, seq: u64) -> AppResult<()> {
    store
        .write(move |tx| {
            tx.table(CONSUMER_CURSOR)?.insert(name, seq)?;
            Ok(())
        })
        .await
}

pub async fn start_new_consumer_at_head(store: &Store, name: &'static str) -> AppResult<()> {
    store
        .write(move |tx| {
            if tx.read(CONSUMER_CURSOR)?.get(name)?.is_none() {
                let head = tx
                    .read(EVENT_LOG)?
                    .last()?
                    .map(|(k, _)| k.value())
                    .unwrap_or(0);
                tx.table(CONSUMER_CURSOR)?.insert(name, head)?;
            }
            Ok(())
        })
        .await
}

/// How many events a consumer reads at once, unless it says otherwise (`Consumer::batch_max`).
pub const CONSUMER_BATCH_MAX: usize = 256;

/// The stored cursor of a consumer.
pub async fn cursor(store: &Store, name: &'static str) -> AppResult<u64> {
    store
        .read(move |rtx| {
            let t = rtx.open_table(CONSUMER_CURSOR)?;
            Ok(t.get(name)?.map(|v| v.value()).unwrap_or(0))
        })
        .await
}

/// Runs a consumer until `stop` turns true: reads from its cursor, handles, stores the cursor,
/// waits for new commits.
pub async fn run_consumer<C: Consumer>(
    store: Store,
    consumer: Arc<C>,
    mut stop: watch::Receiver<bool>,
) {
    let name = consumer.name();
    let mut head = store.bus().head();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let step = async {
            let after = cursor(&store, name).await?;
            let max = consumer.batch_max();
            let batch = store.read(move |rtx| read_after(rtx, after, max)).await?;
            let Some(last) = batch.last().map(|e| e.seq) else {
                return Ok(false);
            };
            consumer.handle(batch).await?;
            store
                .write(move |tx| {
                    let mut t = tx.table(CONSUMER_CURSOR)?;
                    let current = t.get(name)?.map(|v| v.value()).unwrap_or(0);
                    if last > current {
                        t.insert(name, last)?;
                    }
                    Ok(())
                })
                .await?;
            AppResult::Ok(true)
        };
        match step.await {
            Ok(true) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(false) => {
                tokio::select! {
                    _ = head.changed() => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "consumer failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
