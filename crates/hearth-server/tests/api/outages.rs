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

crate::on_both_engines!(
    a_control_plane_down_longer_than_the_ttl_flaps_no_live_workspace,
    a_mass_silence_while_the_control_plane_is_up_is_marked_offline_at_a_limited_rate,
);

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
        Self::start_at(url, id, token, phase, PACE)
    }

    /// [`Runtime::start`] at a pace of its own.
    fn start_at(url: &str, id: WorkspaceId, token: &str, phase: Duration, pace: Duration) -> Self {
        let client = Client::new(url, Some(token.to_owned())).unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let beating = alive.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            while beating.load(Ordering::SeqCst) {
                // While the control plane is away this fails: the point.
                let _ = client.heartbeat(&heartbeat(id)).await;
                tokio::time::sleep(pace).await;
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

/// Most of the live fleet goes silent at once while Hearth is up (more
/// likely the network than so many deaths): the first pass takes at most
/// the guard's minimum offline, the next ones count the fleet and take one
/// each (the guard's rate), saying `mass_silence` in their events and
/// `hearth_mass_silence_due` in the metrics, until what is left is no mass
/// silence; every silent workspace does go offline, only later, and the
/// live ones stay online.
async fn a_mass_silence_while_the_control_plane_is_up_is_marked_offline_at_a_limited_rate(engine: Engine) {
    // Sweeps are driven by hand (the loop's interval is an hour), one pass
    // at a time; at the guard's rate a pass that hour apart takes one.
    let app = TestApp::spawn_with(engine, |s| {
        s.liveness_ttl = Duration::from_secs(1);
        s.mass_silence = hearth_server::MassSilenceGuard { share: 0.5, min: 3, rate: 0.0001 };
    })
    .await;
    let mut runtimes = Vec::new();
    for i in 0..10 {
        let (id, _, token) = app.create_registered(&format!("w{i}")).await;
        runtimes.push((id, token));
    }
    // Two keep heartbeating; the other eight fall silent.
    let live: Vec<Runtime> = runtimes[..2]
        .iter()
        .map(|(id, token)| Runtime::start_at(&app.url, *id, token, Duration::ZERO, Duration::from_millis(200)))
        .collect();
    let silent: Vec<WorkspaceId> = runtimes[2..].iter().map(|(id, _)| *id).collect();
    for (id, token) in &runtimes[2..] {
        app.client(Some(token)).heartbeat(&heartbeat(*id)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // all eight are due
    let sweeper = hearth_server::sweeper::Sweeper::new(app.state.clone());
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.push(sweeper.run_once().await.offline);
    }
    // Tick 1: the minimum before a count (3), then, counted, one (the
    // rate); tick 2: one more; tick 3: the rest is no mass silence (3 of 5).
    assert_eq!(taken, [4, 1, 3, 0], "the minimum before a count, one a batch in the mass silence, then the rest");
    let mut offline = 0;
    for id in &silent {
        offline += usize::from(app.admin.get_workspace(*id).await.unwrap().status == WorkspaceStatus::Offline);
    }
    assert_eq!(offline, silent.len(), "every silent workspace went offline, only later");
    let mut events = Vec::new();
    for id in &silent {
        let mut offline = app.events_of(*id).await.into_iter().filter(|e| e.event == "WORKSPACE_OFFLINE").collect();
        events.append(&mut offline);
    }
    events.sort_by_key(|e| e.seq);
    let said: Vec<serde_json::Value> = events.iter().map(|e| e.payload["mass_silence"].clone()).collect();
    let null = serde_json::Value::Null;
    let expected = [
        // Before any count: the guard's minimum, 3.
        null.clone(),
        null.clone(),
        null.clone(),
        // Counted: 5 of 7, then 4 of 6 silent: one each.
        serde_json::json!({"due": 5, "live": 7}),
        serde_json::json!({"due": 4, "live": 6}),
        // 3 of 5 is not more than the minimum: the rest at once.
        null.clone(),
        null.clone(),
        null,
    ];
    assert_eq!(said, expected, "{events:#?}");
    let metrics = app.raw().get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hearth_mass_silences_total 1"), "{metrics}");
    for runtime in &live {
        assert!(offline_events(&app, runtime.id).await.is_empty(), "a live workspace went offline");
    }
}
