//! The store: one redb file holding every domain's tables, the event log included.
//!
//! * Values are MessagePack with named fields (`rmp_serde::to_vec_named`), so adding an optional
//!   field (`#[serde(default)]`) keeps old records readable.
//! * Reads run on tokio's blocking pool ([`Store::read`]), never on the async executor.
//! * Every write goes through one writer thread that drains a bounded queue and commits a whole
//!   group of operations at once (group commit): one fsync for many operations, each caller
//!   answered only after the commit that holds its change is durable.
//!
//! An operation is a closure over a [`Tx`]. It checks first and writes after; if it fails after
//! it wrote, the group's transaction is abandoned and the other operations of the group are run
//! again in a fresh one, so a failed operation never leaves a trace and never takes others down.
//! Operations may therefore run more than once before their commit and must be pure functions
//! of the store's state (no side effects outside the transaction).

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::clock::SharedClock;
use super::error::{AppError, AppResult, Code};
use super::events::{self, Bus, Event, NewEvent};
use super::metrics::Metrics;

/// How many operations one group commit may hold. Larger groups amortise the fsync further but
/// make the first caller of a group wait for the last; 1,024 keeps a group under a few ms.
pub const GROUP_OPS_MAX: usize = 1024;
/// Bound of the writer's queue; callers wait (backpressure) when it is full.
pub const WRITE_QUEUE_LEN: usize = 8192;

/// Encodes a stored value (MessagePack, named fields).
pub fn enc<T: Serialize>(value: &T) -> AppResult<Vec<u8>> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Decodes a stored value.
pub fn dec<T: DeserializeOwned>(bytes: &[u8]) -> AppResult<T> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// The second parts of the keys of a `(first, second)` table whose first part is `first`, in
/// order: "everything of this owner" for the many `(owner, x)` tables and indexes.
pub fn second_keys<V: redb::Value + 'static>(
    t: &impl ReadableTable<(&'static str, &'static str), V>,
    first: &str,
) -> AppResult<Vec<String>> {
    let mut out = Vec::new();
    for row in t.range((first, "")..)? {
        let (k, _) = row?;
        let (a, b) = k.value();
        if a != first {
            break;
        }
        out.push(b.to_owned());
    }
    Ok(out)
}

/// One person's side of a `(first, second)` relation (their blocks, their favorites), for
/// checking many others against it: read into a set once when it holds at most `set_max`
/// entries — one range read instead of a lookup per other, which is what a feed page needs —
/// and looked up one by one otherwise, so a relation of any size costs bounded memory.
pub struct SecondKeys<V: redb::Value + 'static> {
    first: String,
    known: Known<V>,
}

enum Known<V: redb::Value + 'static> {
    Set(std::collections::HashSet<String>),
    Probe(redb::ReadOnlyTable<(&'static str, &'static str), V>),
}

impl<V: redb::Value + 'static> SecondKeys<V> {
    pub fn open(
        rtx: &ReadTransaction,
        table: TableDefinition<(&'static str, &'static str), V>,
        first: &str,
        set_max: usize,
    ) -> AppResult<SecondKeys<V>> {
        let t = rtx.open_table(table)?;
        let mut set = std::collections::HashSet::new();
        for row in t.range((first, "")..)? {
            let (k, _) = row?;
            let (a, b) = k.value();
            if a != first {
                break;
            }
            if set.len() == set_max {
                return Ok(SecondKeys {
                    first: first.to_owned(),
                    known: Known::Probe(t),
                });
            }
            set.insert(b.to_owned());
        }
        Ok(SecondKeys {
            first: first.to_owned(),
            known: Known::Set(set),
        })
    }

    /// Whether `(first, second)` is in the relation.
    pub fn contains(&self, second: &str) -> AppResult<bool> {
        match &self.known {
            Known::Set(set) => Ok(set.contains(second)),
            Known::Probe(t) => Ok(t.get((self.first.as_str(), second))?.is_some()),
        }
    }
}

/// The records of a `(first, second) → record` table whose first part is `first`, in order.
pub fn records_under<T: DeserializeOwned>(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    first: &str,
) -> AppResult<Vec<T>> {
    let mut out = Vec::new();
    for row in t.range((first, "")..)? {
        let (k, v) = row?;
        if k.value().0 != first {
            break;
        }
        out.push(dec(v.value())?);
    }
    Ok(out)
}

/// One page of an `(owner, ms, id) → ()` index, newest first, strictly before the `(ms, id)`
/// cursor (the last row of the previous page); `None` starts at the newest.
pub fn newest_first(
    t: &impl ReadableTable<(&'static str, i64, &'static str), ()>,
    owner: &str,
    before: Option<&(i64, String)>,
    limit: usize,
) -> AppResult<Vec<(i64, String)>> {
    let (ms, id) = before.map_or((i64::MAX, ""), |(ms, id)| (*ms, id.as_str()));
    let mut out = Vec::new();
    for row in t.range((owner, i64::MIN, "")..=(owner, ms, id))?.rev() {
        let (k, _) = row?;
        let (_, at, other) = k.value();
        if before.is_some() && (at, other) == (ms, id) {
            continue;
        }
        out.push((at, other.to_owned()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Reads and decodes one record.
pub fn get<K, T>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> AppResult<Option<T>>
where
    K: Key + 'static,
    T: DeserializeOwned,
{
    match table.get(key)? {
        Some(guard) => Ok(Some(dec(guard.value())?)),
        None => Ok(None),
    }
}

/// Encodes and writes one record.
pub fn put<K, T>(
    table: &mut Table<'_, K, &'static [u8]>,
    key: K::SelfType<'_>,
    value: &T,
) -> AppResult<()>
where
    K: Key + 'static,
    T: Serialize,
{
    let bytes = enc(value)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Takes one row as stored: its key and value bytes.
pub type RowVisitor<'a> = dyn FnMut(&[u8], &[u8]) + 'a;
/// Takes one row as stored, with its table's name.
pub type TableRowVisitor<'a> = dyn FnMut(&str, &[u8], &[u8]) + 'a;

/// One table of the registry: its name, how to create it, and how to read its rows as bytes.
pub struct TableSpec {
    pub name: &'static str,
    pub create: fn(&WriteTransaction) -> Result<(), redb::TableError>,
    /// Hands every row's key and value, as stored bytes, to the callback: what a check that
    /// must see every table (erasure leaves nothing behind) reads without knowing the types.
    pub scan: fn(&redb::ReadTransaction, &mut RowVisitor<'_>) -> AppResult<()>,
    /// Hands rows after the key whose stored bytes are given (from the first when none) to
    /// the callback as JSON, until it says stop: the admins' table browser.
    pub browse: fn(
        &redb::ReadTransaction,
        Option<&[u8]>,
        &mut super::browse::JsonRowVisitor<'_>,
    ) -> AppResult<()>,
    /// How many rows it holds.
    pub len: fn(&redb::ReadTransaction) -> AppResult<u64>,
}

/// Every table: the domains' `registry` and the core's own.
fn every_spec<'a>(registry: &'a [&'a [TableSpec]]) -> impl Iterator<Item = &'a TableSpec> {
    registry
        .iter()
        .flat_map(|t| t.iter())
        .chain(TABLES)
        .chain(events::TABLES)
        .chain(super::idempotency::TABLES)
}

/// Every table: the domains' `registry` and the core's, in registry order.
pub fn table_specs<'a>(registry: &'a [&'a [TableSpec]]) -> impl Iterator<Item = &'a TableSpec> {
    every_spec(registry)
}

/// Hands every row of every table (the domains' `registry` and the core's) to `f`, with the
/// table's name.
pub fn scan_every_table(
    rtx: &redb::ReadTransaction,
    registry: &[&[TableSpec]],
    f: &mut TableRowVisitor<'_>,
) -> AppResult<()> {
    for spec in every_spec(registry) {
        (spec.scan)(rtx, &mut |k, v| f(spec.name, k, v))?;
    }
    Ok(())
}

/// Declares a domain's tables and a `TABLES` registry entry for each, so the store can create
/// every table at start (reads of a never-written table then see it empty, not missing).
#[macro_export]
macro_rules! tables {
    ($( $(#[$meta:meta])* $name:ident : $k:ty => $v:ty = $s:literal; )*) => {
        $( $(#[$meta])* pub const $name: ::redb::TableDefinition<'static, $k, $v> =
            ::redb::TableDefinition::new($s); )*
        pub const TABLES: &[$crate::core::store::TableSpec] = &[
            $( $crate::core::store::TableSpec {
                name: $s,
                create: |txn| txn.open_table($name).map(|_| ()),
                scan: |rtx, f| {
                    use ::redb::ReadableTable as _;
                    for row in rtx.open_table($name)?.iter()? {
                        let (k, v) = row?;
                        f(
                            <$k as ::redb::Value>::as_bytes(&k.value()).as_ref(),
                            <$v as ::redb::Value>::as_bytes(&v.value()).as_ref(),
                        );
                    }
                    Ok(())
                },
                browse: |rtx, after, f| {
                    use ::redb::ReadableTable as _;
                    use $crate::core::browse::Json as _;
                    let table = rtx.open_table($name)?;
                    let rows = match after {
                        Some(raw) => {
                            // A cursor comes from a client: bytes that do not decode as this
                            // table's key (redb panics on them) or that do not encode back to
                            // themselves are refused.
                            let key = ::std::panic::catch_unwind(|| {
                                <$k as ::redb::Value>::from_bytes(raw)
                            })
                            .ok()
                            .filter(|k| {
                                let bytes = <$k as ::redb::Value>::as_bytes(k);
                                AsRef::<[u8]>::as_ref(&bytes) == raw
                            })
                            .ok_or_else(|| {
                                $crate::core::error::AppError::validation(
                                    "from is not a cursor we issued",
                                )
                            })?;
                            table.range::<<$k as ::redb::Value>::SelfType<'_>>((
                                ::std::ops::Bound::Excluded(key),
                                ::std::ops::Bound::Unbounded,
                            ))?
                        }
                        None => table.iter()?,
                    };
                    for row in rows {
                        let (k, v) = row?;
                        let key = k.value();
                        let raw = <$k as ::redb::Value>::as_bytes(&key);
                        if !f(raw.as_ref(), <$k>::json(&key), <$v>::json(&v.value())) {
                            break;
                        }
                    }
                    Ok(())
                },
                len: |rtx| {
                    use ::redb::ReadableTableMetadata as _;
                    Ok(rtx.open_table($name)?.len()?)
                },
            }, )*
        ];
    };
}

/// The write context of one operation inside a group commit.
pub struct Tx<'t> {
    txn: &'t WriteTransaction,
    now_ms: i64,
    wrote: Cell<bool>,
    events: RefCell<Vec<Event>>,
    next_seq: Cell<u64>,
    /// The event log's tables, open for the whole group once the first event is emitted.
    /// Operations never open them themselves.
    event_tables: RefCell<Option<events::EventTables<'t>>>,
}

impl<'t> Tx<'t> {
    /// The time of this group commit, from the injected clock: every operation of a group sees
    /// the same instant.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Opens a table to write it.
    pub fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> AppResult<Table<'t, K, V>> {
        self.wrote.set(true);
        Ok(self.txn.open_table(def)?)
    }

    /// Opens a table only to read it; what it returns cannot write.
    pub fn read<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> AppResult<impl ReadableTable<K, V> + 't> {
        Ok(self.txn.open_table(def)?)
    }

    /// Appends an event to the event log in this transaction; returns its sequence number.
    pub fn emit(&self, event: NewEvent) -> AppResult<u64> {
        self.wrote.set(true);
        let seq = self.next_seq.get();
        let mut tables = self.event_tables.borrow_mut();
        if tables.is_none() {
            *tables = Some(events::EventTables::open(self.txn)?);
        }
        let stored = events::append(
            tables.as_mut().expect("opened above"),
            seq,
            self.now_ms,
            event,
        )?;
        self.next_seq.set(seq + 1);
        self.events.borrow_mut().push(stored);
        Ok(seq)
    }
}

/// Where a domain function can read its tables from: a read transaction, or a write (`Tx`)
/// that sees its own changes. A function taking `&impl Reads` serves both, so a domain needs no
/// `_tx` twin of each lookup.
pub trait Reads {
    type Table<K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>;
    fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> AppResult<Self::Table<K, V>>;
}

impl Reads for ReadTransaction {
    type Table<K: Key + 'static, V: Value + 'static> = redb::ReadOnlyTable<K, V>;
    fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> AppResult<Self::Table<K, V>> {
        Ok(self.open_table(def)?)
    }
}

impl<'t> Reads for Tx<'t> {
    type Table<K: Key + 'static, V: Value + 'static> = Table<'t, K, V>;
    fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> AppResult<Self::Table<K, V>> {
        Ok(self.txn.open_table(def)?)
    }
}

type Reply = Box<dyn FnOnce(AppResult<()>) + Send>;
/// A queued operation: runs in a transaction, tells whether it failed, and keeps what to answer
/// its caller once the commit is known.
type Job = Box<dyn FnMut(&Tx) -> JobOutcome + Send>;

struct JobOutcome {
    failed: bool,
    /// What to answer the caller; called with the commit's result (a failed operation's caller
    /// gets its own error whatever the commit did).
    reply: Option<Reply>,
}

struct Inner {
    db: Database,
    jobs: mpsc::Sender<Job>,
    head_seq: AtomicU64,
    bus: Bus,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// Dropped after `db` (fields drop in order): its receivers learn the file is closed.
    closed: tokio::sync::watch::Sender<()>,
}

/// Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The schema version this build writes. Bump it and add a step to [`MIGRATIONS`] when a stored
/// format changes in a way `#[serde(default)]` cannot absorb.
pub const SCHEMA_VERSION: u32 = 1;

/// Migration steps: `MIGRATIONS[i]` upgrades a store from version `i + 1` to `i + 2`.
type Migration = fn(&WriteTransaction) -> AppResult<()>;
const MIGRATIONS: &[Migration] = &[];

crate::tables! {
    /// `schema_version` and other store-wide facts.
    META: &str => &[u8] = "meta";
}

impl Store {
    /// Opens (or creates) the store file, creates every registered table, runs pending
    /// migrations, and starts the writer thread.
    pub fn open(
        path: &Path,
        registry: &[&[TableSpec]],
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Store> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        for spec in every_spec(registry) {
            (spec.create)(&txn)?;
        }
        migrate(&txn)?;
        txn.commit()?;

        let head = {
            let rtx = db.begin_read()?;
            events::head_seq(&rtx)?
        };
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE_LEN);
        let inner = Arc::new(Inner {
            db,
            jobs,
            head_seq: AtomicU64::new(head),
            bus: Bus::new(head),
            clock,
            metrics,
            closed: tokio::sync::watch::channel(()).0,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("duet-writer".into())
            .spawn(move || writer_loop(weak, rx))?;
        Ok(Store { inner })
    }

    /// Resolves once the last clone of this store is gone and the file is closed, so the same
    /// data directory can be opened again (restarts, tests).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closed.subscribe();
        async move { while rx.changed().await.is_ok() {} }
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The sequence number of the last committed event (0 when the log is empty).
    pub fn head_seq(&self) -> u64 {
        self.inner.head_seq.load(Ordering::Acquire)
    }

    /// Runs a read on the blocking pool against a consistent snapshot.
    pub async fn read<R, F>(&self, f: F) -> AppResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&ReadTransaction) -> AppResult<R> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(AppError::internal)?
    }

    /// A small read on the calling thread, without the hop to the blocking pool: for the hot
    /// paths whose reads are a few point lookups (a request's token check, a feed page's
    /// exclusions), where the hop costs more than the read. Never for scans.
    pub fn read_inline<R>(&self, f: impl FnOnce(&ReadTransaction) -> AppResult<R>) -> AppResult<R> {
        self.read_blocking(f)
    }

    /// The same read, on the calling thread (CLI, blocking contexts).
    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> AppResult<R>,
    ) -> AppResult<R> {
        let rtx = self.inner.db.begin_read()?;
        f(&rtx)
    }

    /// Queues a write operation for the next group commit and waits until that commit is
    /// durable. See the module comment for the rules an operation follows.
    pub async fn write<R, F>(&self, f: F) -> AppResult<R>
    where
        R: Send + 'static,
        F: FnMut(&Tx) -> AppResult<R> + Send + 'static,
    {
        let (job, rx) = make_job(f);
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| AppError::new(Code::Unavailable, "the store is shutting down"))?;
        rx.await
            .map_err(|_| AppError::new(Code::Unavailable, "the store is shutting down"))?
    }

    /// The same write from a thread outside the async runtime (CLI).
    pub fn write_blocking<R, F>(&self, f: F) -> AppResult<R>
    where
        R: Send + 'static,
        F: FnMut(&Tx) -> AppResult<R> + Send + 'static,
    {
        let (job, rx) = make_job(f);
        self.inner
            .jobs
            .blocking_send(job)
            .map_err(|_| AppError::new(Code::Unavailable, "the store is shutting down"))?;
        rx.blocking_recv()
            .map_err(|_| AppError::new(Code::Unavailable, "the store is shutting down"))?
    }
}

fn make_job<R, F>(mut f: F) -> (Job, oneshot::Receiver<AppResult<R>>)
where
    R: Send + 'static,
    F: FnMut(&Tx) -> AppResult<R> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(parking_lot::Mutex::new(Some(tx)));
    let job: Job = Box::new(move |t: &Tx| {
        let result = f(t);
        let failed = result.is_err();
        let tx = tx.clone();
        JobOutcome {
            failed,
            reply: Some(Box::new(move |commit: AppResult<()>| {
                if let Some(sender) = tx.lock().take() {
                    let _ = sender.send(commit.and(result));
                }
            })),
        }
    });
    (job, rx)
}

fn migrate(txn: &WriteTransaction) -> AppResult<()> {
    let mut meta = txn.open_table(META)?;
    let current: u32 = get(&meta, "schema_version")?.unwrap_or(SCHEMA_VERSION);
    if current == 0 {
        return Err(AppError::internal(
            "the store records schema version 0, which never existed",
        ));
    }
    if current > SCHEMA_VERSION {
        return Err(AppError::internal(format!(
            "the store has schema version {current}, newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for step in current..SCHEMA_VERSION {
        MIGRATIONS[(step - 1) as usize](txn)?;
    }
    put(&mut meta, "schema_version", &SCHEMA_VERSION)?;
    Ok(())
}

/// The writer thread: drains the queue into groups and commits each group once.
fn writer_loop(store: std::sync::Weak<Inner>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let Some(inner) = store.upgrade() else { break };
        let mut group = vec![first];
        while group.len() < GROUP_OPS_MAX {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&inner, group);
    }
}

fn commit_group(inner: &Inner, mut group: Vec<Job>) {
    let started = Instant::now();
    let ops = group.len();
    loop {
        let txn = match begin(inner) {
            Ok(t) => t,
            Err(e) => {
                // Dropping the jobs drops their reply channels: callers see `unavailable`.
                tracing::error!(error = %e, "cannot begin a write transaction");
                return;
            }
        };
        let tx = Tx {
            txn: &txn,
            now_ms: inner.clock.now_ms(),
            wrote: Cell::new(false),
            // Most operations emit an event or two; growing this vector one push at a time
            // showed up as page faults in profiles of large groups.
            events: RefCell::new(Vec::with_capacity(group.len() * 2)),
            next_seq: Cell::new(inner.head_seq.load(Ordering::Acquire) + 1),
            event_tables: RefCell::new(None),
        };
        let mut succeeded: Vec<Reply> = Vec::with_capacity(group.len());
        let mut failed: Vec<(usize, Reply)> = Vec::new();
        let mut poisoned = false;
        let mut panicked = None;
        for (i, job) in group.iter_mut().enumerate() {
            tx.wrote.set(false);
            // A panicking operation must not take the writer (and every later write) down.
            let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)))
            {
                Ok(o) => o,
                Err(_) => {
                    tracing::error!("a write operation panicked; its group is retried without it");
                    panicked = Some(i);
                    break;
                }
            };
            let reply = outcome.reply.expect("a job that ran has a reply");
            if outcome.failed {
                failed.push((i, reply));
                if tx.wrote.get() {
                    // It wrote before failing, so its writes are in this transaction: abandon
                    // the attempt and run the others again without it.
                    poisoned = true;
                    break;
                }
            } else {
                succeeded.push(reply);
            }
        }
        if let Some(i) = panicked {
            drop(tx);
            let _ = txn.abort();
            // Its caller sees its reply channel dropped: `unavailable`. Earlier failures (all
            // before it) are final, as below.
            drop(group.remove(i));
            for (j, reply) in failed.into_iter().rev() {
                drop(group.remove(j));
                reply(Ok(()));
            }
            continue;
        }
        if poisoned {
            drop(tx);
            let _ = txn.abort();
            // Failures are final (answered now, not re-run, so a caller told "failed" never
            // sees its operation commit later). Successful replies of this attempt are dropped
            // unanswered: those jobs run again and make fresh ones.
            for (i, reply) in failed.into_iter().rev() {
                drop(group.remove(i));
                reply(Ok(()));
            }
            continue;
        }
        let events = std::mem::take(&mut *tx.events.borrow_mut());
        // Its cached tables must be closed before the commit.
        drop(tx);
        let commit = txn.commit();
        inner
            .metrics
            .observe_commit(started.elapsed().as_secs_f64(), ops);
        match commit {
            Ok(()) => {
                if let Some(last) = events.last() {
                    inner.head_seq.store(last.seq, Ordering::Release);
                    inner.metrics.event_seq.set(last.seq as i64);
                }
                inner.bus.publish(events);
                inner.bus.committed();
                for reply in succeeded {
                    reply(Ok(()));
                }
            }
            Err(e) => {
                let err = AppError::from(e);
                for reply in succeeded {
                    reply(Err(err.clone()));
                }
            }
        }
        for (_, reply) in failed {
            reply(Ok(()));
        }
        return;
    }
}

fn begin(inner: &Inner) -> AppResult<WriteTransaction> {
    let mut txn = inner.db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| AppError::internal(format_args!("durability: {e}")))?;
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::ManualClock;

    crate::tables! {
        TEST_ROWS: &str => u64 = "test_rows";
    }

    fn open(dir: &Path) -> Store {
        Store::open(
            &dir.join("t.redb"),
            &[TABLES_FOR_TEST],
            Arc::new(ManualClock::new(1_000)),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    const TABLES_FOR_TEST: &[TableSpec] = TABLES;

    #[test]
    fn second_keys_answer_the_same_as_a_set_or_by_lookups() {
        const PAIRS: TableDefinition<(&str, &str), ()> = TableDefinition::new("pairs");
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("p.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PAIRS).unwrap();
            for i in 0..40 {
                t.insert(("many", format!("x{i:02}").as_str()), ()).unwrap();
            }
            t.insert(("few", "x01"), ()).unwrap();
            t.insert(("fews", "x02"), ()).unwrap();
        }
        txn.commit().unwrap();
        let rtx = db.begin_read().unwrap();
        for set_max in [0, 1, 32, 100] {
            let many = SecondKeys::open(&rtx, PAIRS, "many", set_max).unwrap();
            let few = SecondKeys::open(&rtx, PAIRS, "few", set_max).unwrap();
            let none = SecondKeys::open(&rtx, PAIRS, "nobody", set_max).unwrap();
            for i in 0..40 {
                assert!(many.contains(&format!("x{i:02}")).unwrap(), "{set_max}");
            }
            assert!(!many.contains("x40").unwrap());
            assert!(few.contains("x01").unwrap());
            // A neighbouring first key's rows are not the person's.
            assert!(!few.contains("x02").unwrap(), "{set_max}");
            assert!(!none.contains("x01").unwrap());
        }
    }

    crate::domain_events! {
        pub enum TestEvent in "test" {
            Numbered = "test" { i: u64 }
        }
    }

    fn event(i: u64) -> NewEvent {
        NewEvent::about("u", TestEvent::Numbered { i })
    }

    #[test]
    fn a_payload_that_does_not_fit_its_kind_is_an_error_never_a_default() {
        let mut e = NewEvent::about("u", TestEvent::Numbered { i: 7 })
            .into_signal(0)
            .unwrap();
        assert_eq!(
            e.decode::<TestEvent>().unwrap(),
            Some(TestEvent::Numbered { i: 7 })
        );
        e.data = serde_json::json!({"i": "seven"});
        assert!(e.decode::<TestEvent>().is_err());
        // Consumers pass over it (logged) rather than stop on it.
        assert_eq!(e.decoded::<TestEvent>(), None);
        e.kind = "another_kind".into();
        assert_eq!(e.decode::<TestEvent>().unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operation_that_fails_after_writing_leaves_no_trace_and_spares_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut tasks = Vec::new();
        for i in 0..400u64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.write(move |tx| {
                    tx.table(TEST_ROWS)?.insert(format!("k{i}").as_str(), i)?;
                    tx.emit(event(i))?;
                    if i % 7 == 0 {
                        return Err(AppError::conflict("fails after writing"));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, i as u64);
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(i % 7, 0);
                    assert_eq!(e.code, Code::Conflict);
                }
            }
        }
        let (rows, events) = store
            .read_blocking(|rtx| {
                let t = rtx.open_table(TEST_ROWS)?;
                let rows: Vec<u64> = t.iter()?.map(|r| r.unwrap().1.value()).collect();
                Ok((rows, events::read_after(rtx, 0, 10_000)?))
            })
            .unwrap();
        assert_eq!(rows.len(), ok);
        assert!(
            rows.iter().all(|i| i % 7 != 0),
            "no failed operation's row was committed"
        );
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=ok as u64).collect::<Vec<_>>(),
            "events of failed operations left no gap"
        );
        assert!(events.iter().all(|e| {
            let TestEvent::Numbered { i } = e.decode().unwrap().unwrap();
            i % 7 != 0
        }));
        assert_eq!(store.head_seq(), ok as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let tasks: Vec<_> = (0..2000u64)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.write(move |tx| {
                        Ok(tx
                            .table(TEST_ROWS)?
                            .insert(format!("k{i}").as_str(), i)
                            .map(|_| ())?)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let commits = store.inner.metrics.render();
        let count: f64 = commits
            .lines()
            .find(|l| l.starts_with("duet_store_commit_ops_count"))
            .and_then(|l| l.split(' ').nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            count < 2000.0,
            "2,000 writes took {count} commits: no grouping happened"
        );
    }

    #[tokio::test]
    async fn records_written_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store
                .write(|tx| {
                    tx.table(TEST_ROWS)?.insert("kept", 7)?;
                    tx.emit(event(1))?;
                    Ok(())
                })
                .await
                .unwrap();
            let closed = store.closed();
            drop(store);
            closed.await;
        }
        let store = open(dir.path());
        assert_eq!(store.head_seq(), 1);
        let v = store
            .read_blocking(|rtx| Ok(rtx.open_table(TEST_ROWS)?.get("kept")?.map(|v| v.value())))
            .unwrap();
        assert_eq!(v, Some(7));
    }
}
