//! The lifecycle operations, free of HTTP: apply an input, delete a
//! workspace with its descendants, update an agent card, sweep. Each returns
//! store errors; handlers convert them at the edge, background loops log and
//! count them. After every write: transitions are counted and logged with the
//! workspace id, and event-stream subscribers are woken.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hearth_core::{Input, WorkspaceId, WorkspaceStatus};
use hearth_store::{Applied, Deleted, Event, NewToken, Store, StoreError, StoreResult, Sweep};

use crate::bus::EventBus;

/// What one sweep changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub offline: usize,
    pub failed: usize,
    pub hibernated: usize,
    pub errors: usize,
}

#[derive(Clone)]
pub struct Lifecycle {
    store: Arc<dyn Store>,
    bus: EventBus,
}

impl Lifecycle {
    pub fn new(store: Arc<dyn Store>, bus: EventBus) -> Self {
        Self { store, bus }
    }

    /// Applies a lifecycle input: the store decides and persists atomically;
    /// then the transition is counted and subscribers are woken.
    pub async fn apply(&self, id: WorkspaceId, input: Input, bootstrap: Option<NewToken>) -> StoreResult<Applied> {
        let input_name = input.name();
        let applied = self.store.apply(id, input, Utc::now(), bootstrap).await?;
        if applied.previous != applied.workspace.status {
            let (from, to) = (applied.previous.as_str(), applied.workspace.status.as_str());
            metrics::counter!("hearth_transitions_total", "from" => from, "to" => to).increment(1);
            tracing::info!(workspace_id = %id, from, to, input = input_name, "workspace transition");
        }
        self.bus.published(&applied.events);
        Ok(applied)
    }

    /// Deletes a workspace and its descendants (idempotent).
    pub async fn delete(&self, id: WorkspaceId) -> StoreResult<Deleted> {
        let deleted = self.store.delete_workspace(id, Utc::now()).await?;
        for removed in &deleted.removed {
            metrics::counter!("hearth_transitions_total", "from" => "any", "to" => "removed").increment(1);
            tracing::info!(workspace_id = %removed, "workspace removed");
        }
        self.bus.published(&deleted.events);
        Ok(deleted)
    }

    /// Replaces a workspace's agent card (`AGENT_CARD_UPDATED`).
    pub async fn update_agent_card(&self, id: WorkspaceId, card: serde_json::Value) -> StoreResult<Event> {
        let event = self.store.update_agent_card(id, card, Utc::now()).await?;
        self.bus.published(std::slice::from_ref(&event));
        Ok(event)
    }

    /// One sweep batch of `kind` over workspaces whose reference time is
    /// older than `age`, at most `limit` of them, set-based: candidates,
    /// transitions and events in one transaction ([`Store::sweep`]). Rows
    /// another replica is sweeping are skipped, so replicas may sweep at
    /// once and never double a transition.
    pub async fn sweep(&self, kind: Sweep, age: Duration, limit: i64) -> StoreResult<SweepReport> {
        let label = sweep_label(kind);
        metrics::counter!("hearth_sweeps_total", "sweep" => label).increment(1);
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let applied = self.store.sweep(kind, age, Utc::now(), limit).await?;
        let mut report = SweepReport::default();
        for one in applied {
            let (from, to) = (one.previous.as_str(), one.workspace.status.as_str());
            metrics::counter!("hearth_transitions_total", "from" => from, "to" => to).increment(1);
            tracing::info!(workspace_id = %one.workspace.id, from, to, sweep = label, "workspace transition");
            self.bus.published(&one.events);
            match one.workspace.status {
                WorkspaceStatus::Offline => report.offline += 1,
                WorkspaceStatus::Failed => report.failed += 1,
                WorkspaceStatus::Hibernated => report.hibernated += 1,
                _ => {}
            }
        }
        Ok(report)
    }
}

pub fn sweep_label(kind: Sweep) -> &'static str {
    match kind {
        Sweep::Liveness => "liveness",
        Sweep::ProvisionTimeout => "provision_timeout",
        Sweep::Idle => "idle",
    }
}

/// Counts a store error that a background loop handles (the HTTP edge
/// counts its own when it answers).
pub fn count_store_error(error: &StoreError) {
    if let Some(operation) = error.operation() {
        crate::metrics::database_error(operation);
    }
}
