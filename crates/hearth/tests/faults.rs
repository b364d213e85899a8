//! Faults: the server is killed (`kill -9`) under heartbeat load and started
//! again on the same data. Every acknowledged transition and heartbeat is
//! there (steady heartbeats go through the group-commit writer, so the kill
//! lands between batches or in one), the event log has no gap, and the time
//! to `/readyz` is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_api::{CreateWorkspaceRequest, HeartbeatRequest, RegisterRequest};
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};
use support::ADMIN_TOKEN;
use tokio::process::Child;

async fn serve(dir: &std::path::Path, port: u16) -> Child {
    support::serve_on(dir, port, &["--liveness-ttl", "3600"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_loses_no_acknowledged_transition_heartbeat_or_event() {
    let tmp = tempfile::Builder::new().prefix("hearth-test-").tempdir().unwrap();
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
