//! Spawns the application with a fresh database of the chosen engine.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use hearth_api::{CreateWorkspaceRequest, RegisterRequest, WorkspaceResponse};
use hearth_client::Client;
use hearth_core::WorkspaceId;
use hearth_server::state::AppState;
use hearth_server::{Application, Settings};
use secrecy::SecretString;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Generates `mod sqlite { #[tokio::test] … }` and `mod postgres { … }` for
/// each scenario `async fn name(engine: Engine)` in the calling module.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Engine::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Engine::Postgres).await }
            )*
        }
    };
}

pub enum DbGuard {
    Sqlite,
    Postgres(#[allow(dead_code)] hearth_store_pg::testing::TestDatabase),
}

pub struct TestApp {
    pub url: String,
    pub admin_token: String,
    /// A client holding the admin token.
    pub admin: Client,
    pub state: AppState,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
    _db: Option<DbGuard>,
}

/// Settings for tests: a free port, sweeps driven by hand.
pub fn test_settings(data_dir: PathBuf, database_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(SecretString::from(database_url.to_owned())),
        data_dir,
        sweep_interval: Duration::from_secs(3600),
        database_timeout: Duration::from_secs(1),
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    pub async fn spawn_with(engine: Engine, tweak: impl FnOnce(&mut Settings)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (database_url, guard) = match engine {
            Engine::Sqlite => (format!("sqlite://{}", tmp.path().join("hearth.db").display()), DbGuard::Sqlite),
            Engine::Postgres => {
                let db = hearth_store_pg::testing::create_database().await;
                (db.url.clone(), DbGuard::Postgres(db))
            }
        };
        let mut settings = test_settings(tmp.path().to_path_buf(), &database_url);
        tweak(&mut settings);
        let mut app = Self::start(settings).await;
        app._tmp = Some(tmp);
        app._db = Some(guard);
        app
    }

    /// Starts the application with exactly these settings.
    pub async fn start(settings: Settings) -> Self {
        let data_dir = settings.data_dir.clone();
        let app = Application::build(settings).await.expect("application builds");
        let url = format!("http://{}", app.local_addr().unwrap());
        let state = app.state().clone();
        let admin_token = hearth_server::startup::admin_token(&state.settings).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let admin = Client::new(&url, Some(admin_token.clone())).unwrap();
        TestApp {
            url,
            admin_token,
            admin,
            state,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
            _tmp: None,
            _db: None,
        }
    }

    /// Stops the server (as SIGTERM would) and waits until it has drained.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server drains within 20 s")
                .unwrap()
                .unwrap();
        }
    }

    /// Hands the temp dir and database to a successor app (restart tests).
    pub fn into_parts(mut self) -> (Option<tempfile::TempDir>, Option<DbGuard>) {
        (self._tmp.take(), self._db.take())
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token.map(str::to_owned)).unwrap()
    }

    pub fn raw(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn create(&self, name: &str) -> WorkspaceResponse {
        self.admin.create_workspace(&CreateWorkspaceRequest { name: name.into(), ..Default::default() }).await.unwrap()
    }

    /// Creates a workspace and registers its runtime; returns the id, a
    /// client holding the workspace token, and the token.
    pub async fn create_registered(&self, name: &str) -> (WorkspaceId, Client, String) {
        let ws = self.create(name).await;
        let anonymous = self.client(None);
        let registered = anonymous
            .register(&RegisterRequest { id: ws.id, url: "http://localhost:9000".into(), agent_card: None })
            .await
            .unwrap();
        let token = registered.auth_token.expect("bootstrap register mints a token");
        (ws.id, self.client(Some(&token)), token)
    }

    pub async fn events_of(&self, id: WorkspaceId) -> Vec<hearth_api::EventResponse> {
        self.admin.list_events(Some(0), Some(id), Some(1000)).await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
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

pub fn heartbeat(id: WorkspaceId) -> hearth_api::HeartbeatRequest {
    hearth_api::HeartbeatRequest { workspace_id: id, ..Default::default() }
}
