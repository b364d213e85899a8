//! [`Agent`]: one heartbeat-and-converge [`Agent::step`] at a time, and the
//! loop around it ([`Agent::run`]) that paces the steps and rides out
//! outages with backoff.

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_api::{
    AssetsManifest, Desired, DesiredPlugin, ErrorCode, HeartbeatRequest, InstalledPlugin, PluginError,
    RecordInstallRequest, RegisterRequest,
};
use hearth_client::{Client, ClientError};
use hearth_core::manifest::is_valid_plugin_name;
use hearth_core::{WorkspaceId, WorkspaceStatus};

use crate::backoff::{self, Backoff};
use crate::error::{describe, AgentError, Context, DeliveryError};
use crate::lock::{self, DirLock};
use crate::plugins::{self, LocalPlugin};
use crate::program::{Place, ProgramSpec, Supervisor};
use crate::{assets, fsutil, token, AgentConfig, Exit, ASSETS_DIR, TOKEN_FILE};

/// After a step that changed something on disk, the next heartbeat goes out
/// this soon, so Hearth learns of the delivery without waiting an interval.
const PROMPT_HEARTBEAT: Duration = Duration::from_millis(100);
/// The longest pause a server may ask for between heartbeats (a bad answer
/// cannot silence the runtime for longer).
const MAX_SERVER_PACE: Duration = Duration::from_secs(3600);

/// How long the secrets a program was started with are trusted before the
/// agent reads them again (and restarts the program if they changed).
const SECRETS_RECHECK: Duration = Duration::from_secs(300);

/// Mode of the agent directory when the agent creates it: it may hold the
/// token, so it is private to the agent's user.
const DIR_MODE: u32 = 0o700;

/// What one [`Agent::step`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Hearth answered the heartbeat and the workspace is running; the agent
    /// converged towards `desired` as far as it could.
    Running { status: WorkspaceStatus, converge: Converge },
    /// The workspace is paused or hibernated: the agent keeps heartbeating
    /// (so it learns when it resumes) but does no work.
    Stopped { status: WorkspaceStatus },
    /// The workspace was deleted; the agent must exit (with status 0).
    Removed,
}

/// What converging to `desired` did in one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converge {
    /// Something was delivered or installed on disk.
    pub changed: bool,
    /// What could not be done, one sentence each (also logged; plugin
    /// failures are also reported in the next heartbeat's `plugin_errors`).
    /// Everything is retried at the next heartbeat.
    pub errors: Vec<String>,
}

/// What is on disk, observed right before a heartbeat.
struct Observed {
    /// `None` when `<dir>/plugins/` could not be listed.
    plugins: Option<Vec<LocalPlugin>>,
}

/// A running agent for one workspace and directory. It holds the
/// directory's lock from [`Agent::new`] until it is dropped.
pub struct Agent {
    config: AgentConfig,
    client: Client,
    has_token: bool,
    registered: bool,
    started: Instant,
    /// The verified record of what `<dir>/assets/` holds.
    assets: Option<AssetsManifest>,
    /// Failures of the last install attempt, reported with the next heartbeat.
    plugin_errors: Vec<PluginError>,
    /// The stopped status last logged, so "work is stopped" is said once.
    stopped: Option<WorkspaceStatus>,
    /// Plugins whose local copy could not be hashed, already warned about.
    unreadable: BTreeSet<String>,
    /// When the server last said to send the next heartbeat (it sets the
    /// fleet's pace); `None` until it says, or from an older server.
    server_pace: Option<Duration>,
    /// The template's program, when it declares one.
    program: Supervisor,
    /// The delivered `config.yaml`, parsed, by the assets digest it came with.
    template: Option<(String, Option<hearth_core::manifest::TemplateConfig>)>,
    /// The workspace's secrets as last read, and when.
    secrets: Option<(Instant, std::collections::BTreeMap<String, String>)>,
    lock: DirLock,
}

impl Agent {
    /// Prepares the directory and takes its lock (failing at once with
    /// [`AgentError::Locked`] if another agent holds it), removes what an
    /// interrupted earlier run left behind, loads the token, and verifies
    /// the delivered assets. Nothing is sent to Hearth yet.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        if config.heartbeat_interval.is_zero() {
            return Err(AgentError::Config("the heartbeat interval must be more than zero".into()));
        }
        fsutil::create_dirs_with_mode(&config.dir, DIR_MODE)
            .map_err(|e| AgentError::io("create the agent directory", &config.dir, e))?;
        let lock = lock::acquire(&config.dir)?;
        let workspace = config.workspace;
        sweep_leftovers(&config.dir, workspace);
        let token = token::load(&config)?;
        let has_token = token.is_some();
        let roots = hearth_client::TlsRoots::from_option(config.ca_cert.as_deref())
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let client =
            Client::with_roots(&config.server, token, &roots).map_err(|e| AgentError::Config(e.to_string()))?;
        let assets = match assets::load_verified(&config.dir) {
            Ok(assets) => assets,
            Err(error) => {
                tracing::warn!(workspace_id = %workspace, error = describe(&error),
                    "the delivered assets do not match their record; reporting none so Hearth delivers them again");
                None
            }
        };
        let program = Supervisor::new(workspace, config.dir.clone(), config.stop_grace);
        Ok(Self {
            program,
            template: None,
            secrets: None,
            config,
            client,
            has_token,
            registered: false,
            started: Instant::now(),
            assets,
            plugin_errors: Vec::new(),
            stopped: None,
            unreadable: BTreeSet::new(),
            server_pace: None,
            lock,
        })
    }

    /// The workspace this agent speaks for.
    pub fn workspace(&self) -> WorkspaceId {
        self.config.workspace
    }

    /// The agent directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// One round: register if that has not succeeded yet, heartbeat with
    /// what is on disk, and converge to the `desired` state of the answer.
    ///
    /// Retryable failures ([`AgentError::is_retryable`]) are returned
    /// without being logged; [`Agent::run`] logs each once.
    pub async fn step(&mut self) -> Result<StepOutcome, AgentError> {
        if !self.registered {
            if let Some(outcome) = self.register().await? {
                return Ok(outcome);
            }
        }
        let observed = self.observe().await;
        let request = self.heartbeat_request(&observed);
        let response = match self.client.heartbeat(&request).await {
            Ok(response) => response,
            Err(err) => return self.heartbeat_failed(err).await,
        };
        let status = response.workspace_status;
        self.server_pace = response
            .next_heartbeat_seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(MAX_SERVER_PACE.as_secs_f64())));
        let id = self.workspace();
        if status.is_stopped() {
            if self.stopped != Some(status) {
                tracing::info!(workspace_id = %id, %status,
                    "the workspace is {status}: work is stopped; heartbeating until it resumes");
                self.stopped = Some(status);
            }
            self.program.stop().await;
            return Ok(StepOutcome::Stopped { status });
        }
        if let Some(previous) = self.stopped.take() {
            tracing::info!(workspace_id = %id, %status, %previous, "the workspace runs again; resuming work");
        }
        let converge = self.converge(&response.desired, &observed).await;
        self.supervise(&response.desired, &converge).await;
        Ok(StepOutcome::Running { status, converge })
    }

    /// Runs the template's program once delivery is complete and verified
    /// (the assets' digest is the desired one, every desired plugin is
    /// installed), with what was delivered; keeps what runs running while a
    /// new delivery is under way.
    async fn supervise(&mut self, desired: &Desired, converge: &Converge) {
        let id = self.workspace();
        let Some(digest) = desired.assets_digest.clone() else {
            self.program.none_wanted().await;
            return;
        };
        let complete = converge.errors.is_empty()
            && self.assets.as_ref().is_some_and(|m| m.digest == digest)
            && desired.plugins.iter().all(|p| p.sha256.is_some());
        if !complete {
            self.program.waiting();
            return;
        }
        let Some(config) = self.template_config(&digest) else {
            self.program.none_wanted().await;
            return;
        };
        if config.command.is_none() {
            self.program.none_wanted().await;
            return;
        }
        let secrets = match self.secrets().await {
            Ok(secrets) => secrets,
            Err(error) => {
                tracing::warn!(workspace_id = %id, %error,
                    "cannot read the workspace's secrets; the program starts (or restarts) once they are read");
                self.program.waiting();
                return;
            }
        };
        let plugins: Vec<String> =
            desired.plugins.iter().map(|p| format!("{}={}", p.name, p.sha256.as_deref().unwrap_or(""))).collect();
        let delivered = format!("{digest} {}", plugins.join(" "));
        let place = Place { workspace: id, server: &self.config.server, dir: &self.config.dir };
        if let Some(spec) = ProgramSpec::new(&config, &secrets, &place, delivered) {
            self.program.want(spec).await;
        }
    }

    /// The delivered `config.yaml`, parsed once per assets digest; `None`
    /// (logged) when it is missing or refused.
    fn template_config(&mut self, digest: &str) -> Option<hearth_core::manifest::TemplateConfig> {
        if let Some((read_for, config)) = &self.template {
            if read_for == digest {
                return config.clone();
            }
        }
        let path = self.config.dir.join(ASSETS_DIR).join(hearth_core::manifest::TEMPLATE_CONFIG);
        let config = match fs::read_to_string(&path) {
            Ok(text) => match hearth_core::manifest::TemplateConfig::parse(&text) {
                Ok(config) => Some(config),
                Err(error) => {
                    tracing::warn!(workspace_id = %self.workspace(), %error, "the delivered config.yaml is refused; no program runs");
                    None
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                tracing::warn!(workspace_id = %self.workspace(), path = %path.display(), %error,
                    "cannot read the delivered config.yaml; no program runs");
                None
            }
        };
        self.template = Some((digest.to_owned(), config.clone()));
        config
    }

    /// The workspace's secrets (org scope overlaid by workspace scope),
    /// read again after [`SECRETS_RECHECK`].
    async fn secrets(&mut self) -> Result<std::collections::BTreeMap<String, String>, ClientError> {
        if let Some((read_at, secrets)) = &self.secrets {
            if read_at.elapsed() < SECRETS_RECHECK {
                return Ok(secrets.clone());
            }
        }
        let secrets = self.client.secret_values(self.workspace()).await?;
        self.secrets = Some((Instant::now(), secrets.clone()));
        Ok(secrets)
    }

    /// Steps until the workspace is removed, `shutdown` completes, or a
    /// failure retrying cannot fix. Paces steps by the heartbeat interval
    /// (promptly after a step that changed something) and retries
    /// retryable failures with capped exponential backoff and full jitter.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<Exit, AgentError> {
        let result = self.rounds(shutdown).await;
        // However the agent ends, the program does not outlive it.
        self.program.stop().await;
        result
    }

    async fn rounds(&mut self, shutdown: impl Future<Output = ()>) -> Result<Exit, AgentError> {
        tokio::pin!(shutdown);
        let id = self.workspace();
        let interval = self.config.heartbeat_interval;
        tracing::info!(workspace_id = %id, server = %self.config.server, dir = %self.config.dir.display(),
            interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX), "agent started");
        let mut backoff = Backoff::new(backoff::BASE, backoff::CAP);
        loop {
            // A signal is honoured between steps, never inside one: a step's
            // writes (staged installs, atomic renames, the install report)
            // finish first. (Polling here also registers the signal handler.)
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = std::future::ready(()) => {}
            }
            self.check_lock()?;
            self.program.tick().await;
            let delay = match self.step().await {
                Ok(StepOutcome::Removed) => {
                    tracing::info!(workspace_id = %id, "the workspace was removed; the agent exits");
                    return Ok(Exit::Removed);
                }
                Ok(outcome) => {
                    if backoff.failures() > 0 {
                        tracing::info!(workspace_id = %id, failures = backoff.failures(), "Hearth answers again");
                    }
                    backoff.reset();
                    // The server's pace wins over the configured interval.
                    let pace = self.server_pace.unwrap_or(interval);
                    match outcome {
                        StepOutcome::Running { converge, .. } if converge.changed => PROMPT_HEARTBEAT.min(pace),
                        _ => pace,
                    }
                }
                Err(err) if err.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(workspace_id = %id, error = %err, attempt = backoff.failures(),
                            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            "Hearth is unavailable; retrying with backoff");
                    delay
                }
                Err(err) => return Err(err),
            };
            // The program's exit (or its due restart) ends the wait early,
            // so the next heartbeat reports it at once.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
                () = self.program.wake() => {}
            }
        }
        tracing::info!(workspace_id = %id, "shutting down");
        Ok(Exit::Shutdown)
    }

    /// Fails with [`AgentError::LockLost`] once `<dir>/agent.lock` is no
    /// longer the file this agent locked. Checked before every step, so an
    /// agent whose directory was removed stops within a heartbeat interval
    /// (or one backoff delay, at most [`backoff::CAP`], while Hearth is
    /// away) instead of serving a directory that is gone while a second
    /// agent locks the one made again. A lock that cannot be looked at is
    /// logged and kept: not knowing is no reason to stop.
    fn check_lock(&self) -> Result<(), AgentError> {
        match self.lock.is_current() {
            Ok(true) => Ok(()),
            Ok(false) => Err(AgentError::LockLost { path: self.lock.path().to_path_buf() }),
            Err(error) => {
                tracing::warn!(workspace_id = %self.workspace(), path = %self.lock.path().display(), %error,
                    "cannot check that this agent's lock file is still in place; carrying on");
                Ok(())
            }
        }
    }

    /// Registers the runtime (the bootstrap when there is no token yet).
    /// `Some` ends the step early with that outcome.
    async fn register(&mut self) -> Result<Option<StepOutcome>, AgentError> {
        let id = self.workspace();
        let request = RegisterRequest {
            id,
            url: self.config.url.clone(),
            agent_card: Some(serde_json::json!({"runtime": "hearth-agent", "version": env!("CARGO_PKG_VERSION")})),
        };
        let err = match self.client.register(&request).await {
            Ok(response) => {
                if self.has_token {
                    tracing::info!(workspace_id = %id, url = %self.config.url, "registered");
                } else {
                    let Some(minted) = response.auth_token else {
                        let why = "Hearth accepted the bootstrap registration but sent no auth_token";
                        return Err(AgentError::Unavailable {
                            what: "registering",
                            source: ClientError::Decode(why.into()),
                        });
                    };
                    let path = token::save(&self.config.dir, &minted)?;
                    self.client = self.client.with_token(Some(minted));
                    self.has_token = true;
                    tracing::info!(workspace_id = %id, url = %self.config.url, token_file = %path.display(),
                        "registered; saved the minted token");
                }
                self.registered = true;
                return Ok(None);
            }
            Err(err) => err,
        };
        if let Some(fatal) = protocol_mismatch(&err) {
            return Err(fatal);
        }
        match err.status() {
            Some(401) if self.has_token => Err(AgentError::TokenRejected { workspace: id, message: api_message(&err) }),
            Some(401) => Err(AgentError::TokenRequired { workspace: id, token_file: self.config.dir.join(TOKEN_FILE) }),
            Some(404) => Err(AgentError::UnknownWorkspace { workspace: id, server: self.config.server.clone() }),
            Some(410) => Ok(Some(StepOutcome::Removed)),
            Some(409) if err.code() == Some(ErrorCode::WorkspaceStopped) => {
                // Registration is retried at every step until the workspace
                // runs again; meanwhile a token-holding agent heartbeats, which
                // is how it learns that the workspace resumed.
                let status = stopped_status(&err);
                if self.stopped.is_none() {
                    tracing::info!(workspace_id = %id, %status, "registration refused while the workspace is {status}");
                }
                if self.has_token {
                    Ok(None)
                } else {
                    self.stopped = Some(status);
                    Ok(Some(StepOutcome::Stopped { status }))
                }
            }
            Some(400) => Err(AgentError::Config(format!(
                "Hearth refused to register workspace {id} with URL {}: {}",
                self.config.url,
                api_message(&err)
            ))),
            _ => Err(AgentError::Unavailable { what: "registering", source: err }),
        }
    }

    /// What is on disk now. Problems are logged and make the report
    /// smaller (never larger): what cannot be verified is not claimed.
    async fn observe(&mut self) -> Observed {
        let id = self.workspace();
        if let Some(manifest) = &self.assets {
            if let Some(problem) = assets::quick_check(&self.config.dir, manifest) {
                tracing::warn!(workspace_id = %id, %problem,
                    "the delivered assets changed on disk; reporting none so Hearth delivers them again");
                self.assets = None;
            }
        }
        let dir = self.config.dir.clone();
        let plugins = match fsutil::blocking(move || Ok(plugins::scan(&dir)?)).await {
            Ok(plugins) => Some(plugins),
            Err(error) => {
                tracing::warn!(workspace_id = %id, error = describe(&error),
                    "cannot list the installed plugins; not reporting them this time");
                None
            }
        };
        for plugin in plugins.iter().flatten() {
            match &plugin.sha256 {
                Err(error) if self.unreadable.insert(plugin.name.clone()) => {
                    tracing::warn!(workspace_id = %id, plugin = %plugin.name, %error,
                        "cannot hash the local copy of a plugin; not reporting it as installed");
                }
                Err(_) => {}
                Ok(_) => {
                    self.unreadable.remove(&plugin.name);
                }
            }
        }
        Observed { plugins }
    }

    fn heartbeat_request(&self, observed: &Observed) -> HeartbeatRequest {
        let installed = observed.plugins.as_ref().map(|plugins| {
            plugins
                .iter()
                .filter_map(|p| {
                    let sha256 = p.sha256.as_ref().ok()?;
                    Some(InstalledPlugin { name: p.name.clone(), sha256: Some(sha256.clone()) })
                })
                .collect()
        });
        HeartbeatRequest {
            workspace_id: self.workspace(),
            active_tasks: Some(0),
            uptime_seconds: Some(i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)),
            runtime_state: Some(String::new()),
            assets_digest: self.assets.as_ref().map(|m| m.digest.clone()),
            installed_plugins: installed,
            plugin_errors: (!self.plugin_errors.is_empty()).then(|| self.plugin_errors.clone()),
            program: self.program.status(),
            ..HeartbeatRequest::default()
        }
    }

    async fn heartbeat_failed(&self, err: ClientError) -> Result<StepOutcome, AgentError> {
        let id = self.workspace();
        if let Some(fatal) = protocol_mismatch(&err) {
            return Err(fatal);
        }
        match err.status() {
            Some(401) => Err(AgentError::TokenRevoked { workspace: id, message: api_message(&err) }),
            Some(410) => Ok(StepOutcome::Removed),
            // A 404 is either "deleted" or "never existed"; `/state` tells
            // them apart (PROTOCOL.md: it answers `deleted: true` after a
            // delete, also to the workspace's own token).
            Some(404) => match self.client.workspace_state(id).await {
                Ok(state) if state.deleted => Ok(StepOutcome::Removed),
                Err(state_err) if state_err.status() == Some(404) => {
                    Err(AgentError::UnknownWorkspace { workspace: id, server: self.config.server.clone() })
                }
                _ => Err(AgentError::Unavailable { what: "heartbeat", source: err }),
            },
            _ => Err(AgentError::Unavailable { what: "heartbeat", source: err }),
        }
    }

    /// Brings the directory to `desired`: assets first, then every desired
    /// plugin that is missing or differs. Each item fails on its own; what
    /// failed is retried at the next heartbeat.
    async fn converge(&mut self, desired: &Desired, observed: &Observed) -> Converge {
        let id = self.workspace();
        let mut converge = Converge::default();
        if let Some(want) = &desired.assets_digest {
            let have = self.assets.as_ref().map(|m| m.digest.as_str());
            if have != Some(want.as_str()) {
                match assets::sync(&self.client, id, &self.config.dir, want).await {
                    Ok(manifest) => {
                        self.assets = Some(manifest);
                        converge.changed = true;
                    }
                    Err(error) => {
                        let message = format!("assets: {}", describe(&error));
                        tracing::warn!(workspace_id = %id, error = %message,
                            "could not deliver the assets; retrying at the next heartbeat");
                        converge.errors.push(message);
                    }
                }
            }
        }

        // Plugins present on disk but no longer desired are left alone: the
        // protocol only says what must be present, and deleting a directory
        // the agent cannot prove it owns (an operator may have put it there)
        // is riskier than keeping it. They are still reported, so the extra
        // plugin is visible in the workspace's installed list.
        let mut errors = Vec::new();
        for plugin in &desired.plugins {
            // A plugin Hearth's registry does not hold cannot be installed;
            // the control plane already says so (`NotInRegistry`).
            let Some(sha256) = plugin.sha256.as_deref() else {
                tracing::debug!(workspace_id = %id, plugin = %plugin.name, "desired plugin is not in Hearth's registry");
                continue;
            };
            let local = observed.plugins.iter().flatten().find(|p| p.name == plugin.name);
            let current = local.is_some_and(|p| p.sha256.as_ref().is_ok_and(|sha| sha.eq_ignore_ascii_case(sha256)));
            if current {
                continue;
            }
            match self.install(plugin, sha256, local.is_some()).await {
                Ok(()) => converge.changed = true,
                Err(error) => {
                    let message = describe(&error);
                    tracing::warn!(workspace_id = %id, plugin = %plugin.name, error = %message,
                        "could not install a plugin; retrying at the next heartbeat");
                    errors.push(PluginError { name: plugin.name.clone(), error: message.clone() });
                    converge.errors.push(message);
                }
            }
        }
        self.plugin_errors = errors;
        converge
    }

    /// Downloads, verifies and installs one plugin, then tells Hearth.
    async fn install(&self, plugin: &DesiredPlugin, sha256: &str, replacing: bool) -> Result<(), DeliveryError> {
        let id = self.workspace();
        let name = plugin.name.clone();
        if !is_valid_plugin_name(&name) {
            let why = format!("plugin {name:?}: not a valid plugin name, so it is not installed");
            return Err(DeliveryError::Refused(why));
        }
        if !assets::is_sha256_hex(sha256) {
            return Err(DeliveryError::Refused(format!("plugin {name}: the desired hash {sha256:?} is not a sha256")));
        }
        let (tarball, served) =
            self.client.download_plugin(id, &name).await.context(|| format!("plugin {name}: cannot download it"))?;
        let dir = self.config.dir.clone();
        let expected = sha256.to_owned();
        let limits = self.config.limits;
        let task_name = name.clone();
        fsutil::blocking(move || {
            let request = plugins::Install {
                workspace: id,
                dir: &dir,
                name: &task_name,
                expected: &expected,
                served: served.as_deref(),
                limits: &limits,
            };
            plugins::install(&request, &tarball)
        })
        .await?;
        tracing::info!(workspace_id = %id, plugin = %name, version = plugin.version.as_deref().unwrap_or("?"),
            sha256, replaced = replacing, "plugin installed");
        // The next heartbeat reports the install anyway; recording it now
        // lets the control plane see it without waiting for that.
        let report = RecordInstallRequest { source: format!("local://{name}"), sha256: Some(sha256.to_owned()) };
        if let Err(error) = self.client.record_install(id, &report).await {
            tracing::warn!(workspace_id = %id, plugin = %name, %error,
                "could not record the install with Hearth; the next heartbeat reports it");
        }
        Ok(())
    }
}

/// A server that does not speak this agent's protocol version: retrying
/// cannot help, so the agent stops and says which side to upgrade.
fn protocol_mismatch(err: &ClientError) -> Option<AgentError> {
    matches!(err.code(), Some(ErrorCode::ProtocolTooOld | ErrorCode::ProtocolTooNew))
        .then(|| AgentError::Config(format!("Hearth and this agent share no protocol version: {}", api_message(err))))
}

/// The human message of an API error (the whole sentence otherwise).
fn api_message(err: &ClientError) -> String {
    err.api_message().map_or_else(|| err.to_string(), str::to_owned)
}

/// The status a 409 `workspace_stopped` answer gives (its typed `status`);
/// paused when an older server sent none.
fn stopped_status(err: &ClientError) -> WorkspaceStatus {
    err.workspace_status().filter(|status| status.is_stopped()).unwrap_or(WorkspaceStatus::Paused)
}

/// Removes what an interrupted earlier run left in the agent directory:
/// staging trees, replaced versions not yet deleted, temporary files of
/// atomic writes. Safe because this agent holds the lock, so nothing else
/// is working in the directory.
fn sweep_leftovers(dir: &Path, workspace: WorkspaceId) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(workspace_id = %workspace, dir = %dir.display(), %error,
                "cannot list the agent directory to remove leftovers");
            return;
        }
    };
    let unpack_prefix = format!(".{}", plugins::STAGING_PREFIX);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = [assets::STAGING_PREFIX, assets::OLD_PREFIX, plugins::STAGING_PREFIX, plugins::OLD_PREFIX]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || name.starts_with(&unpack_prefix)
            || (name.starts_with('.') && name.contains(".tmp-"));
        if !leftover {
            continue;
        }
        let path = entry.path();
        match fsutil::remove_path(&path) {
            Ok(()) => tracing::info!(workspace_id = %workspace, path = %path.display(),
                "removed a leftover of an interrupted run"),
            Err(error) => tracing::warn!(workspace_id = %workspace, path = %path.display(), %error,
                "cannot remove a leftover of an interrupted run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_statuses_are_read_from_the_typed_body_not_the_message() {
        let err = |status: Option<WorkspaceStatus>, message: &str| ClientError::Api {
            status: 409,
            body: Box::new(hearth_api::ApiErrorBody {
                status,
                ..hearth_api::ApiErrorBody::new(ErrorCode::WorkspaceStopped, message)
            }),
        };
        assert_eq!(stopped_status(&err(Some(WorkspaceStatus::Hibernated), "whatever")), WorkspaceStatus::Hibernated);
        assert_eq!(
            stopped_status(&err(Some(WorkspaceStatus::Paused), "workspace is hibernated")),
            WorkspaceStatus::Paused
        );
        assert_eq!(stopped_status(&err(None, "workspace is hibernated")), WorkspaceStatus::Paused);
    }

    #[test]
    fn a_protocol_mismatch_is_fatal_and_says_which_side_to_upgrade() {
        let err = |code| ClientError::Api {
            status: 426,
            body: Box::new(hearth_api::ApiErrorBody::new(code, "protocol version 2 is too old; upgrade the runtime")),
        };
        let fatal = protocol_mismatch(&err(ErrorCode::ProtocolTooOld)).expect("fatal");
        assert!(!fatal.is_retryable());
        assert!(fatal.to_string().contains("upgrade the runtime"), "{fatal}");
        assert!(protocol_mismatch(&err(ErrorCode::ProtocolTooNew)).is_some());
        assert!(protocol_mismatch(&err(ErrorCode::Unavailable)).is_none(), "other errors keep their handling");
    }

    #[test]
    fn leftovers_are_swept_and_everything_else_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".assets.staging-1",
            ".assets.old-2",
            ".plugin-staging-seo-3",
            "..plugin-staging-seo-3.unpack-x",
            ".plugin-old-seo-4",
            ".auth_token.tmp-5",
        ] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        for name in ["assets", "plugins"] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        for name in [".auth_token", "assets.manifest.json", "agent.lock", "agent.log"] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        sweep_leftovers(dir.path(), WorkspaceId::new_random());
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [".auth_token", "agent.lock", "agent.log", "assets", "assets.manifest.json", "plugins"]);
    }
}
