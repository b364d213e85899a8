//! The background sweeps: liveness (online/degraded → offline), provision
//! timeout (provisioning → failed) and, opt-in, hibernation of idle
//! workspaces. They are timestamp-based and level-triggered: a restart loses
//! nothing, and several replicas may sweep at once because each candidate is
//! re-decided under its row lock (a second sweeper finds nothing to do).

use std::time::Duration;

use chrono::Utc;
use hearth_core::{Input, WorkspaceStatus};
use hearth_store::Sweep;

use crate::state::AppState;

/// Candidates handled per sweep and kind; the rest wait for the next tick.
const BATCH: i64 = 500;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub offline: usize,
    pub failed: usize,
    pub hibernated: usize,
    pub errors: usize,
}

pub struct Sweeper {
    state: AppState,
}

impl Sweeper {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// One pass of every sweep. Errors are logged with the workspace id,
    /// counted, and do not stop the other candidates.
    pub async fn run_once(&self) -> SweepReport {
        let settings = &self.state.settings;
        let mut report = SweepReport::default();
        let mut kinds =
            vec![(Sweep::Liveness, settings.liveness_ttl), (Sweep::ProvisionTimeout, settings.provision_timeout)];
        if let Some(idle) = settings.hibernate_after {
            kinds.push((Sweep::Idle, idle));
        }
        for (sweep, age) in kinds {
            self.sweep(sweep, age, &mut report).await;
        }
        report
    }

    async fn sweep(&self, sweep: Sweep, age: Duration, report: &mut SweepReport) {
        let label = match sweep {
            Sweep::Liveness => "liveness",
            Sweep::ProvisionTimeout => "provision_timeout",
            Sweep::Idle => "idle",
        };
        metrics::counter!("hearth_sweeps_total", "sweep" => label).increment(1);
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now() - age;
        let candidates = match self.state.store.sweep_candidates(sweep, cutoff, BATCH).await {
            Ok(candidates) => candidates,
            Err(error) => {
                if let Some(operation) = error.operation() {
                    metrics::counter!("hearth_database_errors_total", "operation" => operation).increment(1);
                }
                tracing::warn!(sweep = label, %error, "sweep could not list candidates");
                report.errors += 1;
                return;
            }
        };
        for id in candidates {
            let input = match sweep {
                Sweep::Liveness => Input::LivenessCheck { ttl: age },
                Sweep::ProvisionTimeout => Input::ProvisionCheck { timeout: age },
                Sweep::Idle => Input::IdleCheck { threshold: age },
            };
            match self.state.apply(id, input, None).await {
                Ok(applied) if applied.previous != applied.workspace.status => match applied.workspace.status {
                    WorkspaceStatus::Offline => report.offline += 1,
                    WorkspaceStatus::Failed => report.failed += 1,
                    WorkspaceStatus::Hibernated => report.hibernated += 1,
                    _ => {}
                },
                Ok(_) => {}
                Err(error) => {
                    metrics::counter!("hearth_sweep_errors_total", "sweep" => label).increment(1);
                    tracing::warn!(sweep = label, workspace_id = %id, error = %error.message, cause = ?error.cause, "sweep could not apply");
                    report.errors += 1;
                }
            }
        }
    }

    /// Runs `run_once` every `interval` until shutdown.
    pub async fn run(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        // The first pass runs one interval after start, not at once, so tests
        // that drive `run_once` by hand are not raced by the loop.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let report = self.run_once().await;
                    if report != SweepReport::default() {
                        tracing::info!(?report, "sweep");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}
