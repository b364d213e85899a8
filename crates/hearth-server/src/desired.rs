//! What a workspace must converge to: its template's assets digest and the
//! plugins the template declares (with the version and hash stored now).
//! Read on every heartbeat, so a re-imported template or a re-pushed plugin
//! reaches every runtime on its next heartbeat (level-triggered).

use hearth_core::reconcile::DesiredState;
use hearth_store::Workspace;

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn desired_for(state: &AppState, workspace: &Workspace) -> ApiResult<DesiredState> {
    let Some(name) = &workspace.template else { return Ok(DesiredState::default()) };
    match state.store.desired_state(workspace.org_id, name).await? {
        Some(desired) => Ok(desired),
        // Creation refuses unknown templates, so this one was never imported
        // under this org: nothing to deliver, and the conditions say so.
        None => {
            tracing::warn!(workspace_id = %workspace.id, template = %name, "workspace names a template that does not exist");
            Ok(DesiredState::default())
        }
    }
}

pub fn to_wire(desired: &DesiredState) -> hearth_api::Desired {
    hearth_api::Desired {
        assets_digest: desired.assets_digest.clone(),
        plugins: desired
            .plugins
            .iter()
            .map(|p| hearth_api::DesiredPlugin {
                name: p.name.clone(),
                version: p.version.clone(),
                sha256: p.sha256.clone(),
            })
            .collect(),
    }
}
