//! How an accepted input changes a workspace's columns. Pure, and shared by
//! every engine so that they cannot drift apart: the engine locks the row,
//! calls [`hearth_core::decide`], then writes what [`evolve`] returns.

use chrono::{DateTime, Utc};
use hearth_core::reconcile::{self, DesiredState};
use hearth_core::{Decision, EventDraft, Input};

use crate::Workspace;

/// The workspace after `input` was accepted with `decision` at `now`, and
/// the reconcile events (conditions, deliveries, installs) to append after
/// the decision's own.
pub fn evolve(
    current: &Workspace,
    input: &Input,
    decision: &Decision,
    now: DateTime<Utc>,
) -> (Workspace, Vec<EventDraft>) {
    let mut next = current.clone();
    let mut desired: Option<&DesiredState> = None;
    let mut failures: &[reconcile::PluginFailure] = &[];
    if decision.next != current.status {
        next.status = decision.next;
        next.status_changed_at = now;
    }
    match input {
        Input::Heartbeat(hb) => {
            next.last_heartbeat_at = Some(now);
            next.last_error_rate = hb.error_rate;
            if hb.sample_error.is_some() {
                next.last_sample_error = hb.sample_error.clone();
            }
            if let Some(active) = hb.active_tasks {
                next.active_tasks = active;
            }
            if let Some(uptime) = hb.uptime_seconds {
                next.uptime_seconds = uptime;
            }
            if let Some(task) = &hb.current_task {
                next.current_task = Some(task.clone());
            }
            if let Some(spend) = hb.monthly_spend {
                next.monthly_spend = spend;
            }
            next.runtime_state = hb.runtime_state.clone();
            if hb.runtime_metadata.is_some() {
                next.runtime_metadata = hb.runtime_metadata.clone();
            }
            let busy = next.active_tasks > 0 || !next.current_task.as_deref().unwrap_or("").is_empty();
            if busy {
                next.last_active_at = Some(now);
            }
            if hb.report.assets_digest.is_some() {
                next.reported_assets_digest = hb.report.assets_digest.clone();
            }
            if let Some(installed) = &hb.report.installed {
                next.installed_plugins = reconcile::merge_installed(&current.installed_plugins, installed, now);
            }
            desired = hb.desired.as_ref();
            failures = &hb.report.failures;
        }
        Input::RecordInstall { name, sha256, desired: wanted } => {
            next.installed_plugins = reconcile::record_install(&current.installed_plugins, name, sha256.clone(), now);
            desired = wanted.as_ref();
        }
        Input::Register { url, agent_card } => {
            next.url = Some(url.clone());
            next.agent_card = Some(agent_card.clone());
        }
        _ => {}
    }
    let mut events = Vec::new();
    if let Some(desired) = desired {
        let (conditions, reconcile_events) = reconcile::evaluate(
            desired,
            next.reported_assets_digest.as_deref(),
            &current.installed_plugins,
            &next.installed_plugins,
            failures,
            &current.conditions,
            now,
        );
        next.conditions = conditions;
        events = reconcile_events;
    }
    if next != *current {
        next.updated_at = now;
    }
    (next, events)
}
