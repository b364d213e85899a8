//! The heartbeat benchmark (`hearth bench heartbeat`): heartbeat ingest of a
//! real server, started in this process, against a baseline measured in the
//! same run, followed by a durability audit through the API.
//!
//! Steps: [`Bench::start`] starts the server (SQLite in a temp dir, or the
//! given database URL); [`Bench::measure`] creates the workspaces, each with
//! an issued token (`workspaces`); drives a minimal axum `POST /echo` (which
//! parses the same JSON body, `baseline`) with the load generator (`load`)
//! for S seconds; sends each workspace its first heartbeat before the
//! baseline and its second after it (neither measured); drives
//! `POST /registry/heartbeat` with the same generator, the same requests
//! (workspace ids and tokens included: that is why the workspaces are
//! created before the baseline runs) and the same duration;
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
pub mod recovery;
mod report;
mod workspaces;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use hearth_client::Client;
use hearth_server::{Application, Settings};
use secrecy::SecretString;
use tokio::sync::oneshot;

pub use self::audit::{DURABLE_WITHIN, MAX_PROBLEMS_SHOWN, ONLINE, PROVISIONING};
pub use self::load::{Latency, RunReport};
pub use self::report::Report;

/// What a long bench tells the person waiting on it: one phase after the
/// other, each with its length in [`Phase::unit`]s when known, and how far
/// it got. The CLI draws it as progress bars; tests ignore it.
pub trait Progress: Send + Sync {
    /// A new phase begins (the previous one is over).
    fn phase(&self, phase: Phase);
    /// The current phase got this far (in its units, from 0).
    fn position(&self, done: u64);
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub message: String,
    /// The phase's length; `None` when it is not known in advance.
    pub total: Option<u64>,
    /// What `total` and `position` count: `workspaces`, `seconds`, …
    pub unit: &'static str,
}

impl Phase {
    fn new(message: impl Into<String>, total: Option<u64>, unit: &'static str) -> Self {
        Self { message: message.into(), total, unit }
    }
}

/// Progress nobody watches.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: Phase) {}
    fn position(&self, _: u64) {}
}

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
    /// When the server answers a plain heartbeat (`--heartbeat-ack`).
    pub heartbeat_ack: hearth_server::HeartbeatAck,
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
            rate_limit_per_workspace: 0,
            heartbeat_ack: options.heartbeat_ack,
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

    /// Everything between starting the server and stopping it; `progress`
    /// hears what is being done, for people waiting on it.
    pub async fn measure(&self, progress: &dyn Progress) -> anyhow::Result<Report> {
        let options = &self.options;
        let admin = Client::new(&self.url, Some(self.admin_token.clone()))?;
        let duration = Duration::from_secs(options.seconds);
        let concurrency = options.concurrency as usize;
        let count = u64::from(options.workspaces);

        let rss_before = resident_bytes();
        progress.phase(Phase::new(
            format!("registering {} workspaces with issued tokens (POST /workspaces/batch)", options.workspaces),
            Some(count),
            "workspaces",
        ));
        let targets = workspaces::create(&admin, options.workspaces, progress).await?;
        let heartbeat_url = format!("{}/registry/heartbeat", self.url);

        // Each workspace's first heartbeat moves it to online under the row
        // lock, with its event: a one-off, not the steady state measured.
        progress.phase(Phase::new("first heartbeat of every workspace (not measured)", Some(count), "heartbeats"));
        let warm_up = load::drive(&heartbeat_url, &targets, concurrency, load::Until::EachOnce, progress).await?;
        let seconds = Some(options.seconds);
        progress.phase(Phase::new(format!("baseline: {}s of POST /echo", options.seconds), seconds, "seconds"));
        let baseline = baseline::run(&targets, concurrency, duration, progress).await?;
        // A fleet in steady state has heartbeated within its interval, so
        // its tokens are cached (and renewed ahead of their TTL). The first
        // round and the baseline may take longer than a token stays cached
        // unused (`TOKEN_CACHE_TTL`; at 1M workspaces they do: see
        // BENCHMARKS.md, "1M: tokens expired between the bench's rounds"):
        // one more round, not measured, right before the measured run,
        // starts it from a fleet's steady state instead of from tokens
        // cached minutes before.
        progress.phase(Phase::new("second heartbeat of every workspace (not measured)", Some(count), "heartbeats"));
        let second = load::drive(&heartbeat_url, &targets, concurrency, load::Until::EachOnce, progress).await?;
        progress.phase(Phase::new(
            format!("heartbeat: {}s of POST /registry/heartbeat", options.seconds),
            seconds,
            "seconds",
        ));
        let heartbeat =
            load::drive(&heartbeat_url, &targets, concurrency, load::Until::Elapsed(duration), progress).await?;

        let rss_growth = resident_bytes().zip(rss_before).map(|(after, before)| after.saturating_sub(before));
        // "Durable within 1 s": the audit reads the database a second after
        // the last heartbeat was answered.
        tokio::time::sleep(audit::DURABLE_WITHIN).await;
        progress.phase(Phase::new("auditing through the API", Some(count), "workspaces"));
        let mut acked = warm_up.acked;
        load::merge_acked(&mut acked, second.acked);
        load::merge_acked(&mut acked, heartbeat.acked);
        let problems = audit::audit(&admin, &targets, &acked, progress).await?;
        let runs = report::Runs {
            first_heartbeats: warm_up.report,
            baseline: baseline.report,
            second_heartbeats: second.report,
            heartbeat: heartbeat.report,
        };
        Ok(Report::new(options, self.engine, runs, &problems, rss_growth))
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_audit_finds_acknowledged_heartbeats_missing_from_the_database() {
        let options = Options {
            workspaces: 3,
            concurrency: 1,
            seconds: 1,
            database_url: None,
            heartbeat_ack: Default::default(),
        };
        let bench = Bench::start(options).await.unwrap();
        let admin = Client::new(&bench.url, Some(bench.admin_token.clone())).unwrap();
        let targets = workspaces::create(&admin, 3, &Quiet).await.unwrap();
        let url = format!("{}/registry/heartbeat", bench.url);
        let run = load::drive(&url, &targets[..2], 1, load::Until::EachOnce, &Quiet).await.unwrap();
        assert_eq!(run.acked.len(), 2);
        let mut acked = run.acked;
        let problems = audit::audit(&admin, &targets, &acked, &Quiet).await.unwrap();
        assert_eq!(problems, Vec::<String>::new(), "two online, one never sent for: all is well");

        // As if a later heartbeat of the first had been acknowledged but
        // not stored, and one of the third, which was never sent.
        acked.insert(targets[0].id, chrono::Utc::now() + chrono::Duration::minutes(1));
        acked.insert(targets[2].id, chrono::Utc::now());
        let problems = audit::audit(&admin, &targets, &acked, &Quiet).await.unwrap();
        bench.stop().await.unwrap();
        let about = |target: &workspaces::Target| -> Vec<&String> {
            problems.iter().filter(|problem| problem.contains(&target.id.to_string())).collect()
        };
        assert_eq!(about(&targets[0]).len(), 1, "{problems:#?}");
        assert!(about(&targets[0])[0].contains("not durable within 1s"), "{problems:#?}");
        assert!(about(&targets[1]).is_empty(), "{problems:#?}");
        let third = about(&targets[2]);
        assert!(third.iter().any(|p| p.contains("is provisioning, not online")), "{problems:#?}");
        assert!(third.iter().any(|p| p.contains("has no last heartbeat")), "{problems:#?}");
        assert!(third.iter().any(|p| p.contains("has 0 WORKSPACE_ONLINE events, not 1")), "{problems:#?}");
    }

    #[test]
    fn the_engine_comes_from_the_url_scheme() {
        assert_eq!(engine("postgres://u:p@h/db"), "postgres");
        assert_eq!(engine("postgresql://h/db"), "postgres");
        assert_eq!(engine("sqlite:///tmp/x/hearth.db"), "sqlite");
    }
}
