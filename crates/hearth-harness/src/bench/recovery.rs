//! The fleet-recovery benchmark (`hearth bench recovery`): how fast a
//! whole fleet changes state together, in transitions per second and in
//! time to all of it. Three phases on a server started in this process:
//!
//! 1. **online**: every workspace's first heartbeat (provisioning →
//!    online), from the load generator's senders, each workspace once;
//! 2. **offline**: the fleet falls silent; after the liveness TTL the
//!    server's own liveness sweep (driven tick after tick, as its loop
//!    would, the mass-silence guard off: it measures the sweep, not the
//!    guard) takes every workspace offline;
//! 3. **back online**: every workspace heartbeats again (offline → online),
//!    the way back after a partition.
//!
//! Each phase ends when every workspace is in its new state (checked
//! through the store's counts); the figure is workspaces / seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hearth_client::Client;
use hearth_server::{Application, MassSilenceGuard, Settings};
use secrecy::SecretString;
use serde::Serialize;

use super::{load, workspaces, Phase, Progress};

/// The liveness TTL of the bench's server: short, so the offline phase
/// starts soon after the fleet falls silent.
const TTL: Duration = Duration::from_secs(2);

/// The size of the run.
#[derive(Debug, Clone)]
pub struct Options {
    pub workspaces: u32,
    /// Concurrent senders of the heartbeat phases.
    pub concurrency: u32,
    /// `postgres://…` or `sqlite:…`; `None`: SQLite in a temp dir.
    pub database_url: Option<String>,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Transitions {
    pub workspaces: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// Requests that failed (heartbeat phases).
    pub errors: u64,
}

impl Transitions {
    fn new(workspaces: u64, elapsed: Duration, errors: u64) -> Self {
        let seconds = elapsed.as_secs_f64();
        let per_second = if seconds > 0.0 { workspaces as f64 / seconds } else { 0.0 };
        Self { workspaces, seconds, per_second, errors }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engine: &'static str,
    pub workspaces: u64,
    pub concurrency: u32,
    pub online: Transitions,
    pub offline: Transitions,
    pub back_online: Transitions,
}

impl Report {
    /// Fails when a phase had errors (its figure would flatter).
    pub fn check(&self) -> anyhow::Result<()> {
        let errors = self.online.errors + self.offline.errors + self.back_online.errors;
        if errors > 0 {
            bail!("{errors} requests or sweeps failed; the figures do not count");
        }
        Ok(())
    }
}

/// Runs the three phases on a server of its own and stops it.
pub async fn run(options: Options, progress: &dyn Progress) -> anyhow::Result<Report> {
    let dir = tempfile::Builder::new().prefix("hearth-bench-").tempdir().context("cannot create a temp dir")?;
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().to_path_buf(),
        database_url: options.database_url.clone().map(SecretString::from),
        liveness_ttl: TTL,
        // Sweeps are driven here, tick after tick.
        sweep_interval: Duration::from_secs(3600),
        mass_silence: MassSilenceGuard { share: 1.0, ..MassSilenceGuard::default() },
        // No heartbeat budget: the TTL stays the TTL whatever the fleet.
        max_heartbeat_rate: 0,
        rate_limit_per_token: 0,
        rate_limit_per_workspace: 0,
        ..Settings::default()
    };
    let engine = super::engine(&hearth_server::startup::database_url(&settings));
    let admin_token = hearth_server::startup::admin_token(&settings)?;
    let app = Application::build(settings).await.context("cannot start the server")?;
    let url = format!("http://{}", app.local_addr()?);
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        // Told to stop, or the sender is gone: stop either way.
        stopped.await.unwrap_or_default();
    }));
    let measured = phases(&options, &url, &admin_token, &state, progress).await;
    // The server may have ended on its own already (then nothing receives
    // this); `finish` says how it ended either way.
    stop.send(()).unwrap_or_default();
    let ended = super::finish("the server", server).await;
    let removed = dir.close().context("cannot remove the bench's temp dir");
    let report = measured?;
    ended?;
    removed?;
    Ok(Report { engine, ..report })
}

async fn phases(
    options: &Options,
    url: &str,
    admin_token: &str,
    state: &hearth_server::state::AppState,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let admin = Client::new(url, Some(admin_token.to_owned()))?;
    let count = u64::from(options.workspaces);
    let concurrency = options.concurrency as usize;
    progress.phase(Phase::new(format!("registering {count} workspaces"), Some(count), "workspaces"));
    let targets = workspaces::create(&admin, options.workspaces, progress).await?;
    let heartbeat_url = format!("{url}/registry/heartbeat");

    progress.phase(Phase::new("online: every workspace's first heartbeat", Some(count), "heartbeats"));
    let started = Instant::now();
    let first = load::drive(&heartbeat_url, &targets, concurrency, load::Until::EachOnce, progress).await?;
    let online = Transitions::new(live(state).await?, started.elapsed(), first.report.errors);

    // Silent for a TTL, then the sweep takes the fleet offline.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    progress.phase(Phase::new("offline: the liveness sweep, tick after tick", Some(count), "workspaces"));
    let sweeper = hearth_server::sweeper::Sweeper::new(state.clone());
    let started = Instant::now();
    let (mut offline, mut errors) = (0u64, 0u64);
    loop {
        let tick = sweeper.run_once().await;
        offline += tick.offline as u64;
        errors += tick.errors as u64;
        progress.position(offline);
        if tick.offline == 0 && tick.errors == 0 {
            break;
        }
    }
    let offline = Transitions::new(offline, started.elapsed(), errors);

    progress.phase(Phase::new("back online: every workspace heartbeats again", Some(count), "heartbeats"));
    let started = Instant::now();
    let again = load::drive(&heartbeat_url, &targets, concurrency, load::Until::EachOnce, progress).await?;
    let back_online = Transitions::new(live(state).await?, started.elapsed(), again.report.errors);
    Ok(Report { engine: "", workspaces: count, concurrency: options.concurrency, online, offline, back_online })
}

/// The live (online or degraded) workspaces now.
async fn live(state: &hearth_server::state::AppState) -> anyhow::Result<u64> {
    let (_, live) = state.store.count_liveness(chrono::Utc::now()).await.context("cannot count the live workspaces")?;
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small fleet goes online, offline and online again, every
    /// workspace each time, with no error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_fleet_goes_online_offline_and_back() {
        let options = Options { workspaces: 30, concurrency: 4, database_url: None };
        let report = run(options, &super::super::Quiet).await.unwrap();
        report.check().unwrap();
        assert_eq!(report.engine, "sqlite");
        assert_eq!((report.online.workspaces, report.offline.workspaces, report.back_online.workspaces), (30, 30, 30));
    }
}
