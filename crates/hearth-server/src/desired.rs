//! What a workspace must converge to: its template's assets digest and the
//! plugins the template declares (with the version and hash stored now).
//! Read on every heartbeat, so a re-imported template or a re-pushed plugin
//! reaches every runtime on its next heartbeat (level-triggered).

use hearth_core::reconcile::{DesiredPlugin, DesiredState};
use hearth_store::{StoreError, Workspace};

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn desired_for(state: &AppState, workspace: &Workspace) -> ApiResult<DesiredState> {
    let mut desired = match &workspace.template {
        None => DesiredState::default(),
        Some(name) => match state.store.desired_state(workspace.org_id, name).await? {
            Some(desired) => desired,
            // Creation refuses unknown templates, so this one was never
            // imported under this org: nothing to deliver from it.
            None => {
                tracing::warn!(workspace_id = %workspace.id, template = %name, "workspace names a template that does not exist");
                DesiredState::default()
            }
        },
    };
    // Plugins an operator added come after the template's, once each.
    for name in &workspace.operator_plugins {
        if desired.plugins.iter().any(|p| &p.name == name) {
            continue;
        }
        let plugin = match state.store.get_plugin(workspace.org_id, name).await {
            Ok(p) => DesiredPlugin { name: p.name, version: p.version, sha256: p.sha256 },
            // Adding refuses unknown plugins; keep it desired so the
            // condition stays False and says which one.
            Err(StoreError::NotFound(_)) => {
                DesiredPlugin { name: name.clone(), version: String::new(), sha256: String::new() }
            }
            Err(e) => return Err(e.into()),
        };
        desired.plugins.push(plugin);
    }
    Ok(desired)
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
