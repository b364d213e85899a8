//! The group-commit writer of plain heartbeats: a batch is one statement,
//! and every request of the batch waits on one commit (or, with
//! `--heartbeat-ack queued`, only on the queue).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hearth_core::WorkspaceId;
use hearth_store::{LivenessWrite, Store};
use tokio::sync::{mpsc, oneshot};

use super::redo::Redo;

/// Heartbeats the writer takes into one batch at most.
pub const MAX_HEARTBEATS: usize = 1000;
/// Heartbeats waiting for the writers at most; past it a heartbeat takes the
/// locked path (back-pressure instead of an unbounded queue).
pub const HEARTBEAT_QUEUE: usize = 16 * MAX_HEARTBEATS;

/// What the writers take from their queues.
pub(super) enum Job {
    Heartbeat {
        write: LivenessWrite,
        reply: Reply,
    },
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

pub(super) enum Reply {
    /// The request waits for the commit.
    Waiting(oneshot::Sender<Outcome>),
    /// The request was answered (`queued`); if the guard fails, redo it.
    Answered(Box<Redo>),
}

/// What the writer did with one heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Committed.
    Yes,
    /// The guard failed or the batch failed: decide under the lock.
    Retry,
}

/// Who is told how one workspace's write in a batch went: the requests
/// waiting for it, and the latest answered heartbeat to redo if it failed.
#[derive(Default)]
struct Waiters {
    waiters: Vec<oneshot::Sender<Outcome>>,
    redo: Option<Box<Redo>>,
}

/// The group-commit writer: takes what is queued (up to [`MAX_HEARTBEATS`]),
/// writes it in one statement, answers each heartbeat, repeats. Batches form
/// by themselves under load (while one is written the next queues); an
/// idle server writes a lone heartbeat at once.
pub(super) async fn write_batches(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Job>,
    healthy: Arc<AtomicBool>,
    redo: mpsc::Sender<Box<Redo>>,
) {
    let mut jobs = Vec::with_capacity(MAX_HEARTBEATS);
    while receiver.recv_many(&mut jobs, MAX_HEARTBEATS).await > 0 {
        // A workspace twice in a batch: the later heartbeat's write wins and
        // both are told its outcome.
        let mut index: HashMap<WorkspaceId, usize> = HashMap::with_capacity(jobs.len());
        let mut writes: Vec<LivenessWrite> = Vec::with_capacity(jobs.len());
        let mut told: Vec<Waiters> = Vec::with_capacity(jobs.len());
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
                    told.push(Waiters::default());
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
    told: Vec<Waiters>,
    healthy: &AtomicBool,
    redo: &mpsc::Sender<Box<Redo>>,
) {
    metrics::histogram!("hearth_heartbeat_batch_size").record(writes.len() as f64);
    let written: HashSet<WorkspaceId> = match store.write_liveness(writes).await {
        Ok(ids) => {
            healthy.store(true, Ordering::Release);
            ids.into_iter().collect()
        }
        Err(error) => {
            healthy.store(false, Ordering::Release);
            crate::metrics::store_error(&error);
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
            if waiter.send(if ok { Outcome::Yes } else { Outcome::Retry }).is_err() {
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
