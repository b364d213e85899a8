//! The durability audit: through the API, every heartbeat the bench got an
//! answer for is in the database, and every transition is in the event log.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use hearth_api::EventResponse;
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};

use super::workspaces::Target;
use super::Progress;

/// Events asked for per page by the audit (the server's maximum).
const EVENT_PAGE_SIZE: u32 = 1000;
/// Workspaces asked for per page by the audit (the server's maximum).
const WORKSPACE_PAGE_SIZE: u32 = 1000;
/// Audit problems listed (the rest are counted).
pub const MAX_PROBLEMS_SHOWN: usize = 20;
pub const PROVISIONING: &str = "WORKSPACE_PROVISIONING";
pub const ONLINE: &str = "WORKSPACE_ONLINE";
/// An acknowledged heartbeat is in the database this long after its answer
/// at the latest: a plain heartbeat (one that changes nothing but liveness)
/// must be durable within 1 s of its answer.
pub const DURABLE_WITHIN: Duration = Duration::from_secs(1);

/// Checks, for every workspace of the bench:
/// - it is listed, with exactly one `WORKSPACE_PROVISIONING` event;
/// - if a heartbeat of it was acknowledged: it is online, its last heartbeat
///   is no older than when the last acknowledged one was sent, and it has
///   exactly one `WORKSPACE_ONLINE` event;
/// - if it is online at all, that transition is in the log (one event).
///
/// `acked`: per workspace, when its last acknowledged heartbeat was sent.
/// Returns what is wrong (nothing when all is well).
pub(super) async fn audit(
    admin: &Client,
    targets: &[Target],
    acked: &HashMap<WorkspaceId, DateTime<Utc>>,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let ours: HashSet<WorkspaceId> = targets.iter().map(|target| target.id).collect();
    let counts = event_counts(admin, &ours).await?;
    let mut listed = HashSet::with_capacity(ours.len());
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = admin
            .list_workspaces_page(false, Some(WORKSPACE_PAGE_SIZE), cursor.as_deref())
            .await
            .context("cannot list workspaces for the audit")?;
        for workspace in page.into_iter().filter(|workspace| ours.contains(&workspace.id)) {
            let id = workspace.id;
            listed.insert(id);
            // A workspace with no such event is not in `counts`: zero of each.
            let [provisioning, online] = counts.get(&id).copied().unwrap_or_default();
            if provisioning != 1 {
                problems.push(format!("workspace {id} has {provisioning} {PROVISIONING} events, not exactly one"));
            }
            if let Some(sent) = acked.get(&id) {
                if workspace.status != WorkspaceStatus::Online {
                    problems.push(format!("workspace {id} is {}, not online", workspace.status));
                }
                // Stored to the microsecond (Postgres), sent to the nanosecond.
                let sent = sent.trunc_subsecs(6);
                match workspace.last_heartbeat_at {
                    None => problems.push(format!("workspace {id} has no last heartbeat")),
                    Some(last) if last < sent => problems.push(format!(
                        "workspace {id}: last heartbeat in the database at {last}, but one sent at {sent} was \
                         acknowledged (not durable within {}s)",
                        DURABLE_WITHIN.as_secs()
                    )),
                    Some(_) => {}
                }
            }
            let should = usize::from(acked.contains_key(&id) || workspace.status == WorkspaceStatus::Online);
            if online != should {
                problems.push(format!("workspace {id} has {online} {ONLINE} events, not {should}"));
            }
        }
        progress.position(listed.len() as u64);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    for target in targets.iter().filter(|target| !listed.contains(&target.id)) {
        problems.push(format!("workspace {} is missing from the workspace list", target.id));
    }
    Ok(problems)
}

/// Per workspace of `ours`: its `WORKSPACE_PROVISIONING` and
/// `WORKSPACE_ONLINE` events in the whole log.
async fn event_counts(admin: &Client, ours: &HashSet<WorkspaceId>) -> anyhow::Result<HashMap<WorkspaceId, [usize; 2]>> {
    let mut counts: HashMap<WorkspaceId, [usize; 2]> = HashMap::with_capacity(ours.len());
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
            let slot = match event.event.as_str() {
                PROVISIONING => 0,
                ONLINE => 1,
                _ => continue,
            };
            if let Some(id) = event.workspace_id.filter(|id| ours.contains(id)) {
                counts.entry(id).or_default()[slot] += 1;
            }
        }
    }
    Ok(counts)
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
