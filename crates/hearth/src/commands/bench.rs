//! `hearth bench heartbeat`: heartbeat ingest of a real server, started in
//! this process, against a baseline measured in the same run, followed by a
//! durability audit through the API.
//!
//! Steps: start the server (SQLite in a temp dir, or `--database-url`);
//! create the workspaces, each with an issued token; drive a minimal axum
//! `POST /echo` (which parses the same JSON body) with the load generator
//! for S seconds; drive `POST /registry/heartbeat` with the same generator,
//! the same requests (workspace ids and tokens included: that is why the
//! workspaces are created before the baseline runs) and the same duration;
//! print both runs and their ratio; audit (every workspace online with a
//! last heartbeat, exactly one `WORKSPACE_PROVISIONING` and one
//! `WORKSPACE_ONLINE` event each); stop the server and remove the temp dir.
//!
//! Load generator, server and baseline share this machine's cores, so the
//! ratio, not the absolute request rate, is the figure to compare. The
//! command fails (exit 1) when the audit finds a problem or any request
//! failed, after printing everything it measured.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use hearth_api::{CreateWorkspaceRequest, EventResponse, HeartbeatRequest};
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};
use hearth_server::{Application, Settings};
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::output::{self, Table};

/// Events asked for per page by the audit (the server's maximum).
const EVENT_PAGE_SIZE: u32 = 1000;
/// Workspaces created at the same time.
const CREATE_CONCURRENCY: usize = 8;
/// Longest a single load request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the servers get to drain once told to stop.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(30);
/// Audit problems listed (the rest are counted).
const MAX_PROBLEMS_SHOWN: usize = 20;
const PROVISIONING: &str = "WORKSPACE_PROVISIONING";
const ONLINE: &str = "WORKSPACE_ONLINE";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Heartbeat ingest of an in-process server against a same-run HTTP
    /// echo baseline, then a durability audit through the API.
    Heartbeat(HeartbeatArgs),
}

#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    /// Workspaces to create and send heartbeats for.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    workspaces: u32,
    /// Concurrent senders, each with its own HTTP connection.
    #[arg(long, value_name = "C", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Seconds of load for the baseline, and again for the heartbeats.
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    seconds: u64,
    /// The server's database (postgres://… or sqlite:…); the bench's
    /// workspaces stay in it, so use a fresh one [default: SQLite in a temp dir]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

pub async fn run(command: BenchCommand, json: bool) -> anyhow::Result<()> {
    match command {
        BenchCommand::Heartbeat(args) => heartbeat(args, json).await,
    }
}

/// One run of the load generator, as printed and as in the JSON document.
#[derive(Debug, Clone, Serialize)]
struct RunReport {
    /// Requests answered with a 2xx.
    requests: u64,
    /// Requests answered with a non-2xx, or not answered at all.
    errors: u64,
    seconds: f64,
    requests_per_second: f64,
    /// Of the 2xx answers, in milliseconds; `null` when there were none.
    latency_ms: Option<Latency>,
    /// Failed requests by kind (`HTTP 503 Service Unavailable`, `transport`, …).
    error_kinds: BTreeMap<String, u64>,
    /// The first failure, with what the server said.
    sample_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    engine: &'static str,
    workspaces: u32,
    concurrency: u32,
    seconds: u64,
    /// Cores of this machine, shared by the load generator and the servers.
    cores: usize,
    note: String,
    baseline: RunReport,
    heartbeat: RunReport,
    /// Heartbeat requests per second over baseline requests per second.
    ratio: Option<f64>,
    /// Failed requests of both runs.
    errors: u64,
    audit_ok: bool,
    /// What the audit found wrong (at most `MAX_PROBLEMS_SHOWN`, then a count).
    audit_problems: Vec<String>,
}

async fn heartbeat(args: HeartbeatArgs, json: bool) -> anyhow::Result<()> {
    crate::telemetry::init_quiet()?;
    let dir = tempfile::Builder::new().prefix("hearth-bench-").tempdir().context("cannot create a temp dir")?;
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().to_path_buf(),
        database_url: args.database_url.clone().map(SecretString::from),
        sweep_interval: Duration::from_secs(3600),
        ..Settings::default()
    };
    let engine = engine(&hearth_server::startup::database_url(&settings));
    let token = hearth_server::startup::admin_token(&settings)?;
    let app = Application::build(settings).await.context("cannot start the server")?;
    let url = format!("http://{}", app.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        // A dropped sender also means stop.
        let _ = stopped.await;
    }));

    // Ctrl-C still stops the server and removes the temp dir.
    let outcome = tokio::select! {
        outcome = measure(&args, json, engine, &url, token) => outcome,
        () = hearth_server::startup::shutdown_signal() => Err(anyhow!("interrupted")),
    };

    let _ = stop.send(());
    let server = finish("the server", server).await;
    let removed = dir.close().context("cannot remove the bench's temp dir");
    outcome?;
    server?;
    removed
}

/// Everything between starting the server and stopping it.
async fn measure(
    args: &HeartbeatArgs,
    json: bool,
    engine: &'static str,
    url: &str,
    token: String,
) -> anyhow::Result<()> {
    let admin = Client::new(url, Some(token))?;
    let duration = Duration::from_secs(args.seconds);
    let concurrency = args.concurrency as usize;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    output::note(&format!("creating {} workspaces with issued tokens…", args.workspaces));
    let targets = create_workspaces(&admin, args.workspaces).await?;

    output::note(&format!("baseline: {}s of POST /echo…", args.seconds));
    let baseline = run_baseline(&targets, concurrency, duration).await?;
    output::note(&format!("heartbeat: {}s of POST /registry/heartbeat…", args.seconds));
    let heartbeat = drive(&format!("{url}/registry/heartbeat"), &targets, concurrency, duration).await?;

    output::note("auditing through the API…");
    let ids: Vec<WorkspaceId> = targets.iter().map(|target| target.id).collect();
    let problems = audit(&admin, &ids).await?;

    let ratio = (baseline.requests_per_second > 0.0)
        .then(|| rounded(heartbeat.requests_per_second / baseline.requests_per_second, 4));
    let errors = baseline.errors + heartbeat.errors;
    let report = Report {
        benchmark: "heartbeat",
        engine,
        workspaces: args.workspaces,
        concurrency: args.concurrency,
        seconds: args.seconds,
        cores,
        note: format!(
            "the load generator and the servers share this machine's {cores} cores: compare the ratio, not the \
             absolute request rates"
        ),
        baseline,
        heartbeat,
        ratio,
        errors,
        audit_ok: problems.is_empty(),
        audit_problems: shortened(&problems),
    };
    if json {
        output::print_json(&report)?;
    } else {
        output::print(&render(&report))?;
    }
    match (problems.len(), errors) {
        (0, 0) => Ok(()),
        (0, errors) => bail!("{errors} requests failed"),
        (problems, 0) => bail!("the audit found {problems} problems"),
        (problems, errors) => bail!("{errors} requests failed and the audit found {problems} problems"),
    }
}

/// `sqlite` or `postgres`, from the database URL (which is never printed:
/// it may hold a password).
fn engine(database_url: &str) -> &'static str {
    if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Waits (bounded) for a server task told to stop.
async fn finish(what: &str, task: tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::time::timeout(SHUTDOWN_PATIENCE, task).await {
        Ok(Ok(result)) => result.with_context(|| format!("{what} failed")),
        Ok(Err(err)) => Err(anyhow!("the task of {what} failed: {err}")),
        Err(_) => Err(anyhow!("{what} did not stop within {}s", SHUTDOWN_PATIENCE.as_secs())),
    }
}

/// A workspace the load generator sends for, and the token it sends.
#[derive(Debug, Clone)]
struct Target {
    id: WorkspaceId,
    token: String,
}

async fn create_workspaces(admin: &Client, count: u32) -> anyhow::Result<Vec<Target>> {
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

/// The baseline: a minimal axum app that parses a heartbeat-shaped JSON
/// body and answers `{"status":"ok"}`, driven like the real thing.
async fn run_baseline(targets: &[Target], concurrency: usize, duration: Duration) -> anyhow::Result<RunReport> {
    async fn echo(axum::Json(_): axum::Json<HeartbeatRequest>) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({"status": "ok"}))
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot listen for the baseline")?;
    let url = format!("http://{}/echo", listener.local_addr()?);
    let router = axum::Router::new().route("/echo", axum::routing::post(echo));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .context("baseline server error")
    });
    let measured = drive(&url, targets, concurrency, duration).await;
    let _ = stop.send(());
    let stopped = finish("the baseline server", server).await;
    let measured = measured?;
    stopped?;
    Ok(measured)
}

/// What one sender saw.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    error_kinds: BTreeMap<String, u64>,
    sample_error: Option<String>,
}

impl Tally {
    fn failed(&mut self, kind: String, detail: impl FnOnce() -> String) {
        *self.error_kinds.entry(kind).or_default() += 1;
        if self.sample_error.is_none() {
            self.sample_error = Some(detail());
        }
    }
}

/// The load generator: `concurrency` tasks, each with its own HTTP client
/// (one kept-alive connection), each going round its share of `targets`
/// with `POST url` heartbeat bodies and the target's bearer token, until
/// `duration` has passed.
async fn drive(url: &str, targets: &[Target], concurrency: usize, duration: Duration) -> anyhow::Result<RunReport> {
    if targets.is_empty() {
        bail!("no workspaces to send for");
    }
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for (index, client) in clients.into_iter().enumerate() {
        let mut share: Vec<Target> = targets.iter().skip(index).step_by(concurrency).cloned().collect();
        if share.is_empty() {
            // More senders than workspaces: senders share workspaces.
            share.extend(targets.get(index % targets.len()).cloned());
        }
        tasks.push(tokio::spawn(send_until(client, url.to_owned(), share, deadline)));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|err| anyhow!("a load task failed: {err}"))?;
        total.latencies.extend(tally.latencies);
        for (kind, count) in tally.error_kinds {
            *total.error_kinds.entry(kind).or_default() += count;
        }
        total.sample_error = total.sample_error.or(tally.sample_error);
    }
    Ok(summarize(total, started.elapsed()))
}

async fn send_until(client: reqwest::Client, url: String, share: Vec<Target>, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    for (sent, target) in (0_i64..).zip(share.iter().cycle()) {
        if Instant::now() >= deadline {
            break;
        }
        let body = serde_json::json!({
            "workspace_id": target.id,
            "error_rate": 0.0,
            "active_tasks": 0,
            "uptime_seconds": sent,
        });
        let start = Instant::now();
        let response = match client.post(&url).bearer_auth(&target.token).json(&body).send().await {
            Ok(response) => response,
            Err(err) => {
                tally.failed("transport".to_owned(), || format!("POST {url}: {err}"));
                continue;
            }
        };
        let status = response.status();
        // The whole answer is read, so the connection can be reused.
        match response.bytes().await {
            Ok(_) if status.is_success() => tally.latencies.push(start.elapsed()),
            Ok(answer) => tally.failed(format!("HTTP {status}"), || {
                output::truncate(&format!("POST {url}: {status}: {}", String::from_utf8_lossy(&answer)))
            }),
            Err(err) => tally.failed("transport".to_owned(), || format!("POST {url}: reading the answer: {err}")),
        }
    }
    tally
}

fn summarize(mut tally: Tally, elapsed: Duration) -> RunReport {
    tally.latencies.sort_unstable();
    let requests = tally.latencies.len() as u64;
    let seconds = elapsed.as_secs_f64();
    RunReport {
        requests,
        errors: tally.error_kinds.values().sum(),
        seconds: rounded(seconds, 3),
        requests_per_second: rounded(if seconds > 0.0 { requests as f64 / seconds } else { 0.0 }, 1),
        latency_ms: latency(&tally.latencies),
        error_kinds: tally.error_kinds,
        sample_error: tally.sample_error,
    }
}

/// Percentiles (nearest rank) of sorted latencies, in milliseconds.
fn latency(sorted: &[Duration]) -> Option<Latency> {
    let max = sorted.last()?;
    let at = |fraction: f64| {
        let rank = (fraction * sorted.len() as f64).ceil() as usize;
        let duration = sorted.get(rank.saturating_sub(1)).unwrap_or(max);
        milliseconds(*duration)
    };
    Some(Latency { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: milliseconds(*max) })
}

/// Milliseconds, to the microsecond.
fn milliseconds(duration: Duration) -> f64 {
    rounded(duration.as_secs_f64() * 1000.0, 3)
}

/// `value` to `decimals` places (for the JSON document; the figures are
/// not that precise anyway).
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

/// Checks, through the API, that every heartbeat the bench sent is
/// reflected durably: each workspace online with a last heartbeat, and
/// exactly one `WORKSPACE_PROVISIONING` and one `WORKSPACE_ONLINE` event
/// each. Returns what is wrong (nothing when all is well).
async fn audit(admin: &Client, ids: &[WorkspaceId]) -> anyhow::Result<Vec<String>> {
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
fn shortened(problems: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = problems.iter().take(MAX_PROBLEMS_SHOWN).cloned().collect();
    if problems.len() > MAX_PROBLEMS_SHOWN {
        shown.push(format!("… and {} more", problems.len() - MAX_PROBLEMS_SHOWN));
    }
    shown
}

fn render(report: &Report) -> String {
    let mut text = format!(
        "hearth bench heartbeat: {}, {} workspaces, {} concurrent senders, {}s per run\n{}\n\n",
        report.engine, report.workspaces, report.concurrency, report.seconds, report.note
    );
    let mut table = Table::new(["RUN", "REQUESTS", "REQ/S", "P50", "P90", "P99", "MAX", "ERRORS"]);
    for (name, run) in [("baseline (POST /echo)", &report.baseline), ("heartbeat", &report.heartbeat)] {
        let ms =
            |pick: fn(&Latency) -> f64| run.latency_ms.as_ref().map_or("-".to_owned(), |l| format!("{:.2}ms", pick(l)));
        table.row([
            name.to_owned(),
            run.requests.to_string(),
            format!("{:.0}", run.requests_per_second),
            ms(|l| l.p50),
            ms(|l| l.p90),
            ms(|l| l.p99),
            ms(|l| l.max),
            run.errors.to_string(),
        ]);
    }
    text.push_str(&table.render());
    let ratio = report.ratio.map_or("- (the baseline answered nothing)".to_owned(), |ratio| format!("{ratio:.3}"));
    let _ = writeln!(text, "\nratio heartbeat/baseline: {ratio}");
    for (name, run) in [("baseline", &report.baseline), ("heartbeat", &report.heartbeat)] {
        if run.errors > 0 {
            let kinds: Vec<String> = run.error_kinds.iter().map(|(kind, count)| format!("{count}× {kind}")).collect();
            let _ = writeln!(text, "{name} errors: {}", kinds.join(", "));
            if let Some(sample) = &run.sample_error {
                let _ = writeln!(text, "  first: {sample}");
            }
        }
    }
    if report.audit_ok {
        let _ = writeln!(
            text,
            "audit ok: {n} workspaces online with a last heartbeat; exactly one {PROVISIONING} and one {ONLINE} \
             event each",
            n = report.workspaces
        );
    } else {
        let _ = writeln!(text, "audit FAILED:");
        for problem in &report.audit_problems {
            let _ = writeln!(text, "  {problem}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = latency(&sorted).unwrap();
        assert_eq!((latency.p50, latency.p90, latency.p99, latency.max), (50.0, 90.0, 99.0, 100.0));
        let one = super::latency(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(super::latency(&[]).is_none());
    }

    #[test]
    fn the_engine_comes_from_the_url_scheme() {
        assert_eq!(engine("postgres://u:p@h/db"), "postgres");
        assert_eq!(engine("postgresql://h/db"), "postgres");
        assert_eq!(engine("sqlite:///tmp/x/hearth.db"), "sqlite");
    }

    #[test]
    fn long_problem_lists_are_cut_with_a_count() {
        let problems: Vec<String> = (0..25).map(|n| n.to_string()).collect();
        let shown = shortened(&problems);
        assert_eq!(shown.len(), MAX_PROBLEMS_SHOWN + 1);
        assert_eq!(shown.last().map(String::as_str), Some("… and 5 more"));
        assert_eq!(shortened(&problems[..3]).len(), 3);
    }

    #[tokio::test]
    async fn non_2xx_answers_are_counted_as_errors_not_as_requests() {
        async fn unavailable() -> (axum::http::StatusCode, &'static str) {
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "database busy")
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/x", axum::routing::post(unavailable));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let targets = [Target { id: WorkspaceId::new_random(), token: "t".into() }];
        let report = drive(&url, &targets, 3, Duration::from_millis(200)).await.unwrap();
        server.abort();
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0);
        assert_eq!(report.error_kinds.keys().collect::<Vec<_>>(), ["HTTP 503 Service Unavailable"]);
        assert!(report.sample_error.unwrap().contains("database busy"));
        assert!(report.latency_ms.is_none());
    }

    #[test]
    fn failures_are_counted_by_kind_and_the_first_is_kept() {
        let mut tally = Tally::default();
        tally.failed("HTTP 503".into(), || "first".into());
        tally.failed("HTTP 503".into(), || "second".into());
        tally.failed("transport".into(), || "third".into());
        let report = summarize(tally, Duration::from_secs(1));
        assert_eq!(report.errors, 3);
        assert_eq!(report.error_kinds.get("HTTP 503"), Some(&2));
        assert_eq!(report.sample_error.as_deref(), Some("first"));
        assert_eq!(report.requests, 0);
        assert!(report.latency_ms.is_none());
    }
}
