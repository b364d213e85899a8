//! Workspace registration: the workspaces the load generator sends for,
//! created before either run, each with an issued token, through the bulk
//! path (`POST /workspaces/batch`, one transaction per batch).

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use hearth_api::CreateWorkspaceRequest;
use hearth_client::Client;
use hearth_core::WorkspaceId;

use super::Progress;

/// Workspaces per batch request (the server's maximum).
const BATCH: u32 = 1000;
/// Batches sent at the same time.
const CONCURRENCY: usize = 2;

/// A workspace the load generator sends for, and the token it sends.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) id: WorkspaceId,
    pub(super) token: String,
}

pub(super) async fn create(admin: &Client, count: u32, progress: &dyn Progress) -> anyhow::Result<Vec<Target>> {
    // Unique per run, so a reused database does not refuse the names.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = run.get(..8).unwrap_or(&run).to_owned();
    let mut targets = Vec::with_capacity(count as usize);
    let mut batches = futures_util::stream::iter((0..count).step_by(BATCH as usize))
        .map(|first| {
            let run = run.clone();
            async move {
                let requests: Vec<CreateWorkspaceRequest> = (first..count.min(first + BATCH))
                    .map(|index| CreateWorkspaceRequest {
                        name: format!("bench-{run}-{index}"),
                        issue_token: Some(true),
                        ..Default::default()
                    })
                    .collect();
                let created = admin
                    .create_workspaces(requests)
                    .await
                    .with_context(|| format!("cannot create workspaces {first}.. of the bench"))?;
                created
                    .into_iter()
                    .map(|workspace| {
                        let token = workspace
                            .auth_token
                            .with_context(|| format!("the server issued no token for workspace {}", workspace.name))?;
                        Ok(Target { id: workspace.id, token })
                    })
                    .collect::<anyhow::Result<Vec<Target>>>()
            }
        })
        .buffered(CONCURRENCY);
    while let Some(batch) = batches.try_next().await? {
        targets.extend(batch);
        progress.position(targets.len() as u64);
    }
    Ok(targets)
}
