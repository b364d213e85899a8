//! `hearth bench heartbeat`: the heartbeat benchmark (`hearth_harness::bench`)
//! with its flags, its table and its exit code.
//!
//! Progress goes to stderr; the report (a table, or one JSON document with
//! `--json`) to stdout. The command fails (exit 1) when the audit finds a
//! problem or any request failed, after printing everything it measured.
//! Ctrl-C still stops the server and removes the temp dir.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::sync::{Mutex, PoisonError};

use hearth_harness::bench::{self, Bench, Latency, Phase, Progress, Report, DURABLE_WITHIN, ONLINE, PROVISIONING};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{self, Table};
use crate::telemetry;

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

async fn heartbeat(args: HeartbeatArgs, json: bool) -> anyhow::Result<()> {
    telemetry::init_quiet()?;
    let options = bench::Options {
        workspaces: args.workspaces,
        concurrency: args.concurrency,
        seconds: args.seconds,
        database_url: args.database_url,
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
        "hearth bench heartbeat: {}, {} workspaces, {} concurrent senders, {}s per run\n{}\n\n",
        report.engine, report.workspaces, report.concurrency, report.seconds, report.note
    );
    let mut table = Table::new(["RUN", "REQUESTS", "REQ/S", "P50", "P90", "P99", "P999", "MAX", "ERRORS"]);
    for (name, run) in [
        ("first heartbeats (not measured)", &report.first_heartbeats),
        ("baseline (POST /echo)", &report.baseline),
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
