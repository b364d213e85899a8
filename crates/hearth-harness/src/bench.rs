//! The heartbeat benchmark (`hearth bench heartbeat`): heartbeat ingest of a
//! real server, started in this process, against a baseline measured in the
//! same run, followed by a durability audit through the API.
//!
//! Steps: [`Bench::start`] starts the server (SQLite in a temp dir, or the
//! given database URL); [`Bench::measure`] creates the workspaces, each with
//! an issued token (`workspaces`); drives a minimal axum `POST /echo` (which
//! parses the same JSON body, `baseline`) with the load generator (`load`)
//! for S seconds; drives `POST /registry/heartbeat` with the same generator,
//! the same requests (workspace ids and tokens included: that is why the
//! workspaces are created before the baseline runs) and the same duration;
//! audits (every workspace online with a last heartbeat, exactly one
//! `WORKSPACE_PROVISIONING` and one `WORKSPACE_ONLINE` event each, `audit`);
//! and returns both runs and their ratio (`report`). [`Bench::stop`] stops
//! the server and removes the temp dir.
//!
//! Load generator, server and baseline share this machine's cores, so the
//! ratio, not the absolute request rate, is the figure to compare.

mod audit;
mod baseline;
mod load;
mod report;
mod workspaces;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use hearth_client::Client;
use hearth_core::WorkspaceId;
use hearth_server::{Application, Settings};
use secrecy::SecretString;
use tokio::sync::oneshot;

pub use self::audit::{MAX_PROBLEMS_SHOWN, ONLINE, PROVISIONING};
pub use self::load::{Latency, RunReport};
pub use self::report::Report;

/// How long the servers get to drain once told to stop.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(30);

/// The size of the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workspaces to create and send heartbeats for.
    pub workspaces: u32,
    /// Concurrent senders, each with its own HTTP connection.
    pub concurrency: u32,
    /// Seconds of load for the baseline, and again for the heartbeats.
    pub seconds: u64,
    /// The server's database (`postgres://…` or `sqlite:…`); the bench's
    /// workspaces stay in it. `None`: SQLite in the bench's temp dir.
    pub database_url: Option<String>,
}

/// A server started in this process for the bench, in a temp dir of its own.
pub struct Bench {
    options: Options,
    dir: tempfile::TempDir,
    engine: &'static str,
    url: String,
    admin_token: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bench {
    /// Starts the server the bench measures.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hearth-bench-").tempdir().context("cannot create a temp dir")?;
        let settings = Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_path_buf(),
            database_url: options.database_url.clone().map(SecretString::from),
            sweep_interval: Duration::from_secs(3600),
            // The bench measures ingest; a few workspaces may well send more
            // than a production runtime's rate, which is not what is measured.
            rate_limit_per_token: 0,
            ..Settings::default()
        };
        let engine = engine(&hearth_server::startup::database_url(&settings));
        let admin_token = hearth_server::startup::admin_token(&settings)?;
        let app = Application::build(settings).await.context("cannot start the server")?;
        let url = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            // Told to stop, or the sender is gone: stop either way.
            stopped.await.unwrap_or_default();
        }));
        Ok(Self { options, dir, engine, url, admin_token, stop, server })
    }

    /// Everything between starting the server and stopping it; `note` hears
    /// what is being done, for people waiting on it.
    pub async fn measure(&self, note: &mut dyn FnMut(&str)) -> anyhow::Result<Report> {
        let options = &self.options;
        let admin = Client::new(&self.url, Some(self.admin_token.clone()))?;
        let duration = Duration::from_secs(options.seconds);
        let concurrency = options.concurrency as usize;

        let rss_before = resident_bytes();
        note(&format!("creating {} workspaces with issued tokens…", options.workspaces));
        let targets = workspaces::create(&admin, options.workspaces).await?;

        note(&format!("baseline: {}s of POST /echo…", options.seconds));
        let baseline = baseline::run(&targets, concurrency, duration).await?;
        note(&format!("heartbeat: {}s of POST /registry/heartbeat…", options.seconds));
        let heartbeat =
            load::drive(&format!("{}/registry/heartbeat", self.url), &targets, concurrency, duration).await?;

        let rss_growth = resident_bytes().zip(rss_before).map(|(after, before)| after.saturating_sub(before));
        note("auditing through the API…");
        let ids: Vec<WorkspaceId> = targets.iter().map(|target| target.id).collect();
        let problems = audit::audit(&admin, &ids).await?;
        Ok(Report::new(options, self.engine, baseline, heartbeat, &problems, rss_growth))
    }

    /// Stops the server and removes the temp dir; the first failure of the
    /// two is the error.
    pub async fn stop(self) -> anyhow::Result<()> {
        // The server may have ended on its own already (then nothing
        // receives this); `finish` says how it ended either way.
        self.stop.send(()).unwrap_or_default();
        let server = finish("the server", self.server).await;
        let removed = self.dir.close().context("cannot remove the bench's temp dir");
        server?;
        removed
    }
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), in
/// bytes; `None` where there is no such file (not Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `sqlite` or `postgres`, from the database URL (which is never printed:
/// it may hold a password).
fn engine(database_url: &str) -> &'static str {
    if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Waits (bounded) for a server task told to stop.
async fn finish(what: &str, task: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::time::timeout(SHUTDOWN_PATIENCE, task).await {
        Ok(Ok(result)) => result.with_context(|| format!("{what} failed")),
        Ok(Err(err)) => Err(anyhow!("the task of {what} failed: {err}")),
        Err(_) => Err(anyhow!("{what} did not stop within {}s", SHUTDOWN_PATIENCE.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
        }
    }

    #[test]
    fn the_engine_comes_from_the_url_scheme() {
        assert_eq!(engine("postgres://u:p@h/db"), "postgres");
        assert_eq!(engine("postgresql://h/db"), "postgres");
        assert_eq!(engine("sqlite:///tmp/x/hearth.db"), "sqlite");
    }
}
