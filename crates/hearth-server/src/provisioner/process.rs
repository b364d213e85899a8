//! The process backend: one `hearth agent` per workspace, a child process
//! of the server. Duplicates are impossible by construction: an agent holds
//! an exclusive lock on `<dir>/agent.lock` for its lifetime, so a runtime
//! left over from a previous server (after a crash) makes a new one exit
//! with [`EXIT_LOCKED`]; the provisioner then *adopts* it — it watches the
//! lock and starts a fresh agent only once the old one is gone — and stops
//! it by the pid the agent writes into the lock file. The command line, the
//! exit codes and the lock are the agent's runtime contract
//! ([`hearth_agent::contract`], [`hearth_agent::lock`]); this module only
//! uses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_agent::contract::{Launch, EXIT_LOCKED};
use hearth_agent::lock::{self, Holder};
use hearth_core::{WorkspaceId, WorkspaceStatus};
use hearth_store::{Store, Workspace};
use tokio::process::Child;
use tokio::sync::Mutex;

use super::{Desired, Observed, Provisioner, RuntimeState};
use crate::auth;

/// The runtime's log (the agent's output, its program's lines included),
/// appended to across restarts.
const AGENT_LOG: &str = "agent.log";

/// Longest wait before restarting a runtime that keeps crashing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

enum Runtime {
    Running {
        child: Child,
        started: Instant,
        /// Wall-clock start, compared with the workspace's last status change.
        started_at: chrono::DateTime<chrono::Utc>,
    },
    Backoff {
        until: Instant,
        failures: u32,
        /// How the last run ended, when it ran and exited with a code.
        exit_code: Option<i64>,
    },
    /// Another process (an agent from a previous server) holds the lock.
    Adopted,
}

pub struct ProcessProvisioner {
    program: PathBuf,
    server_url: String,
    data_dir: PathBuf,
    heartbeat_interval: Duration,
    stop_grace: Duration,
    store: Arc<dyn Store>,
    /// Forgets a workspace's cached tokens when its runtime's token
    /// replaces them (other replicas hear the store's notice).
    auth: crate::auth::Authenticator,
    runtimes: Mutex<HashMap<WorkspaceId, (Runtime, u32)>>,
}

/// True when the workspace entered `provisioning` after `runtime` started:
/// a restart (resume stops the runtime first, creation precedes the start).
/// An operator restarted `workspace` after `runtime` started: it is
/// provisioning again since, or the event log holds a restart (`restart`,
/// from [`restarts_since`]) after that start. The log matters when the old
/// runtime's next heartbeat moved the workspace online again before this
/// pass saw it provisioning.
fn restarted_since(workspace: &Workspace, runtime: &Runtime, restart: Option<&DateTime<Utc>>) -> bool {
    match runtime {
        Runtime::Running { started_at, .. } => {
            (workspace.status == WorkspaceStatus::Provisioning && workspace.status_changed_at > *started_at)
                || restart.is_some_and(|at| at > started_at)
        }
        _ => false,
    }
}

/// Gives a runtime its workspace's token in a 0600 file, so it never needs
/// the bootstrap. Issued as a rotation with no overlap, under the
/// workspace's row lock: a token someone got before the provisioner's first
/// pass (a bootstrap that raced it) stops at once, and a bootstrap after it
/// is refused (the workspace has had a token).
async fn inject_token(store: &dyn Store, workspace: &Workspace, token_file: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let minted = auth::mint(workspace.org_id, workspace.id, Some("process-provisioner".into()));
    let now = minted.record.now;
    store
        .issue_workspace_token(hearth_store::NewWorkspaceToken::new(workspace.id, minted.record), Some(now))
        .await
        .context("cannot store the runtime's token")?;
    crate::secret_file::write_secret_file(token_file, &minted.secret)
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF)
}

impl ProcessProvisioner {
    pub fn new(
        program: PathBuf,
        server_url: String,
        data_dir: PathBuf,
        heartbeat_interval: Duration,
        stop_grace: Duration,
        store: Arc<dyn Store>,
        auth: crate::auth::Authenticator,
    ) -> Self {
        Self {
            program,
            server_url,
            data_dir,
            heartbeat_interval,
            stop_grace,
            store,
            auth,
            runtimes: Mutex::new(HashMap::new()),
        }
    }

    pub fn workspace_dir(&self, id: WorkspaceId) -> PathBuf {
        self.data_dir.join("workspaces").join(id.to_string())
    }

    /// One level-triggered pass over every workspace ([`Provisioner::reconcile`]).
    async fn pass(&self, desired: &[Desired]) -> Vec<Observed> {
        let mut runtimes = self.runtimes.lock().await;
        for Desired { workspace, run, restarted_at } in desired {
            let id = workspace.id;
            if !run {
                if let Some((runtime, _)) = runtimes.remove(&id) {
                    self.stop(id, runtime).await;
                }
                continue;
            }
            let next = self.step(workspace, runtimes.remove(&id), restarted_at.as_ref()).await;
            runtimes.insert(id, next);
        }
        // Runtimes of workspaces that no longer exist at all.
        let known: std::collections::HashSet<WorkspaceId> = desired.iter().map(|d| d.workspace.id).collect();
        let gone: Vec<WorkspaceId> = runtimes.keys().filter(|id| !known.contains(id)).copied().collect();
        for id in gone {
            if let Some((runtime, _)) = runtimes.remove(&id) {
                self.stop(id, runtime).await;
            }
        }
        runtimes
            .iter()
            .map(|(id, (runtime, failures))| Observed {
                workspace: *id,
                state: match runtime {
                    Runtime::Running { .. } => RuntimeState::Running,
                    Runtime::Backoff { exit_code, .. } => {
                        RuntimeState::BackingOff { failures: *failures, exit_code: *exit_code, oom_killed: false }
                    }
                    Runtime::Adopted => RuntimeState::Adopted,
                },
            })
            .collect()
    }

    /// One workspace that should run: what its runtime becomes this pass.
    /// `entry`: its runtime and failures so far, if this server has one.
    async fn step(
        &self,
        workspace: &Workspace,
        entry: Option<(Runtime, u32)>,
        restarted_at: Option<&DateTime<Utc>>,
    ) -> (Runtime, u32) {
        let id = workspace.id;
        match entry {
            // First sight (this server just started): an agent left by an
            // earlier server holds the lock; adopt it rather than start a
            // second one that would only find the lock taken.
            None => match AgentLock::of(&self.workspace_dir(id), id) {
                AgentLock::Free => self.start(workspace, 0).await,
                AgentLock::Held(_) => {
                    tracing::info!(workspace_id = %id, "an agent from an earlier server still runs; adopting it");
                    (Runtime::Adopted, 0)
                }
                // Unknown (logged and counted): adopted, so that the
                // next pass looks again instead of doubling a runtime.
                AgentLock::Unknown => (Runtime::Adopted, 0),
            },
            // An operator restart moved the workspace back to
            // provisioning after this runtime started: replace it.
            Some((running @ Runtime::Running { .. }, failures))
                if restarted_since(workspace, &running, restarted_at) =>
            {
                tracing::info!(workspace_id = %id, "workspace was restarted; replacing its runtime");
                self.stop(id, running).await;
                self.start(workspace, failures).await
            }
            Some((Runtime::Running { mut child, started, started_at }, failures)) => match child.try_wait() {
                Ok(None) => (Runtime::Running { child, started, started_at }, failures),
                Ok(Some(status)) if status.code() == Some(i32::from(EXIT_LOCKED)) => {
                    tracing::info!(workspace_id = %id, "an agent from an earlier server still runs; adopting it");
                    (Runtime::Adopted, failures)
                }
                Ok(Some(status)) => {
                    // A run that lasted a while resets the backoff.
                    let failures = if started.elapsed() > MAX_BACKOFF { 1 } else { failures + 1 };
                    let wait = backoff(failures);
                    metrics::counter!("hearth_runtime_restarts_total").increment(1);
                    tracing::warn!(workspace_id = %id, %status, retry_in_secs = wait.as_secs(), "runtime exited; restarting with backoff");
                    let exit_code = status.code().map(i64::from);
                    (Runtime::Backoff { until: Instant::now() + wait, failures, exit_code }, failures)
                }
                Err(e) => {
                    metrics::counter!("hearth_runtime_poll_failures_total").increment(1);
                    tracing::error!(workspace_id = %id, error = %e, "cannot poll runtime process");
                    (Runtime::Running { child, started, started_at }, failures)
                }
            },
            Some((Runtime::Backoff { until, failures, .. }, _)) if Instant::now() >= until => {
                self.start(workspace, failures).await
            }
            Some((Runtime::Adopted, failures)) => match AgentLock::of(&self.workspace_dir(id), id) {
                AgentLock::Free => {
                    tracing::info!(workspace_id = %id, "adopted runtime is gone; starting a new one");
                    self.start(workspace, failures).await
                }
                // Unknown (logged and counted): look again next pass.
                AgentLock::Held(_) | AgentLock::Unknown => (Runtime::Adopted, failures),
            },
            Some(other) => other,
        }
    }

    async fn start(&self, workspace: &Workspace, failures: u32) -> (Runtime, u32) {
        let id = workspace.id;
        match self.spawn(workspace).await {
            Ok(child) => {
                tracing::info!(workspace_id = %id, pid = child.id(), "runtime started");
                (Runtime::Running { child, started: Instant::now(), started_at: chrono::Utc::now() }, failures)
            }
            Err(error) => {
                let failures = failures + 1;
                let wait = backoff(failures);
                metrics::counter!("hearth_runtime_start_failures_total").increment(1);
                tracing::error!(workspace_id = %id, error = format!("{error:#}"), retry_in_secs = wait.as_secs(), "cannot start runtime");
                (Runtime::Backoff { until: Instant::now() + wait, failures, exit_code: None }, failures)
            }
        }
    }

    async fn spawn(&self, workspace: &Workspace) -> anyhow::Result<Child> {
        use anyhow::Context;
        let dir = self.workspace_dir(workspace.id);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let token_file = dir.join(hearth_agent::TOKEN_FILE);
        if !token_file.exists() {
            inject_token(&*self.store, workspace, &token_file).await?;
            self.auth.forget_workspace(workspace.id);
        }
        let log_path = dir.join(AGENT_LOG);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let launch = Launch {
            server: self.server_url.clone(),
            workspace: workspace.id,
            dir,
            token_file,
            heartbeat_interval: self.heartbeat_interval,
            // Half of the agent's own grace: the agent stops its program
            // before this provisioner would kill the agent.
            stop_grace: self.stop_grace / 2,
        };
        let child = launch
            .command(&self.program, log)
            .context("cannot duplicate the log file handle")?
            .spawn()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        Ok(child)
    }

    async fn stop(&self, id: WorkspaceId, runtime: Runtime) {
        match runtime {
            Runtime::Running { mut child, .. } => {
                // SIGTERM first: the agent finishes its current step (an
                // install is never cut in half) and exits; SIGKILL after the
                // grace.
                let terminated = match child.id() {
                    Some(pid) => signal(id, "-TERM", pid),
                    None => false, // already reaped
                };
                if terminated {
                    match tokio::time::timeout(self.stop_grace, child.wait()).await {
                        Ok(Ok(status)) => {
                            tracing::info!(workspace_id = %id, %status, "runtime stopped");
                            return;
                        }
                        Ok(Err(e)) => tracing::warn!(workspace_id = %id, error = %e, "runtime did not report its exit"),
                        Err(_) => {
                            metrics::counter!("hearth_provisioner_errors_total", "reason" => "stop_grace_exceeded")
                                .increment(1);
                            tracing::warn!(workspace_id = %id, grace_secs = self.stop_grace.as_secs_f64(),
                                "runtime did not stop within its grace; killing it");
                        }
                    }
                }
                if let Err(e) = child.start_kill() {
                    tracing::warn!(workspace_id = %id, error = %e, "cannot kill runtime");
                }
                match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                    Ok(Ok(status)) => tracing::info!(workspace_id = %id, %status, "runtime killed"),
                    Ok(Err(e)) => tracing::warn!(workspace_id = %id, error = %e, "runtime did not report its exit"),
                    Err(_) => tracing::warn!(workspace_id = %id, "runtime did not die within 10 s of SIGKILL"),
                }
            }
            Runtime::Adopted => stop_adopted(&self.workspace_dir(id), id),
            Runtime::Backoff { .. } => {}
        }
    }

    /// Stops every supervised runtime (server shutdown).
    async fn stop_all(&self) {
        let mut runtimes = self.runtimes.lock().await;
        for (id, (runtime, _)) in runtimes.drain() {
            self.stop(id, runtime).await;
        }
    }
}

#[async_trait::async_trait]
impl Provisioner for ProcessProvisioner {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn reconcile(&self, desired: &[Desired]) -> Vec<Observed> {
        self.pass(desired).await
    }

    async fn shutdown(&self) {
        self.stop_all().await;
    }

    async fn logs(
        &self,
        workspace: WorkspaceId,
        tail: usize,
        follow: bool,
    ) -> std::io::Result<Option<super::LogStream>> {
        super::log_file::read(self.workspace_dir(workspace).join(AGENT_LOG), tail, follow).await
    }
}

/// What the lock of a workspace's agent directory says.
enum AgentLock {
    /// No agent holds it (or there is no lock file).
    Free,
    Held(Holder),
    /// The lock could not be read; the error is logged and counted.
    Unknown,
}

impl AgentLock {
    fn of(dir: &Path, id: WorkspaceId) -> Self {
        match lock::holder(dir) {
            Ok(None) => Self::Free,
            Ok(Some(holder)) => Self::Held(holder),
            Err(error) => {
                metrics::counter!("hearth_provisioner_errors_total", "reason" => "read_lock").increment(1);
                tracing::error!(workspace_id = %id, %error, lock = %dir.join(hearth_agent::LOCK_FILE).display(),
                    "cannot tell whether an agent holds the workspace's lock");
                Self::Unknown
            }
        }
    }
}

/// Sends `signal` (`-TERM`) to `pid` with kill(1); false when it could not.
fn signal(id: WorkspaceId, signal: &str, pid: u32) -> bool {
    match std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            tracing::warn!(workspace_id = %id, pid, signal, %status, "kill failed");
            false
        }
        Err(e) => {
            tracing::warn!(workspace_id = %id, pid, signal, error = %e, "cannot run kill");
            false
        }
    }
}

/// Stops an agent this server did not start, by the pid in its lock file.
fn stop_adopted(dir: &Path, id: WorkspaceId) {
    match AgentLock::of(dir, id) {
        AgentLock::Held(Holder { pid: Some(pid) }) => {
            if signal(id, "-TERM", pid) {
                tracing::info!(workspace_id = %id, pid, "adopted runtime told to stop");
            }
        }
        // Its pid may belong to another process by now: nothing to signal.
        AgentLock::Free => tracing::info!(workspace_id = %id, "adopted runtime had already stopped"),
        AgentLock::Held(Holder { pid: None }) => {
            tracing::warn!(workspace_id = %id, "adopted runtime wrote no pid; it stops when it sees its workspace paused or removed")
        }
        AgentLock::Unknown => {
            tracing::warn!(workspace_id = %id, "adopted runtime not signalled; it stops when it sees its workspace paused or removed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{restarts_since, should_run};
    use super::*;

    /// A bootstrap that raced the provisioner's first pass (the ~2 s before
    /// it starts the runtime) keeps nothing: the provisioner's token ends
    /// every earlier one, and no bootstrap is possible afterwards.
    #[tokio::test]
    async fn the_provisioners_token_ends_a_bootstrap_that_raced_it() {
        #![allow(clippy::unwrap_used)] // test: a failed step should panic
        let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
        let id = hearth_store::conformance::create(&store, "provisioned").await;
        let workspace = store.get_workspace(id).await.unwrap();
        let bootstrap = |secret: &str| hearth_store::Bootstrap {
            url: "http://localhost:9000".into(),
            agent_card: serde_json::json!({}),
            token: auth::mint(workspace.org_id, id, Some(secret.into())).record,
            created_after: workspace.created_at - chrono::Duration::seconds(1),
        };
        let thief = bootstrap("thief");
        let thief_hash = thief.token.hash.clone();
        store.register_minting(id, thief, workspace.created_at).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(hearth_agent::TOKEN_FILE);
        inject_token(&store, &workspace, &file).await.unwrap();
        let now = Utc::now();
        assert!(
            store.find_token_by_hash(&thief_hash, now).await.unwrap().is_none(),
            "the raced bootstrap's token ends"
        );
        let secret = std::fs::read_to_string(&file).unwrap();
        let runtime = store.find_token_by_hash(&auth::hash_token(secret.trim()), now).await.unwrap();
        assert_eq!(runtime.map(|t| t.workspace_id), Some(Some(id)), "the runtime's token works");
        let again = store.register_minting(id, bootstrap("late"), now).await;
        assert!(matches!(again, Err(hearth_store::StoreError::BootstrapRefused)), "{again:?}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    /// The race CI hit under load: an operator restarts a workspace, and
    /// the old runtime's next heartbeat brings it online again before the
    /// provisioner's pass. The status no longer shows the restart; the
    /// event log does.
    #[tokio::test]
    async fn a_restart_in_the_log_replaces_a_runtime_the_status_no_longer_shows() {
        #![allow(clippy::unwrap_used)] // test: a failed step should panic
        use hearth_core::heartbeat::RawHeartbeat;
        use hearth_core::{Heartbeat, Input};

        let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
        let id = hearth_store::conformance::create(&store, "restarted").await;
        let mut cursor = store.last_event_seq().await.unwrap();
        let child = tokio::process::Command::new("true").spawn().unwrap();
        let running = Runtime::Running { child, started: Instant::now(), started_at: Utc::now() };
        let later = || Utc::now() + chrono::Duration::milliseconds(5);
        store.apply(id, Input::Restart(hearth_core::By::ADMIN), later()).await.unwrap();
        let heartbeat = Heartbeat::validate(RawHeartbeat::default()).unwrap();
        store.apply(id, Input::Heartbeat(heartbeat), later()).await.unwrap();
        let row = store.get_workspace(id).await.unwrap();
        assert_eq!(row.status, WorkspaceStatus::Online, "the old runtime's heartbeat came first");
        assert!(!restarted_since(&row, &running, None), "the status alone no longer shows the restart");

        let other = hearth_store::conformance::create(&store, "created, not restarted").await;
        let restarts = restarts_since(&store, &mut cursor).await.unwrap();
        assert!(restarted_since(&row, &running, restarts.get(&id)), "the log shows it");
        assert!(!restarts.contains_key(&other), "a creation is not a restart");
        assert!(restarts_since(&store, &mut cursor).await.unwrap().is_empty(), "read once");
    }

    #[test]
    fn only_live_workspaces_run() {
        for status in WorkspaceStatus::ALL {
            let expected =
                !matches!(status, WorkspaceStatus::Paused | WorkspaceStatus::Hibernated | WorkspaceStatus::Removed);
            assert_eq!(should_run(status), expected, "{status}");
        }
    }
}
