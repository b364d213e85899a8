//! The `hearth` binary: parse the command line, dispatch, report.
//!
//! Exit codes: 0 success, 1 the operation failed (one sentence on stderr),
//! 2 usage error (clap's own).

mod bundle;
mod cli;
mod commands;
mod operator;
mod output;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc, whose arena locks took a large share
/// of the CPU under heartbeat load (figures: see BENCHMARKS.md, "Heartbeat
/// ingest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => output::report_error(&err),
    }
}
