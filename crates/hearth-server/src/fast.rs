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
//! Durability ([`HeartbeatAck`], `--heartbeat-ack`):
//! - `committed` (the default): a fast heartbeat is answered after its batch
//!   commits (group commit: many requests wait on one commit), so an
//!   acknowledged heartbeat is visible to every reader and survives a crash
//!   of Hearth.
//! - `queued`: a fast heartbeat is answered once its write is queued, while
//!   the writer keeps up (its last batch succeeded and less than one batch
//!   waits before it; otherwise it waits for the commit as above). A crash
//!   of Hearth loses the queued heartbeats, the last milliseconds' worth;
//!   shutdown writes them first. A queued heartbeat whose guard fails is
//!   re-decided under the lock afterwards ([`redo`]), unless a later
//!   heartbeat of the workspace is stored already. Its answer was given
//!   from memory: a change made through this server forgets the workspace
//!   at once, but one made through another replica reaches the runtime one
//!   heartbeat later than with `committed`.
//!
//! On Postgres the batch's commit is asynchronous
//! (`hearth_store_pg::liveness_pool`): it reaches the disk within
//! 3 × `wal_writer_delay` (600 ms by default), the issue's "durable within
//! 1 s" for plain heartbeats; a crash of Postgres itself may lose the last
//! such batches, never a transition. SQLite runs in WAL mode with
//! `synchronous = NORMAL` for every write alike. Heartbeats that change
//! status or any other decision input take the locked path and commit
//! synchronously with their events, in both modes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hearth_core::reconcile::DesiredState;
use hearth_core::{decide, Heartbeat, Input, OrgId, WorkspaceId, WorkspaceStatus};
use hearth_store::{evolve, Changed, LivenessWrite, Store, StoreError, Workspace};
use tokio::sync::{mpsc, oneshot};

use crate::state::AppState;
use crate::writers::Writers;

/// Heartbeats the writer takes into one batch at most.
pub const MAX_BATCH: usize = 1000;
/// Batch writers on Postgres: one per connection of the store's liveness pool.
const POSTGRES_WRITERS: usize = hearth_store_pg::LIVENESS_CONNECTIONS as usize;
/// Heartbeats waiting for the writers at most; past it a heartbeat takes the
/// locked path (back-pressure instead of an unbounded queue).
const QUEUE: usize = 16 * MAX_BATCH;

/// Redos in flight at once, each lane one workspace's redos in order: they
/// go through the transition writers, which group-commit them.
const REDO_LANES: usize = 32;
/// Free places the redo queue must have for `queued` to answer early: more
/// than the heartbeats that can be answered and not yet written (one batch
/// being written, less than one waiting), so a failed batch always finds
/// room and no acknowledged heartbeat is dropped.
const REDO_HEADROOM: usize = 4 * MAX_BATCH;
/// How long a stopping server keeps redoing what is queued.
const REDO_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

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

/// When a heartbeat the batch writer writes is answered (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeartbeatAck {
    /// After its batch commits.
    #[default]
    Committed,
    /// Once queued, while the writer keeps up.
    Queued,
}

impl HeartbeatAck {
    /// The name of the flag's value: `committed` or `queued`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatAck::Committed => "committed",
            HeartbeatAck::Queued => "queued",
        }
    }
}

/// A fast heartbeat's answer.
pub struct FastAnswer {
    pub status: WorkspaceStatus,
    pub desired: hearth_api::Desired,
}

/// A queued heartbeat, answered before its batch committed, whose guard
/// failed: [`redo`] decides it under the lock.
pub struct Redo {
    pub id: WorkspaceId,
    pub heartbeat: Heartbeat,
    /// When it was answered.
    pub at: DateTime<Utc>,
}

/// What the writers take from their queues.
enum Job {
    Heartbeat {
        write: LivenessWrite,
        reply: Reply,
    },
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

enum Reply {
    /// The request waits for the commit.
    Waiting(oneshot::Sender<Written>),
    /// The request was answered (`queued`); if the guard fails, redo it.
    Answered(Box<Redo>),
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
    writers: Writers<Job>,
    ack: HeartbeatAck,
    /// False while the writers' batches fail: `queued` answers wait for
    /// the commit then, so a database outage is not acknowledged.
    healthy: Arc<AtomicBool>,
    /// The redo queue: its free places gate `queued` answers.
    redo_queue: mpsc::Sender<Box<Redo>>,
    /// The receiving end of the redo queue, until [`FastPath::take_redo`].
    redo: Mutex<Option<mpsc::Receiver<Box<Redo>>>>,
    metrics: HeartbeatMetrics,
}

/// What every heartbeat records, registered once: the `counter!` and
/// `histogram!` macros build the key and look it up in the registry on
/// every call.
struct HeartbeatMetrics {
    /// `hearth_heartbeat_fast_path_total` by outcome.
    queued: metrics::Counter,
    written: metrics::Counter,
    retry: metrics::Counter,
    queue_full: metrics::Counter,
    /// `hearth_heartbeat_duration_seconds`.
    duration: metrics::Histogram,
}

impl HeartbeatMetrics {
    fn register() -> Self {
        // Registered with no recorder installed, a handle would record
        // nothing for good: install it first (once per process).
        crate::metrics::handle();
        let outcome =
            |outcome: &'static str| metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => outcome);
        Self {
            queued: outcome("queued"),
            written: outcome("written"),
            retry: outcome("retry"),
            queue_full: outcome("queue_full"),
            duration: metrics::histogram!("hearth_heartbeat_duration_seconds"),
        }
    }
}

impl FastPath {
    /// Starts the writer on `store`. `capacity`: workspaces remembered at
    /// most (the rest take the locked path). The writer stops when the
    /// last `FastPath` handle is dropped.
    pub fn start(store: Arc<dyn Store>, capacity: usize, ack: HeartbeatAck) -> Arc<Self> {
        // One writer per connection of the store's liveness pool. One is
        // best on both engines: a batch queues while the previous one is
        // written, so batches grow with the load, and since Postgres commits
        // them asynchronously there is no WAL flush to overlap (four
        // writers: 14.5k heartbeats/s; one: 18.8k, BENCHMARKS.md).
        let writers = match store.engine() {
            hearth_store::Engine::Postgres => POSTGRES_WRITERS,
            hearth_store::Engine::Sqlite => 1,
        };
        let healthy = Arc::new(AtomicBool::new(true));
        let (redo_queue, redo) = mpsc::channel(QUEUE);
        let batches = {
            let healthy = healthy.clone();
            Writers::start(writers, QUEUE, |receiver| {
                write_batches(store.clone(), receiver, healthy.clone(), redo_queue.clone())
            })
        };
        Arc::new(Self {
            hot: crate::caches::holding(capacity),
            desired: DesiredCache::default(),
            writers: batches,
            ack,
            healthy,
            redo_queue,
            redo: Mutex::new(Some(redo)),
            metrics: HeartbeatMetrics::register(),
        })
    }

    /// Records a heartbeat's handling time (`hearth_heartbeat_duration_seconds`),
    /// on either path.
    pub fn record_duration(&self, elapsed: std::time::Duration) {
        self.metrics.duration.record(elapsed.as_secs_f64());
    }

    /// Answers `hb` without the row lock when the workspace is remembered,
    /// its desired state is still valid and `hb` decides like the heartbeat
    /// remembered; `Err(hb)` means: take the locked path.
    pub async fn try_heartbeat(
        &self,
        id: WorkspaceId,
        hb: Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<FastAnswer, Heartbeat> {
        let Some(hot) = self.hot.get(&id) else { return Err(hb) };
        if !hot.desired.is_valid() || hot.key != hb.decision_key() {
            return Err(hb);
        }
        let Some(write) = LivenessWrite::from_heartbeat(id, hot.version, hot.has_task, &hb, now) else {
            return Err(hb);
        };
        let queue = self.writers.queue(id);
        // `queued` answers at once only while the writer keeps up: its last
        // batch succeeded, less than one batch waits before this one, and
        // redos are not backing up.
        let early = self.ack == HeartbeatAck::Queued
            && self.healthy.load(Ordering::Acquire)
            && queue.max_capacity() - queue.capacity() < MAX_BATCH
            && self.redo_queue.capacity() >= REDO_HEADROOM;
        let Ok(place) = queue.try_reserve() else {
            // Back-pressure instead of an unbounded queue.
            self.metrics.queue_full.increment(1);
            tracing::debug!(workspace_id = %id, "heartbeat writer queue full; taking the locked path");
            return Err(hb);
        };
        let answer = FastAnswer { status: hot.status, desired: hot.desired.wire.clone() };
        if early {
            place.send(Job::Heartbeat { write, reply: Reply::Answered(Box::new(Redo { id, heartbeat: hb, at: now })) });
            self.metrics.queued.increment(1);
            return Ok(answer);
        }
        let (done, written) = oneshot::channel();
        place.send(Job::Heartbeat { write, reply: Reply::Waiting(done) });
        match written.await {
            Ok(Written::Yes) => {
                self.metrics.written.increment(1);
                Ok(answer)
            }
            Ok(Written::Retry) | Err(_) => {
                self.metrics.retry.increment(1);
                self.hot.remove(&id);
                Err(hb)
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

    /// The queue of heartbeats to decide again under the lock (once; the
    /// server's [`redo`] task takes it).
    pub fn take_redo(&self) -> Option<mpsc::Receiver<Box<Redo>>> {
        self.redo.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Returns once every heartbeat queued before the call is written (or
    /// its batch failed and it went to the redo queue).
    pub async fn flush(&self) {
        for queue in self.writers.all() {
            let (done, flushed) = oneshot::channel();
            if queue.send(Job::Flush(done)).await.is_ok() && flushed.await.is_err() {
                tracing::warn!("a heartbeat writer stopped before it flushed");
            }
        }
    }
}

/// Who is told how one workspace's write in a batch went: the requests
/// waiting for it, and the latest answered heartbeat to redo if it failed.
#[derive(Default)]
struct Told {
    waiters: Vec<oneshot::Sender<Written>>,
    redo: Option<Box<Redo>>,
}

/// The group-commit writer: takes what is queued (up to [`MAX_BATCH`]),
/// writes it in one statement, answers each heartbeat, repeats. Batches form
/// by themselves under load (while one is written the next queues); an
/// idle server writes a lone heartbeat at once.
async fn write_batches(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Job>,
    healthy: Arc<AtomicBool>,
    redo: mpsc::Sender<Box<Redo>>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A workspace twice in a batch: the later heartbeat's write wins and
        // both are told its outcome.
        let mut index: HashMap<WorkspaceId, usize> = HashMap::with_capacity(jobs.len());
        let mut writes: Vec<LivenessWrite> = Vec::with_capacity(jobs.len());
        let mut told: Vec<Told> = Vec::with_capacity(jobs.len());
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            let (write, reply) = match job {
                Job::Heartbeat { write, reply } => (write, reply),
                Job::Flush(done) => {
                    flushes.push(done);
                    continue;
                }
            };
            let i = match index.get(&write.id) {
                Some(&i) => {
                    writes[i] = write;
                    i
                }
                None => {
                    index.insert(write.id, writes.len());
                    writes.push(write);
                    told.push(Told::default());
                    writes.len() - 1
                }
            };
            match reply {
                Reply::Waiting(done) => told[i].waiters.push(done),
                Reply::Answered(answered) => told[i].redo = Some(answered),
            }
        }
        if !writes.is_empty() {
            write_batch(&*store, &writes, told, &healthy, &redo).await;
        }
        for done in flushes {
            // The flusher may have given up waiting; nothing to tell it then.
            let _gone = done.send(());
        }
    }
}

/// Writes one batch and tells each heartbeat's waiters, or queues its redo.
async fn write_batch(
    store: &dyn Store,
    writes: &[LivenessWrite],
    told: Vec<Told>,
    healthy: &AtomicBool,
    redo: &mpsc::Sender<Box<Redo>>,
) {
    metrics::histogram!("hearth_heartbeat_batch_size").record(writes.len() as f64);
    let written: std::collections::HashSet<WorkspaceId> = match store.write_liveness(writes).await {
        Ok(ids) => {
            healthy.store(true, Ordering::Release);
            ids.into_iter().collect()
        }
        Err(error) => {
            healthy.store(false, Ordering::Release);
            crate::lifecycle::count_store_error(&error);
            metrics::counter!("hearth_heartbeat_batch_errors_total").increment(1);
            tracing::warn!(%error, batch = writes.len(), "heartbeat batch failed; its heartbeats are decided under the lock");
            Default::default()
        }
    };
    for (write, told) in writes.iter().zip(told) {
        let ok = written.contains(&write.id);
        for waiter in told.waiters {
            // A waiter that is gone (its request was dropped) needs no
            // answer; the write stands either way.
            if waiter.send(if ok { Written::Yes } else { Written::Retry }).is_err() {
                tracing::debug!(workspace_id = %write.id, "heartbeat request gone before its batch committed");
            }
        }
        if let (false, Some(again)) = (ok, told.redo) {
            // Waits for room (the headroom makes that rare): the writer
            // slows down, `queued` answers stop, nothing is dropped.
            if redo.send(again).await.is_err() {
                metrics::counter!("hearth_heartbeat_redo_dropped_total").increment(1);
                tracing::error!(workspace_id = %write.id,
                    "an acknowledged heartbeat failed its batch after the redo task stopped: it is lost");
            }
        }
    }
}

/// Decides again, under the lock, the queued heartbeats whose batch write
/// failed (the guard: an operator or another replica changed the row
/// between the answer and the batch; or the batch failed), until `stop`;
/// then what is left in the queue. [`REDO_LANES`] at once, a workspace's
/// redos always on the same lane and in order. The server starts it with
/// [`FastPath::take_redo`]'s queue and stops it after [`FastPath::flush`].
pub async fn redo(state: AppState, mut queue: mpsc::Receiver<Box<Redo>>, mut stop: oneshot::Receiver<()>) {
    // Each lane holds a clone of `finished`: its receiver hears `None` once
    // every lane has ended.
    let (finished, mut all_finished) = mpsc::channel::<()>(1);
    let lanes = Writers::start(REDO_LANES, QUEUE, |mut lane: mpsc::Receiver<Box<Redo>>| {
        let (state, finished) = (state.clone(), finished.clone());
        async move {
            while let Some(again) = lane.recv().await {
                redo_one(&state, again).await;
            }
            drop(finished);
        }
    });
    drop(finished);
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            _ = &mut stop => break,
        };
        let Some(again) = next else { break };
        to_lane(&lanes, again).await;
    }
    // At shutdown: what is queued, within a bound (with the database down
    // each redo waits for its timeout, and a stop must not wait for all).
    let drain = async {
        while let Ok(again) = queue.try_recv() {
            to_lane(&lanes, again).await;
        }
        drop(lanes);
        while all_finished.recv().await.is_some() {}
    };
    if tokio::time::timeout(REDO_DRAIN, drain).await.is_err() {
        metrics::counter!("hearth_heartbeat_redo_dropped_total").increment(queue.len() as u64);
        tracing::error!(
            queued = queue.len(),
            "stopping: heartbeats to redo were still waiting after {REDO_DRAIN:?}; those acknowledged early may be lost"
        );
    }
}

async fn to_lane(lanes: &Writers<Box<Redo>>, again: Box<Redo>) {
    let id = again.id;
    if lanes.queue(id).send(again).await.is_err() {
        metrics::counter!("hearth_heartbeat_redo_dropped_total").increment(1);
        tracing::error!(workspace_id = %id, "a redo lane stopped: an acknowledged heartbeat is lost");
    }
}

async fn redo_one(state: &AppState, again: Box<Redo>) {
    let Redo { id, heartbeat, at } = *again;
    metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => "redo").increment(1);
    let outcome = match state.store.get_workspace(id).await {
        // A later heartbeat of the workspace is stored: this one is
        // superseded (and must not overwrite what that one reported).
        Ok(row) if row.last_heartbeat_at.is_some_and(|last| last >= at) => return,
        // Decided at its own time, so a later heartbeat's redo still sees
        // this one as older. (A later heartbeat that commits between this
        // read and the redo is overwritten by this older one's columns,
        // milliseconds older: a window as rare as the redo itself.)
        Ok(_) => crate::routes::registry::locked_heartbeat(state, id, heartbeat, at).await.map(|_| ()),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => {}
        // Removed meanwhile, or the state machine refuses a heartbeat now:
        // what the runtime's next heartbeat hears too.
        Err(error @ (StoreError::NotFound(_) | StoreError::Rejected(_))) => {
            tracing::debug!(workspace_id = %id, %error, "an acknowledged heartbeat redone under the lock was refused");
        }
        Err(error) => {
            crate::lifecycle::count_store_error(&error);
            metrics::counter!("hearth_heartbeat_redo_errors_total").increment(1);
            tracing::warn!(workspace_id = %id, %error, "an acknowledged heartbeat could not be redone under the lock: it is lost");
        }
    }
}
