//! The runtime contract between `hearth agent` and whatever starts it (the
//! server's process provisioner, the e2e harness): the command line it is
//! started with and what its exit code means. The third part, the lock on
//! `<dir>/agent.lock` and the pid inside it, is [`crate::lock`].
//!
//! Both sides live here so they cannot drift apart: the binary declares the
//! flags [`Launch::args`] writes (a test in `hearth`'s `commands/agent.rs`
//! parses them back), and the supervisors start agents only through
//! [`Launch::command`].

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hearth_core::WorkspaceId;
use tokio::process::Command;

use crate::error::AgentError;

/// Exit code of `hearth agent` for any failure other than [`EXIT_LOCKED`].
/// (It exits 0 when its workspace was removed or it was asked to stop.)
pub const EXIT_FAILURE: u8 = 1;

/// Exit code of `hearth agent` when another agent holds the directory's
/// lock: that agent is alive, so a supervisor adopts it rather than
/// restarting this one.
pub const EXIT_LOCKED: u8 = 75;

/// The variable operators keep their own token in; never passed on to an
/// agent, which must use its workspace's token.
const OPERATOR_TOKEN_ENV: &str = "HEARTH_TOKEN";

/// The exit code for an agent run ([`crate::run`]) that failed with `err`.
pub fn exit_code(err: &AgentError) -> u8 {
    match err {
        AgentError::Locked { .. } => EXIT_LOCKED,
        _ => EXIT_FAILURE,
    }
}

/// How a supervisor starts `hearth agent` for one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// Hearth's base URL (`--server`).
    pub server: String,
    pub workspace: WorkspaceId,
    /// The agent directory (`--dir`).
    pub dir: PathBuf,
    /// The file holding the workspace token (`--token-file`).
    pub token_file: PathBuf,
    pub heartbeat_interval: Duration,
    /// How long the template's program has to stop (`--stop-grace`): less
    /// than the supervisor gives the agent itself, so the agent stops its
    /// program before the supervisor's SIGKILL could orphan it.
    pub stop_grace: Duration,
}

impl Launch {
    /// The arguments after the program: `agent --server … --workspace …
    /// --dir … --token-file … --stop-grace <seconds> --heartbeat-interval
    /// <seconds>`.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "agent".into(),
            "--server".into(),
            self.server.clone().into(),
            "--workspace".into(),
            self.workspace.to_string().into(),
            "--dir".into(),
            self.dir.clone().into(),
            "--token-file".into(),
            self.token_file.clone().into(),
            "--stop-grace".into(),
            self.stop_grace.as_secs_f64().to_string().into(),
            "--heartbeat-interval".into(),
            self.heartbeat_interval.as_secs_f64().to_string().into(),
        ]
    }

    /// `program agent …` with stdin closed, stdout and stderr both written
    /// to `log`, killed if the returned child is dropped, and without the
    /// operator's `HEARTH_TOKEN`. Fails only when the log's handle cannot be
    /// duplicated.
    pub fn command(&self, program: &Path, log: File) -> io::Result<Command> {
        let log_err = log.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(self.args())
            .env_remove(OPERATOR_TOKEN_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_held_lock_exits_with_the_locked_code() {
        assert_eq!(exit_code(&AgentError::Locked { dir: PathBuf::from("/a") }), EXIT_LOCKED);
        let workspace = WorkspaceId::new_random();
        let others = [
            AgentError::Config("anything else".into()),
            AgentError::UnknownWorkspace { workspace, server: "http://h:1".into() },
            AgentError::TokenRevoked { workspace, message: "revoked".into() },
            AgentError::io("lock", "/a/agent.lock", io::Error::other("denied")),
        ];
        for err in others {
            assert_eq!(exit_code(&err), EXIT_FAILURE, "{err}");
        }
    }

    #[test]
    fn fractional_heartbeat_intervals_are_written_as_seconds() {
        let launch = Launch {
            server: "http://127.0.0.1:1".into(),
            workspace: WorkspaceId::new_random(),
            dir: PathBuf::from("/d"),
            token_file: PathBuf::from("/d/.auth_token"),
            heartbeat_interval: Duration::from_millis(500),
            stop_grace: Duration::from_secs(5),
        };
        assert_eq!(launch.args().last().map(|arg| arg.to_string_lossy().into_owned()).as_deref(), Some("0.5"));
        let whole = Launch { heartbeat_interval: Duration::from_secs(30), ..launch };
        assert_eq!(whole.args().last().map(|arg| arg.to_string_lossy().into_owned()).as_deref(), Some("30"));
    }
}
