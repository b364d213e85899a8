//! The heartbeat fast path: a steady heartbeat costs no database round trip
//! of its own. It is authenticated from the token cache (`auth.rs`), its
//! desired state comes from memory, and its liveness columns go to the
//! group-commit writer, which writes a whole batch in one statement.
//!
//! When may a heartbeat skip the row lock? When the locked path would only
//! rewrite liveness columns. After every locked heartbeat the server runs
//! the pure state machine once more on the row it just wrote, with the same
//! heartbeat: if that second run changes liveness columns only and emits no
//! event, the row is a fixpoint for heartbeats with the same
//! [`Heartbeat::decision_key`] and desired state, and the server remembers
//! (row version, status, key, desired state) for the workspace ([`Hot`]).
//! A later heartbeat with the same key and a still-valid desired state is
//! answered from that memory and written by the batch writer with the row
//! version as its guard. Every write under the row lock bumps the version,
//! on any replica, so a guard fails when anything but liveness changed
//! since; that heartbeat is then re-decided under the lock, before it is
//! answered. Correctness never depends on this memory being fresh: a stale
//! entry costs one failed guard.
//!
//! Durability: a fast heartbeat is answered after its batch commits (group
//! commit: many requests wait on one commit), so an acknowledged heartbeat
//! is visible to every reader and survives a crash of Hearth. On Postgres
//! that commit is asynchronous (`hearth_store_pg::liveness_pool`): the
//! batch reaches the disk within 3 × `wal_writer_delay` (600 ms by
//! default), the "durable within 1 s" for plain heartbeats; a
//! crash of Postgres itself may lose the last such batches, never a
//! transition. SQLite runs in WAL mode with `synchronous = NORMAL` for every
//! write alike. Heartbeats that change status or any other decision input
//! take the locked path and commit synchronously with their events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hearth_core::reconcile::DesiredState;
use hearth_core::{decide, Heartbeat, Input, OrgId, WorkspaceId, WorkspaceStatus};
use hearth_store::{evolve, Changed, LivenessWrite, Store, Workspace};
use tokio::sync::{mpsc, oneshot};

use crate::writers::Writers;

/// Heartbeats the writer takes into one batch at most.
pub const MAX_BATCH: usize = 1000;
/// Batch writers on Postgres: one per connection of the store's liveness pool.
const POSTGRES_WRITERS: usize = hearth_store_pg::LIVENESS_CONNECTIONS as usize;
/// Heartbeats waiting for the writers at most; past it a heartbeat takes the
/// locked path (back-pressure instead of an unbounded queue).
const QUEUE: usize = 16 * MAX_BATCH;

/// What a workspace's heartbeats converge to, shared by the workspaces with
/// the same template and operator plugins, until a template or plugin
/// change invalidates it.
pub struct DesiredEntry {
    pub state: DesiredState,
    pub wire: hearth_api::Desired,
    key: DesiredKey,
    valid: AtomicBool,
}

impl DesiredEntry {
    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct DesiredKey {
    org: OrgId,
    template: Option<String>,
    operator_plugins: Vec<String>,
}

/// Desired states by (org, template, operator plugins). Invalidation marks
/// the entries it touches invalid (workspaces holding them take the locked
/// path once) and bumps an epoch, so that a desired state read before an
/// invalidation is never remembered after it.
#[derive(Default)]
pub struct DesiredCache {
    entries: Mutex<HashMap<DesiredKey, Arc<DesiredEntry>>>,
    epoch: AtomicU64,
}

impl DesiredCache {
    /// Read before reading a desired state from the store.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The shared entry for `workspace`'s desired state `state`, read at
    /// `epoch`; invalid (never remembered) if an invalidation came since.
    fn entry(&self, workspace: &Workspace, state: &DesiredState, epoch: u64) -> Arc<DesiredEntry> {
        let key = DesiredKey {
            org: workspace.org_id,
            template: workspace.template.clone(),
            operator_plugins: workspace.operator_plugins.clone(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = self.epoch() == epoch;
        if fresh {
            if let Some(entry) = entries.get(&key) {
                if entry.is_valid() && entry.state == *state {
                    return entry.clone();
                }
            }
        }
        let entry = Arc::new(DesiredEntry {
            state: state.clone(),
            wire: crate::desired::to_wire(state),
            key: key.clone(),
            valid: AtomicBool::new(fresh),
        });
        if fresh {
            entries.insert(key, entry.clone());
        }
        entry
    }

    fn invalidate(&self, matches: impl Fn(&DesiredEntry) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| {
            if matches(entry) {
                entry.valid.store(false, Ordering::Release);
                false
            } else {
                true
            }
        });
    }

    /// Template `name` of `org` was imported or replaced.
    pub fn template_changed(&self, org: OrgId, name: &str) {
        self.invalidate(|e| e.key.org == org && e.key.template.as_deref() == Some(name));
    }

    /// Plugin `name` of `org` was pushed or replaced.
    pub fn plugin_changed(&self, org: OrgId, name: &str) {
        self.invalidate(|e| e.key.org == org && e.state.plugins.iter().any(|p| p.name == name));
    }

    /// Anything may have changed (a replica's notices were lost).
    pub fn forget_all(&self) {
        self.invalidate(|_| true);
    }
}

/// What the server remembers of a workspace whose row is a fixpoint for
/// heartbeats with decision key `key` (see the module docs).
#[derive(Clone)]
struct Hot {
    version: i64,
    /// The row's `current_task` is not empty (it cannot change while the
    /// version holds: a new task is an event, written under the lock).
    has_task: bool,
    status: WorkspaceStatus,
    key: u64,
    desired: Arc<DesiredEntry>,
}

/// A fast heartbeat's answer.
pub struct FastAnswer {
    pub status: WorkspaceStatus,
    pub desired: hearth_api::Desired,
}

struct Pending {
    write: LivenessWrite,
    done: oneshot::Sender<Written>,
}

/// What the writer did with one heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Committed.
    Yes,
    /// The guard failed or the batch failed: decide under the lock.
    Retry,
}

/// The fast path of one server: remembered workspaces, desired states and
/// the group-commit writer's queue.
pub struct FastPath {
    hot: quick_cache::sync::Cache<WorkspaceId, Hot>,
    pub desired: DesiredCache,
    /// The group-commit writers; a workspace always goes to the same one,
    /// so two batches in flight never touch the same row (no lock waits, no
    /// deadlock between writers).
    writers: Writers<Pending>,
}

impl FastPath {
    /// Starts the writer on `store`. `capacity`: workspaces remembered at
    /// most (the rest take the locked path). The writer stops when the
    /// last `FastPath` handle is dropped.
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> Arc<Self> {
        // One writer per connection of the store's liveness pool. One is
        // best on both engines: a batch queues while the previous one is
        // written, so batches grow with the load, and since Postgres commits
        // them asynchronously there is no WAL flush to overlap (four
        // writers: 14.5k heartbeats/s; one: 18.8k, BENCHMARKS.md).
        let writers = match store.engine() {
            hearth_store::Engine::Postgres => POSTGRES_WRITERS,
            hearth_store::Engine::Sqlite => 1,
        };
        let writers = Writers::start(writers, QUEUE, |receiver| write_batches(store.clone(), receiver));
        Arc::new(Self {
            hot: quick_cache::sync::Cache::new(capacity.max(1)),
            desired: DesiredCache::default(),
            writers,
        })
    }

    /// Answers `hb` without the row lock when the workspace is remembered,
    /// its desired state is still valid and `hb` decides like the heartbeat
    /// remembered; `None` means: take the locked path.
    pub async fn try_heartbeat(&self, id: WorkspaceId, hb: &Heartbeat, now: DateTime<Utc>) -> Option<FastAnswer> {
        let hot = self.hot.get(&id)?;
        if !hot.desired.is_valid() || hot.key != hb.decision_key() {
            return None;
        }
        let write = LivenessWrite::from_heartbeat(id, hot.version, hot.has_task, hb, now)?;
        let (done, answer) = oneshot::channel();
        if let Err(error) = self.writers.queue(id).try_send(Pending { write, done }) {
            metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => "queue_full").increment(1);
            tracing::debug!(workspace_id = %id, %error, "heartbeat writer queue full; taking the locked path");
            return None;
        }
        match answer.await {
            Ok(Written::Yes) => {
                metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => "written").increment(1);
                Some(FastAnswer { status: hot.status, desired: hot.desired.wire.clone() })
            }
            Ok(Written::Retry) | Err(_) => {
                metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => "retry").increment(1);
                self.hot.remove(&id);
                None
            }
        }
    }

    /// After a locked heartbeat: remembers the workspace if its row is a
    /// fixpoint for heartbeats like `hb` (the module docs say why).
    /// `desired` was read at `epoch` ([`DesiredCache::epoch`]).
    pub fn remember(&self, row: &Workspace, hb: Heartbeat, desired: &DesiredState, epoch: u64, now: DateTime<Utc>) {
        let key = hb.decision_key();
        let input = Input::Heartbeat(hb);
        let steady = match decide(&row.snapshot(), &input, now) {
            Ok(decision) if decision.events.is_empty() && decision.next == row.status => {
                let (next, events) = evolve(row, &input, &decision, now);
                let changed = Changed::between(row, &next);
                events.is_empty() && !changed.lifecycle && !changed.runtime && !changed.delivery
            }
            _ => false,
        };
        if !steady {
            self.hot.remove(&row.id);
            return;
        }
        let desired = self.desired.entry(row, desired, epoch);
        let has_task = !row.current_task.as_deref().unwrap_or("").is_empty();
        self.hot.insert(row.id, Hot { version: row.version, has_task, status: row.status, key, desired });
    }

    /// Forgets a workspace (it changed under the lock outside a heartbeat;
    /// the version guard would catch it too, one failed write later).
    pub fn forget(&self, id: WorkspaceId) {
        self.hot.remove(&id);
    }

    /// Workspaces remembered now.
    pub fn remembered(&self) -> usize {
        self.hot.len()
    }
}

/// The group-commit writer: takes what is queued (up to [`MAX_BATCH`]),
/// writes it in one statement, answers each heartbeat, repeats. Batches form
/// by themselves under load (while one is written the next queues); an
/// idle server writes a lone heartbeat at once.
async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut pending = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut pending, MAX_BATCH).await > 0 {
        // A workspace twice in a batch: the later heartbeat's write wins and
        // both are answered with its outcome.
        let mut index: HashMap<WorkspaceId, usize> = HashMap::with_capacity(pending.len());
        let mut writes: Vec<LivenessWrite> = Vec::with_capacity(pending.len());
        let mut waiters: Vec<Vec<oneshot::Sender<Written>>> = Vec::with_capacity(pending.len());
        for Pending { write, done } in pending.drain(..) {
            match index.get(&write.id) {
                Some(&i) => {
                    writes[i] = write;
                    waiters[i].push(done);
                }
                None => {
                    index.insert(write.id, writes.len());
                    writes.push(write);
                    waiters.push(vec![done]);
                }
            }
        }
        metrics::histogram!("hearth_heartbeat_batch_size").record(writes.len() as f64);
        let outcome = store.write_liveness(&writes).await;
        let written: std::collections::HashSet<WorkspaceId> = match outcome {
            Ok(ids) => ids.into_iter().collect(),
            Err(error) => {
                crate::lifecycle::count_store_error(&error);
                metrics::counter!("hearth_heartbeat_batch_errors_total").increment(1);
                tracing::warn!(%error, batch = writes.len(), "heartbeat batch failed; its heartbeats take the locked path");
                Default::default()
            }
        };
        for (write, done) in writes.iter().zip(waiters) {
            let answer = if written.contains(&write.id) { Written::Yes } else { Written::Retry };
            for waiter in done {
                // A waiter that is gone (its request was dropped) needs no
                // answer; the write stands either way.
                if waiter.send(answer).is_err() {
                    tracing::debug!(workspace_id = %write.id, "heartbeat request gone before its batch committed");
                }
            }
        }
    }
}
