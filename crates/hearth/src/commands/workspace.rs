//! `hearth workspace …`: create, list, inspect, control and wait for
//! workspaces.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Subcommand};
use hearth_api::{CreateWorkspaceRequest, StatusResponse, WaitFor, WaitOutcome, WaitResponse, WorkspaceResponse};
use hearth_client::ClientError;
use hearth_core::{WorkspaceId, WorkspaceStatus};

use crate::cli;
use crate::operator::Operator;
use crate::output::{self, age, or_dash, render_fields, short_hex, timestamp, truncate, ExitWith, Table};

/// `workspace wait`: the state can no longer be reached (removed).
pub const EXIT_IMPOSSIBLE: u8 = 3;
/// `workspace wait`: the time ran out (also what any failure exits with).
pub const EXIT_TIMED_OUT: u8 = 1;
/// The longest wait one request asks the server for (its maximum).
const MAX_WAIT_PER_REQUEST: u64 = 300;
/// The longest wait one request asks for while a progress line shows.
const PROGRESS_WAIT_PER_REQUEST: u64 = 10;
/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);
/// Pause before asking again after the server could not be reached.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace; it starts in `provisioning`.
    Create(CreateArgs),
    /// List workspaces.
    List {
        /// Include removed workspaces (tombstones).
        #[arg(long)]
        include_removed: bool,
        /// Only this org's, by id or name (the admin token; default: every
        /// org the token sees).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// Show one workspace in detail.
    Get {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Pause a workspace: its runtime stops working (online, degraded or offline only).
    Pause {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Resume a paused or hibernated workspace.
    Resume {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Restart a workspace's runtime.
    Restart {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Hibernate a workspace.
    Hibernate {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Remove a workspace and its descendants (idempotent).
    Delete {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
    },
    /// Print the workspace runtime's log (from the provisioner that runs it).
    Logs {
        #[arg(value_name = "ID", value_parser = cli::workspace_id)]
        id: WorkspaceId,
        /// Keep printing what the runtime writes next, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first (1 to 10000) [default: 100].
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Wait until a workspace reaches a status or a condition, with the
    /// server's long poll (a progress line on stderr when it is a terminal).
    #[command(after_help = "Exit codes: 0 met; 1 timed out (or the request failed); 3 can no longer happen \
                            (the workspace was removed); 2 usage error.")]
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the workspace.
    name: String,
    /// Template to create it from (its name or id).
    #[arg(long, value_name = "T")]
    template: Option<String>,
    /// Role of the workspace.
    #[arg(long, value_name = "R")]
    role: Option<String>,
    /// Tier of the workspace.
    #[arg(long, value_name = "N")]
    tier: Option<i32>,
    /// Parent workspace.
    #[arg(long, value_name = "ID", value_parser = cli::workspace_id)]
    parent: Option<WorkspaceId>,
    /// The org to create it in, by id or name (the admin token; default:
    /// the caller's org, the default org for the admin).
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Also issue a workspace token (printed once).
    #[arg(long)]
    issue_token: bool,
    /// Then wait until it is online (exit codes as `workspace wait`).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "wait")]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(value_name = "ID", value_parser = cli::workspace_id)]
    id: WorkspaceId,
    /// What to wait for: status=STATUS (provisioning, online, offline,
    /// degraded, failed, removed, paused, hibernated) or condition=TYPE
    /// (Live, AssetsDelivered, PluginsInstalled, AgentRunning; waits for True).
    #[arg(long = "for", value_name = "WHAT", value_parser = parse_wait_for, conflicts_with = "status")]
    target: Option<WaitFor>,
    /// The same as --for status=STATUS (the older spelling).
    #[arg(long, value_name = "STATUS", value_parser = parse_status, hide = true)]
    status: Option<WorkspaceStatus>,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
}

fn parse_wait_for(text: &str) -> Result<WaitFor, String> {
    text.parse()
}

fn parse_status(text: &str) -> Result<WorkspaceStatus, String> {
    text.parse().map_err(|err: hearth_core::status::UnknownStatus| err.to_string())
}

pub async fn run(command: WorkspaceCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        WorkspaceCommand::Create(args) => create(args, op).await,
        WorkspaceCommand::List { include_removed, org } => {
            let org = op.in_org(org.as_deref()).await?;
            list(include_removed, org, op).await
        }
        WorkspaceCommand::Get { id } => {
            let workspace = op.client.get_workspace(id).await.with_context(|| format!("cannot get workspace {id}"))?;
            if op.json {
                output::print_json(&workspace)
            } else {
                Ok(output::print(&describe(&workspace))?)
            }
        }
        WorkspaceCommand::Pause { id } => {
            let answer = op.client.pause(id).await.with_context(|| format!("cannot pause workspace {id}"))?;
            report_transition(op, &answer, format!("workspace {id} is now {}", answer.status))
        }
        WorkspaceCommand::Resume { id } => {
            let answer = op.client.resume(id).await.with_context(|| format!("cannot resume workspace {id}"))?;
            report_transition(op, &answer, format!("workspace {id} resumed; it is now {}", answer.status))
        }
        WorkspaceCommand::Restart { id } => {
            let answer = op.client.restart(id).await.with_context(|| format!("cannot restart workspace {id}"))?;
            report_transition(op, &answer, format!("workspace {id} restarted; it is now {}", answer.status))
        }
        WorkspaceCommand::Hibernate { id } => {
            let answer = op.client.hibernate(id).await.with_context(|| format!("cannot hibernate workspace {id}"))?;
            report_transition(op, &answer, format!("workspace {id} is now {}", answer.status))
        }
        WorkspaceCommand::Delete { id } => {
            let answer =
                op.client.delete_workspace(id).await.with_context(|| format!("cannot delete workspace {id}"))?;
            if op.json {
                return output::print_json(&answer);
            }
            let text = match answer.cascade_deleted {
                0 => format!("workspace {id} removed"),
                1 => format!("workspace {id} removed, with 1 descendant"),
                n => format!("workspace {id} removed, with {n} descendants"),
            };
            Ok(output::print(&text)?)
        }
        WorkspaceCommand::Wait(args) => wait(args, op).await,
        WorkspaceCommand::Logs { id, follow, tail } => {
            let mut log = op
                .client
                .workspace_logs(id, tail, follow)
                .await
                .with_context(|| format!("cannot read the log of workspace {id}"))?;
            while let Some(chunk) =
                log.next_chunk().await.with_context(|| format!("reading the log of workspace {id}"))?
            {
                output::write_raw(&chunk)?;
            }
            Ok(())
        }
    }
}

fn report_transition(op: &Operator, answer: &StatusResponse, text: String) -> anyhow::Result<()> {
    if op.json {
        output::print_json(answer)
    } else {
        Ok(output::print(&text)?)
    }
}

async fn create(args: CreateArgs, op: &Operator) -> anyhow::Result<()> {
    let request = CreateWorkspaceRequest {
        name: args.name,
        role: args.role,
        tier: args.tier,
        template: args.template,
        parent_id: args.parent,
        issue_token: args.issue_token.then_some(true),
        ..CreateWorkspaceRequest::default()
    };
    let org = op.in_org(args.org.as_deref()).await?;
    let workspace = op
        .client
        .create_workspace_in(org, &request)
        .await
        .with_context(|| format!("cannot create workspace {:?}", request.name))?;
    if op.json {
        if args.wait {
            let target = WaitFor::Status(WorkspaceStatus::Online);
            let answer = wait_until(op, workspace.id, &target, Duration::from_secs(args.timeout)).await?;
            return output::print_json(&answer.workspace);
        }
        return output::print_json(&workspace);
    }
    let mut text = format!("created workspace {} ({}); it is {}\n", workspace.id, workspace.name, workspace.status);
    if let Some(token) = &workspace.auth_token {
        text.push_str(&format!("workspace token (shown only once, store it now): {token}\n"));
    }
    output::print(&text)?;
    if args.wait {
        let target = WaitFor::Status(WorkspaceStatus::Online);
        let answer = wait_until(op, workspace.id, &target, Duration::from_secs(args.timeout)).await?;
        output::print(&answer.message)?;
    }
    Ok(())
}

async fn list(include_removed: bool, org: Option<uuid::Uuid>, op: &Operator) -> anyhow::Result<()> {
    let workspaces = op.client.list_workspaces_in(org, include_removed).await.context("cannot list workspaces")?;
    if op.json {
        return output::print_json(&workspaces);
    }
    if workspaces.is_empty() {
        output::note("no workspaces");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(["ID", "NAME", "STATUS", "ROLE", "TIER", "TEMPLATE", "HEARTBEAT"]);
    for workspace in &workspaces {
        table.row([
            workspace.id.to_string(),
            workspace.name.clone(),
            workspace.status.to_string(),
            or_dash(workspace.role.as_deref()),
            workspace.tier.to_string(),
            or_dash(workspace.template.as_deref()),
            workspace.last_heartbeat_at.map_or_else(|| "never".to_owned(), |at| age(at, now)),
        ]);
    }
    Ok(output::print(&table.render())?)
}

/// The detail view of `workspace get`.
fn describe(workspace: &WorkspaceResponse) -> String {
    let now = Utc::now();
    let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let mut text = render_fields(&[
        ("id", workspace.id.to_string()),
        ("name", workspace.name.clone()),
        ("status", format!("{} (changed {})", workspace.status, age(workspace.status_changed_at, now))),
        ("role", or_dash(workspace.role.as_deref())),
        ("tier", workspace.tier.to_string()),
        ("template", or_dash(workspace.template.as_deref())),
        ("runtime", or_dash(workspace.runtime.as_deref())),
        ("model", or_dash(workspace.model.as_deref())),
        ("parent", optional(workspace.parent_id.map(|id| id.to_string()))),
        ("url", or_dash(workspace.url.as_deref())),
        ("external", workspace.external.to_string()),
        (
            "last heartbeat",
            optional(workspace.last_heartbeat_at.map(|at| format!("{} ({})", timestamp(at), age(at, now)))),
        ),
        ("error rate", format!("{:.2}", workspace.last_error_rate)),
        ("sample error", truncate(&or_dash(workspace.last_sample_error.as_deref()))),
        ("active tasks", workspace.active_tasks.to_string()),
        ("uptime", format!("{}s", workspace.uptime_seconds)),
        ("current task", truncate(&or_dash(workspace.current_task.as_deref()))),
        ("monthly spend", format!("${}.{:02}", workspace.monthly_spend / 100, workspace.monthly_spend % 100)),
        ("runtime state", or_dash(workspace.runtime_state.as_deref())),
        ("created", timestamp(workspace.created_at)),
        ("updated", timestamp(workspace.updated_at)),
    ]);
    if !workspace.conditions.is_empty() {
        let mut table = Table::new(["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"]);
        for condition in &workspace.conditions {
            table.row([
                condition.kind.clone(),
                condition.status.clone(),
                or_dash(Some(&condition.reason)),
                age(condition.last_transition_time, now),
                truncate(&condition.message),
            ]);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    if !workspace.desired_plugins.is_empty() || !workspace.installed_plugins.is_empty() {
        let mut table = Table::new(["PLUGIN", "DESIRED", "INSTALLED"]);
        let installed_sha = |name: &str| {
            workspace.installed_plugins.iter().find(|plugin| plugin.name == name).map(|plugin| plugin.sha256.clone())
        };
        for plugin in &workspace.desired_plugins {
            let installed = match installed_sha(&plugin.name) {
                None => "no".to_owned(),
                Some(Some(sha)) if Some(&sha) == plugin.sha256.as_ref() => "yes".to_owned(),
                Some(Some(sha)) => format!("other content ({})", short_hex(&sha)),
                Some(None) => "yes (unverified)".to_owned(),
            };
            let desired = match (&plugin.version, &plugin.sha256) {
                (Some(version), Some(sha)) => format!("{version} ({})", short_hex(sha)),
                _ => "not in the registry".to_owned(),
            };
            table.row([plugin.name.clone(), desired, installed]);
        }
        for plugin in &workspace.installed_plugins {
            if !workspace.desired_plugins.iter().any(|desired| desired.name == plugin.name) {
                table.row([plugin.name.clone(), "-".to_owned(), "yes (not desired)".to_owned()]);
            }
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}

async fn wait(args: WaitArgs, op: &Operator) -> anyhow::Result<()> {
    let target = match (args.target, args.status) {
        (Some(target), _) => target,
        (None, Some(status)) => WaitFor::Status(status),
        (None, None) => bail!("say what to wait for: --for status=STATUS or --for condition=TYPE"),
    };
    let answer = wait_until(op, args.id, &target, Duration::from_secs(args.timeout)).await?;
    print_met(op, &answer)
}

fn print_met(op: &Operator, answer: &WaitResponse) -> anyhow::Result<()> {
    if op.json {
        output::print_json(answer)
    } else {
        Ok(output::print(&answer.message)?)
    }
}

/// Waits with the server's long poll (`GET /workspaces/{id}/wait`), asking
/// again whenever one poll ends before `timeout` does; the server answers as
/// soon as the workspace changes, so nothing here sleeps between asks.
/// Met: the last answer. Timed out: exit 1. Impossible (removed): exit 3.
pub async fn wait_until(
    op: &Operator,
    id: WorkspaceId,
    target: &WaitFor,
    timeout: Duration,
) -> anyhow::Result<WaitResponse> {
    let mut wait = Waiting {
        id,
        target,
        started: Instant::now(),
        timeout,
        progress: output::Progress::on_terminal(),
        status: String::new(),
    };
    let deadline = wait.started + timeout;
    let mut unreachable: Option<ClientError> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match wait.ask(op, poll_seconds(left, wait.progress.is_shown())).await {
            Ok(answer) => {
                unreachable = None;
                wait.status = answer.workspace.status.to_string();
                if let Some(ended) = wait.conclude(answer) {
                    return ended;
                }
            }
            // A server that restarts meanwhile is not a reason to give up.
            Err(err @ ClientError::Transport(_)) => {
                if unreachable.is_none() {
                    wait.progress.clear();
                    output::note(&format!("{err}; still trying"));
                }
                unreachable = Some(err);
                tokio::time::sleep(RECONNECT_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
            Err(err) => {
                wait.progress.clear();
                return Err(err).with_context(|| format!("cannot wait for workspace {id}"));
            }
        }
        if Instant::now() >= deadline {
            wait.progress.clear();
            return Err(wait.timed_out(unreachable.as_ref()));
        }
    }
}

/// How long one long poll may take, in whole seconds: what is `left` of the
/// wait, rounded up (a wait of 0 s for the last fraction of a second would
/// be asked again and again until the deadline), at most a request's worth;
/// on a terminal (`progress_shown`) shorter polls keep the status on the
/// progress line fresh while nothing happens, each still answering at the
/// change.
fn poll_seconds(left: Duration, progress_shown: bool) -> u64 {
    let per_request = if progress_shown { PROGRESS_WAIT_PER_REQUEST } else { MAX_WAIT_PER_REQUEST };
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).min(per_request)
}

/// One `workspace wait` under way: what it waits for, since when, and what
/// the latest answer said (for the progress line).
struct Waiting<'a> {
    id: WorkspaceId,
    target: &'a WaitFor,
    started: Instant,
    timeout: Duration,
    progress: output::Progress,
    /// The workspace's status in the latest answer; empty before the first.
    status: String,
}

impl Waiting<'_> {
    /// One long poll of up to `seconds`, redrawing the progress line while
    /// it is out.
    async fn ask(&mut self, op: &Operator, seconds: u64) -> Result<WaitResponse, ClientError> {
        let ask = op.client.wait_for(self.id, self.target, seconds);
        tokio::pin!(ask);
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        loop {
            tokio::select! {
                result = &mut ask => return result,
                _ = tick.tick() => {
                    let now = if self.status.is_empty() { String::new() } else { format!(": it is {}", self.status) };
                    self.progress.show(&format!(
                        "waiting for workspace {} to have {}{now} ({:.0}s of {}s)",
                        self.id,
                        self.target,
                        self.started.elapsed().as_secs_f64(),
                        self.timeout.as_secs()
                    ));
                }
            }
        }
    }

    /// The end of the wait an answer brings: met (the answer, saying how
    /// long it took) or impossible (exit 3); `None` when the poll only timed
    /// out.
    fn conclude(&mut self, answer: WaitResponse) -> Option<anyhow::Result<WaitResponse>> {
        match answer.outcome {
            WaitOutcome::Met => {
                self.progress.clear();
                let elapsed = self.started.elapsed().as_secs_f64();
                Some(Ok(WaitResponse { message: format!("{} (after {elapsed:.1}s)", answer.message), ..answer }))
            }
            WaitOutcome::Impossible => {
                self.progress.clear();
                Some(Err(ExitWith::new(EXIT_IMPOSSIBLE, answer.message).into()))
            }
            WaitOutcome::TimedOut => None,
        }
    }

    /// Exit 1, saying what the workspace last was, or why it could not be
    /// asked.
    fn timed_out(&self, unreachable: Option<&ClientError>) -> anyhow::Error {
        let why = match unreachable {
            Some(err) => format!("the last attempt failed: {err}"),
            None => format!("it is {}", self.status),
        };
        let (id, target, seconds) = (self.id, self.target, self.timeout.as_secs());
        ExitWith::new(EXIT_TIMED_OUT, format!("workspace {id} did not have {target} within {seconds}s ({why})")).into()
    }
}
