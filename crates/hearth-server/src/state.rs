//! Application state shared by every handler, and the one place where a
//! lifecycle input is applied (store → metrics → event bus).

use std::sync::Arc;

use chrono::Utc;
use hearth_core::{Input, WorkspaceId};
use hearth_store::{Applied, NewToken, Store};
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::bus::EventBus;
use crate::config::Settings;
use crate::crypto::SecretCipher;
use crate::error::ApiResult;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    pub bus: EventBus,
    pub cipher: SecretCipher,
    pub settings: Arc<Settings>,
    pub build: Arc<crate::buildinfo::Build>,
    /// Flips to true when the server shuts down, ending open streams.
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// Applies a lifecycle input: the store decides and persists atomically;
    /// then the transition is counted and subscribers are woken.
    pub async fn apply(&self, id: WorkspaceId, input: Input, bootstrap: Option<NewToken>) -> ApiResult<Applied> {
        let input_name = input.name();
        let applied = self.store.apply(id, input, Utc::now(), bootstrap).await?;
        if applied.previous != applied.workspace.status {
            let (from, to) = (applied.previous.as_str(), applied.workspace.status.as_str());
            metrics::counter!("hearth_transitions_total", "from" => from, "to" => to).increment(1);
            tracing::info!(workspace_id = %id, from, to, input = input_name, "workspace transition");
        }
        self.bus.published(&applied.events);
        Ok(applied)
    }
}
