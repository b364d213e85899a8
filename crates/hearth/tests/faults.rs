//! Faults: the server is killed (`kill -9`) under heartbeat load and started
//! again on the same data. Every acknowledged transition and heartbeat is
//! there (steady heartbeats go through the group-commit writer, so the kill
//! lands between batches or in one), the event log has no gap, and the time
//! to `/readyz` is reported. Postgres restarted and crashed under load:
//! 503s meanwhile, recovery without a restart of Hearth, and the
//! durability rule of plain heartbeats (on disk within 1 s). With
//! `--heartbeat-ack queued`, `kill -9` of Hearth under load: at most the
//! last second's acknowledged heartbeats are lost, on both engines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_api::{CreateWorkspaceRequest, HeartbeatRequest, RegisterRequest};
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};
use support::ADMIN_TOKEN;

/// `hearth serve` on a private Postgres cluster (which the test may stop,
/// crash and start), and an admin client; `None` where the cluster cannot
/// run (a skip, except under `CI=true`).
async fn hearth_on_a_private_postgres() -> Option<(support::pg_cluster::PrivateCluster, support::Server, Client)> {
    let cluster = support::pg_cluster::PrivateCluster::start(None)?;
    let server = support::Server::start(
        support::Engine::Sqlite,
        &["--database-url", &cluster.url(""), "--database-timeout", "1", "--liveness-ttl", "3600"],
        &[],
    )
    .await;
    let admin = Client::new(&server.url, Some(ADMIN_TOKEN.into())).unwrap();
    Some((cluster, server, admin))
}

async fn serve(dir: &std::path::Path, port: u16) -> support::Serving {
    support::serve_on(dir, port, &["--liveness-ttl", "3600"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_loses_no_acknowledged_transition_heartbeat_or_event() {
    let tmp = support::TestDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(tmp.path(), port).await;
    let admin = Client::new(&url, Some(ADMIN_TOKEN.into())).unwrap();

    // Workspaces with issued tokens; none has sent a heartbeat yet.
    let mut runtimes = Vec::new();
    for i in 0..24 {
        let request = CreateWorkspaceRequest { name: format!("w{i}"), issue_token: Some(true), ..Default::default() };
        let created = admin.create_workspace(&request).await.unwrap();
        let client = Client::new(&url, created.auth_token.clone()).unwrap();
        runtimes.push((created.id, client));
    }
    let acknowledged: Arc<Mutex<BTreeSet<WorkspaceId>>> = Arc::default();
    // The highest uptime each workspace's acknowledged heartbeats carried.
    let heartbeats: Arc<Mutex<BTreeMap<WorkspaceId, i64>>> = Arc::default();
    let mut senders = Vec::new();
    for (index, (id, client)) in runtimes.into_iter().enumerate() {
        let acknowledged = acknowledged.clone();
        let heartbeats = heartbeats.clone();
        senders.push(tokio::spawn(async move {
            // Staggered, so that the kill lands while some are still to come.
            tokio::time::sleep(Duration::from_millis(40 * index as u64)).await;
            let register = RegisterRequest { id, url: "remote://no-inbound".into(), agent_card: None };
            // Register moves provisioning → online: a 200 acknowledges it.
            if client.register(&register).await.is_ok() {
                acknowledged.lock().unwrap().insert(id);
            }
            for uptime in 1..=500 {
                let steady = HeartbeatRequest {
                    workspace_id: id,
                    active_tasks: Some(0),
                    uptime_seconds: Some(uptime),
                    ..Default::default()
                };
                // After the kill these fail; that is the point.
                if client.heartbeat(&steady).await.is_err() {
                    break;
                }
                heartbeats.lock().unwrap().insert(id, uptime);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.start_kill().unwrap(); // SIGKILL, mid-load
    server.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty(), "some heartbeats were acknowledged before the kill");

    let restarted = Instant::now();
    let mut server = serve(tmp.path(), port).await;
    let ready = loop {
        if admin.ready().await.is_ok() {
            break restarted.elapsed();
        }
        assert!(restarted.elapsed() < Duration::from_secs(60), "ready within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "ready {} ms after the restart began ({} workspaces acknowledged)",
        ready.as_millis(),
        acknowledged.len()
    );

    // Every acknowledged transition (provisioning → online) is durable.
    for id in &acknowledged {
        let workspace = admin.get_workspace(*id).await.unwrap();
        assert_eq!(workspace.status, WorkspaceStatus::Online, "{id} was acknowledged online");
    }
    // Every acknowledged heartbeat is durable: the stored uptime is at least
    // the last acknowledged one (a later, unacknowledged one may be there too).
    let heartbeats = heartbeats.lock().unwrap().clone();
    assert!(heartbeats.values().any(|uptime| *uptime > 2), "steady heartbeats were acknowledged before the kill");
    for (id, uptime) in &heartbeats {
        let workspace = admin.get_workspace(*id).await.unwrap();
        assert!(
            workspace.uptime_seconds >= *uptime,
            "{id}: acknowledged uptime {uptime}, stored {}",
            workspace.uptime_seconds
        );
    }
    eprintln!("{} heartbeats acknowledged before the kill, all durable", heartbeats.values().sum::<i64>());
    // The log has no gap, and each acknowledged workspace went online once.
    let events = admin.list_events(None, None, Some(1000)).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "seq is gap-free after a crash");
    for id in &acknowledged {
        let online = events.iter().filter(|e| e.workspace_id == Some(*id) && e.event == "WORKSPACE_ONLINE").count();
        assert_eq!(online, 1, "{id}: exactly one WORKSPACE_ONLINE");
    }
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}

/// A real Postgres outage: `hearth serve` on a private cluster, 16 runtimes
/// heartbeating, `pg_ctl stop -m fast` under that load, then `pg_ctl start`.
/// Meanwhile every failed request is a 503 with `Retry-After` (never a 500
/// or a dropped connection); afterwards the same Hearth process serves
/// again, and every acknowledged heartbeat is stored (each carries a
/// per-workspace counter in `active_tasks`, so the stored value is at least
/// the last acknowledged one) and every acknowledged transition is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_is_503_with_retry_after_then_recovers_without_a_restart() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let Some((cluster, server, admin)) = hearth_on_a_private_postgres().await else { return };
    let mut runtimes = Vec::new();
    for i in 0..16 {
        let request = CreateWorkspaceRequest { name: format!("w{i}"), issue_token: Some(true), ..Default::default() };
        let created = admin.create_workspace(&request).await.unwrap();
        let client = Client::new(&server.url, created.auth_token.clone()).unwrap();
        let register = RegisterRequest { id: created.id, url: "remote://no-inbound".into(), agent_card: None };
        client.register(&register).await.unwrap();
        runtimes.push((created.id, client));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicU64::new(0));
    let other_errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for (id, client) in runtimes {
        let (stop, unavailable, other_errors) = (stop.clone(), unavailable.clone(), other_errors.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged = 0i64;
            let mut sent = 0i64;
            while !stop.load(Ordering::SeqCst) {
                sent += 1;
                let beat = HeartbeatRequest { workspace_id: id, active_tasks: Some(sent), ..Default::default() };
                match client.heartbeat(&beat).await {
                    Ok(_) => acknowledged = sent,
                    Err(err) if err.status() == Some(503) => {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(err) => other_errors.lock().unwrap().push(format!("{id}: {err}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (id, acknowledged, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.stop();
    // While it is down: 503 with Retry-After, and /readyz says so.
    let raw = reqwest::Client::new();
    let outage = Instant::now();
    loop {
        let response = raw.get(format!("{}/workspaces", server.url)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        if response.status() == 503 {
            assert_eq!(response.headers()["retry-after"], "5");
            break;
        }
        assert!(outage.elapsed() < Duration::from_secs(30), "a 503 while Postgres is down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raw.get(format!("{}/readyz", server.url)).send().await.unwrap().status(), 503);
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.start_again();
    let restarted = Instant::now();
    let recovered = loop {
        if admin.ready().await.is_ok() && admin.list_workspaces(false).await.is_ok() {
            break restarted.elapsed();
        }
        assert!(restarted.elapsed() < Duration::from_secs(60), "Hearth recovers by itself:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for sender in senders {
        results.push(sender.await.unwrap());
    }
    let other_errors = other_errors.lock().unwrap().clone();
    assert!(other_errors.is_empty(), "only 503s during the outage: {other_errors:?}");
    let unavailable = unavailable.load(Ordering::SeqCst);
    assert!(unavailable > 0, "heartbeats during the outage were refused with 503");
    eprintln!(
        "postgres restart: {unavailable} heartbeats answered 503 during the outage; Hearth ready and serving {} ms \
         after pg_ctl start returned (no restart of Hearth)",
        recovered.as_millis()
    );
    for (id, acknowledged, sent) in results {
        let workspace = admin.get_workspace(id).await.unwrap();
        assert_eq!(workspace.status, WorkspaceStatus::Online, "{id}");
        assert!(
            workspace.active_tasks >= acknowledged && workspace.active_tasks <= sent,
            "{id}: stored active_tasks {} must be the last acknowledged heartbeat's ({acknowledged}) or a later one",
            workspace.active_tasks
        );
    }
    let events = admin.list_events(None, None, Some(1000)).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "seq is gap-free across the outage");
    let online = events.iter().filter(|e| e.event == "WORKSPACE_ONLINE").count();
    assert_eq!(online, 16, "each registration's transition is in the log once");
}

/// The durability rule of plain heartbeats on Postgres: their batches commit
/// asynchronously, and Postgres's WAL writer puts them on disk within
/// 3 × `wal_writer_delay` (600 ms by default). So a crash of Postgres
/// (`pg_ctl stop -m immediate`: no checkpoint, WAL buffers dropped) under
/// heartbeat load may lose the heartbeats of its last second, but none
/// acknowledged more than 1 s before it, and no transition at all.
/// What one runtime's heartbeats were: (counter, when acknowledged) of every
/// answer, and the last counter sent.
type Acknowledged = (WorkspaceId, Vec<(i64, Instant)>, i64);

/// Registers `n` workspaces with issued tokens on `url` and starts one
/// heartbeat sender for each until `stop`: each heartbeat carries a
/// per-workspace counter in `active_tasks`, so the stored value says which
/// heartbeat was written last.
async fn heartbeat_senders(
    url: &str,
    admin: &Client,
    n: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Acknowledged>> {
    let requests: Vec<CreateWorkspaceRequest> = (0..n)
        .map(|i| CreateWorkspaceRequest { name: format!("w{i}"), issue_token: Some(true), ..Default::default() })
        .collect();
    let mut senders = Vec::new();
    for created in admin.create_workspaces(requests).await.unwrap() {
        let client = Client::new(url, created.auth_token.clone()).unwrap();
        let register = RegisterRequest { id: created.id, url: "remote://no-inbound".into(), agent_card: None };
        client.register(&register).await.unwrap();
        let (id, stop) = (created.id, stop.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged: Vec<(i64, Instant)> = Vec::new();
            let mut sent = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                sent += 1;
                let beat = HeartbeatRequest { workspace_id: id, active_tasks: Some(sent), ..Default::default() };
                if client.heartbeat(&beat).await.is_ok() {
                    acknowledged.push((sent, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (id, acknowledged, sent)
        }));
    }
    senders
}

/// Every heartbeat acknowledged more than 1 s before `crashed` is stored,
/// and every workspace is online with its transition in the log once.
/// Returns how many workspaces lost acknowledged heartbeats, and how long
/// before the crash the oldest of those was answered.
async fn check_the_last_second_rule(admin: &Client, results: Vec<Acknowledged>, crashed: Instant) -> (usize, Duration) {
    let deadline = crashed - Duration::from_secs(1);
    let (mut lost, mut oldest_lost) = (0, Duration::ZERO);
    let count = results.len();
    for (id, acknowledged, sent) in results {
        let workspace = admin.get_workspace(id).await.unwrap();
        assert_eq!(workspace.status, WorkspaceStatus::Online, "{id}: the transition survived the crash");
        let durable = acknowledged.iter().filter(|(_, at)| *at <= deadline).map(|(n, _)| *n).max();
        let durable = durable.unwrap_or_else(|| panic!("{id}: no heartbeat acknowledged a second before the crash"));
        assert!(
            workspace.active_tasks >= durable && workspace.active_tasks <= sent,
            "{id}: stored active_tasks {} but heartbeat {durable} was acknowledged more than 1 s before the crash",
            workspace.active_tasks
        );
        // The oldest acknowledged heartbeat the crash took: how far back it reached.
        if let Some((_, at)) = acknowledged.iter().find(|(n, _)| *n > workspace.active_tasks) {
            lost += 1;
            oldest_lost = oldest_lost.max(crashed.duration_since(*at));
        }
    }
    let events = admin.list_events(None, None, Some(1000)).await.unwrap();
    let online = events.iter().filter(|e| e.event == "WORKSPACE_ONLINE").count();
    assert_eq!(online, count, "every registration's transition is in the log once");
    (lost, oldest_lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_loses_no_heartbeat_acknowledged_more_than_a_second_before_it() {
    let Some((cluster, server, admin)) = hearth_on_a_private_postgres().await else { return };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders = heartbeat_senders(&server.url, &admin, 16, stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.crash();
    let crashed = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut results = Vec::new();
    for sender in senders {
        results.push(sender.await.unwrap());
    }
    cluster.start_again();
    let restarted = Instant::now();
    while admin.list_workspaces(false).await.is_err() {
        assert!(restarted.elapsed() < Duration::from_secs(60), "Hearth recovers by itself:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (lost, oldest_lost) = check_the_last_second_rule(&admin, results, crashed).await;
    eprintln!(
        "postgres crash: {lost} of 16 workspaces lost acknowledged heartbeats, the oldest answered {} ms before the \
         crash (allowed: under 1000 ms)",
        oldest_lost.as_millis()
    );
}

/// `--heartbeat-ack queued`: a plain heartbeat is answered before its batch
/// commits, so `kill -9` of Hearth may take the queued ones; every
/// heartbeat acknowledged more than 1 s before the kill is stored, on
/// both engines, and transitions are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_acknowledgements_a_kill_cannot_take_more_than_a_second_of_heartbeats_sqlite() {
    a_kill_takes_at_most_the_last_second_of_queued_heartbeats(support::Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_acknowledgements_a_kill_cannot_take_more_than_a_second_of_heartbeats_postgres() {
    a_kill_takes_at_most_the_last_second_of_queued_heartbeats(support::Engine::Postgres).await
}

async fn a_kill_takes_at_most_the_last_second_of_queued_heartbeats(engine: support::Engine) {
    let tmp = support::TestDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let database = match engine {
        support::Engine::Postgres => Some(hearth_store_pg::testing::create_database().await),
        support::Engine::Sqlite => None,
    };
    let mut args = vec!["--liveness-ttl", "3600", "--heartbeat-ack", "queued"];
    if let Some(database) = &database {
        args.extend(["--database-url", database.url.as_str()]);
    }
    let mut server = support::serve_on(tmp.path(), port, &args).await;
    let admin = Client::new(&url, Some(ADMIN_TOKEN.into())).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders = heartbeat_senders(&url, &admin, 16, stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.start_kill().unwrap(); // SIGKILL: the writer dies mid-batch or with a queue
    let killed = Instant::now();
    server.wait().await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut results = Vec::new();
    for sender in senders {
        results.push(sender.await.unwrap());
    }
    let mut server = support::serve_on(tmp.path(), port, &args).await;
    let (lost, oldest_lost) = check_the_last_second_rule(&admin, results, killed).await;
    eprintln!(
        "{engine:?}, kill -9 with queued acknowledgements: {lost} of 16 workspaces lost acknowledged heartbeats, \
         the oldest answered {} ms before the kill (allowed: under 1000 ms)",
        oldest_lost.as_millis()
    );
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}
