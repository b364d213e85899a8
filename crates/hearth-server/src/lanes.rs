//! Background writers fed by bounded queues, one workspace always on the
//! same writer (so two batches in flight never touch the same row, and a
//! workspace's inputs keep their order): the heartbeat batch writers
//! (`heartbeat/batch.rs`), the redo lanes (`heartbeat/redo.rs`) and the
//! transition writers (`transitions.rs`).

use std::future::Future;

use hearth_core::WorkspaceId;
use tokio::sync::mpsc;

/// The queues of `count` writers, `capacity` places in all; each writer is
/// `run` on its queue's receiving end, spawned now, and stops when its
/// queue's last sender is dropped.
pub struct Lanes<T> {
    queues: Vec<mpsc::Sender<T>>,
}

impl<T: Send + 'static> Lanes<T> {
    pub fn start<F, Fut>(count: usize, capacity: usize, run: F) -> Self
    where
        F: Fn(mpsc::Receiver<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let count = count.max(1);
        let queues = (0..count)
            .map(|_| {
                let (queue, receiver) = mpsc::channel((capacity / count).max(1));
                tokio::spawn(run(receiver));
                queue
            })
            .collect();
        Self { queues }
    }

    /// The queue of the writer that handles `id`.
    pub fn queue(&self, id: WorkspaceId) -> &mpsc::Sender<T> {
        &self.queues[(id.0.as_u128() % self.queues.len() as u128) as usize]
    }

    /// Every writer's queue.
    pub fn all(&self) -> &[mpsc::Sender<T>] {
        &self.queues
    }
}
