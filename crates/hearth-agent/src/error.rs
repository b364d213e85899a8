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
    /// `<dir>/agent.lock` is no longer the file this agent locked: the
    /// directory (or the file) was removed or replaced, so the lock no
    /// longer keeps a second agent out.
    #[error(
        "{} is no longer the lock this agent holds (the agent directory was removed or replaced); stopping, so \
         that no second agent serves the workspace from it",
        path.display()
    )]
    LockLost { path: PathBuf },
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

/// Why delivering the assets or installing a plugin failed, or why the
/// delivered assets do not verify. Never fatal and never matched on: it is
/// said to people (logged, and for a plugin reported in the next
/// heartbeat's `plugin_errors`), in the words [`describe`] gives it, and
/// the work is retried at the next heartbeat.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// What Hearth sent or the disk holds is not what was asked for (a hash,
    /// a manifest, an archive, a name); the sentence says what.
    #[error("{0}")]
    Refused(String),
    /// Hearth could not be asked (a download, the assets manifest).
    #[error("{context}")]
    Hearth {
        context: String,
        #[source]
        source: Box<ClientError>,
    },
    /// A local file operation failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The local file operation that failed says enough by itself.
    #[error(transparent)]
    Fs(#[from] io::Error),
    /// The record of the delivered assets could not be read or written.
    #[error("{context}")]
    Record {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// A blocking filesystem task panicked or was cancelled.
    #[error("a filesystem task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Adds what was being done to a failure, lazily, making it a
/// [`DeliveryError`] of the failure's kind.
pub(crate) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, DeliveryError>;
}

impl<T> Context<T> for Result<T, io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, DeliveryError> {
        self.map_err(|source| DeliveryError::Io { context: context(), source })
    }
}

impl<T> Context<T> for Result<T, ClientError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, DeliveryError> {
        self.map_err(|source| DeliveryError::Hearth { context: context(), source: Box::new(source) })
    }
}

impl<T> Context<T> for Result<T, serde_json::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, DeliveryError> {
        self.map_err(|source| DeliveryError::Record { context: context(), source })
    }
}

/// An error and every cause under it, joined by `": "` (`cannot download
/// asset a.md: request failed: connection refused`): the sentence logged and
/// reported for a failure that is not fatal.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut sentence = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        sentence.push_str(": ");
        sentence.push_str(&inner.to_string());
        cause = inner.source();
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_described_with_every_cause_under_it() {
        let io = Err::<(), _>(io::Error::other("permission denied")).context(|| "cannot create /a/assets".into());
        assert_eq!(describe(&io.unwrap_err()), "cannot create /a/assets: permission denied");
        let refused = DeliveryError::Refused("plugin seo: content hash 1 does not match the expected 2".into());
        assert_eq!(describe(&refused), "plugin seo: content hash 1 does not match the expected 2");
        // Without a context of its own, a file error is its own sentence.
        let fs = DeliveryError::from(io::Error::new(io::ErrorKind::NotFound, "x is missing"));
        assert_eq!(describe(&fs), "x is missing");
        let api = ClientError::Api {
            status: 404,
            body: Box::new(hearth_api::ApiErrorBody::new(hearth_api::ErrorCode::NotFound, "no such plugin")),
        };
        let hearth = Err::<(), _>(api).context(|| "plugin seo: cannot download it".into()).unwrap_err();
        let sentence = describe(&hearth);
        assert!(sentence.starts_with("plugin seo: cannot download it: "), "{sentence}");
        assert!(sentence.contains("no such plugin"), "{sentence}");
    }
}
