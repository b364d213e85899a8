//! Spawns a real Hearth server and provides a template with a plugin.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hearth_agent::{Agent, AgentConfig, StepOutcome};
use hearth_api::{CreateWorkspaceRequest, FileContent, ImportTemplateRequest, UploadPluginRequest, WorkspaceResponse};
use hearth_client::Client;
use hearth_core::WorkspaceId;
use hearth_server::{Application, Settings};
use serde_json::Value;
use tokio::sync::oneshot;

pub const CONFIG: &str = "name: seo-agent\nruntime: claude-code\nmodel: sonnet\nplugins:\n  - seo-all\n";
pub const PROMPT: &str = "You are an SEO agent.\n";
pub const NOTES: &str = "Notes with a non-ASCII, spaced and hashed name.\n";
pub const PLUGIN: &str = "seo-all";
pub const AUDIT: &str = "# Audit\n";

/// A binary "model": every byte value, so any text mangling would show.
pub fn model() -> Vec<u8> {
    (0..=255u8).cycle().take(4096).collect()
}

pub struct Server {
    pub url: String,
    pub addr: SocketAddr,
    pub admin: Client,
    pub admin_token: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// A server on a free port with its database in `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(data_dir: &Path, listen: SocketAddr) -> Self {
        let settings = Settings {
            listen,
            data_dir: data_dir.to_path_buf(),
            // Sweeps are not under test here; keep them out of the way.
            sweep_interval: Duration::from_secs(3600),
            // The server sets the agents' pace: fast, for tests.
            heartbeat_interval: Duration::from_millis(100),
            ..Settings::default()
        };
        let app = Application::build(settings).await.expect("the server starts");
        let addr = app.local_addr().unwrap();
        let url = format!("http://{addr}");
        let admin_token = hearth_server::startup::admin_token(&app.state().settings).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let admin = Client::new(&url, Some(admin_token.clone())).unwrap();
        Self { url, addr, admin, admin_token, shutdown: Some(tx), task: Some(task) }
    }

    /// Stops the server and waits until it has drained and released its port.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task).await.expect("drains").unwrap().unwrap();
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// Pushes a plugin from `(path, text)` files; returns its content hash.
    pub async fn push_plugin(&self, files: &[(&str, &str)]) -> String {
        let request = UploadPluginRequest {
            name: None,
            files: files.iter().map(|(p, t)| ((*p).to_owned(), FileContent::Text((*t).to_owned()))).collect(),
        };
        let body = self.post("/plugins", &serde_json::to_value(request).unwrap()).await;
        body["sha256"].as_str().unwrap().to_owned()
    }

    /// Pushes the `seo-all` plugin and the `seo` template declaring it.
    pub async fn push_fixture(&self) -> String {
        let sha = self
            .push_plugin(&[
                ("plugin.yaml", "name: seo-all\nversion: 1.2.0\ndescription: SEO tools\n"),
                ("skills/audit.md", AUDIT),
            ])
            .await;
        self.import_template("seo", CONFIG).await;
        sha
    }

    pub async fn import_template(&self, name: &str, config: &str) {
        let template = ImportTemplateRequest {
            name: name.into(),
            files: [
                ("config.yaml".to_owned(), FileContent::Text(config.into())),
                ("prompts/system.md".to_owned(), FileContent::Text(PROMPT.into())),
                // Needs per-segment percent-encoding on the way to the server.
                ("prompts/café notes #1.md".to_owned(), FileContent::Text(NOTES.into())),
                (
                    "model/weights.bin".to_owned(),
                    FileContent::Binary { base64: base64::engine::general_purpose::STANDARD.encode(model()) },
                ),
            ]
            .into(),
        };
        self.post("/templates/import", &serde_json::to_value(template).unwrap()).await;
    }

    /// Creates a workspace; with `issue_token` the answer carries its token.
    pub async fn create(&self, name: &str, template: Option<&str>, issue_token: bool) -> WorkspaceResponse {
        self.admin
            .create_workspace(&CreateWorkspaceRequest {
                name: name.into(),
                template: template.map(str::to_owned),
                issue_token: Some(issue_token),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    pub async fn workspace(&self, id: WorkspaceId) -> WorkspaceResponse {
        self.admin.get_workspace(id).await.unwrap()
    }

    /// `(status, reason, message)` of a condition.
    pub async fn condition(&self, id: WorkspaceId, kind: &str) -> (String, String, String) {
        let ws = self.workspace(id).await;
        let c = ws.conditions.iter().find(|c| c.kind == kind).unwrap_or_else(|| panic!("no {kind} condition"));
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    /// True once the condition exists with this status.
    pub async fn condition_is(&self, id: WorkspaceId, kind: &str, status: &str) -> bool {
        self.workspace(id).await.conditions.iter().any(|c| c.kind == kind && c.status == status)
    }

    /// Names of the workspace's events, oldest first.
    pub async fn events(&self, id: WorkspaceId) -> Vec<String> {
        self.admin.list_events(Some(0), Some(id), Some(1000)).await.unwrap().into_iter().map(|e| e.event).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Sends logs to the test's captured output (shown when a test fails);
/// `RUST_LOG` filters them, default `hearth_agent=debug`.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hearth_agent=debug"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// An agent configuration for tests: a 100 ms interval.
pub fn config(server: &str, id: WorkspaceId, dir: &Path, token: Option<&str>) -> AgentConfig {
    init_logs();
    let mut config = AgentConfig::new(server, id, dir);
    config.token = token.map(str::to_owned);
    config.heartbeat_interval = Duration::from_millis(100);
    config
}

/// Steps and insists that the workspace runs and nothing failed.
pub async fn step_ok(agent: &mut Agent) -> bool {
    match agent.step().await.unwrap() {
        StepOutcome::Running { converge, .. } => {
            assert!(converge.errors.is_empty(), "{:?}", converge.errors);
            converge.changed
        }
        other => panic!("expected a running step, got {other:?}"),
    }
}

/// The names in a directory, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
