//! The template-delivery acceptance harness of PRODUCT.md
//! (`hearth e2e template-delivery`), run against any live server.
//!
//! Steps, each with its own timeout and one line of output:
//! (A) a fresh workspace is created from a template, (B) it reaches
//! `online`, (C) `config.yaml` is delivered byte-identical, (D) prompts and
//! model are delivered, (E) every declared plugin is installed and recorded.
//!
//! When the server starts no runtimes itself (`"provisioner": "none"` in
//! `/buildinfo`), the harness runs `hearth agent` for the workspace (the
//! executable it is given, in a temporary directory) and then also checks
//! the files on its disk. Otherwise it relies on what the runtime reports:
//! the assets digest covers every file's bytes, and installs carry the
//! plugin's hash.
//!
//! Whatever happens, the workspace is deleted at the end (unless `keep`) and
//! the harness's agent is stopped.
//!
//! One module per step: `setup` (A, with the harness's own agent in
//! `agent`), `online` (B), `config` (C), `prompts` (D), `plugins` (E), then
//! `cleanup`; `report` holds what is printed and the `--json` document.

mod agent;
mod cleanup;
mod config;
mod online;
mod plugins;
mod prompts;
mod report;
mod setup;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hearth_api::{AssetsManifest, Condition, PluginResponse, TemplateResponse};
use hearth_client::{Client, ClientError};
use hearth_core::WorkspaceId;

use self::agent::LocalAgent;
pub use self::report::{Report, StepReport, STEPS};

/// How often a step asks the server (and the disk) again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What to check, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Use this existing template (id or name) instead of pushing the
    /// embedded example template and plugin.
    pub template: Option<String>,
    /// How long each step may take.
    pub timeout: Duration,
    /// Keep the workspace, and the directory of the agent the harness ran
    /// (that agent is stopped all the same; it is also kept on failure).
    pub keep: bool,
    /// The `hearth` executable the harness runs as `hearth agent` when the
    /// server starts no runtimes.
    pub agent_program: PathBuf,
}

/// What the harness tells its caller while it runs.
pub trait Progress {
    /// A step has finished, passed or failed.
    fn step(&mut self, step: &StepReport);
    /// The end of the harness's agent log, after a step failed.
    fn agent_log(&mut self, tail: &str);
}

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    /// Every step, the cleanup, and whether it all passed.
    pub report: Report,
    /// One sentence on what was delivered, for a run that passed.
    pub summary: String,
}

impl Outcome {
    /// The first step that failed, if any.
    pub fn failed(&self) -> Option<&StepReport> {
        self.report.steps.iter().find(|step| !step.ok)
    }
}

/// Runs steps A–E against the server `client` talks to (with its token),
/// then cleans up. Stops early, cleaning up all the same, when `shutdown`
/// completes (SIGINT/SIGTERM).
pub async fn template_delivery(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()>,
    progress: &mut dyn Progress,
) -> Outcome {
    let started = Instant::now();
    let Options { template, timeout, keep, agent_program } = options;
    let mut run = Run {
        client,
        timeout,
        agent_program,
        template_arg: template,
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
        () = run.all_steps(progress) => false,
        () = shutdown => true,
    };
    if interrupted {
        let step = STEPS.get(run.steps.len()).copied().unwrap_or(("-", "cleanup"));
        run.record(step, Instant::now(), Err(anyhow!("interrupted (SIGINT/SIGTERM); cleaning up")), progress);
    }
    let ok = run.steps.len() == STEPS.len() && run.steps.iter().all(|step| step.ok);
    let cleanup = run.cleanup(keep, ok).await;
    let seconds = started.elapsed().as_secs_f64();
    Outcome { summary: run.summary(seconds), report: run.report(ok, seconds, cleanup) }
}

/// What the steps learn and later steps (and the cleanup) use.
struct Run {
    client: Client,
    timeout: Duration,
    agent_program: PathBuf,
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

impl Run {
    async fn all_steps(&mut self, progress: &mut dyn Progress) {
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
            if !self.record(step, started, outcome, progress) {
                return;
            }
        }
    }

    /// Records a step's outcome and tells `progress`; true when it passed.
    fn record(
        &mut self,
        (step, name): (&'static str, &'static str),
        started: Instant,
        outcome: anyhow::Result<String>,
        progress: &mut dyn Progress,
    ) -> bool {
        let ok = outcome.is_ok();
        let message = match outcome {
            Ok(message) => message,
            Err(err) => format!("{err:#}"),
        };
        let report = StepReport { step, name, ok, seconds: started.elapsed().as_secs_f64(), message };
        progress.step(&report);
        if !ok {
            if let Some(agent) = &self.agent {
                progress.agent_log(&agent.log_tail());
            }
        }
        self.steps.push(report);
        ok
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

    /// The workspace's assets manifest, checked against the template
    /// (steps C and D).
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

/// `PluginsInstalled=False InstallFailed: plugin install failed: …`
fn describe(condition: &Condition) -> String {
    format!("{}={} {}: {}", condition.kind, condition.status, condition.reason, condition.message)
}
