//! `hearth bench heartbeat`: the heartbeat benchmark (`hearth_harness::bench`),
//! and `hearth bench propagation`: event propagation between replicas
//! (`hearth_harness::propagation`), with their flags, tables and exit codes.
//!
//! Progress goes to stderr; the report (a table, or one JSON document with
//! `--json`) to stdout. `heartbeat` fails (exit 1) when the audit finds a
//! problem or any request failed, `propagation` when an event was lost,
//! after printing everything they measured. Ctrl-C still stops the servers
//! and removes the temp dir.

use std::sync::{Mutex, PoisonError};

use anyhow::anyhow;
use clap::{Args, Subcommand};

use hearth_harness::bench::{self, Bench, Latency, Phase, Progress, Report, DURABLE_WITHIN, ONLINE, PROVISIONING};
use hearth_harness::propagation::{self, Propagation};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::HeartbeatAckArg;
use crate::output::{self, Table};
use crate::telemetry;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Heartbeat ingest of an in-process server against a same-run HTTP
    /// echo baseline, then a durability audit through the API.
    Heartbeat(HeartbeatArgs),
    /// Event propagation between replicas: two in-process servers on one
    /// Postgres database; events written through replica A, timed to a
    /// subscriber of replica B's event stream and of A's own.
    Propagation(PropagationArgs),
    /// Fleet recovery: a whole fleet online together (first heartbeats),
    /// offline together (the liveness sweep) and online again, in
    /// transitions per second and time to all of it.
    Recovery(RecoveryArgs),
}

#[derive(Debug, Args)]
pub struct RecoveryArgs {
    /// Workspaces in the fleet.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    workspaces: u32,
    /// Concurrent senders of the heartbeat phases, each with its own HTTP connection.
    #[arg(long, value_name = "C", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// The server's database (postgres://… or sqlite:…); the bench's
    /// workspaces stay in it, so use a fresh one [default: SQLite in a temp dir]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
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
    /// When the server answers a plain heartbeat, as `hearth serve --heartbeat-ack`.
    #[arg(long, value_enum, default_value_t = HeartbeatAckArg::Committed)]
    heartbeat_ack: HeartbeatAckArg,
}

#[derive(Debug, Args)]
pub struct PropagationArgs {
    /// Events to write through replica A (restarts of one workspace, one
    /// call at a time).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    events: u32,
    /// Calls per second (a steady pace; a slow answer delays the next call).
    #[arg(long, value_name = "R", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// The replicas' Postgres database (postgres://…); the bench's workspace
    /// stays in it, so use a fresh one
    #[arg(long, value_name = "URL")]
    database_url: String,
}

pub async fn run(command: BenchCommand, json: bool) -> anyhow::Result<()> {
    match command {
        BenchCommand::Heartbeat(args) => heartbeat(args, json).await,
        BenchCommand::Propagation(args) => propagation(args, json).await,
        BenchCommand::Recovery(args) => recovery(args, json).await,
    }
}

async fn recovery(args: RecoveryArgs, json: bool) -> anyhow::Result<()> {
    telemetry::init_quiet()?;
    let options = bench::recovery::Options {
        workspaces: args.workspaces,
        concurrency: args.concurrency,
        database_url: args.database_url,
    };
    let bars = Bars::default();
    let report = tokio::select! {
        report = bench::recovery::run(options, &bars) => report?,
        () = hearth_server::startup::shutdown_signal() => return Err(anyhow!("interrupted")),
    };
    if json {
        output::print_json(&report)?;
    } else {
        let line = |name: &str, t: &bench::recovery::Transitions| {
            format!(
                "  {name:<12} {:>9} workspaces in {:>8.2} s = {:>9.0} transitions/s{}\n",
                t.workspaces,
                t.seconds,
                t.per_second,
                if t.errors > 0 { format!(" ({} errors)", t.errors) } else { String::new() }
            )
        };
        let mut text = format!(
            "fleet recovery, {} workspaces on {}, {} senders\n",
            report.workspaces, report.engine, report.concurrency
        );
        text.push_str(&line("online", &report.online));
        text.push_str(&line("offline", &report.offline));
        text.push_str(&line("back online", &report.back_online));
        output::print(text.trim_end())?;
    }
    report.check()
}

async fn heartbeat(args: HeartbeatArgs, json: bool) -> anyhow::Result<()> {
    telemetry::init_quiet()?;
    let options = bench::Options {
        workspaces: args.workspaces,
        concurrency: args.concurrency,
        seconds: args.seconds,
        database_url: args.database_url,
        heartbeat_ack: args.heartbeat_ack.into(),
    };
    let bench = Bench::start(options).await?;
    let outcome = tokio::select! {
        outcome = measure(&bench, json) => outcome,
        () = hearth_server::startup::shutdown_signal() => Err(anyhow!("interrupted")),
    };
    let stopped = bench.stop().await;
    outcome?;
    stopped
}

/// Measures, prints the report, then fails if the bench did not pass.
async fn measure(bench: &Bench, json: bool) -> anyhow::Result<()> {
    let report = bench.measure(&Bars::default()).await?;
    if json {
        output::print_json(&report)?;
    } else {
        output::print(&render(&report))?;
    }
    report.check()
}

/// The bench's phases as progress bars on stderr (drawn only on a
/// terminal); each phase's name is also a plain line, so a log shows them.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn phase(&self, phase: Phase) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bar) = current.take() {
            bar.finish_and_clear();
        }
        output::note(&format!("{}…", phase.message));
        let bar = match phase.total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(&format!(
                    "{{wide_bar}} {{human_pos}}/{{human_len}} {} {{eta}}",
                    phase.unit
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner(),
        };
        *current = Some(bar);
    }

    fn position(&self, done: u64) {
        if let Some(bar) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            bar.set_position(done);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(bar) = self.current.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            bar.finish_and_clear();
        }
    }
}

fn render(report: &Report) -> String {
    let mut text = format!(
        "hearth bench heartbeat: {}, {} workspaces, {} concurrent senders, {}s per run, heartbeats acknowledged {}\n{}\n\n",
        report.engine,
        report.workspaces,
        report.concurrency,
        report.seconds,
        if report.heartbeat_ack == "queued" { "once queued" } else { "after commit" },
        report.note
    );
    let mut table = Table::new(["RUN", "REQUESTS", "REQ/S", "P50", "P90", "P99", "P999", "MAX", "ERRORS"]);
    for (name, run) in [
        ("first heartbeats (not measured)", &report.first_heartbeats),
        ("baseline (POST /echo)", &report.baseline),
        ("second heartbeats (not measured)", &report.second_heartbeats),
        ("heartbeat", &report.heartbeat),
    ] {
        let ms =
            |pick: fn(&Latency) -> f64| run.latency_ms.as_ref().map_or("-".to_owned(), |l| format!("{:.2}ms", pick(l)));
        table.row([
            name.to_owned(),
            run.requests.to_string(),
            format!("{:.0}", run.requests_per_second),
            ms(|l| l.p50),
            ms(|l| l.p90),
            ms(|l| l.p99),
            ms(|l| l.p999),
            ms(|l| l.max),
            run.errors.to_string(),
        ]);
    }
    text.push_str(&table.render());
    let ratio = report.ratio.map_or("- (the baseline answered nothing)".to_owned(), |ratio| format!("{ratio:.3}"));
    text.push_str(&format!("\nratio heartbeat/baseline: {ratio}\n"));
    if let Some(bytes) = report.rss_growth_per_workspace_bytes {
        text.push_str(&format!(
            "memory: {bytes:.0} bytes of resident memory per workspace (growth over the run; server and load \
             generator share the process)\n"
        ));
    }
    for (name, run) in [
        ("first heartbeats", &report.first_heartbeats),
        ("baseline", &report.baseline),
        ("second heartbeats", &report.second_heartbeats),
        ("heartbeat", &report.heartbeat),
    ] {
        if run.errors > 0 {
            let kinds: Vec<String> = run.error_kinds.iter().map(|(kind, count)| format!("{count}× {kind}")).collect();
            text.push_str(&format!("{name} errors: {}\n", kinds.join(", ")));
            if let Some(sample) = &run.sample_error {
                text.push_str(&format!("  first: {sample}\n"));
            }
        }
    }
    if report.audit_ok {
        text.push_str(&format!(
            "audit ok ({within}s after the last answer): {n} workspaces online, each acknowledged heartbeat in the \
             database; exactly one {PROVISIONING} and one {ONLINE} event each\n",
            within = DURABLE_WITHIN.as_secs(),
            n = report.workspaces
        ));
    } else {
        text.push_str("audit FAILED:\n");
        for problem in &report.audit_problems {
            text.push_str(&format!("  {problem}\n"));
        }
    }
    text
}

async fn propagation(args: PropagationArgs, json: bool) -> anyhow::Result<()> {
    telemetry::init_quiet()?;
    let options = propagation::Options { events: args.events, rate: args.rate, database_url: args.database_url };
    let bench = Propagation::start(options).await?;
    let outcome = tokio::select! {
        outcome = measure_propagation(&bench, json) => outcome,
        () = hearth_server::startup::shutdown_signal() => Err(anyhow!("interrupted")),
    };
    let stopped = bench.stop().await;
    outcome?;
    stopped
}

/// Measures, prints the report, then fails if an event was lost.
async fn measure_propagation(bench: &Propagation, json: bool) -> anyhow::Result<()> {
    let report = bench.measure(&mut |note| output::note(note)).await?;
    if json {
        output::print_json(&report)?;
    } else {
        output::print(&render_propagation(&report))?;
    }
    report.check()
}

fn render_propagation(report: &propagation::Report) -> String {
    let mut text = format!(
        "hearth bench propagation: {}, {} replicas, {} events ({}) written through replica A at {}/s; \
         {} cores shared by the bench, both replicas and Postgres\n\
         latency: from replica A's answer to the event's arrival on a subscriber's stream\n\n",
        report.engine, report.replicas, report.events, report.event, report.rate, report.cores
    );
    let ms = |latency: &Option<propagation::Latency>, pick: fn(&propagation::Latency) -> f64| {
        latency.as_ref().map_or("-".to_owned(), |l| format!("{:.2}ms", pick(l)))
    };
    let mut table = Table::new(["SUBSCRIBER", "RECEIVED", "LOST", "P50", "P90", "P99", "MAX"]);
    for (name, delivery) in
        [("replica B (cross-replica)", &report.cross_replica), ("replica A (same replica)", &report.same_replica)]
    {
        table.row([
            name.to_owned(),
            delivery.received.to_string(),
            delivery.lost.to_string(),
            ms(&delivery.latency_ms, |l| l.p50),
            ms(&delivery.latency_ms, |l| l.p90),
            ms(&delivery.latency_ms, |l| l.p99),
            ms(&delivery.latency_ms, |l| l.max),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(&format!(
        "\nreplica B's event bus was woken {} times by NOTIFYs from replica A for {} events (0 would mean only the \
         streams' 1 s poll carried them)\n",
        report.notify_wakes_on_b, report.events
    ));
    text.push_str(&format!(
        "calls through replica A: p50 {}, p99 {}, max {}; events that arrived before the answer count as 0 ms \
         (B: {}, A: {})\n",
        ms(&report.call_ms, |l| l.p50),
        ms(&report.call_ms, |l| l.p99),
        ms(&report.call_ms, |l| l.max),
        report.cross_replica.before_answer,
        report.same_replica.before_answer
    ));
    for (name, delivery) in [("B", &report.cross_replica), ("A", &report.same_replica)] {
        text.push_str(&format!(
            "from the call being sent (A's write included), replica {name}: p50 {}, p99 {}, max {}\n",
            ms(&delivery.since_call_ms, |l| l.p50),
            ms(&delivery.since_call_ms, |l| l.p99),
            ms(&delivery.since_call_ms, |l| l.max)
        ));
    }
    text
}
