//! The heartbeat path: a runtime's heartbeat is answered from memory and
//! written by the group-commit writer when it decides like the last one
//! (the fast path), and decided under the row lock otherwise (the locked
//! path). A steady heartbeat costs no database round trip of its own. It is authenticated from the token cache (`auth/cache.rs`), its
//! desired state comes from memory, and its liveness columns go to the
//! group-commit writer, which writes a whole batch in one statement.
//!
//! When may a heartbeat skip the row lock? When the locked path would only
//! rewrite liveness columns. After every locked heartbeat the server runs
//! the pure state machine once more on the row it just wrote, with the same
//! heartbeat: if that second run changes liveness columns only and emits no
//! event, the row is a fixpoint for heartbeats with the same
//! [`Heartbeat::decision_key`] and desired state, and the server remembers
//! (row version, status, key, desired state) for the workspace
//! ([`Remembered`]).
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
//!   re-decided under the lock afterwards ([`redo()`]), unless a later
//!   heartbeat of the workspace is stored already. Its answer was given
//!   from memory: a change made through this server forgets the workspace
//!   at once, but one made through another replica reaches the runtime one
//!   heartbeat later than with `committed`.
//!
//! On Postgres the batch's commit is asynchronous
//! (`hearth_store_pg::liveness_pool`): it reaches the disk within
//! 3 × `wal_writer_delay` (600 ms by default): a plain heartbeat is
//! durable within a second; a crash of Postgres itself may lose the last
//! such batches, never a transition. SQLite runs in WAL mode with
//! `synchronous = NORMAL` for every write alike. Heartbeats that change
//! status or any other decision input take the locked path and commit
//! synchronously with their events, in both modes.

//!
//! The module: `remembered.rs` (what the fast path remembers), `batch.rs`
//! (the group-commit writer), `redo.rs` (queued answers whose write
//! failed), and here [`Heartbeats`], which ties them to the locked path
//! ([`Transitions`]).

mod batch;
mod redo;
mod remembered;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hearth_core::reconcile::DesiredState;
use hearth_core::{Heartbeat, Input, WorkspaceId, WorkspaceStatus};
use hearth_store::{LivenessWrite, Store, StoreResult, Workspace};
use tokio::sync::{mpsc, oneshot};

use crate::config::HeartbeatAck;
use crate::grouped::{Grouped, Read};
use crate::lanes::Lanes;
use crate::transitions::{Forget, Transitions};
use batch::{Job, Outcome, Reply, HEARTBEAT_QUEUE, MAX_HEARTBEATS};

pub use redo::{redo, Redo};
pub use remembered::{DesiredCache, Remembered};

/// Free places the redo queue must have for `queued` to answer early: more
/// than the heartbeats that can be answered and not yet written (one batch
/// being written, less than one waiting), so a failed batch always finds
/// room and no acknowledged heartbeat is dropped.
const REDO_HEADROOM: usize = 4 * MAX_HEARTBEATS;

/// The heartbeat path of one server: the locked path's store and
/// transitions, what the fast path remembers, and the group-commit
/// writer's queues.
pub struct Heartbeats {
    store: Arc<dyn Store>,
    transitions: Transitions,
    remembered: Arc<Remembered>,
    /// The group-commit writers; a workspace always goes to the same one,
    /// so two batches in flight never touch the same row (no lock waits, no
    /// deadlock between writers).
    writers: Lanes<Job>,
    ack: HeartbeatAck,
    /// False while the writers' batches fail: `queued` answers wait for
    /// the commit then, so a database outage is not acknowledged.
    healthy: Arc<AtomicBool>,
    /// The redo queue: its free places gate `queued` answers.
    redo_queue: mpsc::Sender<Box<Redo>>,
    /// The receiving end of the redo queue, until [`Heartbeats::take_redo`].
    redo: Mutex<Option<mpsc::Receiver<Box<Redo>>>>,
    /// The desired states of locked heartbeats, many per query
    /// ([`crate::grouped`]): a fleet coming online together reads them
    /// per batch, not per request.
    desired_reads: Grouped<WorkspaceId, DesiredState>,
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

impl Heartbeats {
    /// Starts the group-commit writers on `store`, one per connection the
    /// store writes heartbeat batches on ([`Store::liveness_writers`]).
    /// One is best on both engines: a batch queues while the previous one
    /// is written, so batches grow with the load, and since Postgres
    /// commits them asynchronously there is no WAL flush to overlap (see
    /// BENCHMARKS.md, "Heartbeat ingest"). The writers stop when the last
    /// handle is dropped.
    pub fn start(
        store: Arc<dyn Store>,
        transitions: Transitions,
        remembered: Arc<Remembered>,
        ack: HeartbeatAck,
    ) -> Arc<Self> {
        let healthy = Arc::new(AtomicBool::new(true));
        let (redo_queue, redo) = mpsc::channel(HEARTBEAT_QUEUE);
        let writers = {
            let (store, healthy, redo_queue) = (store.clone(), healthy.clone(), redo_queue.clone());
            Lanes::start(store.liveness_writers(), HEARTBEAT_QUEUE, move |receiver| {
                batch::write_batches(store.clone(), receiver, healthy.clone(), redo_queue.clone())
            })
        };
        let desired_reads = {
            let store = store.clone();
            Grouped::start("desired_state", move |ids: Vec<WorkspaceId>| {
                let store = store.clone();
                async move { store.desired_states_for_workspaces(&ids).await }
            })
        };
        Arc::new(Self {
            store,
            desired_reads,
            transitions,
            remembered,
            writers,
            ack,
            healthy,
            redo_queue,
            redo: Mutex::new(Some(redo)),
            metrics: HeartbeatMetrics::register(),
        })
    }

    /// Handles a runtime's (authenticated, validated) heartbeat received
    /// at `now`: from memory when it decides like the last one, under the
    /// lock otherwise. Returns the workspace's status and desired state.
    pub async fn handle(
        &self,
        id: WorkspaceId,
        heartbeat: Heartbeat,
        now: DateTime<Utc>,
    ) -> StoreResult<(WorkspaceStatus, hearth_api::Desired)> {
        match self.fast(id, heartbeat, now).await {
            Ok(answer) => Ok(answer),
            Err(heartbeat) => {
                let (row, desired) = self.locked(id, heartbeat, now).await?;
                Ok((row.status, hearth_api::Desired::from(&desired)))
            }
        }
    }

    /// Records a heartbeat's handling time (`hearth_heartbeat_duration_seconds`),
    /// on either path.
    pub fn record_duration(&self, elapsed: std::time::Duration) {
        self.metrics.duration.record(elapsed.as_secs_f64());
    }

    /// A heartbeat on the locked path: the desired state is read (one
    /// query, shared with the other locked heartbeats waiting for one)
    /// before the transaction; a template change that lands in
    /// between is picked up by the next heartbeat (the epoch keeps it from
    /// being remembered). Afterwards the workspace is remembered if its row
    /// is a fixpoint for heartbeats like this one. `at`: when it was
    /// received.
    pub async fn locked(
        &self,
        id: WorkspaceId,
        mut heartbeat: Heartbeat,
        at: DateTime<Utc>,
    ) -> StoreResult<(Workspace, DesiredState)> {
        let epochs = self.remembered.epochs();
        let desired = match self.desired_reads.get(id).await {
            Read::Found(Some(desired)) => desired,
            Read::Found(None) => return Err(hearth_store::StoreError::NotFound("workspace")),
            Read::Alone => self.store.desired_state_for_workspace(id).await?,
        };
        heartbeat.desired = Some(desired.clone());
        let remembered = heartbeat.clone();
        let applied = self.transitions.apply_at(id, Input::Heartbeat(heartbeat), at).await?;
        self.remembered.remember(&applied.workspace, remembered, &desired, epochs, Utc::now());
        Ok((applied.workspace, desired))
    }

    /// Answers `hb` without the row lock when the workspace is remembered,
    /// its desired state is still valid and `hb` decides like the heartbeat
    /// remembered; `Err(hb)` means: take the locked path.
    async fn fast(
        &self,
        id: WorkspaceId,
        hb: Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<(WorkspaceStatus, hearth_api::Desired), Heartbeat> {
        let Some(hot) = self.remembered.get(&id) else { return Err(hb) };
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
            && queue.max_capacity() - queue.capacity() < MAX_HEARTBEATS
            && self.redo_queue.capacity() >= REDO_HEADROOM;
        let Ok(place) = queue.try_reserve() else {
            // Back-pressure instead of an unbounded queue.
            self.metrics.queue_full.increment(1);
            tracing::debug!(workspace_id = %id, "heartbeat writer queue full; taking the locked path");
            return Err(hb);
        };
        let answer = (hot.status, hot.desired.wire.clone());
        if early {
            place.send(Job::Heartbeat { write, reply: Reply::Answered(Box::new(Redo { id, heartbeat: hb, at: now })) });
            self.metrics.queued.increment(1);
            return Ok(answer);
        }
        let (done, written) = oneshot::channel();
        place.send(Job::Heartbeat { write, reply: Reply::Waiting(done) });
        match written.await {
            Ok(Outcome::Yes) => {
                self.metrics.written.increment(1);
                Ok(answer)
            }
            Ok(Outcome::Retry) | Err(_) => {
                self.metrics.retry.increment(1);
                self.remembered.forget(id);
                Err(hb)
            }
        }
    }

    /// Workspaces remembered now.
    pub fn remembered(&self) -> usize {
        self.remembered.len()
    }

    /// The desired states the remembered workspaces share (a template or
    /// plugin change invalidates them).
    pub fn desired(&self) -> &DesiredCache {
        &self.remembered.desired
    }

    /// Forgets a workspace (its tokens changed, or it was removed).
    pub fn forget(&self, id: WorkspaceId) {
        self.remembered.forget(id);
    }

    /// The queue of heartbeats to decide again under the lock (once; the
    /// server's [`redo()`] task takes it).
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
