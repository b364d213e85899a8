//! Provisioners start and stop workspace runtimes.
//!
//! `none`: runtimes are started elsewhere. `process`: Hearth runs one
//! `hearth agent` per workspace as a child process (`process.rs`).
//! `docker`: one container per workspace whose entrypoint is `hearth agent`
//! (`docker.rs`). Every
//! backend sits behind [`Provisioner`]: the desired set of runtimes in,
//! observations out, and no backend's type past it. Provisioning is
//! level-triggered like everything else: [`run`] hands the backend every
//! workspace with whether it should run (not paused, hibernated or
//! removed) and when an operator last restarted it, at start, whenever the
//! event bus says something changed, and every two seconds; the backend
//! compares that with what it supervises, starts what is missing
//! (restarting crashed runtimes with backoff), replaces restarted ones and
//! stops what should not run.

mod docker;
pub mod local_image;
mod log_file;
mod process;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_core::{EventKind, WorkspaceId, WorkspaceStatus};
use hearth_store::{EventQuery, Store, StoreResult, Workspace};
use tokio::sync::watch;

pub use docker::{DockerConfig, DockerProvisioner, Images};
pub use process::ProcessProvisioner;

use crate::bus::EventBus;

/// One workspace as a backend is handed it.
pub struct Desired {
    pub workspace: Workspace,
    /// Whether its runtime should run now.
    pub run: bool,
    /// When an operator last restarted it, if the event log says so since
    /// the last pass (the status may no longer show it: the old runtime's
    /// heartbeat can bring it online again first).
    pub restarted_at: Option<DateTime<Utc>>,
}

/// What a backend sees of one runtime it supervises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub workspace: WorkspaceId,
    pub state: RuntimeState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeState {
    Running,
    /// Exited or failed to start; started again after a backoff.
    BackingOff {
        failures: u32,
        /// How the last run ended, when it exited with a code.
        exit_code: Option<i64>,
        /// The kernel killed it for its memory limit.
        oom_killed: bool,
    },
    /// Not running because the workspace is paused or hibernated.
    Stopped,
    /// Started by an earlier server and still running; watched, not owned.
    Adopted,
    /// No image to run it in (`None`), or the image is not on the daemon.
    ImageMissing {
        image: Option<String>,
    },
    /// The backend (the Docker daemon) does not answer: nothing is changed
    /// until it does.
    BackendUnavailable,
}

/// A provisioner backend.
#[async_trait::async_trait]
pub trait Provisioner: Send + Sync {
    /// The backend's name (`--provisioner`), for logs.
    fn name(&self) -> &'static str;

    /// One level-triggered pass: make the runtimes match `desired` (every
    /// workspace the store holds), and say what each supervised runtime is
    /// doing now.
    async fn reconcile(&self, desired: &[Desired]) -> Vec<Observed>;

    /// Stops every runtime it supervises (server shutdown).
    async fn shutdown(&self);

    /// Completes when the backend saw something that deserves a pass now
    /// (a container died); never, for a backend that cannot tell.
    async fn changed(&self) {
        std::future::pending::<()>().await;
    }

    /// The log of `workspace`'s runtime: its last `tail` lines, then, with
    /// `follow`, what it writes next, until the stream is dropped. `None`
    /// when this backend has no log of it (it never started one). A
    /// crashed runtime's log stays readable.
    async fn logs(&self, workspace: WorkspaceId, tail: usize, follow: bool) -> std::io::Result<Option<LogStream>>;
}

/// A runtime's log, as bytes, in order.
pub type LogStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

pub(crate) fn should_run(status: WorkspaceStatus) -> bool {
    !matches!(status, WorkspaceStatus::Paused | WorkspaceStatus::Hibernated | WorkspaceStatus::Removed)
}

/// The restarts in the event log after `cursor` (advanced past what was
/// read): the latest restart of each workspace.
pub(crate) async fn restarts_since(
    store: &dyn Store,
    cursor: &mut i64,
) -> StoreResult<HashMap<WorkspaceId, DateTime<Utc>>> {
    let mut restarts: HashMap<WorkspaceId, DateTime<Utc>> = HashMap::new();
    loop {
        let query = EventQuery::after(*cursor);
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let page = store.list_events(query).await?;
        for event in &page {
            *cursor = (*cursor).max(event.seq);
            let restart =
                event.kind == EventKind::WorkspaceProvisioning && event.payload.get("restarted_from").is_some();
            if let (true, Some(id)) = (restart, event.workspace_id) {
                let at = restarts.entry(id).or_insert(event.timestamp);
                *at = (*at).max(event.timestamp);
            }
        }
        if page.len() < limit {
            return Ok(restarts);
        }
    }
}

/// What a pass saw of each runtime, as the workspace's `RuntimeRunning`
/// condition: written (through the lifecycle, with its event) only where
/// it differs from the stored one, so a steady fleet writes nothing. A
/// workspace that should not run and that the backend says nothing of is
/// `Stopped`.
async fn report(transitions: &crate::transitions::Transitions, desired: &[Desired], observed: &[Observed]) {
    use hearth_core::reconcile::{ConditionType, RuntimeObservation};
    let seen: HashMap<WorkspaceId, &RuntimeState> = observed.iter().map(|o| (o.workspace, &o.state)).collect();
    for d in desired {
        let workspace = &d.workspace;
        if workspace.status == WorkspaceStatus::Removed {
            continue;
        }
        let observation = match seen.get(&workspace.id) {
            Some(RuntimeState::Running | RuntimeState::Adopted) => RuntimeObservation::Running,
            Some(RuntimeState::BackingOff { failures, exit_code, oom_killed }) => {
                RuntimeObservation::Exited { exit_code: *exit_code, oom_killed: *oom_killed, restarts: *failures }
            }
            Some(RuntimeState::Stopped) => RuntimeObservation::Stopped,
            Some(RuntimeState::ImageMissing { image }) => RuntimeObservation::ImageMissing { image: image.clone() },
            Some(RuntimeState::BackendUnavailable) => RuntimeObservation::BackendUnavailable,
            None if !d.run => RuntimeObservation::Stopped,
            None => continue,
        };
        let (reason, message) = observation.verdict();
        let stored = workspace.conditions.iter().find(|c| c.kind == ConditionType::RuntimeRunning);
        if stored.is_some_and(|c| c.reason == reason && c.message == message) {
            continue;
        }
        if let Err(error) = transitions.apply(workspace.id, hearth_core::Input::RuntimeObserved(observation)).await {
            crate::metrics::store_error(&error);
            tracing::warn!(workspace_id = %workspace.id, %error, "cannot record what the provisioner saw of the runtime");
        }
    }
}

/// Runs provisioner passes at start, whenever events are published or the
/// backend saw a change ([`Provisioner::changed`]), and every two seconds,
/// until `shutdown`. Each pass also reads the restarts
/// the event log gained since the last one (an operator's restart must not
/// be lost when the old runtime's heartbeat brings the workspace online
/// again before the pass sees it provisioning).
pub async fn run(
    provisioner: Arc<dyn Provisioner>,
    store: Arc<dyn Store>,
    transitions: crate::transitions::Transitions,
    bus: EventBus,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wake = bus.subscribe();
    let mut cursor = *wake.borrow();
    // Restarts read but not yet reconciled (a failed pass keeps them).
    let mut restarts = HashMap::new();
    loop {
        wake.mark_unchanged();
        match restarts_since(&*store, &mut cursor).await {
            Ok(more) => restarts.extend(more),
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(%error, provisioner = provisioner.name(), "provisioner cannot read the event log; retrying");
            }
        }
        match store.list_workspaces(None, true).await {
            Ok(workspaces) => {
                let desired: Vec<Desired> = workspaces
                    .into_iter()
                    .map(|workspace| Desired {
                        run: should_run(workspace.status),
                        restarted_at: restarts.get(&workspace.id).copied(),
                        workspace,
                    })
                    .collect();
                let observed = provisioner.reconcile(&desired).await;
                let running = observed.iter().filter(|o| o.state == RuntimeState::Running).count();
                metrics::gauge!("hearth_runtimes_running").set(running as f64);
                report(&transitions, &desired, &observed).await;
                restarts.clear();
            }
            Err(error) => {
                crate::metrics::store_error(&error);
                tracing::warn!(%error, provisioner = provisioner.name(), "provisioner cannot list workspaces; retrying");
            }
        }
        tokio::select! {
            _ = wake.changed() => {}
            () = provisioner.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
