//! `hearth up`: the fastest way to see Hearth work. Serves on the embedded
//! default (SQLite in the data dir) with the process provisioner on (or,
//! with `--provisioner docker`, a container per workspace from an image
//! built here from this machine's files when none is named), loads
//! the example plugin and template, creates one workspace from it and
//! narrates, in plain sentences on stdout, what happens to it until its
//! runtime holds everything the template declares. Then it says where
//! things are and what to try next, and keeps serving until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hearth_api::{CreateWorkspaceRequest, WorkspaceResponse};
use hearth_client::Client;
use hearth_core::reconcile::{ConditionReason, ConditionType};
use hearth_core::{WorkspaceId, WorkspaceStatus};
use hearth_harness::examples;
use hearth_server::{Application, ProvisionerKind, Settings};
use tokio::sync::watch;

use crate::cli::interval;
use crate::output::{self, short_digest, short_hex};
use crate::telemetry;

/// The data dir `hearth serve` and the operator commands default to.
const DEFAULT_DATA_DIR: &str = "./hearth-data";
/// Heartbeat interval of the example's runtime unless
/// `HEARTH_AGENT_HEARTBEAT_INTERVAL` says otherwise: short, so the
/// walkthrough moves at the pace of reading it.
const DEFAULT_UP_HEARTBEAT: &str = "2";
/// How long the narration waits for the workspace to converge before it
/// says what to look at instead.
const CONVERGE_PATIENCE: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on.
    #[arg(long, env = "HEARTH_LISTEN", default_value = "127.0.0.1:7878", value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory for the SQLite database, the admin token and the runtimes' files.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data_dir: PathBuf,
    /// Seconds between the example runtime's heartbeats.
    #[arg(long, env = "HEARTH_AGENT_HEARTBEAT_INTERVAL", value_name = "SECS", value_parser = interval,
          default_value = DEFAULT_UP_HEARTBEAT)]
    heartbeat_interval: Duration,
    /// How the example's runtime runs: `process` (a child process of
    /// Hearth) or `docker` (a container; see README "Workspaces in containers").
    #[arg(long, value_enum, default_value_t = UpProvisioner::Process)]
    provisioner: UpProvisioner,
    /// With `--provisioner docker`: the image workspaces run [default: one
    /// built here from this machine's files, tagged `--local-image`].
    #[arg(long, value_name = "IMAGE")]
    default_image: Option<String>,
    /// With `--provisioner docker` and no `--default-image`: the tag of the
    /// image built here (no registry needed), reused when already there.
    #[arg(long, value_name = "TAG", default_value = LOCAL_IMAGE)]
    local_image: String,
}

/// The tag of the image `hearth up --provisioner docker` builds.
const LOCAL_IMAGE: &str = concat!("hearth-local-runtime:", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UpProvisioner {
    Process,
    Docker,
}

impl UpArgs {
    fn into_settings(self) -> Settings {
        let docker = self.provisioner == UpProvisioner::Docker;
        Settings {
            listen: self.listen,
            data_dir: self.data_dir,
            provisioner: if docker { ProvisionerKind::Docker } else { ProvisionerKind::Process },
            docker: hearth_server::DockerSettings {
                default_image: docker.then(|| self.default_image.unwrap_or(self.local_image)),
                ..Default::default()
            },
            heartbeat_interval: self.heartbeat_interval,
            // The default database (`sqlite://<data-dir>/hearth.db`), even
            // when HEARTH_DATABASE_URL is set for something else.
            database_url: None,
            ..Settings::default()
        }
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    telemetry::init_quiet()?;
    let build_image =
        (args.provisioner == UpProvisioner::Docker && args.default_image.is_none()).then(|| args.local_image.clone());
    let settings = args.into_settings();
    let in_containers = settings.provisioner == ProvisionerKind::Docker;
    if let Some(tag) = build_image {
        let exe = std::env::current_exe().context("cannot find the hearth executable")?;
        let built = hearth_server::local_image::ensure(&tag, &exe).await.with_context(|| {
            format!("cannot build the runtime image {tag} (is dockerd running? see scripts/ensure-docker)")
        })?;
        if built {
            say(&format!(
                "Built the runtime image {tag} from this machine's files (/bin/sh, a few tools and the C library; \
                 no registry needed). The hearth binary is mounted into each container, not copied."
            ));
        }
    }
    let data_dir = settings.data_dir.clone();
    let interval = settings.heartbeat_interval;
    let database = hearth_server::startup::database_url(&settings);
    let token = hearth_server::startup::admin_token(&settings)?;
    let app = Application::build(settings).await?;
    let mut addr = app.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}");
    let (stop, stopped) = watch::channel(false);
    let mut server = tokio::spawn(app.run_until(wait_for(stopped)));
    let database = database.strip_prefix("sqlite://").unwrap_or(&database);
    let how = if in_containers {
        "runs every workspace as a Docker container whose entrypoint is its runtime (`hearth agent`; the Docker provisioner)"
    } else {
        "starts a runtime (`hearth agent`) for every workspace itself (the process provisioner)"
    };
    say(&format!("Hearth is running at {url}. Its database is the SQLite file {database}, and it {how}."));

    let client = Client::new(&url, Some(token))?;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("hearth"));
    let hearth = cli_command(hearth_on_path(), std::env::var_os("CARGO").is_some(), &exe);
    let guide = Guide { client, url, data_dir, interval, hearth, in_containers };
    let signal = hearth_server::startup::shutdown_signal();
    tokio::pin!(signal);
    let mut interrupted = false;
    tokio::select! {
        outcome = guide.walk_through() => {
            if let Err(err) = outcome {
                // Hearth itself is fine; say what went wrong and keep serving.
                output::note(&format!("error: {err:#}"));
                say("Hearth keeps serving; Ctrl-C stops it.");
            }
        }
        () = &mut signal => interrupted = true,
        ended = &mut server => return server_ended(ended),
    }
    if !interrupted {
        tokio::select! {
            () = &mut signal => {}
            ended = &mut server => return server_ended(ended),
        }
    }
    if in_containers {
        say("Stopping: Hearth finishes in-flight requests; the containers keep running for the next Hearth to adopt.");
    } else {
        say("Stopping: Hearth finishes in-flight requests and stops the runtimes it started.");
    }
    stop.send_replace(true);
    server_ended(server.await)?;
    say("Stopped.");
    Ok(())
}

fn server_ended(ended: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match ended {
        Ok(result) => result,
        Err(err) => Err(anyhow::anyhow!("the server task failed: {err}")),
    }
}

/// Completes when `stopped` turns true (or its sender is gone).
async fn wait_for(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

fn say(text: &str) {
    if let Err(err) = output::print(text) {
        output::note(&format!("cannot print to stdout: {err}"));
    }
}

struct Guide {
    client: Client,
    url: String,
    data_dir: PathBuf,
    interval: Duration,
    /// How to run the CLI from here (`cli_command`).
    hearth: String,
    /// Runtimes run in Docker containers, not as child processes.
    in_containers: bool,
}

/// What the narration has already said about the workspace.
#[derive(Default)]
struct Told {
    status: Option<WorkspaceStatus>,
    assets: Option<String>,
    installed: Vec<String>,
    /// `PluginsInstalled` was `InstallFailed` at the last look.
    failing: bool,
}

impl Guide {
    async fn walk_through(&self) -> anyhow::Result<()> {
        let pushed = examples::push(&self.client).await?;
        for plugin in &pushed.plugins {
            say(&format!(
                "Loaded the example plugin {} {} (\"{}\"): a directory of files, stored by content hash \
                 (sha256 {}…).",
                plugin.name,
                plugin.version,
                plugin.description,
                short_hex(&plugin.sha256)
            ));
        }
        let template = &pushed.template;
        let plugins: Vec<&str> = pushed.plugins.iter().map(|plugin| plugin.name.as_str()).collect();
        say(&format!(
            "Loaded the example template {}: config.yaml, prompts and a model file ({} files, assets digest {}); \
             its config.yaml declares the plugin {}.",
            template.name,
            examples::SEO_AGENT_TEMPLATE.files.len(),
            short_digest(&template.assets_digest),
            plugins.join(", "),
        ));

        let name = examples::SEO_AGENT_TEMPLATE.name;
        let existing = self.client.list_workspaces(false).await.context("cannot list workspaces")?;
        let workspace = match existing.into_iter().find(|workspace| workspace.name == name) {
            Some(workspace) => {
                say(&format!(
                    "Workspace {name} ({}) already exists from an earlier run in this data directory; Hearth starts \
                     its runtime again, which finds the files it already holds.",
                    workspace.id
                ));
                workspace
            }
            None => {
                let request = CreateWorkspaceRequest {
                    name: name.to_owned(),
                    template: Some(template.name.clone()),
                    ..CreateWorkspaceRequest::default()
                };
                let workspace = self
                    .client
                    .create_workspace(&request)
                    .await
                    .with_context(|| format!("cannot create workspace {name}"))?;
                say(&format!(
                    "Created workspace {name} ({}) from template {}. A workspace is one agent role; the template \
                     says what its runtime must receive.",
                    workspace.id, template.name
                ));
                workspace
            }
        };
        self.follow(&workspace).await?;
        self.next_steps(&workspace);
        Ok(())
    }

    /// Narrates the workspace's progress until it holds everything its
    /// template declares (or patience runs out).
    async fn follow(&self, workspace: &WorkspaceResponse) -> anyhow::Result<()> {
        let id = workspace.id;
        let mut told = Told::default();
        let started = Instant::now();
        loop {
            let workspace = match self.client.get_workspace(id).await {
                Ok(workspace) => workspace,
                Err(err) if err.is_transport() => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
                Err(err) => return Err(err).with_context(|| format!("cannot follow workspace {id}")),
            };
            let (said, converged) = self.narrate(&workspace, &mut told);
            for text in &said {
                say(text);
            }
            if converged {
                say(&format!(
                    "Workspace {} has converged: its runtime holds everything its template declares. From now on \
                     it heartbeats every {}s, and anything that goes missing from its directory is delivered again.",
                    workspace.name,
                    seconds(self.interval)
                ));
                return Ok(());
            }
            if started.elapsed() > CONVERGE_PATIENCE {
                say(&format!(
                    "Workspace {} has not converged after {}s. See `{} workspace get {id}` for its conditions \
                     and `{} workspace logs {id}` for its runtime's log.",
                    workspace.name,
                    CONVERGE_PATIENCE.as_secs(),
                    self.hearth,
                    self.hearth,
                ));
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// What changed since the last look, as sentences to say; true once
    /// converged.
    /// Where `path` (of the agent directory) of workspace `id` is, in words.
    fn place(&self, id: WorkspaceId, path: &str) -> String {
        let dir = self.data_dir.join("workspaces").join(id.to_string());
        match (self.in_containers, path) {
            (true, _) => format!("/workspace/{path} inside its container"),
            (false, "") => dir.display().to_string(),
            (false, _) => dir.join(path).display().to_string(),
        }
    }

    fn narrate(&self, workspace: &WorkspaceResponse, told: &mut Told) -> (Vec<String>, bool) {
        let mut said = Vec::new();
        let name = &workspace.name;
        let id = workspace.id;
        if told.status != Some(workspace.status) {
            told.status = Some(workspace.status);
            let text = match workspace.status {
                WorkspaceStatus::Provisioning if self.in_containers => format!(
                    "Workspace {name} is provisioning: Hearth runs its runtime (hearth agent) in a Docker container \
                     labelled dev.hearth.workspace={id}, with a volume for /workspace; `{} workspace logs {id}` \
                     shows its log. It has not checked in yet.",
                    self.hearth
                ),
                WorkspaceStatus::Provisioning => format!(
                    "Workspace {name} is provisioning: Hearth started its runtime (hearth agent) as a child process \
                     in {}; its log is agent.log there. It has not checked in yet.",
                    self.place(id, "")
                ),
                WorkspaceStatus::Online => format!(
                    "Workspace {name} is online: its runtime registered and heartbeats every {}s. Each heartbeat \
                     answer tells it what it must hold (assets digest and plugins), and it reports what it has.",
                    seconds(self.interval)
                ),
                WorkspaceStatus::Paused | WorkspaceStatus::Hibernated => format!(
                    "Workspace {name} is {}, so Hearth runs no runtime for it; `{} workspace resume {}` brings \
                     it back.",
                    workspace.status, self.hearth, workspace.id
                ),
                status => format!("Workspace {name} is {status}."),
            };
            said.push(text);
        }
        let assets = workspace.condition(ConditionType::AssetsDelivered);
        let plugins = workspace.condition(ConditionType::PluginsInstalled);
        let delivered = assets.is_some_and(|c| c.typed_reason() == Some(ConditionReason::Delivered));
        if let Some(digest) = workspace.reported_assets_digest.clone().filter(|_| delivered) {
            if told.assets.as_deref() != Some(digest.as_str()) {
                said.push(format!(
                    "Assets delivered (digest {}): config.yaml, prompts and the model file are in {}, each \
                     verified against its sha256.",
                    short_digest(&digest),
                    self.place(id, "assets")
                ));
                told.assets = Some(digest);
            }
        }
        for plugin in &workspace.desired_plugins {
            let installed = workspace
                .installed_plugins
                .iter()
                .any(|have| have.name == plugin.name && plugin.sha256.is_some() && have.sha256 == plugin.sha256);
            if installed && !told.installed.contains(&plugin.name) {
                said.push(format!(
                    "Plugin {} {} installed into {}: downloaded, its content hash checked, unpacked safely, and \
                     reported back to Hearth.",
                    plugin.name,
                    plugin.version.as_deref().unwrap_or_default(),
                    self.place(id, &format!("plugins/{}", plugin.name))
                ));
                told.installed.push(plugin.name.clone());
            }
        }
        // Said once each time the condition turns InstallFailed (decided on
        // the reason; the message is only shown).
        let failed = plugins.filter(|c| c.typed_reason() == Some(ConditionReason::InstallFailed));
        if let Some(c) = failed.filter(|_| !told.failing) {
            said.push(format!(
                "A plugin failed to install ({}); the runtime retries on its next heartbeat.",
                c.message
            ));
        }
        told.failing = failed.is_some();
        let converged = workspace.status == WorkspaceStatus::Online
            && assets.is_some_and(|c| c.is_true())
            && plugins.is_some_and(|c| c.is_true());
        (said, converged)
    }

    fn next_steps(&self, workspace: &WorkspaceResponse) {
        let token_file = self.data_dir.join("admin-token");
        let default_dir = Path::new(DEFAULT_DATA_DIR);
        let default_data_dir = self.data_dir == default_dir || self.data_dir == Path::new("hearth-data");
        let mut env = Vec::new();
        if self.url != "http://127.0.0.1:7878" {
            env.push(format!("HEARTH_SERVER={}", self.url));
        }
        if !default_data_dir {
            env.push(format!("HEARTH_DATA_DIR={}", self.data_dir.display()));
        }
        let prefix = if env.is_empty() { String::new() } else { format!("{} ", env.join(" ")) };
        let how = if default_data_dir {
            "the hearth CLI reads it from there when run from this directory"
        } else {
            "the hearth CLI reads it from there when HEARTH_DATA_DIR names the data dir, as below"
        };
        let hearth = &self.hearth;
        let mut text = String::new();
        text.push('\n');
        text.push_str(&format!("  Hearth:       {}\n", self.url));
        text.push_str(&format!("  dashboard:    {}/ (sign in with the admin token)\n", self.url));
        text.push_str(&format!("  admin token:  {} ({how})\n", token_file.display()));
        text.push_str(&format!("  try:          {prefix}{hearth} workspace list\n"));
        text.push_str(&format!("                {prefix}{hearth} workspace get {}\n", workspace.id));
        text.push_str(&format!("                {prefix}{hearth} events --follow\n"));
        text.push_str(&format!("                {prefix}{hearth} e2e template-delivery\n"));
        if hearth != "hearth" {
            text.push_str("  install:      cargo install --path crates/hearth   (puts `hearth` on your PATH)\n");
        }
        text.push('\n');
        if self.in_containers {
            text.push_str(
                "Hearth keeps serving; Ctrl-C stops it. Its containers keep running for the next Hearth on this data \
                 dir to adopt; deleting a workspace removes its container and volume.",
            );
        } else {
            text.push_str("Hearth keeps serving; Ctrl-C stops it (and the runtime it started).");
        }
        say(&text);
    }
}

/// Whether a `hearth` executable is on `PATH`.
fn hearth_on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("hearth").is_file()))
}

/// How a person can run the CLI now: `hearth` when it is on `PATH`, the
/// `cargo run` form when this process was started by cargo, else this
/// executable's path.
fn cli_command(on_path: bool, under_cargo: bool, exe: &Path) -> String {
    if on_path {
        "hearth".to_owned()
    } else if under_cargo {
        "cargo run -q -p hearth --".to_owned()
    } else {
        exe.display().to_string()
    }
}

/// `2`, `0.5`: seconds without trailing zeros.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn up_serves_sqlite_in_the_data_dir_with_the_process_provisioner() {
        let cli = Cli::try_parse_from(["hearth", "up", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/d"])
            .unwrap_or_else(|err| panic!("{err}"));
        let Command::Up(args) = cli.command else { panic!("not up") };
        let settings = args.into_settings();
        assert_eq!(settings.provisioner, ProvisionerKind::Process);
        assert!(settings.database_url.is_none());
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(hearth_server::startup::database_url(&settings), "sqlite:///tmp/d/hearth.db");
        assert_eq!(settings.docker.default_image, None, "no image without containers");
    }

    #[test]
    fn up_in_containers_runs_the_image_it_builds_unless_one_is_named() {
        let settings = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["hearth", "up", "--provisioner", "docker"], args].concat())
                .unwrap_or_else(|err| panic!("{err}"));
            let Command::Up(args) = cli.command else { panic!("not up") };
            args.into_settings()
        };
        let built = settings(&[]);
        assert_eq!(built.provisioner, ProvisionerKind::Docker);
        assert_eq!(built.docker.default_image.as_deref(), Some(LOCAL_IMAGE));
        assert!(LOCAL_IMAGE.starts_with("hearth-local-runtime:"), "{LOCAL_IMAGE}");
        let tagged = settings(&["--local-image", "mine:1"]);
        assert_eq!(tagged.docker.default_image.as_deref(), Some("mine:1"));
        let named = settings(&["--default-image", "debian:12", "--local-image", "mine:1"]);
        assert_eq!(named.docker.default_image.as_deref(), Some("debian:12"), "a named image wins");
    }

    #[test]
    fn suggested_commands_work_without_hearth_on_the_path() {
        let exe = Path::new("/src/hearth/target/debug/hearth");
        assert_eq!(cli_command(true, true, exe), "hearth");
        assert_eq!(cli_command(false, true, exe), "cargo run -q -p hearth --");
        assert_eq!(cli_command(false, false, exe), "/src/hearth/target/debug/hearth");
    }

    /// A workspace as `GET /workspaces/{id}` answers it: online, with
    /// `conditions` and the digest its runtime reported.
    fn workspace(conditions: serde_json::Value, reported_assets_digest: Option<&str>) -> WorkspaceResponse {
        let at = "2026-01-01T00:00:00Z";
        serde_json::from_value(serde_json::json!({
            "id": "6f1c1a52-3a53-4f0e-9a55-0d6c1f0c2b11", "org_id": "00000000-0000-0000-0000-000000000001",
            "name": "seo-agent", "tier": 1, "status": "online", "external": false, "last_error_rate": 0.0,
            "active_tasks": 0, "uptime_seconds": 0, "monthly_spend": 0, "conditions": conditions,
            "desired_plugins": [], "installed_plugins": [], "reported_assets_digest": reported_assets_digest,
            "status_changed_at": at, "created_at": at, "updated_at": at,
        }))
        .unwrap_or_else(|err| panic!("{err}"))
    }

    fn guide() -> Guide {
        Guide {
            client: Client::new("http://127.0.0.1:1", None).unwrap_or_else(|err| panic!("{err}")),
            url: "http://127.0.0.1:1".into(),
            data_dir: PathBuf::from("/tmp/d"),
            interval: Duration::from_secs(2),
            hearth: "hearth".into(),
            in_containers: false,
        }
    }

    fn condition(kind: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        serde_json::json!({"type": kind, "status": status, "reason": reason, "message": message,
            "last_transition_time": "2026-01-01T00:00:00Z"})
    }

    /// The digest comes from the workspace's typed field: the condition's
    /// message is a sentence for people, which may say it otherwise.
    #[test]
    fn delivered_assets_are_named_by_the_reported_digest_not_the_message() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let conditions = serde_json::json!([
            condition("AssetsDelivered", "True", "Delivered", "the runtime holds the template's assets"),
            condition("PluginsInstalled", "True", "NoPlugins", "the template declares no plugins"),
        ]);
        let mut told = Told::default();
        let (said, converged) = guide().narrate(&workspace(conditions.clone(), Some(&digest)), &mut told);
        let line = said.iter().find(|line| line.starts_with("Assets delivered")).unwrap_or_else(|| panic!("{said:?}"));
        assert!(line.starts_with(&format!("Assets delivered (digest {}):", short_digest(&digest))), "{line}");
        assert!(converged);
        // Said once: the same digest again is no news.
        let (again, _) = guide().narrate(&workspace(conditions, Some(&digest)), &mut told);
        assert!(!again.iter().any(|line| line.starts_with("Assets delivered")), "{again:?}");
    }

    #[test]
    fn a_failed_install_is_told_and_the_workspace_is_not_converged() {
        let conditions = serde_json::json!([
            condition(
                "AssetsDelivered",
                "True",
                "NoTemplate",
                "the workspace has no template, so no assets to deliver"
            ),
            condition("PluginsInstalled", "False", "InstallFailed", "plugin install failed: seo-all: sha256 mismatch"),
        ]);
        let mut told = Told::default();
        let (said, converged) = guide().narrate(&workspace(conditions.clone(), None), &mut told);
        assert!(!converged);
        let failed = |said: &[String]| said.iter().any(|line| line.starts_with("A plugin failed to install ("));
        assert!(
            said.iter().any(|line| line.starts_with("A plugin failed to install (plugin install failed: seo-all")),
            "{said:?}"
        );
        assert!(!said.iter().any(|line| line.starts_with("Assets delivered")), "no template, no digest: {said:?}");
        let (again, _) = guide().narrate(&workspace(conditions.clone(), None), &mut told);
        assert!(!failed(&again), "said once while it stays failed: {again:?}");
        let pending = serde_json::json!([condition("PluginsInstalled", "False", "Pending", "waiting")]);
        guide().narrate(&workspace(pending, None), &mut told);
        let (anew, _) = guide().narrate(&workspace(conditions, None), &mut told);
        assert!(failed(&anew), "a new failure after a retry is said again: {anew:?}");
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(2)), "2");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
    }
}
