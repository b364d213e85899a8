//! `hearth e2e template-delivery`: the acceptance harness of PRODUCT.md
//! (`hearth_harness::e2e`, steps A–E) against the server of `--server`.
//!
//! Each step prints one line as it finishes (on stdout; on stderr with
//! `--json`, whose one document comes at the end), then the cleanup and a
//! summary. Exit 1 names the step that failed.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hearth_harness::e2e::{self, Progress, StepReport};

use crate::operator::Operator;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum E2eCommand {
    /// Create a workspace from a template and check that its config,
    /// prompts, model and plugins are delivered (steps A–E, one line each).
    TemplateDelivery(TemplateDeliveryArgs),
}

#[derive(Debug, Args)]
pub struct TemplateDeliveryArgs {
    /// Use this existing template (id or name) instead of pushing the
    /// built-in example template and plugin.
    #[arg(long, value_name = "T")]
    template: Option<String>,
    /// Seconds each step may take.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Keep the workspace, and the directory of the agent the harness ran
    /// (that agent is stopped all the same; it is also kept on failure).
    #[arg(long)]
    keep: bool,
}

pub async fn run(command: E2eCommand, op: &Operator) -> anyhow::Result<()> {
    match command {
        E2eCommand::TemplateDelivery(args) => template_delivery(args, op).await,
    }
}

async fn template_delivery(args: TemplateDeliveryArgs, op: &Operator) -> anyhow::Result<()> {
    let options = e2e::Options {
        template: args.template,
        timeout: Duration::from_secs(args.timeout),
        keep: args.keep,
        // This very executable runs `hearth agent` when the server starts none.
        agent_program: std::env::current_exe().context("cannot find the hearth executable to run hearth agent")?,
    };
    let mut printer = StepPrinter { json: op.json };
    let shutdown = hearth_server::startup::shutdown_signal();
    let outcome = e2e::template_delivery(op.client.clone(), options, shutdown, &mut printer).await;
    if op.json {
        output::print_json(&outcome.report)?;
    } else {
        for line in &outcome.report.cleanup {
            output::note(line);
        }
    }
    match outcome.failed() {
        None => {
            if !op.json {
                output::print(&outcome.summary)?;
            }
            Ok(())
        }
        Some(step) => bail!("template delivery failed at step {} ({}): {}", step.step, step.name, step.message),
    }
}

/// Prints each step's line as it finishes: on stdout, or on stderr when
/// stdout is reserved for the JSON document.
struct StepPrinter {
    json: bool,
}

impl Progress for StepPrinter {
    fn step(&mut self, step: &StepReport) {
        let line = step.line();
        if self.json {
            output::note(&line);
        } else if let Err(err) = output::print(&line) {
            output::note(&format!("cannot print to stdout: {err}"));
        }
    }

    fn agent_log(&mut self, tail: &str) {
        output::note(tail);
    }
}
