//! The lifecycle operations, free of HTTP: apply an input, delete a
//! workspace with its descendants, update an agent card, sweep. Each returns
//! store errors; handlers convert them at the edge, background loops log and
//! count them. After every write: transitions are counted and logged with the
//! workspace id, and event-stream subscribers are woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_core::{Input, WorkspaceId, WorkspaceStatus};
use hearth_store::{Applied, Bootstrap, Deleted, Event, Store, StoreError, StoreResult, Sweep};
use tokio::sync::{mpsc, oneshot};

use crate::bus::EventBus;
use crate::lanes::Lanes;

/// What one sweep changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub offline: usize,
    pub failed: usize,
    pub hibernated: usize,
    pub errors: usize,
}

#[derive(Clone)]
pub struct Transitions {
    store: Arc<dyn Store>,
    bus: EventBus,
    /// The transition writers ([`apply_batches`]); a workspace always goes
    /// to the same one, so its inputs keep their order.
    writers: Arc<Lanes<Pending>>,
    /// Forgets the workspaces a change other than a heartbeat touched, so
    /// this server's next heartbeat of each is decided on the new row.
    forget: Arc<dyn Forget>,
}

/// What remembers workspaces between heartbeats (the heartbeat path's
/// memory, `heartbeat/remembered.rs`): told of every change made under the
/// lock other than a heartbeat.
pub trait Forget: Send + Sync {
    fn forget(&self, id: WorkspaceId);
}

/// Transition writers on Postgres. A batch is a handful of statements
/// whatever its size (its rows locked, written and their events appended
/// set-wise), and holds the event counter from its append to its commit.
/// Measured with a fleet coming online together (BENCHMARKS.md, "Fleet
/// recovery", round two): three writers overlapped one batch's commit with
/// another's writes and won at 256–512 concurrent runtimes while the
/// grouped token lookup was slow, but cost a third at 32 (1,767/s against
/// 2,515/s with one: three commits for one's work); with the lookup fixed,
/// one and two were within the noise at 512. One, then: never worse than
/// before for a small fleet. SQLite has one writer connection anyway.
const POSTGRES_TRANSITION_WRITERS: usize = 1;

/// Inputs the transition writer applies in one transaction at most.
const MAX_INPUTS: usize = 1024;
/// Inputs waiting for the transition writer at most; past it an input is
/// applied in a transaction of its own (back-pressure, not a longer queue).
const INPUT_QUEUE: usize = 4 * MAX_INPUTS;

/// An input waiting for the transition writer, and who waits for it.
struct Pending {
    id: WorkspaceId,
    input: Input,
    now: DateTime<Utc>,
    done: oneshot::Sender<StoreResult<Applied>>,
}

impl Transitions {
    /// Also starts the transition writers (they stop when the last
    /// `Transitions` is dropped).
    pub fn new(store: Arc<dyn Store>, bus: EventBus, forget: Arc<dyn Forget>) -> Self {
        let writers = match store.engine() {
            hearth_store::Engine::Postgres => POSTGRES_TRANSITION_WRITERS,
            hearth_store::Engine::Sqlite => 1,
        };
        let writers = Arc::new(Lanes::start(writers, INPUT_QUEUE, |receiver| apply_batches(store.clone(), receiver)));
        Self { store, bus, writers, forget }
    }

    /// Applies a lifecycle input: the store decides and persists atomically;
    /// then the transition is counted and subscribers are woken. Inputs go
    /// to the transition writer, which applies what is waiting in one
    /// transaction ([`Store::apply_batch`]): every transaction that writes
    /// events holds the event counter's lock until it commits, so one
    /// transaction for many inputs is many transitions for one wait.
    pub async fn apply(&self, id: WorkspaceId, input: Input) -> StoreResult<Applied> {
        self.apply_at(id, input, Utc::now()).await
    }

    /// An operator's input that may start a runtime (resume, restart),
    /// within its org's `running` quota ([`Store::apply_starting`]), in a
    /// transaction of its own under the org's lock.
    pub async fn apply_starting(&self, id: WorkspaceId, input: Input) -> StoreResult<Applied> {
        let name = input.name();
        let applied = self.store.apply_starting(id, input, Utc::now()).await?;
        Ok(self.after(id, name, false, applied))
    }

    /// The bootstrap, a register that mints the workspace's first token
    /// ([`Store::register_minting`]), in a transaction of its own: refused
    /// with [`StoreError::BootstrapRefused`] unless the workspace never had
    /// a token, is `provisioning` and was created after
    /// `bootstrap.created_after`.
    pub async fn register_minting(&self, id: WorkspaceId, bootstrap: Bootstrap) -> StoreResult<Applied> {
        let applied = self.store.register_minting(id, bootstrap, Utc::now()).await?;
        Ok(self.after(id, "register", false, applied))
    }

    /// [`Transitions::apply`] decided at `now`: a
    /// heartbeat redone after it was answered is decided at the moment it
    /// was received (`heartbeat::redo`).
    pub async fn apply_at(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied> {
        let name = input.name();
        let heartbeat = matches!(input, Input::Heartbeat(_));
        let applied = self.apply_grouped(id, input, now).await?;
        Ok(self.after(id, name, heartbeat, applied))
    }

    /// After a write: forget the workspace on the heartbeat path (unless a
    /// heartbeat wrote it), count and log a transition, wake subscribers.
    fn after(&self, id: WorkspaceId, input_name: &'static str, heartbeat: bool, applied: Applied) -> Applied {
        if !heartbeat {
            self.forget.forget(id);
        }
        if applied.previous != applied.workspace.status {
            let (from, to) = (applied.previous.as_str(), applied.workspace.status.as_str());
            metrics::counter!("hearth_transitions_total", "from" => from, "to" => to).increment(1);
            tracing::info!(workspace_id = %id, from, to, input = input_name, "workspace transition");
        }
        self.bus.published(&applied.events);
        applied
    }

    /// `input` through the transition writer, or on its own when the
    /// writer's queue is full.
    async fn apply_grouped(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied> {
        let (done, answer) = oneshot::channel();
        if let Err(refused) = self.writers.queue(id).try_send(Pending { id, input, now, done }) {
            metrics::counter!("hearth_transition_queue_full_total").increment(1);
            let Pending { id, input, now, .. } = refused.into_inner();
            return self.store.apply(id, input, now).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable { operation: "apply", message: "the transition writer stopped".into() })
        })
    }

    /// Deletes a workspace and its descendants (idempotent), as `by`.
    pub async fn delete(&self, id: WorkspaceId, by: hearth_core::By) -> StoreResult<Deleted> {
        let deleted = self.store.delete_workspace(id, by, Utc::now()).await?;
        for removed in &deleted.removed {
            self.forget.forget(*removed);
            metrics::counter!("hearth_transitions_total", "from" => "any", "to" => "removed").increment(1);
            tracing::info!(workspace_id = %removed, "workspace removed");
        }
        self.bus.published(&deleted.events);
        Ok(deleted)
    }

    /// Replaces a workspace's agent card (`AGENT_CARD_UPDATED`); `None`
    /// when the card was already that one (nothing written).
    pub async fn update_agent_card(&self, id: WorkspaceId, card: serde_json::Value) -> StoreResult<Option<Event>> {
        let event = self.store.update_agent_card(id, card, Utc::now()).await?;
        if let Some(event) = &event {
            self.forget.forget(id);
            self.bus.published(std::slice::from_ref(event));
        }
        Ok(event)
    }

    /// One sweep batch of `kind` over workspaces whose reference time is
    /// older than `age`, at most `limit` of them, set-based: candidates,
    /// transitions and events in one transaction ([`Store::sweep`]). Rows
    /// another replica is sweeping are skipped, so replicas may sweep at
    /// once and never double a transition.
    pub async fn sweep(
        &self,
        kind: Sweep,
        age: Duration,
        limit: i64,
        context: hearth_core::SweepContext,
    ) -> StoreResult<SweepReport> {
        let (label, age) = sweep_started(kind, age);
        let applied = self.store.sweep(kind, age, Utc::now(), limit, context).await?;
        Ok(self.swept(label, applied))
    }

    /// One sweep batch of `kind` over the workspaces `ids` (found by
    /// [`Store::liveness_due`]), each re-decided under its row lock
    /// ([`Store::sweep_these`]); otherwise as [`Transitions::sweep`].
    pub async fn sweep_these(
        &self,
        kind: Sweep,
        ids: &[WorkspaceId],
        age: Duration,
        context: hearth_core::SweepContext,
    ) -> StoreResult<SweepReport> {
        let (label, age) = sweep_started(kind, age);
        let applied = self.store.sweep_these(kind, ids, age, Utc::now(), context).await?;
        Ok(self.swept(label, applied))
    }

    /// After a sweep batch: each transition counted, logged, forgotten on
    /// the heartbeat path and published.
    fn swept(&self, label: &'static str, applied: Vec<Applied>) -> SweepReport {
        let mut report = SweepReport::default();
        for one in applied {
            let (from, to) = (one.previous.as_str(), one.workspace.status.as_str());
            metrics::counter!("hearth_transitions_total", "from" => from, "to" => to).increment(1);
            tracing::info!(workspace_id = %one.workspace.id, from, to, sweep = label, "workspace transition");
            self.forget.forget(one.workspace.id);
            self.bus.published(&one.events);
            match one.workspace.status {
                WorkspaceStatus::Offline => report.offline += 1,
                WorkspaceStatus::Failed => report.failed += 1,
                WorkspaceStatus::Hibernated => report.hibernated += 1,
                _ => {}
            }
        }
        report
    }
}

/// The transition writer: takes what is queued (up to [`MAX_INPUTS`]),
/// applies it in one transaction, answers each input, repeats. Batches form
/// by themselves under load; an idle server applies a lone input at once.
/// If a batch fails as a whole (a database error, a deadlock with another
/// writer), each of its inputs is applied again on its own, so each gets
/// its own outcome.
async fn apply_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut pending = Vec::with_capacity(MAX_INPUTS);
    while receiver.recv_many(&mut pending, MAX_INPUTS).await > 0 {
        metrics::histogram!("hearth_transition_batch_size").record(pending.len() as f64);
        let batch = pending.iter().map(|p| (p.id, p.input.clone(), p.now)).collect();
        match store.apply_batch(batch).await {
            Ok(outcomes) => {
                for (waiter, outcome) in pending.drain(..).zip(outcomes) {
                    answer(waiter.done, waiter.id, outcome);
                }
            }
            Err(error) if pending.len() == 1 => {
                if let Some(Pending { id, done, .. }) = pending.pop() {
                    answer(done, id, Err(error));
                }
            }
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(%error, batch = pending.len(), "transition batch failed; applying its inputs one by one");
                for Pending { id, input, now, done } in pending.drain(..) {
                    answer(done, id, store.apply(id, input, now).await);
                }
            }
        }
    }
}

/// Sends an input's outcome to whoever waits for it.
fn answer(done: oneshot::Sender<StoreResult<Applied>>, id: WorkspaceId, outcome: StoreResult<Applied>) {
    // A waiter that is gone (its request was dropped) needs no answer; what
    // was written stands either way.
    if done.send(outcome).is_err() {
        tracing::debug!(workspace_id = %id, "request gone before its transition batch committed");
    }
}

/// A sweep batch begins: counted, and its age as the store takes it.
fn sweep_started(kind: Sweep, age: Duration) -> (&'static str, chrono::Duration) {
    let label = sweep_label(kind);
    metrics::counter!("hearth_sweeps_total", "sweep" => label).increment(1);
    (label, chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX))
}

pub fn sweep_label(kind: Sweep) -> &'static str {
    match kind {
        Sweep::Liveness => "liveness",
        Sweep::ProvisionTimeout => "provision_timeout",
        Sweep::Idle => "idle",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

    use std::sync::Arc;

    use chrono::Utc;
    use hearth_core::heartbeat::RawHeartbeat;
    use hearth_core::{Heartbeat, Input, WorkspaceStatus};
    use hearth_store::conformance::create;
    use hearth_store::{Store, StoreError};
    use tokio::sync::{mpsc, oneshot};

    use super::{apply_batches, Pending};

    fn heartbeat(task: &str) -> Input {
        let raw = RawHeartbeat { active_tasks: Some(0), current_task: Some(task.into()), ..Default::default() };
        Input::Heartbeat(Heartbeat::validate(raw).unwrap())
    }

    /// A real fault, not a mock: Postgres refuses a NUL in text, so a batch
    /// holding one such input fails as a whole. The transition writer then
    /// applies each input on its own: the others are written, and only the
    /// bad one gets the error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_fails_as_a_whole_is_applied_again_input_by_input() {
        let (store, _db) = hearth_store_pg::testing::fresh_store().await;
        let store: Arc<dyn Store> = Arc::new(store);
        let (first, bad, last) =
            (create(&*store, "first").await, create(&*store, "bad").await, create(&*store, "last").await);
        let inputs = [(first, heartbeat("crawl")), (bad, heartbeat("nul\0in text")), (last, heartbeat("crawl"))];

        let together = inputs.iter().map(|(id, input)| (*id, input.clone(), Utc::now())).collect();
        let failed = store.apply_batch(together).await;
        assert!(matches!(failed, Err(StoreError::InvalidInput(_))), "the batch fails as a whole: {failed:?}");

        // All three wait in the writer's queue before it runs: one batch.
        let (queue, receiver) = mpsc::channel(8);
        let mut answers = Vec::new();
        for (id, input) in inputs {
            let (done, answer) = oneshot::channel();
            queue.send(Pending { id, input, now: Utc::now(), done }).await.unwrap();
            answers.push(answer);
        }
        drop(queue);
        apply_batches(store.clone(), receiver).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("every input is answered"));
        }
        for (i, id) in [(0, first), (2, last)] {
            let applied = outcomes[i].as_ref().unwrap_or_else(|e| panic!("input {i} failed: {e}"));
            assert_eq!(applied.workspace.status, WorkspaceStatus::Online);
            assert_eq!(store.get_workspace(id).await.unwrap().current_task.as_deref(), Some("crawl"));
        }
        assert!(matches!(outcomes[1], Err(StoreError::InvalidInput(_))), "{:?}", outcomes[1]);
        let untouched = store.get_workspace(bad).await.unwrap();
        assert_eq!(untouched.status, WorkspaceStatus::Provisioning, "nothing of the bad input is written");
    }
}
