//! Application state shared by every handler. Lifecycle changes go through
//! [`Lifecycle`] (store → metrics → event bus).

use std::sync::Arc;

use hearth_store::Store;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::bus::EventBus;
use crate::config::Settings;
use crate::crypto::SecretCipher;
use crate::lifecycle::Lifecycle;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub bus: EventBus,
    /// Apply, delete, sweep: every lifecycle change.
    pub lifecycle: Lifecycle,
    /// Requests per second per token (`rate_limit_per_token`).
    pub limits: crate::limits::RateLimits,
    /// Open event streams per token, capped (`max_streams_per_token`).
    pub streams: crate::bus::StreamSlots,
    pub cipher: SecretCipher,
    pub settings: Arc<Settings>,
    pub build: Arc<crate::buildinfo::Build>,
    /// Flips to true when the server shuts down, ending open streams.
    pub shutdown: watch::Receiver<bool>,
}
