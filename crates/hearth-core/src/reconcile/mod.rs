//! Desired vs observed, level-triggered (PRODUCT.md rule 4).
//!
//! On every heartbeat (and every install report) the store calls
//! [`evaluate`] with what the template declares and what the runtime holds.
//! It returns the `AssetsDelivered` and `PluginsInstalled` conditions and the
//! events their changes deserve. Nothing here depends on having seen a status
//! edge: a runtime that lost a plugin, or never got one, is simply "not
//! converged" on its next heartbeat, and converged again once it reports it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::event::{EventDraft, EventKind};

mod condition;

pub use condition::{ConditionReason, ConditionRecord, ConditionStatus, ConditionType, UnknownConditionValue};

/// One plugin a workspace must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPlugin {
    pub name: String,
    /// What the registry holds under that name; `None` when it holds
    /// nothing (declared by a template or added by an operator, not pushed).
    pub stored: Option<StoredPlugin>,
}

/// A plugin as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlugin {
    pub version: String,
    /// The SDK content-manifest hash.
    pub sha256: String,
}

impl DesiredPlugin {
    pub fn stored(name: impl Into<String>, version: impl Into<String>, sha256: impl Into<String>) -> Self {
        Self { name: name.into(), stored: Some(StoredPlugin { version: version.into(), sha256: sha256.into() }) }
    }
}

/// What the template (and operator) declare for a workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// `None` when the workspace has no template.
    pub assets_digest: Option<String>,
    pub plugins: Vec<DesiredPlugin>,
}

/// A plugin the runtime says it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPlugin {
    pub name: String,
    pub sha256: Option<String>,
    pub installed_at: DateTime<Utc>,
}

/// A plugin the runtime tried and failed to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFailure {
    pub name: String,
    pub error: String,
}

/// What a runtime reported in one heartbeat (all optional on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub assets_digest: Option<String>,
    /// `None`: not reported (keep what is stored); `Some`: the full set.
    pub installed: Option<Vec<(String, Option<String>)>>,
    pub failures: Vec<PluginFailure>,
    /// The program the runtime runs for its template's `command`; `None`
    /// when it runs none (or is a runtime that does not say).
    pub program: Option<Box<ProgramReport>>,
}

/// What a runtime says of the program it runs (the template's `command`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramReport {
    pub state: ProgramState,
    /// The last exit's code, when it exited with one.
    pub exit_code: Option<i32>,
    /// The signal that ended the last run, when one did.
    pub signal: Option<i32>,
    /// How often the runtime restarted the program since it started it.
    pub restarts: u32,
    /// The kernel killed the last run for using more memory than its
    /// limit allows (the runtime saw its cgroup's OOM-kill count rise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// Where the program is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramState {
    /// Not started yet: delivery is not complete and verified.
    Waiting,
    Running,
    /// It exited; the runtime starts it again after a backoff.
    Exited,
    /// Stopped because the workspace is paused or hibernated.
    Stopped,
}

/// The observed side [`evaluate`] compares with the desired one.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The latest digest the runtime reported (or the stored one when this
    /// report had none).
    pub reported_digest: Option<&'a str>,
    /// The runtime's installed set before this report.
    pub previous_installed: &'a [InstalledPlugin],
    /// The runtime's installed set after it.
    pub installed: &'a [InstalledPlugin],
    pub failures: &'a [PluginFailure],
    pub program: ProgramInput<'a>,
}

/// What a provisioner saw of a workspace's runtime (its container or
/// process): the `RuntimeRunning` condition ([`runtime_condition`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeObservation {
    Running,
    /// It exited (and is started again after a backoff).
    Exited {
        exit_code: Option<i64>,
        oom_killed: bool,
        restarts: u32,
    },
    /// Stopped because the workspace is paused or hibernated.
    Stopped,
    /// No image to run it in, or the image is not there.
    ImageMissing {
        image: Option<String>,
    },
    /// The backend does not answer.
    BackendUnavailable,
}

impl RuntimeObservation {
    /// The condition's reason and message.
    pub fn verdict(&self) -> (ConditionReason, String) {
        match self {
            RuntimeObservation::Running => (ConditionReason::Running, "the runtime runs".to_owned()),
            RuntimeObservation::Exited { exit_code, oom_killed, restarts } => {
                let ended = match exit_code {
                    Some(code) => format!("exit {code}"),
                    None => "ended".to_owned(),
                };
                let restarted = match restarts {
                    0 => String::new(),
                    1 => ", restarted once".to_owned(),
                    n => format!(", restarted {n} times"),
                };
                if *oom_killed {
                    (
                        ConditionReason::OOMKilled,
                        format!("killed for using more memory than its tier allows ({ended}){restarted}"),
                    )
                } else {
                    (ConditionReason::Exited, format!("{ended}{restarted}"))
                }
            }
            RuntimeObservation::Stopped => {
                (ConditionReason::Stopped, "the runtime is stopped while the workspace is".to_owned())
            }
            RuntimeObservation::ImageMissing { image } => (
                ConditionReason::ImageMissing,
                match image {
                    Some(image) => format!("image {image} is not there; build or load it"),
                    None => {
                        "no image: the template names none and no --runtime-image or --default-image applies".to_owned()
                    }
                },
            ),
            RuntimeObservation::BackendUnavailable => {
                (ConditionReason::BackendUnavailable, "the provisioner's backend does not answer".to_owned())
            }
        }
    }
}

/// The conditions after a provisioner's observation: `RuntimeRunning` set
/// from it (its transition time kept unless its status changed), the others
/// as they were; a `CONDITION_CHANGED` event when its status or reason
/// changed (its first observation is recorded silently).
pub fn runtime_condition(
    observation: &RuntimeObservation,
    previous: &[ConditionRecord],
    now: DateTime<Utc>,
) -> (Vec<ConditionRecord>, Vec<EventDraft>) {
    let (reason, message) = observation.verdict();
    let runtime = condition(previous, ConditionType::RuntimeRunning, reason, message, now);
    let existed = previous.iter().any(|p| p.kind == ConditionType::RuntimeRunning);
    let events = if existed && changed(previous, &runtime) {
        vec![EventDraft::new(
            EventKind::ConditionChanged,
            json!({"type": runtime.kind, "status": runtime.status, "reason": runtime.reason, "message": runtime.message}),
        )]
    } else {
        Vec::new()
    };
    let mut conditions: Vec<ConditionRecord> =
        previous.iter().filter(|c| c.kind != ConditionType::RuntimeRunning).cloned().collect();
    conditions.push(runtime);
    (conditions, events)
}

/// What an input says about the program, for [`evaluate`].
#[derive(Debug, Clone, Copy)]
pub enum ProgramInput<'a> {
    /// A heartbeat that reports a program.
    Reported(&'a ProgramReport),
    /// A heartbeat that reports none: no `AgentRunning` condition.
    NotReported,
    /// An input that does not speak of it (an install record): the
    /// condition stays as it is.
    Unchanged,
}

/// The observed side after a report: the installed set it leaves behind.
pub fn merge_installed(
    previous: &[InstalledPlugin],
    reported: &[(String, Option<String>)],
    now: DateTime<Utc>,
) -> Vec<InstalledPlugin> {
    let mut merged: Vec<InstalledPlugin> = reported
        .iter()
        .map(|(name, sha256)| {
            let kept = previous.iter().find(|p| &p.name == name && &p.sha256 == sha256);
            InstalledPlugin {
                name: name.clone(),
                sha256: sha256.clone(),
                installed_at: kept.map(|p| p.installed_at).unwrap_or(now),
            }
        })
        .collect();
    merged.sort_by(|a, b| a.name.cmp(&b.name));
    merged.dedup_by(|a, b| a.name == b.name);
    merged
}

/// Adds or replaces one installed plugin (an install report from the SDK).
pub fn record_install(
    previous: &[InstalledPlugin],
    name: &str,
    sha256: Option<String>,
    now: DateTime<Utc>,
) -> Vec<InstalledPlugin> {
    let mut next: Vec<InstalledPlugin> = previous.iter().filter(|p| p.name != name).cloned().collect();
    let kept = previous.iter().find(|p| p.name == name && p.sha256 == sha256).map(|p| p.installed_at);
    next.push(InstalledPlugin { name: name.to_owned(), sha256, installed_at: kept.unwrap_or(now) });
    next.sort_by(|a, b| a.name.cmp(&b.name));
    next
}

/// Whether the runtime holds the stored version of a plugin (a runtime that
/// reports no hash is taken at its word). A plugin the registry does not
/// hold cannot be satisfied.
fn satisfied(desired: &DesiredPlugin, installed: &[InstalledPlugin]) -> bool {
    let Some(stored) = &desired.stored else { return false };
    installed.iter().any(|p| {
        p.name == desired.name && p.sha256.as_deref().is_none_or(|sha| sha.eq_ignore_ascii_case(&stored.sha256))
    })
}

/// Computes the conditions and the events of their changes.
///
pub fn evaluate(
    desired: &DesiredState,
    observed: &Observed<'_>,
    previous: &[ConditionRecord],
    now: DateTime<Utc>,
) -> (Vec<ConditionRecord>, Vec<EventDraft>) {
    let Observed { reported_digest, previous_installed, installed, failures, program } = *observed;
    let mut events = Vec::new();
    let (reason, message) = assets_verdict(desired.assets_digest.as_deref(), reported_digest);
    let assets = condition(previous, ConditionType::AssetsDelivered, reason, message, now);
    if assets.is_true() && changed(previous, &assets) && desired.assets_digest.is_some() {
        events.push(EventDraft::new(EventKind::AssetsDelivered, json!({"digest": desired.assets_digest})));
    }
    events.extend(newly_installed(desired, previous_installed, installed));
    let failed: Vec<&PluginFailure> = failures
        .iter()
        .filter(|f| desired.plugins.iter().any(|p| p.name == f.name && !satisfied(p, installed)))
        .collect();
    let (reason, message) = plugins_verdict(desired, installed, &failed);
    let plugins = condition(previous, ConditionType::PluginsInstalled, reason, message, now);
    if plugins.reason == ConditionReason::InstallFailed && changed(previous, &plugins) {
        for failure in &failed {
            events.push(EventDraft::new(
                EventKind::PluginInstallFailed,
                json!({"name": failure.name, "error": failure.error}),
            ));
        }
    }

    let mut conditions = vec![assets, plugins];
    match program {
        ProgramInput::Reported(report) => {
            let (reason, message) = program_verdict(report);
            conditions.push(condition(previous, ConditionType::AgentRunning, reason, message, now));
        }
        ProgramInput::NotReported => {}
        ProgramInput::Unchanged => {
            conditions.extend(previous.iter().find(|c| c.kind == ConditionType::AgentRunning).cloned());
        }
    }
    // What the provisioner said of the runtime is not the runtime's to say.
    conditions.extend(previous.iter().find(|c| c.kind == ConditionType::RuntimeRunning).cloned());
    for c in &conditions {
        // A condition's first evaluation is recorded silently: there is
        // nothing it changed from.
        let existed = previous.iter().any(|p| p.kind == c.kind);
        if existed && changed(previous, c) {
            events.push(EventDraft::new(
                EventKind::ConditionChanged,
                json!({"type": c.kind, "status": c.status, "reason": c.reason, "message": c.message}),
            ));
        }
    }
    (conditions, events)
}

/// `AgentRunning`'s reason and message: `exit 3, restarted 4 times`.
fn program_verdict(report: &ProgramReport) -> (ConditionReason, String) {
    let restarts = match report.restarts {
        0 => String::new(),
        1 => ", restarted once".to_owned(),
        n => format!(", restarted {n} times"),
    };
    let ended = match (report.exit_code, report.signal) {
        (_, Some(signal)) => format!("killed by signal {signal}"),
        (Some(code), None) => format!("exit {code}"),
        (None, None) => "ended".to_owned(),
    };
    match report.state {
        ProgramState::Running => (ConditionReason::Running, format!("the program runs{restarts}")),
        ProgramState::Exited if report.oom_killed => (
            ConditionReason::OOMKilled,
            format!("killed by the kernel for using more memory than its limit allows{restarts}"),
        ),
        ProgramState::Exited => (ConditionReason::Exited, format!("{ended}{restarts}")),
        ProgramState::Waiting => {
            (ConditionReason::WaitingForDelivery, "the program starts once delivery is complete".to_owned())
        }
        ProgramState::Stopped => (ConditionReason::Stopped, "the program is stopped while the workspace is".to_owned()),
    }
}

/// `AssetsDelivered`'s reason and message: the template's digest against
/// the one the runtime reported.
fn assets_verdict(want: Option<&str>, have: Option<&str>) -> (ConditionReason, String) {
    match (want, have) {
        (None, _) => (ConditionReason::NoTemplate, "the workspace has no template, so no assets to deliver".to_owned()),
        (Some(want), Some(have)) if want == have => {
            (ConditionReason::Delivered, format!("the runtime holds assets {want}"))
        }
        (Some(want), Some(have)) => {
            (ConditionReason::DigestMismatch, format!("the runtime holds assets {have}, the template's are {want}"))
        }
        (Some(want), None) => {
            (ConditionReason::NotReported, format!("waiting for the runtime to report assets {want}"))
        }
    }
}

/// A `PLUGIN_INSTALLED` event for each desired plugin this report holds
/// and the previous one did not.
fn newly_installed(
    desired: &DesiredState,
    previous_installed: &[InstalledPlugin],
    installed: &[InstalledPlugin],
) -> Vec<EventDraft> {
    desired
        .plugins
        .iter()
        .filter(|plugin| satisfied(plugin, installed) && !satisfied(plugin, previous_installed))
        .map(|plugin| {
            EventDraft::new(
                EventKind::PluginInstalled,
                json!({
                    "name": plugin.name,
                    "version": plugin.stored.as_ref().map(|s| &s.version),
                    "sha256": plugin.stored.as_ref().map(|s| &s.sha256),
                }),
            )
        })
        .collect()
}

/// `PluginsInstalled`'s reason and message: a failed install first, then a
/// plugin the registry does not hold, then one still missing.
fn plugins_verdict(
    desired: &DesiredState,
    installed: &[InstalledPlugin],
    failed: &[&PluginFailure],
) -> (ConditionReason, String) {
    let unregistered: Vec<&str> =
        desired.plugins.iter().filter(|p| p.stored.is_none()).map(|p| p.name.as_str()).collect();
    let missing: Vec<&str> = desired
        .plugins
        .iter()
        .filter(|p| p.stored.is_some() && !satisfied(p, installed) && !failed.iter().any(|f| f.name == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !failed.is_empty() {
        let what: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.name, f.error)).collect();
        (ConditionReason::InstallFailed, format!("plugin install failed: {}", what.join("; ")))
    } else if !unregistered.is_empty() {
        (ConditionReason::NotInRegistry, format!("declared but not pushed to Hearth: {}", unregistered.join(", ")))
    } else if !missing.is_empty() {
        (ConditionReason::Pending, format!("waiting for the runtime to install: {}", missing.join(", ")))
    } else if desired.plugins.is_empty() {
        (ConditionReason::NoPlugins, "the template declares no plugins".to_owned())
    } else {
        let names: Vec<&str> = desired.plugins.iter().map(|p| p.name.as_str()).collect();
        (ConditionReason::AllInstalled, format!("installed: {}", names.join(", ")))
    }
}

/// A condition with `last_transition_time` kept unless the status changed.
fn condition(
    previous: &[ConditionRecord],
    kind: ConditionType,
    reason: ConditionReason,
    message: String,
    now: DateTime<Utc>,
) -> ConditionRecord {
    let status = reason.status();
    let before = previous.iter().find(|c| c.kind == kind);
    let last_transition_time = match before {
        Some(b) if b.status == status => b.last_transition_time,
        _ => now,
    };
    ConditionRecord { kind, status, reason, message, last_transition_time }
}

/// True when `c` differs from its previous version in status or reason.
fn changed(previous: &[ConditionRecord], c: &ConditionRecord) -> bool {
    previous.iter().find(|p| p.kind == c.kind).is_none_or(|p| p.status != c.status || p.reason != c.reason)
}

#[cfg(test)]
mod tests;
