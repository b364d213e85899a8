//! The background sweeps: liveness (online/degraded → offline), provision
//! timeout (provisioning → failed) and, opt-in, hibernation of idle
//! workspaces. They are timestamp-based and level-triggered: a restart loses
//! nothing, and several replicas may sweep at once because each candidate is
//! re-decided under its row lock (a second sweeper finds nothing to do).

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use hearth_core::{MassSilence, Outage, SweepContext};
use hearth_store::Sweep;

use crate::metrics::store_error;
use crate::state::AppState;
use crate::transitions::sweep_label;
pub use crate::transitions::SweepReport;

/// Candidates handled per batch of the provision-timeout and idle sweeps;
/// the rest wait for the next tick.
const BATCH: i64 = 500;
/// Candidates per batch of the liveness sweep once it has counted the fleet
/// (it goes on batch after batch while they are full).
const LIVENESS_BATCH: i64 = 2000;
/// Due workspaces the liveness sweep reads at once at its full pace.
const DUE_PAGE: i64 = 100_000;
/// Liveness sweep batches in flight at once at its full pace.
const SWEEPS_AT_ONCE: usize = 3;
/// The shortest gap in the control plane's own liveness that is an outage
/// (with short sweep intervals; otherwise three intervals).
const MIN_OUTAGE_GAP: Duration = Duration::from_secs(3);

pub struct Sweeper {
    state: AppState,
    memory: Mutex<Memory>,
}

/// What one process's sweeper carries from pass to pass.
#[derive(Default)]
struct Memory {
    /// The latest outage this process has said it saw (said once each).
    told: Option<Outage>,
    /// The last liveness pass decided as many offline as it was allowed:
    /// the next one counts the fleet before it decides.
    full: bool,
    /// A mass silence is being held back (said once each time it begins).
    mass: bool,
}

/// How long the control plane may go unrecorded before it counts as an
/// outage: three sweep intervals (a sweep may run late; three in a row
/// missed is every replica down or the database unreachable).
pub fn outage_gap(sweep_interval: Duration) -> Duration {
    sweep_interval.saturating_mul(3).max(MIN_OUTAGE_GAP)
}

impl Sweeper {
    pub fn new(state: AppState) -> Self {
        Self { state, memory: Mutex::new(Memory::default()) }
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
        self.quota_metrics(&mut report).await;
        let ttl = self.state.pace.liveness_ttl(settings.liveness_ttl);
        let heard = self.control_plane_alive(ttl, &mut report).await;
        match heard {
            // Unknown whether the control plane was down: no runtime is
            // judged silent, nor a provisioning one timed out, this pass.
            None => {}
            // Within a TTL of an outage's end nobody is due yet.
            Some(Some(outage)) if within(outage, ttl) => {}
            Some(outage) => self.sweep_liveness(ttl, outage, &mut report).await,
        }
        if let Some(outage) = heard {
            let context = SweepContext { outage, mass_silence: None };
            self.sweep(Sweep::ProvisionTimeout, settings.provision_timeout, BATCH, context, &mut report).await;
        }
        if let Some(idle) = settings.hibernate_after {
            self.sweep(Sweep::Idle, idle, BATCH, SweepContext::default(), &mut report).await;
        }
        report
    }

    /// Each org with a quota: its use as metrics (`metrics::quota_use`).
    async fn quota_metrics(&self, report: &mut SweepReport) {
        let orgs = match self.state.store.list_orgs().await {
            Ok(orgs) => orgs,
            Err(error) => {
                store_error(&error);
                tracing::warn!(%error, "cannot list orgs; quota metrics keep their last values");
                report.errors += 1;
                return;
            }
        };
        for org in orgs.iter().filter(|org| org.quotas != hearth_store::Quotas::default()) {
            match self.state.store.org_usage(org.id).await {
                Ok(usage) => crate::metrics::quota_use(org, &usage),
                Err(error) => {
                    store_error(&error);
                    tracing::warn!(%error, org_id = %org.id, "cannot count an org's quota use");
                    report.errors += 1;
                }
            }
        }
    }

    /// The liveness sweep: batch after batch while each takes its whole
    /// allowance (a fleet silent together goes offline in one tick, not a
    /// batch a tick), for at most one sweep interval, unless a mass silence
    /// holds it back ([`Sweeper::liveness_limit`]). At its full pace it
    /// reads the due workspaces once and takes them offline batch by batch
    /// ([`Sweeper::sweep_due`]).
    async fn sweep_liveness(&self, ttl: Duration, outage: Option<Outage>, report: &mut SweepReport) {
        let started = std::time::Instant::now();
        loop {
            let (limit, context) = self.liveness_limit(ttl, outage, report).await;
            let pass = if limit == LIVENESS_BATCH && context.mass_silence.is_none() {
                self.sweep_due(ttl, context, started, report).await
            } else {
                let offline = self.sweep(Sweep::Liveness, ttl, limit, context, report).await;
                offline.map(|offline| i64::try_from(offline).unwrap_or(i64::MAX) >= limit)
            };
            let Some(full) = pass else { return };
            self.memory().full = full;
            if !full || context.mass_silence.is_some() || started.elapsed() >= self.state.settings.sweep_interval {
                return;
            }
        }
    }

    /// The liveness sweep at its full pace: the ids of the due workspaces
    /// read once (at most [`DUE_PAGE`], oldest first), then taken offline
    /// [`LIVENESS_BATCH`] at a time ([`SWEEPS_AT_ONCE`] batches in flight),
    /// each batch re-decided under its row locks. At 1M workspaces the
    /// candidate query is a scan of the live rows: one scan now feeds many
    /// batches (BENCHMARKS.md, "Fleet recovery"). Stops at the tick's
    /// time. Whether more may be due;
    /// `None` when the due workspaces cannot be read (logged and counted).
    async fn sweep_due(
        &self,
        ttl: Duration,
        context: SweepContext,
        started: std::time::Instant,
        report: &mut SweepReport,
    ) -> Option<bool> {
        let cutoff = silent_since(ttl);
        let due = match self.state.store.liveness_due(cutoff, DUE_PAGE).await {
            Ok(due) => due,
            Err(error) => {
                store_error(&error);
                tracing::warn!(%error, "liveness sweep could not list the due workspaces");
                report.errors += 1;
                return None;
            }
        };
        // A few batches at once, as the transition writers: one locks and
        // writes its rows while another appends its events and commits.
        let mut batches = due.chunks(LIVENESS_BATCH as usize);
        let mut outcomes = futures_util::stream::FuturesUnordered::new();
        let mut more = false;
        loop {
            while outcomes.len() < SWEEPS_AT_ONCE {
                let Some(batch) = batches.next() else { break };
                outcomes.push(self.sweep_batch(batch, ttl, context, started));
            }
            let Some(outcome) = outcomes.next().await else { break };
            match outcome {
                None => more = true,
                Some((_, Ok(one))) => {
                    report.offline += one.offline;
                    report.errors += one.errors;
                }
                Some((workspaces, Err(error))) => {
                    store_error(&error);
                    tracing::warn!(%error, workspaces, "liveness sweep batch failed; its workspaces are due again next tick");
                    report.errors += 1;
                    more = true;
                }
            }
        }
        Some(more || i64::try_from(due.len()).unwrap_or(i64::MAX) >= DUE_PAGE)
    }

    /// One batch of [`Sweeper::sweep_due`] (with how many it held), or
    /// `None` once the tick's time is up (its workspaces are due again
    /// next tick).
    async fn sweep_batch(
        &self,
        batch: &[hearth_core::WorkspaceId],
        ttl: Duration,
        context: SweepContext,
        started: std::time::Instant,
    ) -> Option<(usize, hearth_store::StoreResult<SweepReport>)> {
        if started.elapsed() >= self.state.settings.sweep_interval {
            return None;
        }
        Some((batch.len(), self.state.transitions.sweep_these(Sweep::Liveness, batch, ttl, context).await))
    }

    /// One batch of one sweep, added to `report`; how many it took offline,
    /// `None` when it failed (logged and counted).
    async fn sweep(
        &self,
        kind: Sweep,
        age: Duration,
        limit: i64,
        context: SweepContext,
        report: &mut SweepReport,
    ) -> Option<usize> {
        match self.state.transitions.sweep(kind, age, limit, context).await {
            Ok(one) => {
                report.offline += one.offline;
                report.failed += one.failed;
                report.hibernated += one.hibernated;
                report.errors += one.errors;
                Some(one.offline)
            }
            Err(error) => {
                store_error(&error);
                tracing::warn!(sweep = sweep_label(kind), %error, "sweep could not list candidates");
                report.errors += 1;
                None
            }
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many the liveness sweep may take offline this pass, and what it
    /// says in their events. A pass decides at most the guard's minimum
    /// before it has counted the fleet; after a full pass it counts, and in
    /// a mass silence (much of the live fleet silent at once while the
    /// control plane is up) it marks them at the guard's rate.
    async fn liveness_limit(
        &self,
        ttl: Duration,
        outage: Option<Outage>,
        report: &mut SweepReport,
    ) -> (i64, SweepContext) {
        let guard = self.state.settings.mass_silence;
        let mut context = SweepContext { outage, mass_silence: None };
        let uncounted = guard.uncounted_limit(LIVENESS_BATCH);
        if uncounted == LIVENESS_BATCH || !self.memory().full {
            return (uncounted, context);
        }
        let cutoff = silent_since(ttl);
        let (due, live) = match self.state.store.count_liveness(cutoff).await {
            Ok(counts) => counts,
            Err(error) => {
                store_error(&error);
                tracing::warn!(%error, "cannot count the silent workspaces; this pass decides as few as before a count");
                report.errors += 1;
                return (uncounted, context);
            }
        };
        let mass = guard.is_mass(due, live);
        metrics::gauge!("hearth_mass_silence_due").set(if mass { due as f64 } else { 0.0 });
        let mut memory = self.memory();
        if mass && !memory.mass {
            metrics::counter!("hearth_mass_silences_total").increment(1);
            tracing::warn!(due, live, rate_per_second = guard.rate,
                "a mass silence: more of the live fleet than --mass-silence-share is silent at once while the control plane is up \
                 (more likely the network between the runtimes and Hearth than so many deaths); marking them offline at \
                 --mass-silence-rate per second, not all at once");
        } else if !mass && memory.mass {
            tracing::info!(due, live, "the mass silence is over; the liveness sweep decides at its full pace again");
        }
        memory.mass = mass;
        if !mass {
            return (LIVENESS_BATCH, context);
        }
        context.mass_silence = Some(MassSilence { due, live });
        (guard.limited(self.state.settings.sweep_interval), context)
    }

    /// Records that the control plane is alive now and reads its latest
    /// outage (`Some(None)`: none ever); `None` when the store cannot say.
    /// A new outage is logged once per process and counted.
    async fn control_plane_alive(&self, ttl: Duration, report: &mut SweepReport) -> Option<Option<Outage>> {
        let gap = signed(outage_gap(self.state.settings.sweep_interval));
        let outage = match self.state.store.control_plane_alive(Utc::now(), gap).await {
            Ok(outage) => outage,
            Err(error) => {
                store_error(&error);
                tracing::warn!(%error, "cannot record the control plane alive; no workspace goes offline until it can");
                report.errors += 1;
                return None;
            }
        };
        let held = outage.is_some_and(|outage| within(outage, ttl));
        metrics::gauge!("hearth_liveness_held").set(if held { 1.0 } else { 0.0 });
        let mut memory = self.memory();
        let told = &mut memory.told;
        if let Some(outage) = outage.filter(|outage| *told != Some(*outage)) {
            if told.is_some() || held {
                metrics::counter!("hearth_control_plane_outages_total").increment(1);
                tracing::warn!(
                    started_at = %outage.started_at, ended_at = %outage.ended_at,
                    unheard_seconds = (outage.ended_at - outage.started_at).num_seconds(),
                    offline_not_before = ?outage.ended_at.checked_add_signed(signed(ttl)),
                    "the control plane could not hear runtimes (every replica was down, or the database did not answer); \
                     that time does not count against any workspace, so none goes offline before a full TTL after it"
                );
            }
            *told = Some(outage);
        }
        Some(outage)
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

/// Now is within a TTL of `outage`'s end (a TTL past the calendar's end:
/// always).
fn within(outage: Outage, ttl: Duration) -> bool {
    outage.ended_at.checked_add_signed(signed(ttl)).is_none_or(|until| Utc::now() < until)
}

/// `duration` for date arithmetic (one too long for it: the longest there
/// is, which every checked sum then refuses).
fn signed(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Runtimes last heard before this are silent for `ttl` now (the earliest
/// time when `ttl` reaches past it).
fn silent_since(ttl: Duration) -> chrono::DateTime<Utc> {
    Utc::now().checked_sub_signed(signed(ttl)).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}
