//! Presence: a user is online while at least one authenticated, heartbeating WebSocket of
//! theirs is alive, and goes offline a grace period after the last one is gone (so a phone
//! switching networks does not flicker offline).
//!
//! Connection counts live in memory; transitions are committed in order by one task, batched
//! into group commits, and put on the event log (`presence_changed`). On start, everyone stored
//! as online is set offline, since no connection survived the restart.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::core::clock::SharedClock;
use crate::core::error::AppResult;
use crate::core::events::NewEvent;
use crate::core::metrics::Metrics;
use crate::core::store::{Store, get, put};

use super::model::PresenceRecord;
use super::tables::{ONLINE_STREAMERS, ONLINE_USERS, PRESENCE};

/// Transitions queued for the presence writer before `connected` waits.
const PRESENCE_QUEUE_LEN: usize = 65_536;
/// Transitions committed at most in one operation.
const PRESENCE_BATCH_MAX: usize = 1024;

#[derive(Debug, Default)]
struct Entry {
    connections: u32,
    /// When the last connection went away; offline once the grace period has passed.
    gone_since_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Change {
    user_id: String,
    online: bool,
    at_ms: i64,
}

enum Queued {
    Change(Change),
    /// Answered once every change queued before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

pub struct Presence {
    /// An async lock, held while a transition is queued, so transitions reach the writer in
    /// the order they happened (a reconnect racing a sweep cannot be overtaken by its offline).
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
    grace_ms: i64,
    clock: SharedClock,
    changes: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
    /// When this tracker started: nobody's connections are known from before.
    started_ms: i64,
}

impl Presence {
    /// Starts the presence writer; returns the tracker.
    pub fn start(store: Store, grace_secs: u64, metrics: Arc<Metrics>) -> Arc<Presence> {
        let (tx, rx) = mpsc::channel(PRESENCE_QUEUE_LEN);
        tokio::spawn(write_changes(store.clone(), rx));
        Arc::new(Presence {
            entries: tokio::sync::Mutex::new(HashMap::new()),
            grace_ms: grace_secs as i64 * 1000,
            clock: store.clock().clone(),
            changes: tx,
            metrics,
            started_ms: store.now_ms(),
        })
    }

    /// An authenticated connection of `user_id` opened.
    pub async fn connected(&self, user_id: &str) {
        let mut entries = self.entries.lock().await;
        let e = entries.entry(user_id.to_owned()).or_default();
        e.connections += 1;
        let was_tracked = e.connections > 1 || e.gone_since_ms.is_some();
        e.gone_since_ms = None;
        if !was_tracked {
            self.metrics.online_users.inc();
            self.send(user_id, true).await;
        }
    }

    /// A connection of `user_id` closed.
    pub async fn disconnected(&self, user_id: &str) {
        let now = self.clock.now_ms();
        let mut entries = self.entries.lock().await;
        if let Some(e) = entries.get_mut(user_id) {
            e.connections = e.connections.saturating_sub(1);
            if e.connections == 0 {
                e.gone_since_ms = Some(now);
            }
        }
    }

    /// Sets offline everyone whose grace period has passed. Runs every second; tests call it
    /// after moving the clock.
    pub async fn sweep(&self) {
        let now = self.clock.now_ms();
        let mut entries = self.entries.lock().await;
        let gone: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.connections == 0)
            .filter(|(_, e)| e.gone_since_ms.is_some_and(|at| at + self.grace_ms <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            entries.remove(&id);
            self.metrics.online_users.dec();
            self.send(&id, false).await;
        }
    }

    /// How long the user has had no live connection at `now` (`None` while they have one).
    /// Someone never seen since the server started counts from the start.
    pub async fn disconnected_for_ms(&self, user_id: &str, now: i64) -> Option<i64> {
        match self.entries.lock().await.get(user_id) {
            Some(e) if e.connections > 0 => None,
            Some(e) => Some(now - e.gone_since_ms.unwrap_or(self.started_ms)),
            None => Some(now - self.started_ms),
        }
    }

    /// Of `users`, those without a live connection for at least `limit_ms` at `now`, under one
    /// lock (the call engine asks this for everyone in a call, every second).
    pub async fn lost_longer_than<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
        now: i64,
        limit_ms: i64,
    ) -> std::collections::HashSet<&'a str> {
        let entries = self.entries.lock().await;
        users
            .filter(|who| {
                let gone_since = match entries.get(*who) {
                    Some(e) if e.connections > 0 => return false,
                    Some(e) => e.gone_since_ms.unwrap_or(self.started_ms),
                    None => self.started_ms,
                };
                now - gone_since >= limit_ms
            })
            .collect()
    }

    /// Whether the user has a live connection (or lost their last one less than the grace
    /// period ago).
    pub async fn is_online(&self, user_id: &str) -> bool {
        self.entries.lock().await.contains_key(user_id)
    }

    async fn send(&self, user_id: &str, online: bool) {
        let change = Change {
            user_id: user_id.to_owned(),
            online,
            at_ms: self.clock.now_ms(),
        };
        // The writer only stops with the runtime.
        let _ = self.changes.send(Queued::Change(change)).await;
    }

    /// Waits until every transition queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.changes.send(Queued::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn write_changes(store: Store, mut rx: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(PRESENCE_BATCH_MAX);
    while rx.recv_many(&mut batch, PRESENCE_BATCH_MAX).await > 0 {
        let mut changes = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for q in batch.drain(..) {
            match q {
                Queued::Change(c) => changes.push(c),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        if !changes.is_empty()
            && let Err(e) = store.write(move |tx| apply(tx, &changes)).await
        {
            tracing::error!(error = %e, "writing presence changes failed");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn apply(tx: &crate::core::store::Tx, changes: &[Change]) -> AppResult<()> {
    let mut t = tx.table(PRESENCE)?;
    let mut emitted = Vec::new();
    for c in changes {
        let mut rec: PresenceRecord = get(&t, c.user_id.as_str())?.unwrap_or_default();
        if rec.online == c.online {
            continue;
        }
        rec.online = c.online;
        if c.online {
            rec.online_since_ms = Some(c.at_ms);
        } else {
            rec.online_since_ms = None;
        }
        rec.last_seen_ms = Some(c.at_ms);
        put(&mut t, c.user_id.as_str(), &rec)?;
        if c.online {
            tx.table(ONLINE_USERS)?.insert(c.user_id.as_str(), ())?;
        } else {
            tx.table(ONLINE_USERS)?.remove(c.user_id.as_str())?;
        }
        super::index_online_streamer(tx, &c.user_id)?;
        emitted.push(c.clone());
    }
    drop(t);
    for c in emitted {
        tx.emit(NewEvent::about(
            &c.user_id,
            super::events::UserEvent::PresenceChanged {
                user_id: c.user_id.clone().into(),
                online: c.online,
                at: c.at_ms,
            },
        ))?;
    }
    Ok(())
}

/// Sets offline everyone the store still shows online: run once at start.
pub async fn reset_after_restart(store: &Store) -> AppResult<usize> {
    use redb::ReadableTable;
    let online: Vec<String> = store
        .read(|rtx| {
            let t = rtx.open_table(PRESENCE)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let rec: PresenceRecord = crate::core::store::dec(v.value())?;
                if rec.online {
                    out.push(k.value().to_owned());
                }
            }
            Ok(out)
        })
        .await?;
    let n = online.len();
    if n > 0 {
        let at_ms = store.now_ms();
        let changes: Vec<Change> = online
            .into_iter()
            .map(|user_id| Change {
                user_id,
                online: false,
                at_ms,
            })
            .collect();
        store.write(move |tx| apply(tx, &changes)).await?;
    }
    Ok(n)
}

/// Up to `limit` of the streamers online now, in id order, inside a write.
pub fn online_streamers(
    r: &impl crate::core::store::Reads,
    limit: usize,
) -> AppResult<Vec<String>> {
    use redb::ReadableTable;
    let mut out = Vec::new();
    for row in r.read_table(ONLINE_STREAMERS)?.iter()?.take(limit) {
        out.push(row?.0.value().to_owned());
    }
    Ok(out)
}
