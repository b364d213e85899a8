//! Hears what other replicas commit (the store's notices: Postgres
//! `LISTEN hearth`) and acts on it here: event streams and the provisioner
//! wake up, cached tokens and desired states are forgotten. The database
//! stays the truth; event streams still poll it as a safety net, cached
//! tokens expire, and remembered workspaces are guarded by their row version.

use std::time::Duration;

use hearth_store::Notice;

use crate::state::AppState;

/// Follows the store's notices until shutdown. Returns at once for an
/// engine without replicas (SQLite).
pub async fn follow(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut feed = loop {
        match state.store.listen().await {
            Ok(Some(feed)) => break feed,
            Ok(None) => return,
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(%error, "cannot listen for other replicas' changes; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    tracing::info!("listening for other replicas' changes");
    loop {
        let notice = tokio::select! {
            notice = feed.next() => notice,
            _ = shutdown.changed() => return,
        };
        match notice {
            Ok(notice) => apply(&state, notice),
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(%error, "lost other replicas' changes; forgetting caches and retrying in 1 s");
                apply(&state, Notice::Lost);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// What a notice changes in this server's memory.
pub fn apply(state: &AppState, notice: Notice) {
    metrics::counter!("hearth_notices_total", "notice" => kind(&notice)).increment(1);
    match notice {
        Notice::Events => state.bus.wake(),
        Notice::TokenRevoked(id) => state.auth.forget_token(id),
        Notice::WorkspaceTokens(id) => state.forget_workspace(id),
        Notice::Template { org, name } => state.heartbeats.desired().template_changed(org, &name),
        Notice::Plugin { org, name } => state.heartbeats.desired().plugin_changed(org, &name),
        Notice::Lost => {
            tracing::warn!("notices may have been missed; forgetting cached tokens and desired states");
            state.auth.forget_all();
            state.heartbeats.desired().forget_all();
            state.bus.wake();
        }
    }
}

fn kind(notice: &Notice) -> &'static str {
    match notice {
        Notice::Events => "events",
        Notice::TokenRevoked(_) => "token_revoked",
        Notice::WorkspaceTokens(_) => "workspace_tokens",
        Notice::Template { .. } => "template",
        Notice::Plugin { .. } => "plugin",
        Notice::Lost => "lost",
    }
}
