//! The command line: global options, the command tree, and the value
//! parsers several commands share. Each command group's own flags live next
//! to its code in `commands/`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hearth_core::WorkspaceId;
use uuid::Uuid;

use crate::commands::{agent, bench, e2e, events, org, plugin, serve, template, token, up, workspace};

/// Hearth: the control plane where AI-agent workspaces check in.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of the operator commands (accepted before or after the command).
#[derive(Debug, Args)]
#[command(next_help_heading = "Operator options")]
pub struct GlobalArgs {
    /// The Hearth server to talk to.
    #[arg(long, global = true, env = "HEARTH_SERVER", default_value = "http://127.0.0.1:7878", value_name = "URL")]
    pub server: String,
    /// Bearer token. Default: the admin-token file of the local data dir
    /// ($HEARTH_DATA_DIR or ./hearth-data), if readable.
    // A token may begin with `-` (base64url): it is a value, not a flag.
    #[arg(
        long,
        global = true,
        env = "HEARTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        allow_hyphen_values = true
    )]
    pub token: Option<String>,
    /// A PEM bundle of certificate authorities to trust for an https://
    /// server, besides the Mozilla roots built in (a private CA, or the
    /// server's self-signed certificate).
    #[arg(long, global = true, env = "HEARTH_CA_CERT", value_name = "PATH")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print exactly one JSON document on stdout instead of tables
    /// (`events --follow`: one JSON document per line).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Hearth server.
    Serve(Box<serve::ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(serve::MigrateArgs),
    /// Create, inspect and control workspaces.
    #[command(subcommand)]
    Workspace(workspace::WorkspaceCommand),
    /// Create, list and revoke org API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Create, list and inspect organisations (the admin token).
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Show the event log, or follow it live.
    Events(events::EventsArgs),
    /// Push, list and inspect templates.
    #[command(subcommand)]
    Template(template::TemplateCommand),
    /// Push and list plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run the reference runtime for one workspace (uses the global --server
    /// and --token).
    Agent(agent::AgentArgs),
    /// End-to-end checks against a live server.
    #[command(subcommand)]
    E2e(e2e::E2eCommand),
    /// Serve with the example template and plugin loaded and one workspace
    /// running: the fastest way to see Hearth work.
    Up(up::UpArgs),
    /// Benchmarks against a server started in this process, each with a
    /// baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Value parser for ids, with a message that shows what an id looks like.
pub fn uuid(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim())
        .map_err(|_| "expected an id (a UUID such as 0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b)".into())
}

/// [`uuid`] for workspace ids.
pub fn workspace_id(text: &str) -> Result<WorkspaceId, String> {
    uuid(text).map(WorkspaceId)
}

/// Longest heartbeat interval accepted: a day is already far past any
/// liveness TTL worth having.
const MAX_HEARTBEAT_SECS: f64 = 86_400.0;

/// Value parser for heartbeat intervals (`agent`, `serve`, `up`): a
/// positive, finite number of seconds, fractions allowed.
pub fn interval(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("expected a number of seconds greater than 0 and at most {MAX_HEARTBEAT_SECS}, such as 30 or 0.5");
    let seconds: f64 = text.trim().parse().map_err(|_| invalid())?;
    if !(seconds > 0.0 && seconds <= MAX_HEARTBEAT_SECS) {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// `--heartbeat-ack` (`hearth serve` and `hearth bench`): when a heartbeat
/// the batch writer writes is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HeartbeatAckArg {
    /// After its batch commits.
    Committed,
    /// Once queued, while the writer keeps up.
    Queued,
}

impl From<HeartbeatAckArg> for hearth_server::HeartbeatAck {
    fn from(ack: HeartbeatAckArg) -> Self {
        match ack {
            HeartbeatAckArg::Committed => hearth_server::HeartbeatAck::Committed,
            HeartbeatAckArg::Queued => hearth_server::HeartbeatAck::Queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_are_accepted_after_the_command() {
        let cli = Cli::try_parse_from(["hearth", "workspace", "list", "--json", "--server", "http://h:1"]);
        let cli = cli.unwrap_or_else(|err| panic!("{err}"));
        assert!(cli.global.json);
        assert_eq!(cli.global.server, "http://h:1");
    }

    #[test]
    fn a_token_that_begins_with_a_hyphen_is_a_value_not_a_flag() {
        // Tokens are base64url: 1 in 64 issued before the redraw began with `-`.
        let id = "0b6e2f6e-2b1c-4f57-9a43-2f0b1a1c7d10";
        for args in [
            vec!["hearth", "workspace", "list", "--token", "-Yx3_abc"],
            vec!["hearth", "agent", "--workspace", id, "--token", "-Yx3_abc"],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
            assert_eq!(cli.global.token.as_deref(), Some("-Yx3_abc"), "{args:?}");
        }
    }

    #[test]
    fn a_malformed_workspace_id_is_a_usage_error_that_shows_an_id() {
        let err = Cli::try_parse_from(["hearth", "workspace", "get", "nope"]).err();
        assert_eq!(err.as_ref().map(|err| err.exit_code()), Some(2));
        assert!(err.is_some_and(|err| err.to_string().contains("expected an id (a UUID such as")));
    }

    #[test]
    fn heartbeat_intervals_must_be_positive_and_finite() {
        assert_eq!(interval("30"), Ok(Duration::from_secs(30)));
        assert_eq!(interval(" 0.25 "), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "NaN", "inf", "abc", "", "1e9"] {
            assert!(interval(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
