//! One module per command group. Each exposes its clap arguments and an
//! async `run`; this module only dispatches.
//!
//! Groups still to come (`agent`, `template`, `plugin`, `e2e`, `up`,
//! `bench`) slot in the same way: a module here, a variant in
//! `cli::Command`, an arm below.

pub mod events;
pub mod serve;
pub mod token;
pub mod workspace;

use crate::cli::{Cli, Command};
use crate::operator::Operator;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Workspace(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(workspace::run(command, &operator).await)
        }
        Command::Token(command) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(token::run(command, &operator).await)
        }
        Command::Events(args) => {
            let operator = Operator::new(&cli.global)?;
            operator.explain(events::run(args, &operator).await)
        }
    }
}
