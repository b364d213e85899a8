//! `hearth agent`, the reference workspace runtime (CLI.md, "Runtime").
//!
//! An agent speaks for one workspace from one directory. It registers
//! (keeping its token in `<dir>/.auth_token`, mode 0600), heartbeats every
//! interval reporting what it holds, and converges to the `desired` state
//! each heartbeat answer carries: the template's files in `<dir>/assets/`,
//! each declared plugin in `<dir>/plugins/<name>/`. Everything it installs is
//! verified (sha256 per asset, the SDK content-manifest hash per plugin) and
//! moved into place atomically, so a failure leaves the previous state, not
//! a half-written one.
//!
//! Convergence is level-triggered like the rest of Hearth: each heartbeat
//! compares what is on disk now with what is desired now, so a plugin that
//! vanishes from disk is simply reinstalled on the next answer, without any
//! status change or event edge being involved.
//!
//! Layout of the agent directory:
//!
//! | path | what |
//! |---|---|
//! | `agent.lock` | exclusive lock held for the whole run, with the holder's pid |
//! | `.auth_token` | the workspace token (0600) when no other was given |
//! | `assets/` | the delivered template files |
//! | `assets.manifest.json` | the manifest `assets/` was delivered from |
//! | `plugins/<name>/` | installed plugins |
//! | anything else | the template's program's own files (it runs here) |
//! | `.assets.staging-*`, `.plugin-staging-*`, `.*.old-*` | in-flight work; removed on failure and at start |
//!
//! ## The template's program
//!
//! When the template's `config.yaml` has a `command:`, the agent runs it
//! once delivery is complete and verified, restarts it when it exits (with
//! backoff) or when what it was started with changes, stops it while the
//! workspace is paused or hibernated, and stops it before it exits itself;
//! its heartbeats report it (`program`), which makes the workspace's
//! `AgentRunning` condition. See `program.rs`.
//!
//! ## When it stops
//!
//! It exits 0 when its workspace is removed or it is asked to stop, and
//! with an [`AgentError`] when retrying cannot help: another agent holds
//! the directory ([`AgentError::Locked`], exit 75), the token is refused or
//! revoked, the workspace does not exist, Hearth shares no protocol version
//! with it, or its directory was removed or replaced under it
//! ([`AgentError::LockLost`]: its lock no longer keeps a second agent out,
//! so it stops before the next step; exit 1, and a supervisor starts a new
//! one).
//!
//! It never gives up on an unreachable Hearth, not even one it has never
//! reached: it retries with capped backoff (about twice a minute at worst),
//! logging each failure with its cause, so a wrong URL shows at the first
//! attempt and at every one after. Supervisors start agents while Hearth
//! itself starts, a server can be away for long (an upgrade, a database
//! outage), and an agent outliving a crashed server is how the next one
//! adopts it; an agent that gave up after a deadline would turn such an
//! outage into stopped runtimes, or, under a supervisor, only into
//! restarts. A runtime left behind by a failed test is ended by the test
//! (`crates/hearth/tests/support`), or else by [`AgentError::LockLost`]
//! once the test's directory is removed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = hearth_agent::AgentConfig::new(
//!     "http://127.0.0.1:7878",
//!     "5f0c8a8e-4c1e-4b8a-9d8e-0f6b1c2d3e4f".parse()?,
//!     "/var/lib/hearth/ws",
//! );
//! let exit = hearth_agent::run(config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! tracing::info!(?exit, "agent stopped");
//! # Ok(()) }
//! ```

mod agent;
mod assets;
mod backoff;
pub mod contract;
mod error;
mod fsutil;
pub mod lock;
mod plugins;
mod program;
mod token;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use agent::{Agent, Converge, StepOutcome};
pub use error::AgentError;
pub use hearth_archive::Limits;
pub use hearth_core::WorkspaceId;

/// The lock file inside the agent directory.
pub const LOCK_FILE: &str = "agent.lock";
/// Where a bootstrapped token is kept inside the agent directory.
pub const TOKEN_FILE: &str = ".auth_token";
/// The delivered assets inside the agent directory.
pub const ASSETS_DIR: &str = "assets";
/// The record of the delivered assets inside the agent directory.
pub const ASSETS_STATE: &str = "assets.manifest.json";
/// The installed plugins inside the agent directory.
pub const PLUGINS_DIR: &str = "plugins";

/// The URL registered by default: the agent serves nothing inbound, it
/// only polls (PROTOCOL.md, `POST /registry/register`).
pub const NO_INBOUND_URL: &str = "remote://no-inbound";
/// The heartbeat interval when none is given.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How long the template's program has to exit after SIGTERM before it is
/// killed, when none is given.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Everything `hearth agent` is told on its command line.
#[derive(Clone)]
pub struct AgentConfig {
    /// Hearth's base URL, `http://host:port` or `https://host:port`.
    pub server: String,
    /// A PEM bundle of CAs trusted for an `https://` server, besides the
    /// compiled-in Mozilla roots (`--ca-cert`, `HEARTH_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    pub workspace: WorkspaceId,
    /// `--token`; wins over everything else.
    pub token: Option<String>,
    /// `--token-file`; used when `token` is not given. Must exist.
    pub token_file: Option<PathBuf>,
    /// The agent directory (created if missing).
    pub dir: PathBuf,
    pub heartbeat_interval: Duration,
    /// The URL to register; [`NO_INBOUND_URL`] by default.
    pub url: String,
    /// Caps applied when unpacking plugin tarballs.
    pub limits: Limits,
    /// How long the template's program has to exit after SIGTERM
    /// (`--stop-grace`).
    pub stop_grace: Duration,
}

impl AgentConfig {
    /// A configuration with the defaults for everything but the server, the
    /// workspace and the directory.
    pub fn new(server: impl Into<String>, workspace: WorkspaceId, dir: impl Into<PathBuf>) -> Self {
        Self {
            server: server.into(),
            ca_cert: None,
            workspace,
            token: None,
            token_file: None,
            dir: dir.into(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            url: NO_INBOUND_URL.to_owned(),
            limits: Limits::default(),
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: show only whether there is one.
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("ca_cert", &self.ca_cert)
            .field("workspace", &self.workspace)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("token_file", &self.token_file)
            .field("dir", &self.dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("url", &self.url)
            .field("limits", &self.limits)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

/// Why [`run`] returned normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The workspace was deleted; `hearth agent` exits 0.
    Removed,
    /// The shutdown future completed (a signal).
    Shutdown,
}

/// Runs the agent until the workspace is removed, `shutdown` completes, or a
/// failure that retrying cannot fix, whose kind
/// ([`contract::exit_code`]: [`AgentError::Locked`] is not a crash) says
/// how `hearth agent` exits.
///
/// Fatal errors are returned, not logged: the caller reports them once.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<Exit, AgentError> {
    let agent = Agent::new(config)?;
    agent.run(shutdown).await
}
