//! [`AgentError`]: why a step failed, and whether trying again can help.

use std::io;
use std::path::PathBuf;

use hearth_client::ClientError;
use hearth_core::WorkspaceId;

/// Why the agent could not start or could not complete a step.
///
/// [`AgentError::is_retryable`] separates the failures the run loop rides out
/// with backoff (Hearth down, a 5xx, an answer it could not read) from the
/// ones that need a person (a revoked token, a wrong workspace id, a second
/// agent on the same directory), which end the run with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Another process holds `<dir>/agent.lock`.
    #[error("another agent is running for {}: it holds {}", dir.display(), dir.join(crate::LOCK_FILE).display())]
    Locked { dir: PathBuf },
    /// Registering with a token was refused with 401.
    #[error("Hearth refused the token for workspace {workspace}: the token is not this workspace's ({message})")]
    TokenRejected { workspace: WorkspaceId, message: String },
    /// The bootstrap registration (no token) was refused: the bootstrap is
    /// a one-time join (a workspace that never had a token, still
    /// provisioning, inside the server's bootstrap window), and this
    /// workspace needs a token issued by an operator.
    #[error(
        "Hearth will not give workspace {workspace} a token without one (it has had a token, is past its first \
         start, or bootstrap is off); ask an operator for one (`hearth token create --workspace {workspace}`) and \
         pass it with --token or --token-file, or put it in {}",
        token_file.display()
    )]
    TokenRequired { workspace: WorkspaceId, token_file: PathBuf },
    /// A heartbeat was refused with 401 after the agent had been accepted:
    /// the token was revoked (or replaced).
    #[error("Hearth no longer accepts this agent's token for workspace {workspace} (was it revoked?): {message}")]
    TokenRevoked { workspace: WorkspaceId, message: String },
    /// Hearth does not know the workspace (404, and `/state` does not say it
    /// was deleted).
    #[error("workspace {workspace} does not exist on {server}")]
    UnknownWorkspace { workspace: WorkspaceId, server: String },
    /// A setting is unusable, or Hearth refused the registration as invalid.
    #[error("{0}")]
    Config(String),
    /// A local file operation failed outside of convergence (the lock, the
    /// token file, the agent directory).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Hearth could not be reached, failed (5xx) or gave an answer the agent
    /// could not use. Worth retrying.
    #[error("{what}: {source}")]
    Unavailable {
        what: &'static str,
        #[source]
        source: ClientError,
    },
}

impl AgentError {
    /// True for the failures that backoff and a later attempt can fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}
