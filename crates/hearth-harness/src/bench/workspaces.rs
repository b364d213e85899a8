//! Workspace registration: the workspaces the load generator sends for,
//! created before either run, each with an issued token.

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use hearth_api::CreateWorkspaceRequest;
use hearth_client::Client;
use hearth_core::WorkspaceId;

/// Workspaces created at the same time.
const CREATE_CONCURRENCY: usize = 8;

/// A workspace the load generator sends for, and the token it sends.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) id: WorkspaceId,
    pub(super) token: String,
}

pub(super) async fn create(admin: &Client, count: u32) -> anyhow::Result<Vec<Target>> {
    // Unique per run, so a reused database does not refuse the names.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = run.get(..8).unwrap_or(&run).to_owned();
    futures_util::stream::iter(0..count)
        .map(|index| {
            let name = format!("bench-{run}-{index}");
            async move {
                let request =
                    CreateWorkspaceRequest { name: name.clone(), issue_token: Some(true), ..Default::default() };
                let workspace = admin
                    .create_workspace(&request)
                    .await
                    .with_context(|| format!("cannot create workspace {name}"))?;
                let token =
                    workspace.auth_token.with_context(|| format!("the server issued no token for workspace {name}"))?;
                Ok::<_, anyhow::Error>(Target { id: workspace.id, token })
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect()
        .await
}
