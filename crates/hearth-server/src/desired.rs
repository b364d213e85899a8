//! What a workspace must converge to: its template's assets digest and the
//! plugins the template declares (with the version and hash stored now).
//! Read on every heartbeat, so a re-imported template or a re-pushed plugin
//! reaches every runtime on its next heartbeat (level-triggered).

use hearth_core::reconcile::{DesiredPlugin, DesiredState};
use hearth_store::{StoreError, Workspace};

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn desired_for(state: &AppState, workspace: &Workspace) -> ApiResult<DesiredState> {
    let Some(name) = &workspace.template else { return Ok(DesiredState::default()) };
    let template = match state.store.get_template_by_name(workspace.org_id, name).await {
        Ok(template) => template,
        // Workspaces created before templates existed may name one that
        // was never imported: nothing to deliver, and the condition says so.
        Err(StoreError::NotFound(_)) => {
            tracing::warn!(workspace_id = %workspace.id, template = %name, "workspace names a template that does not exist");
            return Ok(DesiredState::default());
        }
        Err(e) => return Err(e.into()),
    };
    let mut plugins = Vec::with_capacity(template.plugins.len());
    for plugin_name in &template.plugins {
        match state.store.get_plugin(workspace.org_id, plugin_name).await {
            Ok(plugin) => {
                plugins.push(DesiredPlugin { name: plugin.name, version: plugin.version, sha256: plugin.sha256 })
            }
            Err(StoreError::NotFound(_)) => {
                // Import refuses unknown plugins, so this is a plugin that
                // disappeared; keep it desired so the condition stays False.
                tracing::warn!(workspace_id = %workspace.id, plugin = %plugin_name, "declared plugin is not in the registry");
                plugins.push(DesiredPlugin {
                    name: plugin_name.clone(),
                    version: String::new(),
                    sha256: String::new(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(DesiredState { assets_digest: Some(template.assets_digest), plugins })
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
