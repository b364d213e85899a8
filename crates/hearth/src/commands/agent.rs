//! `hearth agent`: the reference runtime (the `hearth-agent` library) with
//! its flags, `HEARTH_*` variables and exit codes.
//!
//! Exit codes: 0 when the workspace was removed or the agent was asked to
//! stop (SIGTERM/SIGINT); 75 ([`hearth_agent::contract::EXIT_LOCKED`])
//! when another agent holds the directory's lock, which the process
//! provisioner reads as "adopt the running one"; 1 for any other failure.
//! The flags are the ones [`hearth_agent::contract::Launch`] writes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hearth_agent::contract::{self, EXIT_LOCKED};
use hearth_agent::{AgentConfig, Exit, NO_INBOUND_URL};
use hearth_core::WorkspaceId;

use crate::cli::{self, interval, GlobalArgs};
use crate::output::ExitWith;
use crate::telemetry;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The workspace this runtime speaks for.
    #[arg(long, value_name = "ID", value_parser = cli::workspace_id)]
    workspace: WorkspaceId,
    /// Read the workspace token from this file (the global --token gives it
    /// directly; without either, the first registration mints one).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Directory for the token, the lock, assets/ and plugins/ [default: ./hearth-agent-<ID>]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seconds between heartbeats (fractions allowed, such as 0.5).
    #[arg(long, env = "HEARTH_AGENT_HEARTBEAT_INTERVAL", value_name = "SECS", value_parser = interval,
          default_value = "30")]
    heartbeat_interval: Duration,
    /// The URL this runtime is reachable at, sent when registering [default: remote://no-inbound, for a runtime
    /// that only polls]
    #[arg(long, env = "HEARTH_AGENT_URL", value_name = "URL")]
    url: Option<String>,
    /// Refuse a plugin archive with a file larger than this, in bytes [default: 16 MiB]
    #[arg(long, env = "HEARTH_AGENT_MAX_PLUGIN_FILE_BYTES", value_name = "BYTES")]
    max_plugin_file_bytes: Option<u64>,
    /// Refuse a plugin archive larger than this unpacked, in bytes [default: 64 MiB]
    #[arg(long, env = "HEARTH_AGENT_MAX_PLUGIN_BYTES", value_name = "BYTES")]
    max_plugin_bytes: Option<u64>,
    /// Seconds the template's program has to exit after SIGTERM (on pause,
    /// hibernate, delete or the agent's own stop) before it is killed.
    #[arg(long, env = "HEARTH_AGENT_STOP_GRACE", value_name = "SECS", value_parser = interval, default_value = "10")]
    stop_grace: Duration,
}

impl AgentArgs {
    fn into_config(self, global: &GlobalArgs) -> anyhow::Result<AgentConfig> {
        let token = global.token.as_deref().map(str::trim).filter(|token| !token.is_empty()).map(str::to_owned);
        let token = match (token, &self.token_file) {
            // `--token` comes from HEARTH_TOKEN too, which operators set to
            // their own (admin) token; a runtime given a token file explicitly
            // must not pick that up. Both given on the command line is a
            // mistake worth saying so.
            (Some(token), Some(file)) => {
                if std::env::var("HEARTH_TOKEN").is_ok_and(|from_env| from_env.trim() == token) {
                    None
                } else {
                    anyhow::bail!(
                        "give the workspace token either with --token or with --token-file ({}), not both",
                        file.display()
                    );
                }
            }
            (token, _) => token,
        };
        let workspace = self.workspace;
        Ok(AgentConfig {
            server: global.server.clone(),
            ca_cert: global.ca_cert.clone(),
            workspace,
            token,
            token_file: self.token_file,
            dir: self.dir.unwrap_or_else(|| PathBuf::from(format!("./hearth-agent-{workspace}"))),
            heartbeat_interval: self.heartbeat_interval,
            url: self.url.unwrap_or_else(|| NO_INBOUND_URL.to_owned()),
            limits: {
                let defaults = hearth_agent::Limits::default();
                hearth_agent::Limits {
                    max_file_bytes: self.max_plugin_file_bytes.unwrap_or(defaults.max_file_bytes),
                    max_total_bytes: self.max_plugin_bytes.unwrap_or(defaults.max_total_bytes),
                    ..defaults
                }
            },
            stop_grace: self.stop_grace,
        })
    }
}

pub async fn run(args: AgentArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    telemetry::init()?;
    let config = args.into_config(global)?;
    match hearth_agent::run(config, hearth_server::startup::shutdown_signal()).await {
        // The library has said why it stopped, in its log.
        Ok(Exit::Removed | Exit::Shutdown) => Ok(()),
        Err(err) => {
            let code = contract::exit_code(&err);
            let err = anyhow::Error::new(err);
            match code {
                // The process provisioner relies on this code to adopt the
                // agent that holds the lock instead of restarting this one.
                EXIT_LOCKED => Err(ExitWith::new(EXIT_LOCKED, format!("{err:#}")).into()),
                _ => Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn plugin_size_caps_are_configurable() {
        let id = WorkspaceId::new_random().to_string();
        let (args, global) = parse(&["--workspace", &id, "--max-plugin-file-bytes", "10", "--max-plugin-bytes", "20"]);
        let config = args.into_config(&global).unwrap();
        assert_eq!(config.limits.max_file_bytes, 10);
        assert_eq!(config.limits.max_total_bytes, 20);
        let (args, global) = parse(&["--workspace", &id]);
        assert_eq!(args.into_config(&global).unwrap().limits, hearth_agent::Limits::default());
    }

    fn parse(args: &[&str]) -> (AgentArgs, GlobalArgs) {
        let cli = Cli::try_parse_from([&["hearth", "agent"], args].concat()).unwrap_or_else(|err| panic!("{err}"));
        let Command::Agent(agent) = cli.command else { panic!("not agent") };
        (agent, cli.global)
    }

    const ID: &str = "0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b";

    #[test]
    fn the_launch_contract_is_the_command_line_hearth_agent_accepts() {
        let launch = contract::Launch {
            server: "http://h:1".into(),
            workspace: ID.parse().unwrap(),
            dir: PathBuf::from("/var/lib/a"),
            token_file: PathBuf::from("/var/lib/a/.auth_token"),
            heartbeat_interval: Duration::from_millis(500),
            stop_grace: Duration::from_millis(2500),
        };
        let argv = std::iter::once("hearth".into()).chain(launch.args());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|err| panic!("{err}"));
        let Command::Agent(args) = cli.command else { panic!("not agent") };
        let config = args.into_config(&cli.global).unwrap();
        assert_eq!(config.server, launch.server);
        assert_eq!(config.workspace, launch.workspace);
        assert_eq!(config.dir, launch.dir);
        assert_eq!(config.token_file.as_ref(), Some(&launch.token_file));
        assert_eq!(config.heartbeat_interval, launch.heartbeat_interval);
        assert_eq!(config.stop_grace, launch.stop_grace);
    }

    #[test]
    fn every_agent_flag_reaches_the_config() {
        let (args, global) = parse(&[
            "--server=http://h:1",
            "--workspace",
            ID,
            "--token-file=/run/t",
            "--dir=/var/lib/a",
            "--heartbeat-interval=0.5",
            "--url=http://agent:9000",
        ]);
        let config = args.into_config(&global).unwrap();
        assert_eq!(config.server, "http://h:1");
        assert_eq!(config.workspace.to_string(), ID);
        assert_eq!(config.token_file, Some(PathBuf::from("/run/t")));
        assert_eq!(config.dir, PathBuf::from("/var/lib/a"));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(config.url, "http://agent:9000");
    }

    #[test]
    fn the_defaults_are_a_dir_named_after_the_workspace_and_a_poll_only_url() {
        let (args, global) = parse(&["--workspace", ID, "--token", "tok"]);
        let config = args.into_config(&global).unwrap();
        assert_eq!(config.dir, PathBuf::from(format!("./hearth-agent-{ID}")));
        assert_eq!(config.url, NO_INBOUND_URL);
        assert_eq!(config.token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_token_and_a_token_file_on_the_command_line_are_refused() {
        let (args, global) = parse(&["--workspace", ID, "--token", "tok-only-here", "--token-file", "/t"]);
        let err = args.into_config(&global).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }
}
