//! One module per command group. Each exposes its clap arguments and an
//! async `run`; this module only dispatches.
//!
//! A new group slots in the same way: a module here, a variant in
//! `cli::Command`, an arm below.

pub mod agent;
pub mod bench;
pub mod e2e;
pub mod events;
pub mod org;
pub mod plugin;
pub mod serve;
pub mod template;
pub mod token;
pub mod up;
pub mod workspace;

use crate::cli::{Cli, Command};
use crate::operator::Operator;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Workspace(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(workspace::run(command, &operator).await)
        }
        Command::Org(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(org::run(command, &operator).await)
        }
        Command::Token(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(token::run(command, &operator).await)
        }
        Command::Events(args) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(events::run(args, &operator).await)
        }
        Command::Template(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(template::run(command, &operator).await)
        }
        Command::Plugin(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(plugin::run(command, &operator).await)
        }
        Command::E2e(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(e2e::run(command, &operator).await)
        }
        Command::Agent(args) => agent::run(args, &cli.global).await,
        Command::Up(args) => up::run(args).await,
        Command::Bench(command) => bench::run(command, cli.global.json).await,
    }
}
