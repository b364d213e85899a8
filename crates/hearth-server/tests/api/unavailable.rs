//! The database going away gives 503 with Retry-After; Hearth recovers by
//! itself when it comes back. Postgres is reached through a TCP proxy that
//! the test can cut and restore.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use hearth_core::WorkspaceStatus;

use crate::harness::{eventually, heartbeat, test_settings, Engine, TestApp};

/// Forwards connections to the test Postgres while open; while cut, drops
/// every open connection and every new one.
pub(crate) struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, c) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy { port, open, connections }
    }

    /// A proxy to the test Postgres server.
    pub(crate) async fn to_test_postgres() -> Self {
        Self::start(test_postgres_host_port()).await
    }

    /// `url` (of a test database) through this proxy.
    pub(crate) fn url_of(&self, url: &str) -> String {
        url.replacen(&test_postgres_host_port(), &format!("127.0.0.1:{}", self.port), 1)
    }

    pub(crate) fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// `host:port` of the test Postgres server.
fn test_postgres_host_port() -> String {
    let admin_url = hearth_store_pg::testing::admin_url();
    admin_url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_with_retry_after_and_heals_by_itself() {
    let db = hearth_store_pg::testing::create_database().await;
    let admin_url = hearth_store_pg::testing::admin_url();
    let host_port = admin_url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let proxy = Proxy::start(host_port.clone()).await;
    let proxied = db.url.replacen(&host_port, &format!("127.0.0.1:{}", proxy.port), 1);
    let tmp = tempfile::tempdir().unwrap();
    let app = TestApp::start(test_settings(tmp.path().to_path_buf(), &proxied)).await;
    let (id, runtime, _) = app.create_registered("w").await;

    proxy.cut();
    for (method, path) in [("GET", format!("/workspaces/{id}")), ("GET", "/readyz".to_owned())] {
        let response = app
            .raw()
            .request(method.parse().unwrap(), format!("{}{path}", app.url))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers()["retry-after"], "5");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unavailable");
    }
    let err = runtime.heartbeat(&heartbeat(id)).await.unwrap_err();
    assert_eq!(err.status(), Some(503));

    proxy.restore();
    let healed =
        eventually(Duration::from_secs(20), || async { runtime.heartbeat(&heartbeat(id)).await.is_ok() }).await;
    assert!(healed, "heartbeats succeed again once the database is back");
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, hearth_core::WorkspaceStatus::Online);
    drop(app);
    drop(db);
}

crate::on_both_engines!(a_heartbeat_that_cannot_be_recorded_is_never_answered_2xx,);

/// What makes the database refuse Hearth's writes while its reads (and so
/// authentication) go on: another connection holding a lock on the
/// workspaces. On Postgres an `exclusive` table lock, which Hearth's row
/// locks and updates wait for until the database's `lock_timeout` (set
/// for this test's database) refuses them; on SQLite the write lock (as a
/// backup or a second process would hold it), which Hearth's writes wait
/// out (the busy timeout). (Cutting the connection instead refuses every
/// request at authentication, before any heartbeat path.)
enum Refusal {
    Postgres { url: String, lock: Option<hearth_store_pg::testing::sqlx::PgConnection> },
    Sqlite { url: String, lock: Option<hearth_store_sqlite::testing::sqlx::SqliteConnection> },
}

impl Refusal {
    async fn start(&mut self) {
        match self {
            Refusal::Postgres { url, lock } => {
                use hearth_store_pg::testing::sqlx::{self, Connection};
                let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql("begin; lock table workspaces in exclusive mode").execute(&mut connection).await.unwrap();
                *lock = Some(connection);
            }
            Refusal::Sqlite { url, lock } => {
                use hearth_store_sqlite::testing::sqlx::{self, Connection};
                let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::raw_sql("begin exclusive").execute(&mut connection).await.unwrap();
                *lock = Some(connection);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Refusal::Postgres { lock, .. } => {
                use hearth_store_pg::testing::sqlx::{self, Connection};
                let mut connection = lock.take().unwrap();
                sqlx::raw_sql("rollback").execute(&mut connection).await.unwrap();
                connection.close().await.unwrap();
            }
            Refusal::Sqlite { lock, .. } => {
                use hearth_store_sqlite::testing::sqlx::{self, Connection};
                let mut connection = lock.take().unwrap();
                sqlx::raw_sql("rollback").execute(&mut connection).await.unwrap();
                connection.close().await.unwrap();
            }
        }
    }
}

/// A heartbeat Hearth cannot record is answered 503 with `Retry-After`, on
/// each of its paths: the fast path (a remembered workspace's steady
/// heartbeat, whose batch write fails), the locked path (a heartbeat that
/// changes the row) and a first heartbeat (a transition). Afterwards the
/// database holds exactly what was acknowledged before: nothing was
/// answered 2xx and lost. (The seed's bug, `200 ok` after a failed write,
/// on any of these paths fails this test.)
async fn a_heartbeat_that_cannot_be_recorded_is_never_answered_2xx(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let (url, mut refusal, _pg) = match engine {
        Engine::Postgres => {
            use hearth_store_pg::testing::sqlx::{self, Connection};
            let db = hearth_store_pg::testing::create_database().await;
            let mut admin = sqlx::PgConnection::connect(&hearth_store_pg::testing::admin_url()).await.unwrap();
            let timeout = format!("alter database \"{}\" set lock_timeout = '500ms'", db.name);
            sqlx::raw_sql(&timeout).execute(&mut admin).await.unwrap();
            admin.close().await.unwrap();
            (db.url.clone(), Refusal::Postgres { url: db.url.clone(), lock: None }, Some(db))
        }
        Engine::Sqlite => {
            let url = format!("sqlite://{}", tmp.path().join("hearth.db").display());
            (url.clone(), Refusal::Sqlite { url, lock: None }, None)
        }
    };
    let app = TestApp::start(test_settings(tmp.path().to_path_buf(), &url)).await;
    // Remembered: two steady heartbeats (with the counts a liveness write
    // needs) put it on the fast path.
    let steady = |id| hearth_api::HeartbeatRequest { active_tasks: Some(0), ..heartbeat(id) };
    let (fast, fast_runtime, fast_token) = app.create_registered("fast").await;
    fast_runtime.heartbeat(&steady(fast)).await.unwrap();
    fast_runtime.heartbeat(&steady(fast)).await.unwrap();
    assert!(app.state.heartbeats.remembered() >= 1, "the fast path remembers it");
    let (locked, locked_runtime, locked_token) = app.create_registered("locked").await;
    locked_runtime.heartbeat(&heartbeat(locked)).await.unwrap();
    // Never heartbeated: provisioning, its token known (a peers call).
    let created = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "first".into(),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let (first, first_token) = (created.id, created.auth_token.unwrap());
    app.client(Some(&first_token)).peers(first, None).await.unwrap();
    let fast_before = app.admin.get_workspace(fast).await.unwrap();
    let locked_before = app.admin.get_workspace(locked).await.unwrap();

    refusal.start().await;
    let degrading = hearth_api::HeartbeatRequest { error_rate: Some(0.9), ..heartbeat(locked) };
    let sends = [
        ("fast path", &fast_token, steady(fast)),
        ("locked path", &locked_token, degrading),
        ("first heartbeat", &first_token, heartbeat(first)),
    ];
    let app = &app;
    let answers = futures_util::future::join_all(sends.iter().map(|(path, token, body)| async move {
        let response = app
            .raw()
            .post(format!("{}/registry/heartbeat", app.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (*path, response.status().as_u16(), response.headers().get("retry-after").cloned(), response.text().await)
    }))
    .await;
    refusal.end().await;
    // Every path is judged (a failure names each that answered wrongly).
    let wrong: Vec<String> = answers
        .into_iter()
        .filter_map(|(path, status, retry_after, body)| {
            let body = body.unwrap();
            let right = status == 503 && retry_after.is_some() && body.contains("\"unavailable\"");
            (!right).then(|| format!("{path}: {status} (retry-after {retry_after:?}) {body}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "heartbeats that could not be recorded, answered otherwise than 503:\n{}",
        wrong.join("\n")
    );

    // Nothing acknowledged is missing, and nothing unacknowledged appeared.
    let fast_after = app.admin.get_workspace(fast).await.unwrap();
    assert_eq!(fast_after.status, WorkspaceStatus::Online);
    assert!(fast_after.last_heartbeat_at >= fast_before.last_heartbeat_at);
    let locked_after = app.admin.get_workspace(locked).await.unwrap();
    assert_eq!(locked_after.status, locked_before.status, "the degrading heartbeat was refused, not half-written");
    assert_eq!(app.admin.get_workspace(first).await.unwrap().status, WorkspaceStatus::Provisioning);
    // And the paths work again.
    let healed =
        eventually(Duration::from_secs(20), || async { fast_runtime.heartbeat(&heartbeat(fast)).await.is_ok() }).await;
    assert!(healed);
}
