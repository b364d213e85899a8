//! The lifecycle state machine (PRODUCT.md, "Lifecycle rules") as one pure
//! function: `decide(snapshot, input, now) -> Decision | Rejection`.
//!
//! The store calls it while it holds the workspace row (row lock on Postgres,
//! the write lock on SQLite) and persists the decision and its events in the
//! same transaction, so concurrent heartbeats, sweeps and operator actions are
//! serialized and can never lose or double a transition.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::actor::{Actor, By, Reason};
use crate::event::{EventDraft, EventKind};
use crate::heartbeat::Heartbeat;
use crate::status::WorkspaceStatus::{self, *};

/// `error_rate` at or above this degrades an online workspace.
pub const DEGRADE_ERROR_RATE: f64 = 0.5;
/// `error_rate` below this (and a healthy runtime state) recovers it.
pub const RECOVER_ERROR_RATE: f64 = 0.1;

/// What the state machine needs to know about a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub status: WorkspaceStatus,
    /// When `status` last changed (creation counts).
    pub status_changed_at: DateTime<Utc>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub current_task: Option<String>,
    pub active_tasks: i64,
    /// Last time the runtime reported work (active tasks or a current task).
    pub last_active_at: Option<DateTime<Utc>>,
}

/// Everything that can move a workspace.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A runtime heartbeat (already validated).
    Heartbeat(Heartbeat),
    /// A runtime reports that it installed a plugin (the SDK's
    /// `POST /workspaces/:id/plugins`). No status change; observed state only.
    RecordInstall {
        name: String,
        sha256: Option<String>,
        desired: Option<crate::reconcile::DesiredState>,
        /// The operator who reported it; `None`: the runtime.
        by: Option<By>,
    },
    /// A runtime (re-)registered, saying where it can be reached.
    Register {
        url: String,
        agent_card: serde_json::Value,
    },
    /// Operator pause (each operator input names who acted, for its events).
    Pause(By),
    Resume(By),
    /// Operator restart: back to `provisioning` so the runtime is started anew.
    Restart(By),
    /// Operator hibernate.
    Hibernate(By),
    Delete(By),
    /// Liveness sweep: offline if not heard for `ttl` of the time the
    /// control plane could hear it. `outage`: the latest window in which it
    /// could not (every replica down, or the database unreachable); a
    /// runtime last heard before its end is measured from its end.
    LivenessCheck {
        ttl: Duration,
        outage: Option<Outage>,
        /// A large share of the live fleet is silent at once while the
        /// control plane is up (the sweep marks them at a limited rate);
        /// an offline decided meanwhile says so.
        mass_silence: Option<MassSilence>,
    },
    /// Provision-timeout sweep: failed if still provisioning after `timeout`.
    ProvisionCheck {
        timeout: Duration,
        /// As for liveness: a workspace provisioning when the control
        /// plane's latest outage ended is given its timeout from that end.
        outage: Option<Outage>,
    },
    /// Hibernation sweep (opt-in): hibernate an online workspace idle for `threshold`.
    IdleCheck {
        threshold: Duration,
    },
    /// A provisioner saw the workspace's runtime (its container or
    /// process): the `RuntimeRunning` condition; never a status change.
    RuntimeObserved(crate::reconcile::RuntimeObservation),
}

impl Input {
    /// A short name for logs, metrics and 409 messages.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Heartbeat(_) => "heartbeat",
            Input::Register { .. } => "register",
            Input::RecordInstall { .. } => "record_install",
            Input::Pause(_) => "pause",
            Input::Resume(_) => "resume",
            Input::Restart(_) => "restart",
            Input::Hibernate(_) => "hibernate",
            Input::Delete(_) => "delete",
            Input::LivenessCheck { .. } => "liveness_check",
            Input::ProvisionCheck { .. } => "provision_check",
            Input::IdleCheck { .. } => "idle_check",
            Input::RuntimeObserved(_) => "runtime_observed",
        }
    }

    fn is_from_runtime(&self) -> bool {
        matches!(self, Input::Heartbeat(_) | Input::Register { .. } | Input::RecordInstall { .. })
    }

    /// Who causes what this input decides: its events say so.
    pub fn actor(&self) -> Actor {
        match self {
            Input::Heartbeat(_) | Input::Register { .. } | Input::RecordInstall { by: None, .. } => Actor::Runtime,
            Input::RecordInstall { by: Some(by), .. }
            | Input::Pause(by)
            | Input::Resume(by)
            | Input::Restart(by)
            | Input::Hibernate(by)
            | Input::Delete(by) => Actor::Operator(*by),
            Input::LivenessCheck { .. } => Actor::System(Reason::Sweep),
            Input::ProvisionCheck { .. } => Actor::System(Reason::ProvisionTimeout),
            Input::IdleCheck { .. } => Actor::System(Reason::Idle),
            Input::RuntimeObserved(_) => Actor::System(Reason::Provisioner),
        }
    }
}

/// A window in which the control plane could not hear runtimes: every
/// replica was down, or the database did not answer. Its time does not
/// count against a workspace's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outage {
    /// The control plane was last heard of (its last sweep) here.
    pub started_at: DateTime<Utc>,
    /// It was heard again (its first sweep after the gap) here.
    pub ended_at: DateTime<Utc>,
}

impl Outage {
    /// Where a timer that started at `started` (a runtime last heard, a
    /// workspace provisioning) runs from: the end of `outage` when it came
    /// later (the outage's time does not count), and that outage then.
    fn since(outage: Option<Outage>, started: DateTime<Utc>) -> (DateTime<Utc>, Option<Outage>) {
        match outage.filter(|outage| outage.ended_at > started) {
            Some(outage) => (outage.ended_at, Some(outage)),
            None => (started, None),
        }
    }

    /// An event decided after `outage` says so (`after_outage`).
    fn say(outage: Option<Outage>, payload: &mut serde_json::Value) {
        if let Some(outage) = outage {
            payload["after_outage"] = json!({"started_at": outage.started_at, "ended_at": outage.ended_at});
        }
    }
}

/// How many of the live (online or degraded) workspaces were due offline
/// when the sweep found a mass silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MassSilence {
    pub due: u64,
    pub live: u64,
}

/// What a liveness sweep knows beyond the clock: the control plane's latest
/// outage and whether the fleet is silent en masse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepContext {
    pub outage: Option<Outage>,
    pub mass_silence: Option<MassSilence>,
}

/// The outcome of an accepted input. `next == current` means no transition;
/// `events` may still be non-empty (e.g. `TASK_UPDATED`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub next: WorkspaceStatus,
    pub events: Vec<EventDraft>,
}

/// Why an input was refused. The API maps each variant to one status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A runtime spoke for a removed workspace (410; never resurrected).
    #[error("workspace removed")]
    Removed,
    /// A runtime registered while the workspace is paused or hibernated (409).
    #[error("workspace is {0}")]
    Stopped(WorkspaceStatus),
    /// An operator action the current status does not allow (409).
    #[error("cannot {action} a workspace that is {current}")]
    NotAllowed { action: &'static str, current: WorkspaceStatus },
}

/// Decides what `input` does to a workspace in state `snapshot` at `now`.
/// Every event it asks for says who caused it ([`Input::actor`]).
pub fn decide(snapshot: &Snapshot, input: &Input, now: DateTime<Utc>) -> Result<Decision, Rejection> {
    let mut decision = decided(snapshot, input, now)?;
    let actor = input.actor();
    decision.events = decision.events.into_iter().map(|event| event.by(actor)).collect();
    Ok(decision)
}

fn decided(snapshot: &Snapshot, input: &Input, now: DateTime<Utc>) -> Result<Decision, Rejection> {
    let current = snapshot.status;
    if current == Removed {
        return match input {
            // Deleting a removed workspace is idempotent.
            Input::Delete(_) => Ok(stay(current)),
            _ if input.is_from_runtime() => Err(Rejection::Removed),
            _ if input_is_sweep(input) || matches!(input, Input::RuntimeObserved(_)) => Ok(stay(current)),
            _ => Err(not_allowed(input, current)),
        };
    }
    match input {
        Input::Heartbeat(hb) => Ok(on_heartbeat(snapshot, hb)),
        Input::RecordInstall { .. } | Input::RuntimeObserved(_) => Ok(stay(current)),
        Input::Register { .. } => match current {
            Paused | Hibernated => Err(Rejection::Stopped(current)),
            Provisioning | Failed | Offline => Ok(go_online(current)),
            Online | Degraded => Ok(stay(current)),
            Removed => unreachable!("handled above"),
        },
        Input::Pause(_) => match current {
            Online | Degraded | Offline => Ok(to(Paused, EventKind::WorkspacePaused, json!({"from": current}))),
            _ => Err(not_allowed(input, current)),
        },
        Input::Hibernate(_) => match current {
            Online | Degraded | Offline => Ok(to(Hibernated, EventKind::WorkspaceHibernated, json!({"from": current}))),
            _ => Err(not_allowed(input, current)),
        },
        Input::Resume(_) => match current {
            Paused | Hibernated => Ok(to(Provisioning, EventKind::WorkspaceResumed, json!({"from": current}))),
            _ => Err(not_allowed(input, current)),
        },
        Input::Restart(_) => match current {
            Provisioning | Online | Degraded | Offline | Failed => {
                Ok(to(Provisioning, EventKind::WorkspaceProvisioning, json!({"restarted_from": current})))
            }
            _ => Err(not_allowed(input, current)),
        },
        Input::Delete(_) => Ok(to(Removed, EventKind::WorkspaceRemoved, json!({"from": current}))),
        Input::LivenessCheck { ttl, outage, mass_silence } => {
            Ok(liveness_check(snapshot, *ttl, *outage, *mass_silence, now))
        }
        Input::ProvisionCheck { timeout, outage } => {
            let (since, after_outage) = Outage::since(*outage, snapshot.status_changed_at);
            if current == Provisioning && now - since >= *timeout {
                let mut payload = json!({"reason": "no heartbeat within the provision timeout", "timeout_seconds": timeout.num_seconds()});
                Outage::say(after_outage, &mut payload);
                Ok(to(Failed, EventKind::WorkspaceProvisionFailed, payload))
            } else {
                Ok(stay(current))
            }
        }
        Input::IdleCheck { threshold } => {
            let idle_since =
                snapshot.last_active_at.unwrap_or(snapshot.status_changed_at).max(snapshot.status_changed_at);
            let idle = snapshot.active_tasks == 0 && snapshot.current_task.as_deref().unwrap_or("").is_empty();
            if current == Online && idle && now - idle_since >= *threshold {
                Ok(to(Hibernated, EventKind::WorkspaceHibernated, json!({"from": current, "reason": "idle"})))
            } else {
                Ok(stay(current))
            }
        }
    }
}

/// The liveness sweep's decision: offline once not heard for `ttl` of the
/// time the control plane could hear it (a runtime last heard before an
/// outage ended is measured from its end), saying in the event whether it
/// came after an outage or in a mass silence.
fn liveness_check(
    snapshot: &Snapshot,
    ttl: Duration,
    outage: Option<Outage>,
    mass_silence: Option<MassSilence>,
    now: DateTime<Utc>,
) -> Decision {
    let current = snapshot.status;
    let last_seen = snapshot.last_heartbeat_at.unwrap_or(snapshot.status_changed_at);
    let (since, after_outage) = Outage::since(outage, last_seen);
    if !(matches!(current, Online | Degraded) && now - since >= ttl) {
        return stay(current);
    }
    let mut payload = json!({"from": current, "last_heartbeat_at": snapshot.last_heartbeat_at});
    Outage::say(after_outage, &mut payload);
    if let Some(MassSilence { due, live }) = mass_silence {
        payload["mass_silence"] = json!({"due": due, "live": live});
    }
    to(Offline, EventKind::WorkspaceOffline, payload)
}

fn input_is_sweep(input: &Input) -> bool {
    matches!(input, Input::LivenessCheck { .. } | Input::ProvisionCheck { .. } | Input::IdleCheck { .. })
}

fn on_heartbeat(snapshot: &Snapshot, hb: &Heartbeat) -> Decision {
    let current = snapshot.status;
    if current.is_stopped() {
        // Paused and hibernated workspaces are told to stop; nothing moves.
        return stay(current);
    }
    let mut decision = match current {
        Provisioning | Failed | Offline => go_online(current),
        _ => stay(current),
    };
    let degrading = hb.error_rate >= DEGRADE_ERROR_RATE || hb.is_wedged();
    let recovering = hb.error_rate < RECOVER_ERROR_RATE && hb.runtime_state_is_healthy();
    match decision.next {
        Online if degrading => {
            decision.next = Degraded;
            decision.events.push(EventDraft::new(
                EventKind::WorkspaceDegraded,
                json!({"error_rate": hb.error_rate, "runtime_state": hb.runtime_state, "sample_error": hb.sample_error}),
            ));
        }
        Degraded if recovering => {
            decision.next = Online;
            decision.events.push(EventDraft::new(EventKind::WorkspaceOnline, json!({"recovered_from": Degraded})));
        }
        _ => {}
    }
    if let Some(task) = &hb.current_task {
        if snapshot.current_task.as_deref().unwrap_or("") != task {
            decision.events.push(EventDraft::new(EventKind::TaskUpdated, json!({"current_task": task})));
        }
    }
    decision
}

fn go_online(from: WorkspaceStatus) -> Decision {
    to(Online, EventKind::WorkspaceOnline, json!({"recovered_from": from}))
}

fn to(next: WorkspaceStatus, kind: EventKind, payload: serde_json::Value) -> Decision {
    Decision { next, events: vec![EventDraft::new(kind, payload)] }
}

fn stay(current: WorkspaceStatus) -> Decision {
    Decision { next: current, events: Vec::new() }
}

fn not_allowed(input: &Input, current: WorkspaceStatus) -> Rejection {
    Rejection::NotAllowed { action: input.name(), current }
}

#[cfg(test)]
mod tests;
