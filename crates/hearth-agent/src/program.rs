//! The template's program: `hearth agent` runs `command:` from the
//! delivered `config.yaml` once delivery is complete and verified, in the
//! agent directory, in a process group of its own, with the template's
//! `env:`, the workspace's secrets and Hearth's names (`HEARTH_SERVER`,
//! `HEARTH_WORKSPACE_ID`, `HEARTH_ASSETS_DIR`, `HEARTH_PLUGINS_DIR`, and
//! the old platform's `WORKSPACE_ID`, `PLATFORM_URL`, `PLUGINS_DIR`). Never
//! the workspace token: it stays in its 0600 file.
//!
//! The [`Supervisor`] restarts the program when it exits (with backoff),
//! when what it was started with changes (assets, plugins, `command`,
//! `env`, secrets), and stops it (SIGTERM to its group, the grace, then
//! SIGKILL) when the workspace is paused, hibernated or removed and when
//! the agent stops. Its output goes to the agent's log line by line, each
//! line marked with the stream it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hearth_api::{ProgramStateName, ProgramStatus};
use hearth_core::WorkspaceId;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::backoff::Backoff;

/// The first restart after an exit waits this long; each quick exit after
/// it doubles the wait, up to [`RESTART_CAP`].
pub const RESTART_BASE: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
pub const RESTART_CAP: Duration = Duration::from_secs(60);
/// A run that lasted this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// The agent's environment variables the program inherits; everything
/// else it is given explicitly (so a token in the agent's environment
/// never reaches it).
const INHERITED: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/// Longest line of output logged as one line; longer ones are split.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// What the program is started with: its argument vector, environment
/// and, for deciding when to restart it, what was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The delivered assets' digest and plugin hashes: a new delivery is a
    /// restart even when `command` and `env` stay the same.
    pub delivered: String,
}

impl ProgramSpec {
    /// The program `config` declares, run for `workspace` from `dir`, with
    /// `secrets` (org and workspace scope) in its environment. `None` when
    /// the template has no `command`.
    pub fn new(
        config: &hearth_core::manifest::TemplateConfig,
        secrets: &BTreeMap<String, String>,
        place: &Place<'_>,
        delivered: String,
    ) -> Option<Self> {
        let argv = config.command.as_ref()?.argv();
        let mut env = config.env.clone();
        env.extend(secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        let dir = place.dir;
        let assets = dir.join(crate::ASSETS_DIR).display().to_string();
        let plugins = dir.join(crate::PLUGINS_DIR).display().to_string();
        let workspace = place.workspace.to_string();
        for (name, value) in [
            ("HEARTH_SERVER", place.server.to_owned()),
            ("HEARTH_WORKSPACE_ID", workspace.clone()),
            ("HEARTH_ASSETS_DIR", assets),
            ("HEARTH_PLUGINS_DIR", plugins.clone()),
            ("WORKSPACE_ID", workspace),
            ("PLATFORM_URL", place.server.to_owned()),
            ("PLUGINS_DIR", plugins),
        ] {
            env.insert(name.to_owned(), value);
        }
        Some(Self { argv, env, delivered })
    }
}

/// Where the program runs: the agent's workspace, server and directory.
pub struct Place<'a> {
    pub workspace: WorkspaceId,
    pub server: &'a str,
    pub dir: &'a Path,
}

struct Running {
    child: Child,
    spec: ProgramSpec,
    started: Instant,
    /// The cgroup's OOM kills when it started ([`oom_kills`]).
    oom_kills: Option<u64>,
}

/// Runs at most one program at a time and says where it is.
pub struct Supervisor {
    workspace: WorkspaceId,
    dir: PathBuf,
    stop_grace: Duration,
    running: Option<Running>,
    /// What the program should run with, once known (kept for restarts).
    wanted: Option<ProgramSpec>,
    /// When an exited program starts again.
    restart_at: Option<Instant>,
    backoff: Backoff,
    restarts: u32,
    last_exit: Option<ExitStatus>,
    /// The kernel killed the last run for its memory limit.
    oom_killed: bool,
    state: Option<ProgramStateName>,
}

impl Supervisor {
    pub fn new(workspace: WorkspaceId, dir: PathBuf, stop_grace: Duration) -> Self {
        Self {
            workspace,
            dir,
            stop_grace,
            running: None,
            wanted: None,
            restart_at: None,
            backoff: Backoff::new(RESTART_BASE, RESTART_CAP),
            restarts: 0,
            last_exit: None,
            oom_killed: false,
            state: None,
        }
    }

    /// What the next heartbeat reports; `None` while the template has no
    /// program (or none is known yet).
    pub fn status(&self) -> Option<ProgramStatus> {
        let state = self.state?;
        let exit = self.last_exit.filter(|_| state == ProgramStateName::Exited);
        Some(ProgramStatus {
            state,
            exit_code: exit.and_then(|status| status.code()),
            signal: exit.and_then(|status| std::os::unix::process::ExitStatusExt::signal(&status)),
            restarts: self.restarts,
            oom_killed: exit.is_some() && self.oom_killed,
        })
    }

    /// Delivery is complete and the template declares `spec`: run it, and
    /// restart it if it runs with something else.
    pub async fn want(&mut self, spec: ProgramSpec) {
        let changed = self.running.as_ref().is_some_and(|running| running.spec != spec);
        self.wanted = Some(spec);
        if changed {
            tracing::info!(workspace_id = %self.workspace, "what the program runs with changed; restarting it");
            self.terminate().await;
            self.restarts += 1;
            self.restart_at = None;
        }
        self.tick().await;
    }

    /// The template declares no program (any more): stop what runs.
    pub async fn none_wanted(&mut self) {
        self.wanted = None;
        self.restart_at = None;
        self.terminate().await;
        self.state = None;
    }

    /// Delivery is not complete: a program already running keeps running
    /// (it is restarted once the new delivery is complete); none is
    /// started.
    pub fn waiting(&mut self) {
        if self.running.is_none() && self.state != Some(ProgramStateName::Exited) {
            self.state = Some(ProgramStateName::Waiting);
        }
    }

    /// The workspace is paused or hibernated, or the agent stops: the
    /// program stops (SIGTERM to its group, the grace, then SIGKILL).
    pub async fn stop(&mut self) {
        // Nothing is wanted until a running workspace's delivery says so.
        self.wanted = None;
        self.restart_at = None;
        let was_running = self.terminate().await;
        if was_running || self.state.is_some() {
            self.state = Some(ProgramStateName::Stopped);
        }
    }

    /// Starts the wanted program when none runs and no backoff holds it
    /// back. Called each round, whether Hearth answered or not: a program
    /// keeps being restarted while the control plane is away.
    pub async fn tick(&mut self) {
        if self.running.is_some() || self.wanted.is_none() {
            return;
        }
        if self.restart_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let Some(spec) = self.wanted.clone() else { return };
        if self.restart_at.take().is_some() {
            self.restarts += 1;
        }
        match self.spawn(&spec) {
            Ok(child) => {
                tracing::info!(workspace_id = %self.workspace, pid = child.id(), program = %spec.argv[0],
                    restarts = self.restarts, "program started");
                self.running = Some(Running { child, spec, started: Instant::now(), oom_kills: oom_kills() });
                self.state = Some(ProgramStateName::Running);
            }
            Err(error) => {
                let wait = self.backoff.next_ceiling();
                tracing::warn!(workspace_id = %self.workspace, program = %spec.argv[0], %error,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "cannot start the program");
                self.restart_at = Some(Instant::now() + wait);
                self.state = Some(ProgramStateName::Exited);
            }
        }
    }

    /// Completes when the program exits (recording how, and when it starts
    /// again) or when a restart is due; never while nothing is to be done.
    /// Cancel-safe: the round loop polls it beside its sleep.
    pub async fn wake(&mut self) {
        match (&mut self.running, self.restart_at) {
            (Some(running), _) => {
                let status = running.child.wait().await;
                let ran = running.started.elapsed();
                let before = running.oom_kills;
                self.running = None;
                // Killed (SIGKILL) while the cgroup's OOM-kill count rose:
                // the kernel took it for its memory limit.
                let killed = status.as_ref().ok().and_then(std::os::unix::process::ExitStatusExt::signal);
                self.oom_killed = killed == Some(Signal::SIGKILL as i32)
                    && oom_kills().zip(before).is_some_and(|(now, then)| now > then);
                self.exited(status, ran);
            }
            (None, Some(at)) => tokio::time::sleep_until(at).await,
            (None, None) => std::future::pending().await,
        }
    }

    fn exited(&mut self, status: std::io::Result<ExitStatus>, ran: Duration) {
        if ran >= HEALTHY_RUN {
            self.backoff.reset();
        }
        let wait = self.backoff.next_ceiling();
        match status {
            Ok(status) => {
                tracing::warn!(workspace_id = %self.workspace, %status, restarts = self.restarts,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "program exited; restarting it after a backoff");
                self.last_exit = Some(status);
            }
            Err(error) => {
                tracing::error!(workspace_id = %self.workspace, %error, "cannot tell how the program ended; restarting it after a backoff");
            }
        }
        self.state = Some(ProgramStateName::Exited);
        self.restart_at = Some(Instant::now() + wait);
    }

    fn spawn(&self, spec: &ProgramSpec) -> std::io::Result<Child> {
        let mut command = Command::new(&spec.argv[0]);
        command
            .args(&spec.argv[1..])
            .current_dir(&self.dir)
            .env_clear()
            .envs(INHERITED.iter().filter_map(|name| std::env::var_os(name).map(|value| (*name, value))))
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(relay(self.workspace, "stdout", stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(relay(self.workspace, "stderr", stderr));
        }
        Ok(child)
    }

    /// Stops the running program, if any: SIGTERM to its process group,
    /// [`Supervisor::stop_grace`] to exit, then SIGKILL to the group. True
    /// when one was running.
    async fn terminate(&mut self) -> bool {
        let Some(mut running) = self.running.take() else { return false };
        let id = self.workspace;
        let Some(pid) = running.child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return true; // already reaped
        };
        let group = Pid::from_raw(pid);
        if let Err(error) = killpg(group, Signal::SIGTERM) {
            tracing::warn!(workspace_id = %id, pid, %error, "cannot send SIGTERM to the program's process group");
        }
        match tokio::time::timeout(self.stop_grace, running.child.wait()).await {
            Ok(Ok(status)) => tracing::info!(workspace_id = %id, %status, "program stopped"),
            Ok(Err(error)) => tracing::warn!(workspace_id = %id, %error, "cannot tell how the program ended"),
            Err(_) => {
                tracing::warn!(workspace_id = %id, grace_ms = u64::try_from(self.stop_grace.as_millis()).unwrap_or(u64::MAX),
                    "the program did not stop within its grace; killing its process group");
                if let Err(error) = killpg(group, Signal::SIGKILL) {
                    tracing::warn!(workspace_id = %id, pid, %error, "cannot send SIGKILL to the program's process group");
                }
                if let Err(error) = running.child.wait().await {
                    tracing::warn!(workspace_id = %id, %error, "cannot tell how the program ended");
                }
            }
        }
        // What is left of the group (a child that ignored SIGTERM while its
        // parent exited) goes too.
        if let Err(error) = killpg(group, Signal::SIGKILL) {
            if error != nix::errno::Errno::ESRCH {
                tracing::warn!(workspace_id = %id, pid, %error, "cannot end what is left of the program's process group");
            }
        }
        true
    }
}

/// How many processes the kernel's OOM killer has killed in this
/// process's memory cgroup (and so its program's): `oom_kill` of
/// `memory.events` (cgroup v2) or `memory.oom_control` (v1). `None` where
/// neither can be read (no memory controller, or not Linux): then no exit
/// is called an OOM kill.
fn oom_kills() -> Option<u64> {
    // Unreadable (not Linux, or no /proc): no path of its own; the mount
    // points below are tried all the same, and none found means None.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (v2, v1) = cgroup_paths(&own);
    let candidates = [
        v2.map(|path| format!("/sys/fs/cgroup{path}/memory.events")),
        v1.map(|path| format!("/sys/fs/cgroup/memory{path}/memory.oom_control")),
        // Inside a container the cgroup file system is mounted at the
        // container's own cgroup, whatever /proc/self/cgroup says.
        Some("/sys/fs/cgroup/memory.events".to_owned()),
        Some("/sys/fs/cgroup/memory/memory.oom_control".to_owned()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|file| std::fs::read_to_string(file).ok().and_then(|text| oom_kill_count(&text)))
}

/// The memory cgroup paths in `/proc/self/cgroup`: v2's (`0::PATH`) and
/// v1's memory controller's (`N:memory:PATH`, or among others).
fn cgroup_paths(text: &str) -> (Option<&str>, Option<&str>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.trim_end_matches('/'));
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.trim_end_matches('/'));
        }
    }
    (v2, v1)
}

/// `oom_kill N` of a cgroup's memory events.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

/// Logs the program's output line by line, marked with its stream.
async fn relay(workspace: WorkspaceId, stream: &'static str, output: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                tracing::info!(target: "hearth_agent::program", workspace_id = %workspace, stream,
                    "[{stream}] {}", text.trim_end_matches(['\n', '\r']));
            }
            Err(error) => {
                tracing::warn!(workspace_id = %workspace, stream, %error, "cannot read the program's output");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cgroup_is_found_on_either_version() {
        let v2 = "0::/system.slice/hearth.service\n";
        assert_eq!(cgroup_paths(v2), (Some("/system.slice/hearth.service"), None));
        let v1 = "12:pids:/docker/abc\n9:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(cgroup_paths(v1), (None, Some("/docker/abc")));
        let joined = "4:cpu,memory:/\n0::/\n";
        assert_eq!(cgroup_paths(joined), (Some(""), Some("")));
        assert_eq!(cgroup_paths("garbage\n"), (None, None));
    }

    #[test]
    fn the_oom_kill_count_is_read_from_both_files() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
        assert_eq!(oom_kill_count(v1), Some(7));
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None, "an old kernel without the count");
    }
}
