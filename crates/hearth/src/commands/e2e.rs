//! `hearth e2e template-delivery`: the acceptance harness of PRODUCT.md,
//! run against any live server.
//!
//! Steps, each with its own timeout and one line of output:
//! (A) a fresh workspace is created from a template, (B) it reaches
//! `online`, (C) `config.yaml` is delivered byte-identical, (D) prompts and
//! model are delivered, (E) every declared plugin is installed and recorded.
//!
//! When the server starts no runtimes itself (`"provisioner": "none"` in
//! `/buildinfo`), the harness runs `hearth agent` for the workspace (this
//! very executable, in a temporary directory) and then also checks the files
//! on its disk. Otherwise it relies on what the runtime reports: the assets
//! digest covers every file's bytes, and installs carry the plugin's hash.
//!
//! Whatever happens, the workspace is deleted at the end (unless `--keep`)
//! and the harness's agent is stopped.

use std::fmt::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use hearth_api::{
    AssetFile, AssetsManifest, Condition, CreateWorkspaceRequest, PluginResponse, TemplateResponse, WorkspaceResponse,
};
use hearth_client::{Client, ClientError};
use hearth_core::digest::sha256_hex;
use hearth_core::{WorkspaceId, WorkspaceStatus};
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::examples;
use crate::operator::Operator;
use crate::output::{self, short_digest, short_hex};

/// How often a step asks the server (and the disk) again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Heartbeat interval of the agent the harness runs itself.
const LOCAL_AGENT_HEARTBEAT: &str = "1";
/// How long the harness's agent gets to exit on its own once its workspace
/// is deleted, and then after SIGTERM, before it is killed.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the harness's agent log shown when a step fails.
const LOG_TAIL_LINES: usize = 20;

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

/// One step's outcome, as printed and as in the JSON document.
#[derive(Debug, Clone, Serialize)]
struct StepReport {
    step: &'static str,
    name: &'static str,
    ok: bool,
    seconds: f64,
    message: String,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    ok: bool,
    server: String,
    template: Option<String>,
    workspace_id: Option<WorkspaceId>,
    workspace_name: Option<String>,
    /// `server` when the server's provisioner started the runtime,
    /// `harness` when this command ran `hearth agent` itself.
    runtime: Option<&'static str>,
    seconds: f64,
    steps: Vec<StepReport>,
    cleanup: Vec<String>,
}

/// The steps, in order: letter, name, what a failure is about.
const STEPS: [(&str, &str); 5] = [
    ("A", "created"),
    ("B", "online"),
    ("C", "config.yaml delivered byte-identical"),
    ("D", "prompts and model delivered"),
    ("E", "plugins installed and recorded"),
];

/// What the steps learn and later steps (and the cleanup) use.
struct Run {
    client: Client,
    timeout: Duration,
    json: bool,
    template_arg: Option<String>,
    /// The template, as the server describes it.
    template: Option<TemplateResponse>,
    /// True when the harness pushed the embedded example (so it knows the
    /// bytes every file must have).
    pushed_example: bool,
    /// The declared plugins, as the registry describes them.
    plugins: Vec<PluginResponse>,
    workspace: Option<(WorkspaceId, String)>,
    /// True when the harness runs the runtime itself.
    local_runtime: bool,
    agent: Option<LocalAgent>,
    /// `config.yaml` as the server serves it (step C), for the summary.
    config_size: usize,
    steps: Vec<StepReport>,
}

async fn template_delivery(args: TemplateDeliveryArgs, op: &Operator) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut run = Run {
        client: op.client.clone(),
        timeout: Duration::from_secs(args.timeout),
        json: op.json,
        template_arg: args.template,
        template: None,
        pushed_example: false,
        plugins: Vec::new(),
        workspace: None,
        local_runtime: false,
        agent: None,
        config_size: 0,
        steps: Vec::new(),
    };
    let interrupted = tokio::select! {
        () = run.all_steps() => false,
        () = hearth_server::startup::shutdown_signal() => true,
    };
    if interrupted {
        let step = STEPS.get(run.steps.len()).copied().unwrap_or(("-", "cleanup"));
        run.record(step, Instant::now(), Err(anyhow!("interrupted (SIGINT/SIGTERM); cleaning up")));
    }
    let ok = run.steps.len() == STEPS.len() && run.steps.iter().all(|step| step.ok);
    let cleanup = run.cleanup(args.keep, ok).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = run.steps.iter().find(|step| !step.ok).cloned();
    if run.json {
        let report = Report {
            scenario: "template-delivery",
            ok,
            server: run.client.base_url().to_owned(),
            template: run.template.as_ref().map(|template| template.name.clone()),
            workspace_id: run.workspace.as_ref().map(|(id, _)| *id),
            workspace_name: run.workspace.as_ref().map(|(_, name)| name.clone()),
            runtime: run.workspace.as_ref().map(|_| if run.local_runtime { "harness" } else { "server" }),
            seconds,
            steps: run.steps.clone(),
            cleanup: cleanup.clone(),
        };
        output::print_json(&report)?;
    } else {
        for line in &cleanup {
            output::note(line);
        }
    }
    match failed {
        None => {
            if !run.json {
                output::print(&run.summary(seconds))?;
            }
            Ok(())
        }
        Some(step) => bail!("template delivery failed at step {} ({}): {}", step.step, step.name, step.message),
    }
}

impl Run {
    async fn all_steps(&mut self) {
        for (index, step) in STEPS.into_iter().enumerate() {
            let started = Instant::now();
            // Every step polls with its own deadline; this outer bound only
            // catches a server that stops answering mid-request.
            let bound = self.timeout + Duration::from_secs(30);
            let body = async {
                match index {
                    0 => self.create().await,
                    1 => self.online().await,
                    2 => self.config_delivered().await,
                    3 => self.prompts_and_model_delivered().await,
                    _ => self.plugins_installed().await,
                }
            };
            let outcome = match tokio::time::timeout(bound, body).await {
                Ok(outcome) => outcome,
                Err(_) => Err(anyhow!("no answer within {}s", bound.as_secs())),
            };
            if !self.record(step, started, outcome) {
                return;
            }
        }
    }

    /// Records and prints a step's outcome; true when it passed.
    fn record(
        &mut self,
        (step, name): (&'static str, &'static str),
        started: Instant,
        outcome: anyhow::Result<String>,
    ) -> bool {
        let ok = outcome.is_ok();
        let message = match outcome {
            Ok(message) => message,
            Err(err) => format!("{err:#}"),
        };
        let report = StepReport { step, name, ok, seconds: started.elapsed().as_secs_f64(), message };
        let line =
            format!("{} {} {} ({:.1}s)", report.step, if ok { "ok  " } else { "FAIL" }, report.message, report.seconds);
        if self.json {
            output::note(&line);
        } else if let Err(err) = output::print(&line) {
            output::note(&format!("cannot print to stdout: {err}"));
        }
        if !ok {
            if let Some(agent) = &self.agent {
                output::note(&agent.log_tail());
            }
        }
        self.steps.push(report);
        ok
    }

    fn summary(&self, seconds: f64) -> String {
        let template = self.template.as_ref();
        let assets = template.map_or(0, |template| template.files.len());
        let plugins = match self.plugins.len() {
            1 => "1 plugin".to_owned(),
            n => format!("{n} plugins"),
        };
        let workspace = self.workspace.as_ref().map_or_else(String::new, |(_, name)| format!(" {name}"));
        let runtime = if self.local_runtime { "run by the harness" } else { "started by the server" };
        format!(
            "template delivery OK in {seconds:.1}s: workspace{workspace} (runtime {runtime}) received config.yaml \
             ({} bytes), {assets} asset files and {plugins} from template {}",
            self.config_size,
            template.map_or("?", |template| template.name.as_str()),
        )
    }

    fn template(&self) -> anyhow::Result<&TemplateResponse> {
        self.template.as_ref().ok_or_else(|| anyhow!("no template (step A did not finish)"))
    }

    fn workspace_id(&self) -> anyhow::Result<WorkspaceId> {
        self.workspace.as_ref().map(|(id, _)| *id).ok_or_else(|| anyhow!("no workspace (step A did not finish)"))
    }

    /// An error when the harness's agent has exited.
    fn agent_alive(&mut self) -> anyhow::Result<()> {
        match &mut self.agent {
            Some(agent) => agent.alive(),
            None => Ok(()),
        }
    }

    // --- A ---------------------------------------------------------------

    async fn create(&mut self) -> anyhow::Result<String> {
        let build = self.client.buildinfo().await.context("cannot read the server's /buildinfo")?;
        let template = match self.template_arg.clone() {
            Some(key) => self.client.get_template(&key).await.map_err(|err| match err.status() {
                Some(404) => anyhow!("template {key:?} does not exist on {}", self.client.base_url()),
                _ => anyhow!(err).context(format!("cannot get template {key:?}")),
            })?,
            None => {
                let pushed = examples::push(&self.client).await?;
                self.pushed_example = true;
                let template = self
                    .client
                    .get_template(&pushed.template.id.to_string())
                    .await
                    .context("cannot read back the example template")?;
                if template.assets_digest != pushed.template.assets_digest {
                    bail!(
                        "the server answered the import with assets digest {} but now describes the template with {}",
                        pushed.template.assets_digest,
                        template.assets_digest
                    );
                }
                template
            }
        };
        let registry = self.client.list_plugins().await.context("cannot list plugins")?;
        let mut plugins = Vec::with_capacity(template.plugins.len());
        for name in &template.plugins {
            let Some(plugin) = registry.iter().find(|plugin| &plugin.name == name) else {
                bail!("template {} declares plugin {name}, which is not in the plugin registry", template.name);
            };
            plugins.push(plugin.clone());
        }
        self.plugins = plugins;

        // An older server does not say; it can only be one without a
        // provisioner then.
        let local = matches!(build.provisioner.as_str(), "none" | "");
        let name = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let request = CreateWorkspaceRequest {
            name: name.clone(),
            template: Some(template.name.clone()),
            issue_token: local.then_some(true),
            ..CreateWorkspaceRequest::default()
        };
        let workspace = self
            .client
            .create_workspace(&request)
            .await
            .with_context(|| format!("cannot create workspace {name} from template {}", template.name))?;
        self.workspace = Some((workspace.id, workspace.name.clone()));
        let plugin_names = if self.plugins.is_empty() { "none".to_owned() } else { template.plugins.join(", ") };
        let mut message = format!(
            "created workspace {name} ({}) from template {} ({} files, assets {}, plugins: {plugin_names}); ",
            workspace.id,
            template.name,
            template.files.len(),
            short_digest(&template.assets_digest),
        );
        if local {
            let Some(token) = workspace.auth_token.as_deref() else {
                bail!(
                    "the server created workspace {} but returned no token although issue_token was true",
                    workspace.id
                );
            };
            let agent = LocalAgent::start(self.client.base_url(), workspace.id, token).await?;
            let _ = write!(
                message,
                "the server starts no runtimes (provisioner none), so the harness runs hearth agent in {}",
                agent.dir.display()
            );
            self.agent = Some(agent);
            self.local_runtime = true;
        } else {
            let _ = write!(message, "its runtime is started by the server (provisioner {})", build.provisioner);
        }
        self.template = Some(template);
        Ok(message)
    }

    // --- B ---------------------------------------------------------------

    async fn online(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let deadline = Deadline::new(self.timeout);
        loop {
            let seen;
            match self.client.get_workspace(id).await {
                Ok(workspace) => match workspace.status {
                    WorkspaceStatus::Online => {
                        return Ok(format!("workspace is online ({})", heartbeat_text(&workspace)));
                    }
                    WorkspaceStatus::Failed | WorkspaceStatus::Removed => {
                        bail!("workspace became {} instead of online ({})", workspace.status, sample_error(&workspace));
                    }
                    status => seen = format!("its status is {status} ({})", heartbeat_text(&workspace)),
                },
                Err(err) => seen = waiting_on(err, &format!("get workspace {id}"))?,
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("workspace did not become online within {}s: {seen}", self.timeout.as_secs());
            }
            deadline.sleep().await;
        }
    }

    // --- C ---------------------------------------------------------------

    async fn config_delivered(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let template = self.template()?.clone();
        let manifest = self.manifest(id, &template).await?;
        let path = hearth_core::manifest::TEMPLATE_CONFIG;
        let Some(entry) = manifest.files.iter().find(|file| file.path == path) else {
            bail!("the workspace's assets manifest has no {path}");
        };
        let served = self.client.asset_bytes(id, path).await.with_context(|| format!("cannot download {path}"))?;
        check_bytes(&format!("the server's {path}"), &served, entry)?;
        if self.pushed_example {
            let pushed = examples::SEO_AGENT_TEMPLATE.file(path).unwrap_or_default();
            if served != pushed {
                bail!(
                    "the server serves {path} as {} bytes (sha256 {}), but the harness pushed {} bytes (sha256 {})",
                    served.len(),
                    sha256_hex(&served),
                    pushed.len(),
                    sha256_hex(pushed)
                );
            }
        }
        self.config_size = served.len();

        let deadline = Deadline::new(self.timeout);
        loop {
            let mut waiting = Vec::new();
            match self.client.get_workspace(id).await {
                Ok(workspace) => match condition(&workspace, "AssetsDelivered") {
                    Some(c) if c.status == "True" && c.message.contains(&template.assets_digest) => {}
                    Some(c) if c.status == "True" => waiting.push(format!(
                        "{} (expected the runtime to hold the template's assets {})",
                        describe(c),
                        template.assets_digest
                    )),
                    Some(c) => waiting.push(describe(c)),
                    None => waiting.push("AssetsDelivered is not reported yet".to_owned()),
                },
                Err(err) => waiting.push(waiting_on(err, &format!("get workspace {id}"))?),
            }
            let local = self.agent.as_ref().map(|agent| agent.dir.join("assets").join(path));
            if let Some(file) = &local {
                if let Some(problem) = disk_mismatch(file, &served) {
                    waiting.push(problem);
                }
            }
            if waiting.is_empty() {
                let mut message = format!(
                    "{path} delivered byte-identical ({} bytes, sha256 {}): AssetsDelivered=True, the runtime holds \
                     the template's assets {}",
                    served.len(),
                    short_hex(&entry.sha256),
                    template.assets_digest
                );
                if let Some(file) = local {
                    let _ = write!(message, ", and {} matches byte for byte", file.display());
                }
                return Ok(message);
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("{path} not delivered within {}s: {}", self.timeout.as_secs(), waiting.join("; "));
            }
            deadline.sleep().await;
        }
    }

    /// The workspace's assets manifest, checked against the template.
    async fn manifest(&self, id: WorkspaceId, template: &TemplateResponse) -> anyhow::Result<AssetsManifest> {
        let manifest = self.client.assets_manifest(id).await.context("cannot get the workspace's assets manifest")?;
        if manifest.digest != template.assets_digest {
            bail!(
                "the workspace's assets digest is {}, but template {}'s is {}",
                manifest.digest,
                template.name,
                template.assets_digest
            );
        }
        Ok(manifest)
    }

    // --- D ---------------------------------------------------------------

    async fn prompts_and_model_delivered(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let template = self.template()?.clone();
        let manifest = self.manifest(id, &template).await?;
        // The manifest must list exactly the template's files: the digest
        // alone would not show a server that lists one set and hashes another.
        for file in &template.files {
            if !manifest.files.contains(file) {
                bail!("the workspace's assets manifest lacks {} (sha256 {}) of the template", file.path, file.sha256);
            }
        }
        if self.pushed_example {
            for (path, bytes) in examples::SEO_AGENT_TEMPLATE.files {
                let expected = sha256_hex(bytes);
                match manifest.files.iter().find(|file| file.path == *path) {
                    Some(file) if file.sha256 == expected => {}
                    Some(file) => bail!(
                        "the assets manifest lists {path} with sha256 {}, but the harness pushed sha256 {expected}",
                        file.sha256
                    ),
                    None => bail!("the assets manifest lacks {path}, which the harness pushed"),
                }
            }
        }
        let wanted: Vec<&AssetFile> = manifest.files.iter().filter(|file| is_prompt_or_model(&file.path)).collect();
        let prompts = wanted.iter().filter(|file| file.path.starts_with("prompts/")).count();
        if prompts == 0 {
            bail!("template {} has no prompts/ files to deliver", template.name);
        }
        let names: Vec<&str> = wanted.iter().map(|file| file.path.as_str()).collect();
        let Some(agent_dir) = self.agent.as_ref().map(|agent| agent.dir.join("assets")) else {
            // A remote runtime: AssetsDelivered (step C) says it holds the
            // template's digest, which covers every file's sha256.
            return Ok(format!(
                "{} delivered (covered by the runtime's assets digest {})",
                names.join(", "),
                short_digest(&template.assets_digest)
            ));
        };
        let deadline = Deadline::new(self.timeout);
        loop {
            let problems: Vec<String> =
                wanted.iter().filter_map(|file| disk_hash_mismatch(&agent_dir.join(&file.path), file)).collect();
            if problems.is_empty() {
                return Ok(format!(
                    "{} delivered; sha256 of each verified in {}",
                    names.join(", "),
                    agent_dir.display()
                ));
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("prompts and model not delivered within {}s: {}", self.timeout.as_secs(), problems.join("; "));
            }
            deadline.sleep().await;
        }
    }

    // --- E ---------------------------------------------------------------

    async fn plugins_installed(&mut self) -> anyhow::Result<String> {
        let id = self.workspace_id()?;
        let deadline = Deadline::new(self.timeout);
        loop {
            let mut waiting = Vec::new();
            match self.client.get_workspace(id).await {
                Ok(workspace) => match condition(&workspace, "PluginsInstalled") {
                    Some(c) if c.status == "True" => {}
                    Some(c) => waiting.push(describe(c)),
                    None => waiting.push("PluginsInstalled is not reported yet".to_owned()),
                },
                Err(err) => waiting.push(waiting_on(err, &format!("get workspace {id}"))?),
            }
            match self.client.workspace_plugins(id).await {
                Ok(recorded) => {
                    for plugin in &self.plugins {
                        match recorded.desired.iter().find(|desired| desired.name == plugin.name) {
                            Some(desired) if desired.sha256 == plugin.sha256 => {}
                            Some(desired) => waiting.push(format!(
                                "{} is desired with sha256 {}, but the registry holds {}",
                                plugin.name, desired.sha256, plugin.sha256
                            )),
                            None => {
                                waiting.push(format!("{} is not among the workspace's desired plugins", plugin.name))
                            }
                        }
                        match recorded.installed.iter().find(|installed| installed.name == plugin.name) {
                            Some(installed) if installed.sha256.as_deref() == Some(plugin.sha256.as_str()) => {}
                            Some(installed) => waiting.push(format!(
                                "{} is recorded as installed with sha256 {}, expected {}",
                                plugin.name,
                                installed.sha256.as_deref().unwrap_or("(none)"),
                                plugin.sha256
                            )),
                            None => waiting.push(format!("{} is not recorded as installed", plugin.name)),
                        }
                    }
                }
                Err(err) => waiting.push(waiting_on(err, &format!("get the plugins of workspace {id}"))?),
            }
            if let Some(agent) = &self.agent {
                for plugin in &self.plugins {
                    let manifest = agent.dir.join("plugins").join(&plugin.name).join("plugin.yaml");
                    match std::fs::read_to_string(&manifest) {
                        Ok(text) if text.contains(&plugin.sha256) => {}
                        Ok(_) => {
                            waiting.push(format!("{} does not carry sha256 {}", manifest.display(), plugin.sha256))
                        }
                        Err(err) => waiting.push(format!("cannot read {}: {err}", manifest.display())),
                    }
                }
            }
            if waiting.is_empty() {
                return Ok(self.plugins_message());
            }
            self.agent_alive()?;
            if deadline.passed() {
                bail!("plugins not installed within {}s: {}", self.timeout.as_secs(), waiting.join("; "));
            }
            deadline.sleep().await;
        }
    }

    fn plugins_message(&self) -> String {
        if self.plugins.is_empty() {
            return "the template declares no plugins; PluginsInstalled=True".to_owned();
        }
        let each: Vec<String> = self
            .plugins
            .iter()
            .map(|plugin| format!("{} {} (sha256 {})", plugin.name, plugin.version, short_hex(&plugin.sha256)))
            .collect();
        let mut message = format!("PluginsInstalled=True; installed and recorded: {}", each.join(", "));
        if let Some(agent) = &self.agent {
            let _ = write!(message, "; plugin.yaml of each present under {}", agent.dir.join("plugins").display());
        }
        message
    }

    // --- cleanup ---------------------------------------------------------

    /// Deletes the workspace (unless `keep`) and stops the harness's agent.
    /// Returns what it did, one line each.
    async fn cleanup(&mut self, keep: bool, ok: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let deleted = match (&self.workspace, keep) {
            (Some((id, name)), false) => match self.client.delete_workspace(*id).await {
                Ok(_) => {
                    lines.push(format!("cleanup: deleted workspace {name} ({id})"));
                    true
                }
                Err(err) => {
                    lines.push(format!("cleanup: could not delete workspace {name} ({id}): {err}"));
                    false
                }
            },
            (Some((id, name)), true) => {
                lines.push(format!("kept workspace {name} ({id}) (--keep)"));
                false
            }
            (None, _) => false,
        };
        if let Some(mut agent) = self.agent.take() {
            lines.push(agent.stop(deleted).await);
            if keep || !ok {
                // Keep the agent's files for whoever looks into it.
                let path = agent.root.keep();
                lines.push(format!("kept the harness's agent directory {} (agent.log inside)", path.display()));
            }
        }
        lines
    }
}

/// The agent the harness runs when the server starts none.
struct LocalAgent {
    child: Child,
    /// The temporary directory holding the agent dir, token and log.
    root: tempfile::TempDir,
    /// `--dir` of the agent.
    dir: PathBuf,
    log: PathBuf,
}

impl LocalAgent {
    async fn start(server: &str, workspace: WorkspaceId, token: &str) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("hearth-e2e-")
            .tempdir()
            .context("cannot create a temporary directory for the agent")?;
        let dir = root.path().join("agent");
        let token_file = root.path().join("token");
        let log = root.path().join("agent.log");
        {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&token_file)
                .with_context(|| format!("cannot create {}", token_file.display()))?;
            writeln!(file, "{token}").with_context(|| format!("cannot write {}", token_file.display()))?;
        }
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let log_err = log_file.try_clone().context("cannot duplicate the log file handle")?;
        let program = std::env::current_exe().context("cannot find the hearth executable to run hearth agent")?;
        let child = Command::new(&program)
            .arg("agent")
            .arg("--server")
            .arg(server)
            .arg("--workspace")
            .arg(workspace.to_string())
            .arg("--dir")
            .arg(&dir)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--heartbeat-interval")
            .arg(LOCAL_AGENT_HEARTBEAT)
            // An operator's own token must not stand in for the workspace's.
            .env_remove("HEARTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {} agent", program.display()))?;
        Ok(Self { child, root, dir, log })
    }

    fn alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let last = self.last_log_line().map(|line| format!(": {line}")).unwrap_or_default();
                bail!("the harness's hearth agent exited ({status}){last}")
            }
            Err(err) => bail!("cannot check on the harness's hearth agent: {err}"),
        }
    }

    fn last_log_line(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines().rev().find(|line| !line.trim().is_empty()).map(|line| line.trim().to_owned())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!("the harness's agent log ({}), last {} lines:\n{}", self.log.display(), tail.len(), tail.join("\n"))
    }

    /// Waits for the agent to exit on its own (its workspace was deleted),
    /// then asks it with SIGTERM, then kills it.
    async fn stop(&mut self, workspace_deleted: bool) -> String {
        if workspace_deleted {
            if let Ok(Ok(status)) = tokio::time::timeout(AGENT_STOP_GRACE, self.child.wait()).await {
                return format!("cleanup: the harness's agent exited on its own ({status})");
            }
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("cleanup: the harness's agent had exited ({status})");
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        match tokio::time::timeout(AGENT_STOP_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => format!("cleanup: stopped the harness's agent ({status})"),
            _ => match self.child.kill().await {
                Ok(()) => "cleanup: killed the harness's agent (it ignored SIGTERM)".to_owned(),
                Err(err) => format!("cleanup: could not stop the harness's agent: {err}"),
            },
        }
    }
}

/// A step's deadline.
struct Deadline(Instant);

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    async fn sleep(&self) {
        tokio::time::sleep(POLL_INTERVAL.min(self.0.saturating_duration_since(Instant::now()))).await;
    }
}

/// What to say while the server cannot be reached (it may be restarting);
/// any other error ends the step.
fn waiting_on(err: ClientError, what: &str) -> anyhow::Result<String> {
    if err.is_transport() {
        Ok(format!("the server did not answer: {err}"))
    } else {
        Err(anyhow!(err).context(format!("cannot {what}")))
    }
}

fn condition<'a>(workspace: &'a WorkspaceResponse, kind: &str) -> Option<&'a Condition> {
    workspace.conditions.iter().find(|condition| condition.kind == kind)
}

/// `PluginsInstalled=False InstallFailed: plugin install failed: …`
fn describe(condition: &Condition) -> String {
    format!("{}={} {}: {}", condition.kind, condition.status, condition.reason, condition.message)
}

fn heartbeat_text(workspace: &WorkspaceResponse) -> String {
    match workspace.last_heartbeat_at {
        Some(at) => {
            let ago = (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
            format!("last heartbeat {ago:.1}s ago")
        }
        None => "no heartbeat yet".to_owned(),
    }
}

fn sample_error(workspace: &WorkspaceResponse) -> String {
    match workspace.last_sample_error.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => format!("last error: {text}"),
        None => heartbeat_text(workspace),
    }
}

/// Prompts, and model files (under `model/` or `models/`).
fn is_prompt_or_model(path: &str) -> bool {
    ["prompts/", "model/", "models/"].iter().any(|prefix| path.starts_with(prefix))
}

/// Checks bytes against their manifest entry.
fn check_bytes(what: &str, bytes: &[u8], entry: &AssetFile) -> anyhow::Result<()> {
    let sha = sha256_hex(bytes);
    if sha != entry.sha256 || i64::try_from(bytes.len()).ok() != Some(entry.size) {
        bail!(
            "{what} is {} bytes with sha256 {sha}, but the manifest lists {} bytes with sha256 {}",
            bytes.len(),
            entry.size,
            entry.sha256
        );
    }
    Ok(())
}

/// Why `file` on disk is not exactly `expected`, if it is not.
fn disk_mismatch(file: &Path, expected: &[u8]) -> Option<String> {
    match std::fs::read(file) {
        Ok(bytes) if bytes == expected => None,
        Ok(bytes) => Some(format!(
            "{} is {} bytes (sha256 {}), expected {} bytes (sha256 {})",
            file.display(),
            bytes.len(),
            short_hex(&sha256_hex(&bytes)),
            expected.len(),
            short_hex(&sha256_hex(expected))
        )),
        Err(err) => Some(format!("cannot read {}: {err}", file.display())),
    }
}

/// Why `file` on disk does not have the manifest's sha256, if it does not.
fn disk_hash_mismatch(file: &Path, entry: &AssetFile) -> Option<String> {
    match std::fs::read(file) {
        Ok(bytes) => {
            let sha = sha256_hex(&bytes);
            (sha != entry.sha256).then(|| format!("{} has sha256 {sha}, expected {}", file.display(), entry.sha256))
        }
        Err(err) => Some(format!("cannot read {}: {err}", file.display())),
    }
}
