//! The durability audit: through the API, every heartbeat the bench sent
//! is reflected durably.

use std::collections::HashMap;

use anyhow::Context;
use hearth_api::EventResponse;
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};

/// Events asked for per page by the audit (the server's maximum).
const EVENT_PAGE_SIZE: u32 = 1000;
/// Audit problems listed (the rest are counted).
pub const MAX_PROBLEMS_SHOWN: usize = 20;
pub const PROVISIONING: &str = "WORKSPACE_PROVISIONING";
pub const ONLINE: &str = "WORKSPACE_ONLINE";

/// Checks each workspace is online with a last heartbeat, with exactly one
/// `WORKSPACE_PROVISIONING` and one `WORKSPACE_ONLINE` event. Returns what
/// is wrong (nothing when all is well).
pub(super) async fn audit(admin: &Client, ids: &[WorkspaceId]) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let workspaces = admin.list_workspaces(false).await.context("cannot list workspaces for the audit")?;
    let workspaces: HashMap<WorkspaceId, _> =
        workspaces.into_iter().map(|workspace| (workspace.id, workspace)).collect();
    for id in ids {
        match workspaces.get(id) {
            None => problems.push(format!("workspace {id} is missing from the workspace list")),
            Some(workspace) => {
                if workspace.status != WorkspaceStatus::Online {
                    problems.push(format!("workspace {id} is {}, not online", workspace.status));
                }
                if workspace.last_heartbeat_at.is_none() {
                    problems.push(format!("workspace {id} has no last heartbeat"));
                }
            }
        }
    }

    let mut counts: HashMap<(WorkspaceId, &'static str), usize> = HashMap::new();
    let mut since = None;
    loop {
        let page = admin
            .list_events(since, None, Some(EVENT_PAGE_SIZE))
            .await
            .context("cannot read the event log for the audit")?;
        // Only events past the last one seen count, so a repeated page
        // cannot make this loop forever.
        let fresh: Vec<EventResponse> =
            page.into_iter().filter(|event| since.is_none_or(|since| event.seq > since)).collect();
        let Some(last) = fresh.last() else { break };
        since = Some(last.seq);
        for event in &fresh {
            let kind = match event.event.as_str() {
                PROVISIONING => PROVISIONING,
                ONLINE => ONLINE,
                _ => continue,
            };
            if let Some(id) = event.workspace_id {
                *counts.entry((id, kind)).or_default() += 1;
            }
        }
    }
    for id in ids {
        for kind in [PROVISIONING, ONLINE] {
            let count = counts.get(&(*id, kind)).copied().unwrap_or(0);
            if count != 1 {
                problems.push(format!("workspace {id} has {count} {kind} events, not exactly one"));
            }
        }
    }
    Ok(problems)
}

/// At most `MAX_PROBLEMS_SHOWN` problems, then how many more there are.
pub(super) fn shortened(problems: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = problems.iter().take(MAX_PROBLEMS_SHOWN).cloned().collect();
    if problems.len() > MAX_PROBLEMS_SHOWN {
        shown.push(format!("… and {} more", problems.len() - MAX_PROBLEMS_SHOWN));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_problem_lists_are_cut_with_a_count() {
        let problems: Vec<String> = (0..25).map(|n| n.to_string()).collect();
        let shown = shortened(&problems);
        assert_eq!(shown.len(), MAX_PROBLEMS_SHOWN + 1);
        assert_eq!(shown.last().map(String::as_str), Some("… and 5 more"));
        assert_eq!(shortened(&problems[..3]).len(), 3);
    }
}
