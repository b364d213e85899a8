//! The background sweeps: liveness (online/degraded → offline), provision
//! timeout (provisioning → failed) and, opt-in, hibernation of idle
//! workspaces. They are timestamp-based and level-triggered: a restart loses
//! nothing, and several replicas may sweep at once because each candidate is
//! re-decided under its row lock (a second sweeper finds nothing to do).

use std::time::Duration;

use hearth_store::Sweep;

use crate::metrics::store_error;
use crate::state::AppState;
use crate::transitions::sweep_label;
pub use crate::transitions::SweepReport;

/// Candidates handled per sweep and kind; the rest wait for the next tick.
const BATCH: i64 = 500;

pub struct Sweeper {
    state: AppState,
}

impl Sweeper {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// One pass of every sweep. Errors are logged with the workspace id,
    /// counted, and do not stop the other candidates or sweeps.
    pub async fn run_once(&self) -> SweepReport {
        let settings = &self.state.settings;
        let mut report = SweepReport::default();
        // The fleet size sets the heartbeat pace, and the liveness TTL
        // follows the pace.
        match self.state.store.count_workspaces().await {
            Ok(count) => self.state.pace.set_fleet(u64::try_from(count).unwrap_or(0)),
            Err(error) => {
                store_error(&error);
                tracing::warn!(%error, "cannot count the fleet; the heartbeat pace keeps the last count");
                report.errors += 1;
            }
        }
        let ttl = self.state.pace.liveness_ttl(settings.liveness_ttl);
        let mut kinds = vec![(Sweep::Liveness, ttl), (Sweep::ProvisionTimeout, settings.provision_timeout)];
        if let Some(idle) = settings.hibernate_after {
            kinds.push((Sweep::Idle, idle));
        }
        for (kind, age) in kinds {
            match self.state.transitions.sweep(kind, age, BATCH).await {
                Ok(one) => {
                    report.offline += one.offline;
                    report.failed += one.failed;
                    report.hibernated += one.hibernated;
                    report.errors += one.errors;
                }
                Err(error) => {
                    store_error(&error);
                    tracing::warn!(sweep = sweep_label(kind), %error, "sweep could not list candidates");
                    report.errors += 1;
                }
            }
        }
        report
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
                    self.state.limits.forget_idle();
                    self.state.auth.forget_idle();
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
