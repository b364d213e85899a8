//! What a workspace must converge to: its template's assets digest, the
//! plugins the template declares and those an operator added (with the
//! version and hash stored now).
//! Read on every locked heartbeat and remembered by the fast path
//! (`fast.rs`) until a template or plugin change invalidates it, so a
//! re-imported template or a re-pushed plugin reaches every runtime on its
//! next heartbeat (level-triggered).

use hearth_core::reconcile::DesiredState;
use hearth_core::WorkspaceId;

use crate::error::ApiResult;
use crate::state::AppState;

/// One query: the template's digest and plugins, then operator-added ones.
pub async fn desired_for(state: &AppState, id: WorkspaceId) -> ApiResult<DesiredState> {
    Ok(state.store.desired_state_for_workspace(id).await?)
}

pub fn to_wire(desired: &DesiredState) -> hearth_api::Desired {
    hearth_api::Desired {
        assets_digest: desired.assets_digest.clone(),
        plugins: desired
            .plugins
            .iter()
            .map(|p| hearth_api::DesiredPlugin {
                name: p.name.clone(),
                version: p.stored.as_ref().map(|s| s.version.clone()),
                sha256: p.stored.as_ref().map(|s| s.sha256.clone()),
            })
            .collect(),
    }
}
