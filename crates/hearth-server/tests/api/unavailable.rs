//! The database going away gives 503 with Retry-After; Hearth recovers by
//! itself when it comes back. Postgres is reached through a TCP proxy that
//! the test can cut and restore.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::{eventually, heartbeat, test_settings, TestApp};

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
