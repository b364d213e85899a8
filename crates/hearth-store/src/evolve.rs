//! How an accepted input changes a workspace's columns. Pure, and shared by
//! every engine so that they cannot drift apart: the engine locks the row,
//! calls [`hearth_core::decide`], then writes what [`evolve`] returns.

use chrono::{DateTime, Utc};
use hearth_core::reconcile::{self, DesiredState};
use hearth_core::{Decision, EventDraft, Input};

use crate::Workspace;

/// The workspace after `input` was accepted with `decision` at `now`, and
/// the reconcile events (conditions, deliveries, installs) to append after
/// the decision's own, each saying who caused it ([`Input::actor`], as
/// the decision's do).
pub fn evolve(
    current: &Workspace,
    input: &Input,
    decision: &Decision,
    now: DateTime<Utc>,
) -> (Workspace, Vec<EventDraft>) {
    let (next, events) = evolved(current, input, decision, now);
    let actor = input.actor();
    (next, events.into_iter().map(|event| event.by(actor)).collect())
}

fn evolved(
    current: &Workspace,
    input: &Input,
    decision: &Decision,
    now: DateTime<Utc>,
) -> (Workspace, Vec<EventDraft>) {
    let mut next = current.clone();
    let mut desired: Option<&DesiredState> = None;
    let mut failures: &[reconcile::PluginFailure] = &[];
    let mut program = reconcile::ProgramInput::Unchanged;
    if decision.next != current.status {
        next.status = decision.next;
        next.status_changed_at = now;
    }
    match input {
        Input::Heartbeat(hb) => {
            report_liveness(&mut next, hb, now);
            if hb.report.assets_digest.is_some() {
                next.reported_assets_digest = hb.report.assets_digest.clone();
            }
            if let Some(installed) = &hb.report.installed {
                next.installed_plugins = reconcile::merge_installed(&current.installed_plugins, installed, now);
            }
            desired = hb.desired.as_ref();
            failures = &hb.report.failures;
            program = match &hb.report.program {
                Some(report) => reconcile::ProgramInput::Reported(report),
                None => reconcile::ProgramInput::NotReported,
            };
        }
        Input::RecordInstall { name, sha256, desired: wanted, .. } => {
            next.installed_plugins = reconcile::record_install(&current.installed_plugins, name, sha256.clone(), now);
            desired = wanted.as_ref();
        }
        Input::Register { url, agent_card } => {
            next.url = Some(url.clone());
            next.agent_card = Some(agent_card.clone());
        }
        _ => {}
    }
    if let Input::RuntimeObserved(observation) = input {
        let (conditions, events) = reconcile::runtime_condition(observation, &current.conditions, now);
        next.conditions = conditions;
        if next != *current {
            next.updated_at = now;
        }
        return (next, events);
    }
    let mut events = Vec::new();
    if let Some(desired) = desired {
        let observed = reconcile::Observed {
            reported_digest: next.reported_assets_digest.as_deref(),
            previous_installed: &current.installed_plugins,
            installed: &next.installed_plugins,
            failures,
            program,
        };
        let (conditions, reconcile_events) = reconcile::evaluate(desired, &observed, &current.conditions, now);
        next.conditions = conditions;
        events = reconcile_events;
    }
    if next != *current {
        next.updated_at = now;
    }
    (next, events)
}

/// The liveness columns a heartbeat reports (what every heartbeat writes).
fn report_liveness(next: &mut Workspace, hb: &hearth_core::Heartbeat, now: DateTime<Utc>) {
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
}

/// Which groups of a workspace row's columns an accepted input changed,
/// grouped by who writes them, so that a store writes only those: a steady
/// heartbeat changes liveness alone and writes no JSON. The spec columns an
/// operator sets at creation (name, role, tier, parent, template, runtime,
/// model, limits) are never rewritten by an input; operator plugins and the
/// agent card have writes of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    /// `status`, `status_changed_at`: what the state machine decided.
    pub lifecycle: bool,
    /// What every heartbeat reports: `last_heartbeat_at`, `last_error_rate`,
    /// `last_sample_error`, `active_tasks`, `uptime_seconds`, `current_task`,
    /// `monthly_spend`, `runtime_state`, `last_active_at`.
    pub liveness: bool,
    /// The runtime's description of itself: `url`, `agent_card`,
    /// `runtime_metadata`.
    pub runtime: bool,
    /// Delivery: `reported_assets_digest`, `installed_plugins`, `conditions`.
    pub delivery: bool,
}

impl Changed {
    /// Compares every column. The destructuring is exhaustive, so a new
    /// column does not compile until it is placed in a group here.
    pub fn between(current: &Workspace, next: &Workspace) -> Self {
        let Workspace {
            id: _,
            org_id: _,
            name: _,
            role: _,
            tier: _,
            status,
            url,
            agent_card,
            parent_id: _,
            template: _,
            runtime: _,
            model: _,
            max_concurrent_tasks: _,
            budget_limit: _,
            external: _,
            last_heartbeat_at,
            last_error_rate,
            last_sample_error,
            active_tasks,
            uptime_seconds,
            current_task,
            monthly_spend,
            runtime_state,
            runtime_metadata,
            reported_assets_digest,
            installed_plugins,
            conditions,
            operator_plugins: _,
            status_changed_at,
            last_active_at,
            created_at: _,
            updated_at: _,
            version: _,
        } = next;
        Changed {
            lifecycle: *status != current.status || *status_changed_at != current.status_changed_at,
            liveness: *last_heartbeat_at != current.last_heartbeat_at
                || last_error_rate.to_bits() != current.last_error_rate.to_bits()
                || *last_sample_error != current.last_sample_error
                || *active_tasks != current.active_tasks
                || *uptime_seconds != current.uptime_seconds
                || *current_task != current.current_task
                || *monthly_spend != current.monthly_spend
                || *runtime_state != current.runtime_state
                || *last_active_at != current.last_active_at,
            runtime: *url != current.url
                || *agent_card != current.agent_card
                || *runtime_metadata != current.runtime_metadata,
            delivery: *reported_assets_digest != current.reported_assets_digest
                || *installed_plugins != current.installed_plugins
                || *conditions != current.conditions,
        }
    }

    pub fn any(self) -> bool {
        self.lifecycle || self.liveness || self.runtime || self.delivery
    }
}

/// A heartbeat's liveness columns, for the group-commit writer: written
/// only where the row version is still `version`, the one the heartbeat was
/// decided on (the guard). `None` fields keep the stored value, as
/// [`evolve`] does for a heartbeat that does not report them.
#[derive(Debug, Clone, PartialEq)]
pub struct LivenessWrite {
    pub id: hearth_core::WorkspaceId,
    pub version: i64,
    pub at: DateTime<Utc>,
    pub error_rate: f64,
    pub sample_error: Option<String>,
    pub active_tasks: i64,
    pub uptime_seconds: Option<i64>,
    pub current_task: Option<String>,
    pub monthly_spend: Option<i64>,
    pub runtime_state: Option<String>,
    /// The runtime has work: `last_active_at` becomes `at`.
    pub busy: bool,
}

impl LivenessWrite {
    /// The write of heartbeat `hb` at `now`, decided on row `version`;
    /// `has_stored_task`: that row's `current_task` is not empty. `None` when the heartbeat
    /// leaves `active_tasks` out: whether the workspace is busy would then
    /// depend on a stored count the guard does not cover, so it takes the
    /// locked path. (The stored task is covered: it changes only with an
    /// event, under the lock.)
    pub fn from_heartbeat(
        id: hearth_core::WorkspaceId,
        version: i64,
        has_stored_task: bool,
        hb: &hearth_core::Heartbeat,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let active_tasks = hb.active_tasks?;
        let has_task = hb.current_task.as_deref().map_or(has_stored_task, |task| !task.is_empty());
        Some(Self {
            id,
            version,
            at: now,
            error_rate: hb.error_rate,
            sample_error: hb.sample_error.clone(),
            active_tasks,
            uptime_seconds: hb.uptime_seconds,
            busy: active_tasks > 0 || has_task,
            current_task: hb.current_task.clone(),
            monthly_spend: hb.monthly_spend,
            runtime_state: hb.runtime_state.clone(),
        })
    }

    /// What the write does to a row, in Rust: the reference the engines'
    /// statements are tested against, and equal to [`evolve`]'s liveness
    /// columns for the same heartbeat.
    pub fn apply_to(&self, workspace: &mut Workspace) {
        workspace.last_heartbeat_at = Some(self.at);
        workspace.last_error_rate = self.error_rate;
        if let Some(sample) = &self.sample_error {
            workspace.last_sample_error = Some(sample.clone());
        }
        workspace.active_tasks = self.active_tasks;
        if let Some(uptime) = self.uptime_seconds {
            workspace.uptime_seconds = uptime;
        }
        if let Some(task) = &self.current_task {
            workspace.current_task = Some(task.clone());
        }
        if let Some(spend) = self.monthly_spend {
            workspace.monthly_spend = spend;
        }
        workspace.runtime_state = self.runtime_state.clone();
        if self.busy {
            workspace.last_active_at = Some(self.at);
        }
        workspace.updated_at = self.at;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use hearth_core::heartbeat::RawHeartbeat;
    use hearth_core::reconcile::Report;
    use hearth_core::{decide, Heartbeat, OrgId, WorkspaceId, WorkspaceStatus};

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default() + chrono::Duration::seconds(secs)
    }

    fn online() -> Workspace {
        Workspace {
            id: WorkspaceId::new_random(),
            org_id: OrgId::DEFAULT,
            name: "w".into(),
            role: None,
            tier: 1,
            status: WorkspaceStatus::Online,
            url: Some("http://localhost:1".into()),
            agent_card: Some(serde_json::json!({})),
            parent_id: None,
            template: None,
            runtime: None,
            model: None,
            max_concurrent_tasks: None,
            budget_limit: None,
            external: false,
            last_heartbeat_at: Some(at(0)),
            last_error_rate: 0.0,
            last_sample_error: None,
            active_tasks: 0,
            uptime_seconds: 10,
            current_task: None,
            monthly_spend: 0,
            runtime_state: None,
            runtime_metadata: None,
            reported_assets_digest: None,
            installed_plugins: Vec::new(),
            conditions: Vec::new(),
            operator_plugins: Vec::new(),
            status_changed_at: at(0),
            last_active_at: None,
            created_at: at(0),
            updated_at: at(0),
            version: 0,
        }
    }

    fn apply(current: &Workspace, input: Input, now: DateTime<Utc>) -> Changed {
        let Ok(decision) = decide(&current.snapshot(), &input, now) else { panic!("accepted") };
        let (next, _) = evolve(current, &input, &decision, now);
        Changed::between(current, &next)
    }

    fn heartbeat(raw: RawHeartbeat) -> Input {
        let Ok(hb) = Heartbeat::validate(raw) else { panic!("valid") };
        Input::Heartbeat(hb)
    }

    #[test]
    fn a_steady_heartbeat_changes_liveness_only() {
        let changed =
            apply(&online(), heartbeat(RawHeartbeat { uptime_seconds: Some(11), ..Default::default() }), at(5));
        assert_eq!(changed, Changed { liveness: true, ..Changed::default() });
    }

    #[test]
    fn each_writer_changes_its_own_group() {
        let degrade = heartbeat(RawHeartbeat { error_rate: Some(0.9), ..Default::default() });
        let changed = apply(&online(), degrade, at(5));
        assert!(changed.lifecycle && changed.liveness && !changed.runtime && !changed.delivery, "{changed:?}");

        let metadata = RawHeartbeat { runtime_metadata: Some(serde_json::json!({"x": 1})), ..Default::default() };
        let changed = apply(&online(), heartbeat(metadata), at(5));
        assert!(changed.runtime && !changed.delivery, "{changed:?}");

        let report = Report { assets_digest: Some("sha256:x".into()), ..Report::default() };
        let changed = apply(&online(), heartbeat(RawHeartbeat { report, ..Default::default() }), at(5));
        assert!(changed.delivery && !changed.runtime && !changed.lifecycle, "{changed:?}");

        let register = Input::Register { url: "http://localhost:2".into(), agent_card: serde_json::json!({"a": 1}) };
        let changed = apply(&online(), register, at(5));
        assert!(changed.runtime && !changed.liveness && !changed.delivery, "{changed:?}");

        let changed = apply(&online(), Input::Pause(hearth_core::By::ADMIN), at(5));
        assert_eq!(changed, Changed { lifecycle: true, ..Changed::default() });
    }

    /// The group-commit writer's row update is the locked path's, for every
    /// heartbeat that changes liveness only.
    #[test]
    fn a_liveness_write_is_what_evolve_does() {
        let mut busy = online();
        busy.current_task = Some("crawl".into());
        busy.active_tasks = 2;
        busy.last_sample_error = Some("old".into());
        busy.monthly_spend = 7;
        let raws = [
            RawHeartbeat { active_tasks: Some(0), current_task: Some(String::new()), ..Default::default() },
            RawHeartbeat {
                active_tasks: Some(3),
                current_task: Some("crawl".into()),
                uptime_seconds: Some(99),
                monthly_spend: Some(12.0),
                sample_error: Some("timeout".into()),
                error_rate: Some(0.2),
                ..Default::default()
            },
            RawHeartbeat { active_tasks: Some(2), current_task: Some("crawl".into()), ..Default::default() },
            RawHeartbeat { active_tasks: Some(0), ..Default::default() },
            RawHeartbeat {
                active_tasks: Some(0),
                current_task: Some("crawl".into()),
                runtime_state: Some("warming".into()),
                ..Default::default()
            },
        ];
        let mut checked = 0;
        for current in [online(), busy] {
            for raw in raws.clone() {
                let input = heartbeat(raw);
                let Input::Heartbeat(hb) = &input else { unreachable!() };
                let Ok(decision) = decide(&current.snapshot(), &input, at(9)) else { panic!("accepted") };
                let (next, events) = evolve(&current, &input, &decision, at(9));
                if Changed::between(&current, &next) != (Changed { liveness: true, ..Changed::default() })
                    || !events.is_empty()
                    || !decision.events.is_empty()
                {
                    continue;
                }
                let stored = !current.current_task.as_deref().unwrap_or("").is_empty();
                let Some(write) = LivenessWrite::from_heartbeat(current.id, current.version, stored, hb, at(9)) else {
                    panic!("every heartbeat here reports active tasks")
                };
                let mut written = current.clone();
                write.apply_to(&mut written);
                assert_eq!(written, next, "{hb:?}");
                checked += 1;
            }
        }
        assert!(checked >= 6, "most cases are liveness-only ({checked})");
    }

    #[test]
    fn a_heartbeat_without_a_task_count_takes_the_locked_path() {
        let Input::Heartbeat(hb) = heartbeat(RawHeartbeat::default()) else { unreachable!() };
        assert_eq!(LivenessWrite::from_heartbeat(WorkspaceId::new_random(), 0, false, &hb, at(1)), None);
    }

    #[test]
    fn nothing_changed_is_nothing_to_write() {
        let current = online();
        assert!(!Changed::between(&current, &current.clone()).any());
    }
}
