//! The Docker backend: one container per workspace, through the Docker
//! Engine API on its Unix socket (`bollard`, the API version negotiated
//! with the daemon).
//!
//! - **Found by labels, never by memory.** Each container is named
//!   `hearth-<instance>-<workspace id>` and labelled with the manager, this
//!   Hearth's instance, the workspace and a hash of its spec. Every pass
//!   lists the instance's containers, so a restarted Hearth adopts what
//!   runs (no duplicate), reaps containers of workspaces it no longer has,
//!   and never touches a container it did not create.
//! - **`hearth agent` is the entrypoint**, the server's own binary mounted
//!   read-only at `/opt/hearth/hearth` (the image needs none; it needs the
//!   C library the binary links, such as any glibc image), pointed at a URL
//!   the container reaches on the host network.
//! - **The token is a 0600 file** uploaded into the stopped container
//!   before each start (a rotation without overlap), never an environment
//!   variable or a label: `docker inspect` does not show it.
//! - **A volume per workspace** (`hearth-<instance>-<workspace id>`) holds
//!   the agent directory: it survives pause, hibernate, restart and a new
//!   image; delete removes it with the container.
//! - **Limits by tier** (memory, CPU, pids; tier 0 a read-only root file
//!   system), never privileged, no new privileges, no Docker socket.
//! - **Restart policy `no`**: a container that exits is started again by
//!   the next pass, after a backoff while it keeps exiting soon after its
//!   starts ([`Restarts`]); a changed spec (image, tier) is a new container
//!   on the same volume.
//! - **An unreachable daemon is its own state**: the pass changes nothing
//!   and says so once, so a daemon restart is no restart storm.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use hearth_agent::contract::Launch;
use hearth_core::manifest::{TemplateConfig, TEMPLATE_CONFIG};
use hearth_core::{WorkspaceId, WorkspaceStatus};
use hearth_store::{Store, Workspace};
use tokio::sync::Mutex;

use super::{Desired, LogStream, Observed, Provisioner, RuntimeState};
use crate::auth;

/// Labels on every container and volume this backend creates.
pub const LABEL_MANAGER: &str = "dev.hearth.managed-by";
pub const LABEL_INSTANCE: &str = "dev.hearth.instance";
pub const LABEL_WORKSPACE: &str = "dev.hearth.workspace";
pub const LABEL_SPEC: &str = "dev.hearth.spec";
/// Where the agent binary is mounted, and the agent directory (the volume).
const AGENT_IN_CONTAINER: &str = "/opt/hearth/hearth";
const DIR_IN_CONTAINER: &str = "/workspace";
/// Longest wait before starting again a container that keeps exiting.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A container that ran this long since its start is healthy again: its
/// next exit is restarted at once (and not held back by earlier ones).
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// A workspace's run of unhealthy starts: when its container may start
/// again after it exits, how often in a row it was started (or failed to
/// be) without running [`HEALTHY_RUN`], and when it was last started.
#[derive(Debug, Clone, Copy)]
struct Restarts {
    until: Instant,
    failures: u32,
    started: Option<Instant>,
}

impl Restarts {
    /// The container ran long enough since its last start.
    fn healthy(&self) -> bool {
        self.started.is_some_and(|started| started.elapsed() >= HEALTHY_RUN)
    }
}

/// What one workspace's container is made of; its hash is a label, so a
/// change is seen by comparing labels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    image: String,
    tier: i32,
    server: String,
    agent: String,
}

impl Spec {
    fn hash(&self) -> String {
        let Spec { image, tier, server, agent } = self;
        let text = format!("{image}\n{tier}\n{server}\n{agent}");
        hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())[..8])
    }
}

/// Resource limits of a tier.
struct Limits {
    memory: i64,
    nano_cpus: i64,
    pids: i64,
    read_only_root: bool,
}

fn limits(tier: i32) -> Limits {
    const MIB: i64 = 1024 * 1024;
    const CPU: i64 = 1_000_000_000;
    match tier {
        i32::MIN..=0 => Limits { memory: 256 * MIB, nano_cpus: CPU / 2, pids: 128, read_only_root: true },
        1 => Limits { memory: 512 * MIB, nano_cpus: CPU, pids: 256, read_only_root: false },
        2 => Limits { memory: 2048 * MIB, nano_cpus: 2 * CPU, pids: 512, read_only_root: false },
        _ => Limits { memory: 4096 * MIB, nano_cpus: 4 * CPU, pids: 1024, read_only_root: false },
    }
}

/// The images workspaces run, by their template.
#[derive(Debug, Clone, Default)]
pub struct Images {
    pub by_runtime: BTreeMap<String, String>,
    pub default: Option<String>,
}

/// What the backend remembers between passes (never what runs: that is
/// listed each pass).
#[derive(Default)]
struct Memory {
    /// Containers started or failed recently ([`Restarts`]).
    backoff: HashMap<WorkspaceId, Restarts>,
    /// Parsed `config.yaml` by template assets digest.
    templates: HashMap<String, Option<TemplateConfig>>,
    /// The daemon did not answer the last pass (said once).
    unavailable: bool,
    /// Workspaces already said to have no image (said once each).
    no_image: std::collections::HashSet<WorkspaceId>,
}

pub struct DockerProvisioner {
    docker: Docker,
    instance: String,
    agent_binary: PathBuf,
    server_url: String,
    heartbeat_interval: Duration,
    stop_grace: Duration,
    images: Images,
    store: Arc<dyn Store>,
    auth: auth::Authenticator,
    memory: Mutex<Memory>,
    /// Told by the daemon's event stream that one of this instance's
    /// containers started, died or was removed ([`watch_events`]).
    events: Arc<tokio::sync::Notify>,
}

/// The parts of [`DockerProvisioner`] that are settings.
pub struct DockerConfig {
    pub instance: String,
    pub agent_binary: PathBuf,
    pub server_url: String,
    pub heartbeat_interval: Duration,
    pub stop_grace: Duration,
    pub images: Images,
}

/// One of this instance's containers, as listed.
struct Found {
    id: String,
    spec: Option<String>,
    state: ContainerSummaryStateEnum,
}

impl DockerProvisioner {
    /// Connects to the daemon on its Unix socket (`DOCKER_HOST` when set)
    /// and negotiates the API version.
    pub async fn connect(
        config: DockerConfig,
        store: Arc<dyn Store>,
        auth: auth::Authenticator,
    ) -> Result<Self, bollard::errors::Error> {
        let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
        let events = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_events(docker.clone(), config.instance.clone(), Arc::downgrade(&events)));
        Ok(Self {
            events,
            docker,
            instance: config.instance,
            agent_binary: config.agent_binary,
            server_url: config.server_url,
            heartbeat_interval: config.heartbeat_interval,
            stop_grace: config.stop_grace,
            images: config.images,
            store,
            auth,
            memory: Mutex::new(Memory::default()),
        })
    }

    /// The container's (and volume's) name of `workspace`.
    pub fn name(&self, workspace: WorkspaceId) -> String {
        format!("hearth-{}-{workspace}", self.instance)
    }

    /// This instance's containers by workspace.
    async fn list(&self) -> Result<HashMap<WorkspaceId, Found>, bollard::errors::Error> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_MANAGER}=hearth"), format!("{LABEL_INSTANCE}={}", self.instance)],
        )]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let mut found = HashMap::new();
        for container in self.docker.list_containers(Some(options)).await? {
            let labels = container.labels.unwrap_or_default();
            let Some(workspace) = labels.get(LABEL_WORKSPACE).and_then(|id| id.parse::<WorkspaceId>().ok()) else {
                continue;
            };
            let Some(id) = container.id else { continue };
            found.insert(
                workspace,
                Found {
                    id,
                    spec: labels.get(LABEL_SPEC).cloned(),
                    state: container.state.unwrap_or(ContainerSummaryStateEnum::EMPTY),
                },
            );
        }
        Ok(found)
    }

    /// The image `workspace` runs: its template's `image:`, else its
    /// runtime's (`--runtime-image`), else `--default-image`.
    async fn image(&self, workspace: &Workspace, memory: &mut Memory) -> Option<String> {
        let config = match &workspace.template {
            Some(name) => self.template_config(workspace, name, memory).await,
            None => None,
        };
        let from_template = config.as_ref().and_then(|c| c.image.clone());
        let runtime = workspace.runtime.clone().or_else(|| config.as_ref().and_then(|c| c.runtime.clone()));
        from_template
            .or_else(|| runtime.and_then(|runtime| self.images.by_runtime.get(&runtime).cloned()))
            .or_else(|| self.images.default.clone())
    }

    /// The workspace's template's `config.yaml`, parsed once per assets
    /// digest; `None` (logged) when it cannot be read.
    async fn template_config(&self, workspace: &Workspace, name: &str, memory: &mut Memory) -> Option<TemplateConfig> {
        let template = match self.store.get_template_by_name(workspace.org_id, name).await {
            Ok(template) => template,
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(workspace_id = %workspace.id, template = name, %error, "cannot read the workspace's template");
                return None;
            }
        };
        if let Some(config) = memory.templates.get(&template.assets_digest) {
            return config.clone();
        }
        let file = template.files.iter().find(|f| f.path == TEMPLATE_CONFIG)?;
        let config = match self.store.get_blob(&file.sha256).await {
            Ok(bytes) => TemplateConfig::parse(&String::from_utf8_lossy(&bytes)).ok(),
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(workspace_id = %workspace.id, template = name, %error, "cannot read the template's config.yaml");
                return None;
            }
        };
        memory.templates.insert(template.assets_digest.clone(), config.clone());
        config
    }

    fn spec(&self, workspace: &Workspace, image: String) -> Spec {
        Spec {
            image,
            tier: workspace.tier,
            server: self.server_url.clone(),
            agent: self.agent_binary.display().to_string(),
        }
    }

    /// One workspace that should run: creates, starts or leaves its
    /// container, and says what it is doing.
    async fn run_one(&self, desired: &Desired, found: Option<Found>, memory: &mut Memory) -> RuntimeState {
        let workspace = &desired.workspace;
        let id = workspace.id;
        let Some(image) = self.image(workspace, memory).await else {
            if memory.no_image.insert(id) {
                tracing::warn!(workspace_id = %id, template = ?workspace.template, runtime = ?workspace.runtime,
                    "no image for this workspace: its template names none, and no --runtime-image or --default-image applies");
            }
            return RuntimeState::ImageMissing { image: None };
        };
        memory.no_image.remove(&id);
        let spec = self.spec(workspace, image);
        let hash = spec.hash();
        let restarted = desired.restarted_at.is_some();
        let found = match found {
            Some(found) if found.spec.as_deref() != Some(hash.as_str()) || restarted => {
                tracing::info!(workspace_id = %id, restarted, "the container's spec changed or the workspace was restarted; replacing it (the volume stays)");
                self.remove_container(id, &found.id).await;
                None
            }
            other => other,
        };
        match found {
            Some(found) if found.state == ContainerSummaryStateEnum::RUNNING => {
                match memory.backoff.get_mut(&id) {
                    Some(restarts) if restarts.healthy() => {
                        memory.backoff.remove(&id);
                    }
                    // Running although its start failed (the daemon did
                    // start it): it counts as started now.
                    Some(restarts) if restarts.started.is_none() => restarts.started = Some(Instant::now()),
                    _ => {}
                }
                RuntimeState::Running
            }
            Some(found) => {
                if let Some(restarts) = memory.backoff.get(&id).filter(|r| !r.healthy()).copied() {
                    if Instant::now() < restarts.until {
                        let (exit_code, oom_killed) = self.last_exit(&found.id).await;
                        return RuntimeState::BackingOff { failures: restarts.failures, exit_code, oom_killed };
                    }
                }
                self.start(workspace, &found.id, memory).await
            }
            None => match self.create(workspace, &spec, &hash).await {
                Ok(container) => self.start(workspace, &container, memory).await,
                Err(CreateError::ImageMissing(image)) => {
                    if memory.no_image.insert(id) {
                        tracing::warn!(workspace_id = %id, image, "the workspace's image is not on this Docker daemon; build or load it");
                    }
                    RuntimeState::ImageMissing { image: Some(image) }
                }
                Err(CreateError::Docker(error)) => {
                    metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_create").increment(1);
                    tracing::error!(workspace_id = %id, %error, "cannot create the workspace's container");
                    self.back_off(id, memory)
                }
            },
        }
    }

    /// Gives the container a fresh token (a rotation with no overlap, as a
    /// 0600 file in the agent directory) and starts it.
    async fn start(&self, workspace: &Workspace, container: &str, memory: &mut Memory) -> RuntimeState {
        let id = workspace.id;
        let started = async {
            self.upload_token(workspace, container).await?;
            self.docker.start_container(container, None).await.map_err(StartError::Docker)
        };
        match started.await {
            Ok(()) => {
                tracing::info!(workspace_id = %id, container, "container started");
                // Counted as a failure until it has run HEALTHY_RUN.
                let failures = memory.backoff.get(&id).filter(|r| !r.healthy()).map_or(0, |r| r.failures) + 1;
                let now = Instant::now();
                memory.backoff.insert(id, Restarts { until: now + backoff(failures), failures, started: Some(now) });
                RuntimeState::Running
            }
            Err(error) => {
                metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_start").increment(1);
                tracing::error!(workspace_id = %id, container, %error, "cannot start the workspace's container");
                self.back_off(id, memory)
            }
        }
    }

    fn back_off(&self, id: WorkspaceId, memory: &mut Memory) -> RuntimeState {
        let failures = memory.backoff.get(&id).map_or(0, |r| r.failures) + 1;
        memory.backoff.insert(id, Restarts { until: Instant::now() + backoff(failures), failures, started: None });
        RuntimeState::BackingOff { failures, exit_code: None, oom_killed: false }
    }

    /// How a stopped container's last run ended: its exit code, and
    /// whether the kernel killed it for its memory limit.
    async fn last_exit(&self, container: &str) -> (Option<i64>, bool) {
        match self.docker.inspect_container(container, None).await {
            Ok(inspect) => {
                let state = inspect.state.unwrap_or_default();
                (state.exit_code, state.oom_killed.unwrap_or(false))
            }
            Err(error) => {
                tracing::debug!(container, %error, "cannot inspect a stopped container");
                (None, false)
            }
        }
    }

    async fn create(&self, workspace: &Workspace, spec: &Spec, hash: &str) -> Result<String, CreateError> {
        let name = self.name(workspace.id);
        let labels = HashMap::from([
            (LABEL_MANAGER.to_owned(), "hearth".to_owned()),
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_WORKSPACE.to_owned(), workspace.id.to_string()),
        ]);
        let volume =
            VolumeCreateRequest { name: Some(name.clone()), labels: Some(labels.clone()), ..Default::default() };
        self.docker.create_volume(volume).await.map_err(CreateError::Docker)?;
        let launch = Launch {
            server: spec.server.clone(),
            workspace: workspace.id,
            dir: DIR_IN_CONTAINER.into(),
            token_file: format!("{DIR_IN_CONTAINER}/{}", hearth_agent::TOKEN_FILE).into(),
            heartbeat_interval: self.heartbeat_interval,
            stop_grace: self.stop_grace / 2,
        };
        let limits = limits(spec.tier);
        let mut container_labels = labels;
        container_labels.insert(LABEL_SPEC.to_owned(), hash.to_owned());
        let host = HostConfig {
            binds: Some(vec![format!("{}:{AGENT_IN_CONTAINER}:ro", spec.agent), format!("{name}:{DIR_IN_CONTAINER}")]),
            network_mode: Some("host".into()),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
            memory: Some(limits.memory),
            nano_cpus: Some(limits.nano_cpus),
            pids_limit: Some(limits.pids),
            readonly_rootfs: Some(limits.read_only_root),
            tmpfs: limits.read_only_root.then(|| HashMap::from([("/tmp".to_owned(), "rw,size=64m".to_owned())])),
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![AGENT_IN_CONTAINER.to_owned()]),
            cmd: Some(launch.args().iter().map(|arg| arg.to_string_lossy().into_owned()).collect()),
            labels: Some(container_labels),
            working_dir: Some(DIR_IN_CONTAINER.into()),
            host_config: Some(host),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => {
                tracing::info!(workspace_id = %workspace.id, container = %created.id, image = %spec.image, tier = spec.tier, "container created");
                Ok(created.id)
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                Err(CreateError::ImageMissing(spec.image.clone()))
            }
            Err(error) => Err(CreateError::Docker(error)),
        }
    }

    async fn upload_token(&self, workspace: &Workspace, container: &str) -> Result<(), StartError> {
        let minted = auth::mint(workspace.org_id, workspace.id, Some("docker-provisioner".into()));
        let now = minted.record.now;
        self.store
            .issue_workspace_token(hearth_store::NewWorkspaceToken::new(workspace.id, minted.record), Some(now))
            .await
            .map_err(StartError::Store)?;
        self.auth.forget_workspace(workspace.id);
        let archive = token_archive(&minted.secret).map_err(StartError::Archive)?;
        let options = UploadToContainerOptionsBuilder::default().path(DIR_IN_CONTAINER).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(StartError::Docker)
    }

    /// Stops a running container with the grace (the agent stops its
    /// program and exits); the container and its volume stay.
    async fn stop_container(&self, id: WorkspaceId, container: &str) {
        let grace = i32::try_from(self.stop_grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(grace).build();
        match self.docker.stop_container(container, Some(options)).await {
            Ok(()) => tracing::info!(workspace_id = %id, container, "container stopped"),
            Err(error) => {
                metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_stop").increment(1);
                tracing::warn!(workspace_id = %id, container, %error, "cannot stop the workspace's container");
            }
        }
    }

    async fn remove_container(&self, id: WorkspaceId, container: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => tracing::info!(workspace_id = %id, container, "container removed"),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => {
                metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_remove").increment(1);
                tracing::warn!(workspace_id = %id, container, %error, "cannot remove the workspace's container");
            }
        }
    }

    /// Removes the workspace's container and its volume (a deleted or
    /// unknown workspace).
    async fn remove_all(&self, id: WorkspaceId, container: Option<&str>) {
        if let Some(container) = container {
            self.remove_container(id, container).await;
        }
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.docker.remove_volume(&self.name(id), Some(options)).await {
            Ok(()) => tracing::info!(workspace_id = %id, "volume removed"),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => {
                metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_remove_volume").increment(1);
                tracing::warn!(workspace_id = %id, %error, "cannot remove the workspace's volume");
            }
        }
    }
}

impl DockerProvisioner {
    /// Removes this instance's volumes whose workspace is removed or
    /// unknown (a container removed by hand left its volume behind).
    async fn reap_volumes(&self, desired: &[Desired]) {
        let live: std::collections::HashSet<String> = desired
            .iter()
            .filter(|d| d.workspace.status != WorkspaceStatus::Removed)
            .map(|d| d.workspace.id.to_string())
            .collect();
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_MANAGER}=hearth"), format!("{LABEL_INSTANCE}={}", self.instance)],
        )]);
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default().filters(&filters).build();
        let volumes = match self.docker.list_volumes(Some(options)).await {
            Ok(list) => list.volumes.unwrap_or_default(),
            Err(error) => {
                tracing::debug!(%error, "cannot list this instance's volumes; looking again next pass");
                return;
            }
        };
        for volume in volumes {
            let Some(workspace) = volume.labels.get(LABEL_WORKSPACE) else { continue };
            if live.contains(workspace) {
                continue;
            }
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            match self.docker.remove_volume(&volume.name, Some(options)).await {
                Ok(()) => tracing::info!(volume = %volume.name, "volume of a removed or unknown workspace removed"),
                // In use by a container not yet removed: the next pass.
                Err(error) => tracing::debug!(volume = %volume.name, %error, "cannot remove a volume yet"),
            }
        }
    }
}

enum CreateError {
    ImageMissing(String),
    Docker(bollard::errors::Error),
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot store the runtime's token: {0}")]
    Store(hearth_store::StoreError),
    #[error("cannot pack the runtime's token: {0}")]
    Archive(std::io::Error),
    #[error("{0}")]
    Docker(bollard::errors::Error),
}

/// A tar archive holding the agent's token file, mode 0600.
fn token_archive(secret: &str) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let content = format!("{secret}\n");
    header.set_size(content.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    archive.append_data(&mut header, hearth_agent::TOKEN_FILE, content.as_bytes())?;
    archive.into_inner()
}

/// Follows the daemon's event stream for this instance's containers and
/// wakes the provisioner on each (a container that dies is seen within a
/// second, not at the next timed pass). Reconnects after a second when the
/// stream ends (a daemon restart); the periodic list stays the truth, so a
/// missed event is a late pass, never a lost workspace. Ends when the
/// provisioner is dropped.
async fn watch_events(docker: Docker, instance: String, wake: std::sync::Weak<tokio::sync::Notify>) {
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("label".to_owned(), vec![format!("{LABEL_INSTANCE}={instance}")]),
        ("event".to_owned(), vec!["die".to_owned(), "oom".to_owned(), "destroy".to_owned()]),
    ]);
    loop {
        let options = bollard::query_parameters::EventsOptionsBuilder::default().filters(&filters).build();
        let mut stream = docker.events(Some(options));
        while let Some(event) = stream.next().await {
            let Some(wake) = wake.upgrade() else { return };
            match event {
                Ok(_) => wake.notify_one(),
                Err(error) => {
                    tracing::debug!(%error, "the Docker event stream broke; reconnecting");
                    break;
                }
            }
        }
        let Some(wake) = wake.upgrade() else { return };
        // The stream ended (the daemon went away): a pass relists.
        wake.notify_one();
        drop(wake);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF)
}

#[async_trait::async_trait]
impl Provisioner for DockerProvisioner {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn reconcile(&self, desired: &[Desired]) -> Vec<Observed> {
        let mut memory = self.memory.lock().await;
        let mut found = match self.list().await {
            Ok(found) => {
                if memory.unavailable {
                    tracing::info!("the Docker daemon answers again");
                    memory.unavailable = false;
                }
                found
            }
            Err(error) => {
                if !memory.unavailable {
                    metrics::counter!("hearth_provisioner_errors_total", "reason" => "docker_unavailable").increment(1);
                    tracing::warn!(%error, "the Docker daemon does not answer; changing nothing until it does");
                    memory.unavailable = true;
                }
                return desired
                    .iter()
                    .map(|d| Observed { workspace: d.workspace.id, state: RuntimeState::BackendUnavailable })
                    .collect();
            }
        };
        let mut observed = Vec::new();
        for d in desired {
            let id = d.workspace.id;
            let container = found.remove(&id);
            if d.workspace.status == WorkspaceStatus::Removed {
                if container.is_some() || d.run {
                    self.remove_all(id, container.as_ref().map(|c| c.id.as_str())).await;
                }
                continue;
            }
            if !d.run {
                if let Some(container) = container.filter(|c| c.state == ContainerSummaryStateEnum::RUNNING) {
                    self.stop_container(id, &container.id).await;
                }
                memory.backoff.remove(&id);
                observed.push(Observed { workspace: id, state: RuntimeState::Stopped });
                continue;
            }
            let state = self.run_one(d, container, &mut memory).await;
            observed.push(Observed { workspace: id, state });
        }
        // Containers of workspaces the store no longer has at all.
        for (id, container) in found {
            tracing::info!(workspace_id = %id, container = %container.id, "reaping the container of an unknown workspace");
            self.remove_all(id, Some(&container.id)).await;
        }
        self.reap_volumes(desired).await;
        observed
    }

    async fn changed(&self) {
        self.events.notified().await;
    }

    async fn shutdown(&self) {
        // Containers outlive the server: the next one adopts them (they are
        // found by their labels), like the process backend's agents.
        tracing::info!("leaving the workspaces' containers running for the next server to adopt");
    }

    async fn logs(&self, workspace: WorkspaceId, tail: usize, follow: bool) -> std::io::Result<Option<LogStream>> {
        let name = self.name(workspace);
        if let Err(error) = self.docker.inspect_container(&name, None).await {
            return match error {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => Ok(None),
                other => Err(std::io::Error::other(other)),
            };
        }
        let options =
            LogsOptionsBuilder::default().follow(follow).stdout(true).stderr(true).tail(&tail.to_string()).build();
        let stream = self
            .docker
            .logs(&name, Some(options))
            .map(|chunk| chunk.map(|output| output.into_bytes()).map_err(std::io::Error::other));
        Ok(Some(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test: a failed step should panic

    use super::*;

    #[test]
    fn lower_tiers_get_less_and_tier_zero_a_read_only_root() {
        let (zero, one, two, top) = (limits(0), limits(1), limits(2), limits(9));
        assert!(zero.read_only_root && !one.read_only_root && !top.read_only_root);
        assert!(zero.memory < one.memory && one.memory < two.memory && two.memory < top.memory);
        assert!(zero.nano_cpus < one.nano_cpus && zero.pids < one.pids);
    }

    #[test]
    fn the_token_archive_holds_one_private_file() {
        let archive = token_archive("s3cret").unwrap();
        let mut reader = tar::Archive::new(archive.as_slice());
        let mut entries = reader.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(hearth_agent::TOKEN_FILE));
        assert_eq!(entry.header().mode().unwrap(), 0o600);
        assert!(entries.next().is_none());
    }

    #[test]
    fn a_spec_hash_changes_with_the_image_and_the_tier() {
        let spec = Spec { image: "a:1".into(), tier: 1, server: "http://h:1".into(), agent: "/bin/hearth".into() };
        let other_image = Spec { image: "a:2".into(), ..spec.clone() };
        let other_tier = Spec { tier: 2, ..spec.clone() };
        assert_eq!(spec.hash(), spec.clone().hash());
        assert_ne!(spec.hash(), other_image.hash());
        assert_ne!(spec.hash(), other_tier.hash());
    }
}
