//! The agent the harness runs itself when the server starts none: `hearth
//! agent` started through the runtime contract ([`Launch`]), in a temporary
//! directory that also holds its token file and log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hearth_agent::contract::Launch;
use hearth_core::WorkspaceId;
use tokio::process::Child;

/// Heartbeat interval of the agent the harness runs itself.
const LOCAL_AGENT_HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the harness's agent gets to exit on its own once its workspace
/// is deleted, and then after SIGTERM, before it is killed.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the harness's agent log shown when a step fails.
const LOG_TAIL_LINES: usize = 20;

pub(super) struct LocalAgent {
    child: Child,
    /// The temporary directory holding the agent dir, token and log.
    pub(super) root: tempfile::TempDir,
    /// `--dir` of the agent.
    pub(super) dir: PathBuf,
    log: PathBuf,
}

impl LocalAgent {
    pub(super) async fn start(
        program: &Path,
        server: &str,
        workspace: WorkspaceId,
        token: &str,
    ) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("hearth-e2e-")
            .tempdir()
            .context("cannot create a temporary directory for the agent")?;
        let dir = root.path().join("agent");
        let token_file = root.path().join("token");
        let log = root.path().join("agent.log");
        hearth_server::secret_file::write_secret_file(&token_file, token)?;
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let launch = Launch {
            server: server.to_owned(),
            workspace,
            dir: dir.clone(),
            token_file,
            heartbeat_interval: LOCAL_AGENT_HEARTBEAT,
            stop_grace: hearth_agent::DEFAULT_STOP_GRACE,
        };
        let child = launch
            .command(program, log_file)
            .context("cannot duplicate the log file handle")?
            .spawn()
            .with_context(|| format!("cannot run {} agent", program.display()))?;
        Ok(Self { child, root, dir, log })
    }

    pub(super) fn alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let last = match self.last_log_line() {
                    Ok(Some(line)) => format!(": {line}"),
                    Ok(None) => String::new(),
                    Err(err) => format!(" (its log cannot be read: {err})"),
                };
                bail!("the harness's hearth agent exited ({status}){last}")
            }
            Err(err) => bail!("cannot check on the harness's hearth agent: {err}"),
        }
    }

    fn last_log_line(&self) -> std::io::Result<Option<String>> {
        let text = std::fs::read_to_string(&self.log)?;
        Ok(text.lines().rev().find(|line| !line.trim().is_empty()).map(|line| line.trim().to_owned()))
    }

    pub(super) fn log_tail(&self) -> String {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(text) => text,
            Err(err) => return format!("the harness's agent log ({}) cannot be read: {err}", self.log.display()),
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!("the harness's agent log ({}), last {} lines:\n{}", self.log.display(), tail.len(), tail.join("\n"))
    }

    /// Waits for the agent to exit on its own (its workspace was deleted),
    /// then asks it with SIGTERM, then kills it.
    pub(super) async fn stop(&mut self, workspace_deleted: bool) -> String {
        if workspace_deleted {
            if let Ok(Ok(status)) = tokio::time::timeout(AGENT_STOP_GRACE, self.child.wait()).await {
                return format!("cleanup: the harness's agent exited on its own ({status})");
            }
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("cleanup: the harness's agent had exited ({status})");
        }
        let mut why_killed = "it ignored SIGTERM".to_owned();
        if let Some(pid) = self.child.id() {
            match std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status() {
                Ok(status) if status.success() => {
                    match tokio::time::timeout(AGENT_STOP_GRACE, self.child.wait()).await {
                        Ok(Ok(status)) => return format!("cleanup: stopped the harness's agent ({status})"),
                        Ok(Err(err)) => why_killed = format!("waiting for it after SIGTERM failed: {err}"),
                        Err(_) => {}
                    }
                }
                Ok(status) => why_killed = format!("kill -TERM {pid} failed: {status}"),
                Err(err) => why_killed = format!("kill -TERM {pid} could not run: {err}"),
            }
        }
        match self.child.kill().await {
            Ok(()) => format!("cleanup: killed the harness's agent ({why_killed})"),
            Err(err) => format!("cleanup: could not stop the harness's agent: {err}"),
        }
    }
}
