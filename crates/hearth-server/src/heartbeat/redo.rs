//! Heartbeats answered early (`--heartbeat-ack queued`) whose batch write
//! failed are decided again under the lock, in order per workspace.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_core::{Heartbeat, WorkspaceId};
use hearth_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use super::batch::HEARTBEAT_QUEUE;
use super::Heartbeats;
use crate::lanes::Lanes;

/// Redos in flight at once, each lane one workspace's redos in order: they
/// go through the transition writers, which group-commit them.
const REDO_LANES: usize = 32;
/// How long a stopping server keeps redoing what is queued.
const REDO_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A queued heartbeat, answered before its batch committed, whose guard
/// failed: [`redo`] decides it under the lock.
pub struct Redo {
    pub id: WorkspaceId,
    pub heartbeat: Heartbeat,
    /// When it was answered.
    pub at: DateTime<Utc>,
}

/// Decides again, under the lock, the queued heartbeats whose batch write
/// failed (the guard: an operator or another replica changed the row
/// between the answer and the batch; or the batch failed), until `stop`;
/// then what is left in the queue. [`REDO_LANES`] at once, a workspace's
/// redos always on the same lane and in order. The server starts it with
/// [`Heartbeats::take_redo`]'s queue and stops it after [`Heartbeats::flush`].
pub async fn redo(heartbeats: Arc<Heartbeats>, mut queue: mpsc::Receiver<Box<Redo>>, mut stop: oneshot::Receiver<()>) {
    // Each lane holds a clone of `finished`: its receiver hears `None` once
    // every lane has ended.
    let (finished, mut all_finished) = mpsc::channel::<()>(1);
    let lanes = Lanes::start(REDO_LANES, HEARTBEAT_QUEUE, |mut lane: mpsc::Receiver<Box<Redo>>| {
        let (heartbeats, finished) = (heartbeats.clone(), finished.clone());
        async move {
            while let Some(again) = lane.recv().await {
                redo_one(&heartbeats, again).await;
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

async fn to_lane(lanes: &Lanes<Box<Redo>>, again: Box<Redo>) {
    let id = again.id;
    if lanes.queue(id).send(again).await.is_err() {
        metrics::counter!("hearth_heartbeat_redo_dropped_total").increment(1);
        tracing::error!(workspace_id = %id, "a redo lane stopped: an acknowledged heartbeat is lost");
    }
}

async fn redo_one(heartbeats: &Heartbeats, again: Box<Redo>) {
    let Redo { id, heartbeat, at } = *again;
    metrics::counter!("hearth_heartbeat_fast_path_total", "outcome" => "redo").increment(1);
    let outcome = match heartbeats.store.get_workspace(id).await {
        // A later heartbeat of the workspace is stored: this one is
        // superseded (and must not overwrite what that one reported).
        Ok(row) if row.last_heartbeat_at.is_some_and(|last| last >= at) => return,
        // Decided at its own time, so a later heartbeat's redo still sees
        // this one as older. (A later heartbeat that commits between this
        // read and the redo is overwritten by this older one's columns,
        // milliseconds older: a window as rare as the redo itself.)
        Ok(_) => heartbeats.locked(id, heartbeat, at).await.map(|_| ()),
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
            crate::metrics::store_error(&error);
            metrics::counter!("hearth_heartbeat_redo_errors_total").increment(1);
            tracing::warn!(workspace_id = %id, %error, "an acknowledged heartbeat could not be redone under the lock: it is lost");
        }
    }
}
