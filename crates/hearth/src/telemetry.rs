//! Telemetry set-up, in one place: `tracing` to stderr (stdout carries each
//! command's output), filtered by `RUST_LOG` when it is set. Commands that
//! run a server or an agent call one of these first, once.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Logs at `info` unless `RUST_LOG` says otherwise (`serve`, `migrate`,
/// `agent`: the log is their output).
pub fn init() -> anyhow::Result<()> {
    init_at(LevelFilter::INFO)
}

/// Logs at `warn` unless `RUST_LOG` says otherwise, for commands whose own
/// output the server's log must not drown (`up`, `bench`).
pub fn init_quiet() -> anyhow::Result<()> {
    init_at(LevelFilter::WARN)
}

fn init_at(default: LevelFilter) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env()
        .context("RUST_LOG is not a valid log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|err| anyhow::anyhow!("could not set up logging: {err}"))
}
