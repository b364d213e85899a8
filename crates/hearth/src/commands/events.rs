//! `hearth events`: the event log, or (with `--follow`) the live stream.

use std::collections::HashMap;

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use hearth_api::EventResponse;
use hearth_core::WorkspaceId;
use serde_json::Value;

use crate::operator::Operator;
use crate::output::{self, timestamp, truncate, Table};

/// Events asked for per page when reading the log.
const PAGE_SIZE: u32 = 500;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep streaming new events as they happen (with --json: one JSON
    /// document per line).
    #[arg(long)]
    follow: bool,
    /// Only events after this sequence number.
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(i64).range(0..))]
    since: Option<i64>,
    /// Only events of this workspace.
    #[arg(long, value_name = "ID", value_parser = crate::cli::workspace_id, conflicts_with = "org")]
    workspace: Option<WorkspaceId>,
    /// Only events of this org, by id or name (the admin token; default:
    /// every org the token sees).
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
}

pub async fn run(args: EventsArgs, op: &Operator) -> anyhow::Result<()> {
    let org = op.in_org(args.org.as_deref()).await?;
    if args.follow {
        follow(args, org, op).await
    } else {
        list(args, org, op).await
    }
}

/// Reads the log page by page up to its current end (an empty page: a page
/// may hold fewer events than asked while more follow). Where the server's
/// retention removed events after our position, says so and goes on from
/// where its log is complete again.
async fn list(args: EventsArgs, org: Option<uuid::Uuid>, op: &Operator) -> anyhow::Result<()> {
    let mut events: Vec<EventResponse> = Vec::new();
    let mut since = args.since;
    loop {
        let page = match op.client.list_events_in(org, since, args.workspace, Some(PAGE_SIZE)).await {
            Ok(page) => page,
            Err(err) => match err.compacted_until() {
                Some(earliest) if since.is_none_or(|since| earliest - 1 > since) => {
                    output::note(&compacted_note(since.unwrap_or(0), earliest));
                    since = Some(earliest - 1);
                    continue;
                }
                _ => return Err(err).context("cannot list events"),
            },
        };
        // Only events past the last one seen count, so a server that repeats
        // a page (or ignores `since`) cannot make this loop forever.
        let fresh: Vec<EventResponse> =
            page.into_iter().filter(|event| since.is_none_or(|since| event.seq > since)).collect();
        let Some(last) = fresh.last() else { break };
        since = Some(last.seq);
        events.extend(fresh);
    }
    if op.json {
        return output::print_json(&events);
    }
    if events.is_empty() {
        output::note("no events");
        return Ok(());
    }
    let mut names = Names::default();
    let mut table = Table::new(["SEQ", "TIME", "EVENT", "WORKSPACE", "ACTOR", "PAYLOAD"]);
    for event in &events {
        let workspace = names.cell(op, event).await;
        table.row([
            event.seq.to_string(),
            timestamp(event.timestamp),
            event.event.clone(),
            workspace,
            actor_cell(&event.payload),
            payload_cell(&event.payload),
        ]);
    }
    Ok(output::print(&table.render())?)
}

async fn follow(args: EventsArgs, org: Option<uuid::Uuid>, op: &Operator) -> anyhow::Result<()> {
    let stream = match args.workspace {
        Some(_) => op.client.follow_events(args.since, args.workspace).await,
        None => op.client.follow_events_in(org, args.since).await,
    };
    let mut stream = stream.context("cannot follow the event stream")?;
    let mut names = Names::default();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => match err.compacted_until() {
                // The stream goes on from there.
                Some(earliest) => {
                    output::note(&compacted_note(earliest - 1, earliest));
                    continue;
                }
                None => return Err(err.into()),
            },
        };
        if op.json {
            output::print_json_line(&event)?;
        } else {
            let workspace = names.cell(op, &event).await;
            output::print(&follow_line(&event, &workspace))?;
        }
    }
    Ok(())
}

/// What the user is told when the server's retention removed events they
/// had not read.
fn compacted_note(after: i64, earliest: i64) -> String {
    if after + 1 >= earliest {
        format!("some events before seq {earliest} were removed by the server's retention before they were read; continuing from seq {earliest}")
    } else {
        format!(
            "events {}..{} are no longer all on the server (retention); continuing from seq {earliest}",
            after + 1,
            earliest - 1
        )
    }
}

/// One event as a line with fixed-width columns (a streamed table cannot
/// measure its rows in advance).
fn follow_line(event: &EventResponse, workspace: &str) -> String {
    let workspace: String = workspace.chars().take(WORKSPACE_WIDTH).collect();
    let line = format!(
        "{:>6}  {}  {:<26}  {:<36}  {:<24}  {}",
        event.seq,
        timestamp(event.timestamp),
        event.event,
        workspace,
        actor_cell(&event.payload),
        payload_cell(&event.payload)
    );
    line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim_end().to_owned()
}

/// Width of the workspace column of a followed event.
const WORKSPACE_WIDTH: usize = 36;

/// Workspace names by id, asked for once per workspace.
#[derive(Default)]
struct Names {
    known: HashMap<WorkspaceId, Option<String>>,
}

impl Names {
    /// `name (first 8 of the id)`, or the id when its name cannot be read
    /// (said once on stderr).
    async fn cell(&mut self, op: &Operator, event: &EventResponse) -> String {
        let Some(id) = event.workspace_id else { return "-".to_owned() };
        if let std::collections::hash_map::Entry::Vacant(slot) = self.known.entry(id) {
            let name = match op.client.get_workspace(id).await {
                Ok(workspace) => Some(workspace.name),
                Err(err) => {
                    output::note(&format!("cannot read the name of workspace {id} ({err}); showing its id"));
                    None
                }
            };
            slot.insert(name);
        }
        workspace_cell(id, self.known.get(&id).and_then(Option::as_deref))
    }
}

fn workspace_cell(id: WorkspaceId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} ({})", &id.to_string()[..8]),
        None => id.to_string(),
    }
}

/// Who caused the event (its payload's `actor`): `operator owner
/// 1a2b3c4d` (the token id's first 8), `operator admin`, `runtime`,
/// `system sweep`; `-` for an event written before actors were.
fn actor_cell(payload: &Value) -> String {
    let actor = &payload["actor"];
    let text = |key: &str| actor[key].as_str().unwrap_or("?").to_owned();
    match actor["kind"].as_str() {
        Some("operator") => match actor["token_id"].as_str() {
            Some(id) => format!("operator {} {}", text("role"), id.chars().take(8).collect::<String>()),
            None => format!("operator {}", text("role")),
        },
        Some("system") => format!("system {}", text("reason")),
        Some(kind) => kind.to_owned(),
        None => "-".to_owned(),
    }
}

/// The payload without its `actor` (a column of its own).
fn payload_cell(payload: &Value) -> String {
    match payload {
        Value::Null => "-".to_owned(),
        Value::Object(map) => {
            let rest: serde_json::Map<String, Value> =
                map.iter().filter(|(key, _)| *key != "actor").map(|(k, v)| (k.clone(), v.clone())).collect();
            if rest.is_empty() {
                "-".to_owned()
            } else {
                truncate(&Value::Object(rest).to_string())
            }
        }
        other => truncate(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_followed_event_is_one_line_with_fixed_columns() {
        let event = EventResponse {
            seq: 42,
            id: Uuid::nil(),
            event: "WORKSPACE_ONLINE".into(),
            workspace_id: Some("0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b".parse().unwrap()),
            timestamp: Utc.with_ymd_and_hms(2026, 11, 24, 11, 20, 0).unwrap(),
            payload: json!({"recovered_from": "provisioning\nx", "actor": {"kind": "runtime"}}),
        };
        let id: WorkspaceId = "0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b".parse().unwrap();
        assert_eq!(
            follow_line(&event, &workspace_cell(id, Some("seo-agent"))),
            "    42  2026-11-24T11:20:00Z  WORKSPACE_ONLINE            seo-agent (0b6a4d3e)                  \
             runtime                   {\"recovered_from\":\"provisioning\\nx\"}"
        );
        assert_eq!(
            follow_line(&event, &workspace_cell(id, None)),
            "    42  2026-11-24T11:20:00Z  WORKSPACE_ONLINE            0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b  \
             runtime                   {\"recovered_from\":\"provisioning\\nx\"}"
        );
        let quiet = EventResponse { workspace_id: None, payload: json!({}), ..event };
        assert_eq!(
            follow_line(&quiet, "-"),
            format!("    42  2026-11-24T11:20:00Z  WORKSPACE_ONLINE            {:<36}  {:<24}  -", "-", "-")
        );
    }

    #[test]
    fn the_actor_column_says_who_in_a_few_words() {
        let cell = |actor: Value| actor_cell(&json!({"actor": actor}));
        let token = "1a2b3c4d-0000-4000-8000-000000000000";
        assert_eq!(cell(json!({"kind": "operator", "token_id": token, "role": "owner"})), "operator owner 1a2b3c4d");
        assert_eq!(cell(json!({"kind": "operator", "token_id": null, "role": "admin"})), "operator admin");
        assert_eq!(cell(json!({"kind": "runtime"})), "runtime");
        assert_eq!(cell(json!({"kind": "system", "reason": "sweep"})), "system sweep");
        assert_eq!(actor_cell(&json!({"from": "online"})), "-", "an event from before actors");
        assert_eq!(payload_cell(&json!({"from": "online", "actor": {"kind": "runtime"}})), "{\"from\":\"online\"}");
    }
}
