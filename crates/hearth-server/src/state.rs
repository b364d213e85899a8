//! Application state shared by every handler. Transitions changes go through
//! [`Transitions`] (store → metrics → event bus).

use std::sync::Arc;

use hearth_store::Store;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::bus::EventBus;
use crate::config::Settings;
use crate::crypto::SecretCipher;
use crate::transitions::Transitions;

/// What every handler shares, behind one `Arc`: axum clones the state for
/// each extractor of each request, and cloning (and dropping) a dozen
/// `Arc`s per request showed in `perf` under heartbeat load (see
/// BENCHMARKS.md, "Heartbeat ingest").
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub bus: EventBus,
    /// Apply, delete, sweep: every lifecycle change.
    pub transitions: Transitions,
    /// Requests per second per token (`rate_limit_per_token`).
    pub limits: crate::limits::RateLimits,
    /// Open event streams per token, capped (`max_streams_per_token`).
    pub streams: crate::bus::StreamSlots,
    /// Open wait long polls per token, capped (`max_waits_per_token`).
    pub waits: crate::bus::StreamSlots,
    /// Event streams and waits of the whole server, capped (`max_long_polls`).
    pub long_polls: crate::bus::LongPolls,
    /// Large uploads being read, capped (`max_concurrent_uploads`).
    pub uploads: crate::uploads::UploadSlots,
    /// The heartbeat path: remembered workspaces, desired states, the
    /// group-commit writer, the locked path.
    pub heartbeats: Arc<crate::heartbeat::Heartbeats>,
    /// What starts and stops runtimes (`--provisioner`), and reads their
    /// logs; `None` for `none`.
    pub provisioner: Option<Arc<dyn crate::provisioner::Provisioner>>,
    /// The fleet's heartbeat pace (and the liveness TTL that follows it).
    pub pace: Arc<crate::pace::Pace>,
    pub cipher: SecretCipher,
    pub settings: Arc<Settings>,
    pub build: Arc<crate::buildinfo::Build>,
    /// Flips to true when the server shuts down, ending open streams.
    pub shutdown: watch::Receiver<bool>,
}

impl Services {
    /// The tokens of `workspace` changed, or it was removed: this server's
    /// caches forget it at once (other replicas hear it from the store's
    /// notices).
    pub fn forget_workspace(&self, workspace: hearth_core::WorkspaceId) {
        self.auth.forget_workspace(workspace);
        self.heartbeats.forget(workspace);
    }
}
