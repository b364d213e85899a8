//! Outages of the control plane itself (issue 22): Hearth down, or its
//! database unreachable, for longer than the liveness TTL. Runtimes keep
//! their own pace throughout (their heartbeats fail meanwhile); when the
//! control plane is back, no live workspace goes offline, and the runtimes
//! that died meanwhile go offline a TTL after the recovery, their events
//! saying the offline came after an outage. One replica down while another
//! runs is no outage at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};

use crate::harness::{eventually, heartbeat, test_settings, Engine, TestApp};
use crate::unavailable::Proxy;

crate::on_both_engines!(a_control_plane_down_longer_than_the_ttl_flaps_no_live_workspace,);

/// The liveness TTL of these tests, and the runtimes' own pace (a third of
/// it, as a real fleet: 30 s pace, 90 s TTL).
const TTL: Duration = Duration::from_secs(3);
const PACE: Duration = Duration::from_secs(1);
/// Sweeps run this often (so an outage is a gap of 3 s and more).
const SWEEP: Duration = Duration::from_millis(500);
/// How long the control plane is away: three TTLs.
const AWAY: Duration = Duration::from_secs(9);

fn outage_settings(settings: &mut hearth_server::Settings, port: u16) {
    settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
    settings.liveness_ttl = TTL;
    settings.sweep_interval = SWEEP;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A runtime that heartbeats at its own pace, from its own phase, whatever
/// the answer, until it dies (`alive` false) or the test ends.
struct Runtime {
    id: WorkspaceId,
    alive: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Runtime {
    fn start(url: &str, id: WorkspaceId, token: &str, phase: Duration) -> Self {
        let client = Client::new(url, Some(token.to_owned())).unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let beating = alive.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            while beating.load(Ordering::SeqCst) {
                // While the control plane is away this fails: the point.
                let _ = client.heartbeat(&heartbeat(id)).await;
                tokio::time::sleep(PACE).await;
            }
        });
        Runtime { id, alive, task }
    }

    fn die(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `live` runtimes spread over the pace and `dead` ones, all online.
async fn fleet(app: &TestApp, live: usize, dead: usize) -> (Vec<Runtime>, Vec<Runtime>) {
    let mut runtimes = Vec::new();
    for i in 0..live + dead {
        let (id, _, token) = app.create_registered(&format!("w{i}")).await;
        let phase = PACE.mul_f64(i as f64 / (live + dead) as f64);
        runtimes.push(Runtime::start(&app.url, id, &token, phase));
    }
    let dead = runtimes.split_off(live);
    (runtimes, dead)
}

/// The events `WORKSPACE_OFFLINE` of `id`.
async fn offline_events(app: &TestApp, id: WorkspaceId) -> Vec<serde_json::Value> {
    app.events_of(id).await.into_iter().filter(|e| e.event == "WORKSPACE_OFFLINE").map(|e| e.payload).collect()
}

/// After the control plane is back: the dead go offline within about a
/// TTL, saying it was after an outage; no live one ever went offline.
async fn check_recovery(app: &TestApp, live: &[Runtime], dead: &[Runtime]) {
    for runtime in dead {
        let offline = eventually(TTL * 3, || async {
            app.admin.get_workspace(runtime.id).await.unwrap().status == WorkspaceStatus::Offline
        })
        .await;
        assert!(offline, "a runtime that died during the outage goes offline about a TTL after it");
        let events = offline_events(app, runtime.id).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let outage = &events[0]["after_outage"];
        assert!(outage["started_at"].is_string() && outage["ended_at"].is_string(), "{events:?}");
    }
    // A sweep or two more, then: not one live workspace flapped.
    tokio::time::sleep(SWEEP * 4).await;
    for runtime in live {
        let events = offline_events(app, runtime.id).await;
        assert!(events.is_empty(), "live workspace {} went offline: {events:?}", runtime.id);
        assert_eq!(app.admin.get_workspace(runtime.id).await.unwrap().status, WorkspaceStatus::Online);
    }
}

/// Hearth stopped for three TTLs (every replica down) and started again on
/// the same database.
async fn a_control_plane_down_longer_than_the_ttl_flaps_no_live_workspace(engine: Engine) {
    let port = free_port();
    let mut app = TestApp::spawn_with(engine, |s| outage_settings(s, port)).await;
    let settings = app.state.settings.as_ref().clone();
    let (live, dead) = fleet(&app, 6, 2).await;
    tokio::time::sleep(PACE * 2).await;
    for runtime in &dead {
        runtime.die();
    }
    app.stop().await;
    let (tmp, db) = app.into_parts();
    tokio::time::sleep(AWAY).await;
    let mut app = TestApp::start(settings).await;
    check_recovery(&app, &live, &dead).await;
    app.stop().await;
    drop((tmp, db));
}

/// The database unreachable for three TTLs while Hearth stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_longer_than_the_ttl_flaps_no_live_workspace() {
    let db = hearth_store_pg::testing::create_database().await;
    let proxy = Proxy::to_test_postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = test_settings(tmp.path().to_path_buf(), &proxy.url_of(&db.url));
    outage_settings(&mut settings, free_port());
    let app = TestApp::start(settings).await;
    let (live, dead) = fleet(&app, 6, 2).await;
    tokio::time::sleep(PACE * 2).await;
    for runtime in &dead {
        runtime.die();
    }
    proxy.cut();
    tokio::time::sleep(AWAY).await;
    proxy.restore();
    check_recovery(&app, &live, &dead).await;
    drop(app);
    drop(db);
}

/// Two replicas on one Postgres; one is stopped for three TTLs while the
/// other runs, then started again: no outage is recorded, and a runtime
/// that died meanwhile went offline on time (the running replica's sweeps)
/// with no outage in its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_down_while_another_runs_is_no_outage() {
    let db = hearth_store_pg::testing::create_database().await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut settings = test_settings(one.path().to_path_buf(), &db.url);
    outage_settings(&mut settings, free_port());
    let mut first = TestApp::start(settings.clone()).await;
    let mut other = settings.clone();
    other.data_dir = two.path().to_path_buf();
    other.listen = "127.0.0.1:0".parse().unwrap();
    other.admin_token = Some(secrecy::SecretString::from(first.admin_token.clone()));
    let second = TestApp::start(other).await;
    // The runtimes talk to the second replica.
    let mut runtimes = Vec::new();
    for i in 0..4 {
        let (id, _, token) = second.create_registered(&format!("w{i}")).await;
        runtimes.push(Runtime::start(&second.url, id, &token, PACE.mul_f64(f64::from(i) / 4.0)));
    }
    tokio::time::sleep(PACE * 2).await;
    let dead = runtimes.pop().unwrap();
    dead.die();
    first.stop().await;
    let offline = eventually(AWAY, || async {
        second.admin.get_workspace(dead.id).await.unwrap().status == WorkspaceStatus::Offline
    })
    .await;
    assert!(offline, "the dead runtime goes offline on time while one replica is down");
    tokio::time::sleep(AWAY).await;
    let mut first = TestApp::start(settings).await;
    tokio::time::sleep(SWEEP * 4).await;
    let outage = second.state.store.control_plane_alive(chrono::Utc::now(), chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(outage, None, "one replica's downtime is no outage of the control plane");
    let events = offline_events(&second, dead.id).await;
    assert!(events[0].get("after_outage").is_none(), "no outage: {events:?}");
    for runtime in &runtimes {
        assert!(offline_events(&second, runtime.id).await.is_empty(), "a live workspace flapped");
    }
    first.stop().await;
    drop(second);
    drop(db);
}
