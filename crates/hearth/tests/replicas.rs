//! Three `hearth serve` replicas on one Postgres behave as one: runtimes
//! heartbeat through all of them, one is killed (`kill -9`) mid-load, and
//! afterwards no transition is lost or doubled, a subscriber on a surviving
//! replica saw every event without a gap, and offline detection still
//! happens (the survivors sweep).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hearth_api::{CreateWorkspaceRequest, HeartbeatRequest};
use hearth_client::Client;
use hearth_core::{WorkspaceId, WorkspaceStatus};
use support::{Engine, Server, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_losing_one_mid_load() {
    let database = hearth_store_pg::testing::create_database().await;
    let args = ["--database-url", &database.url, "--sweep-interval", "1", "--liveness-ttl", "3"];
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Server::start(Engine::Sqlite, &args, &[]).await);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let admin = |i: usize| Client::new(&urls[i], Some(ADMIN_TOKEN.into())).unwrap();

    // A subscriber on replica 1 (a survivor), from the start of the log.
    let mut stream = admin(1).follow_events(Some(0), None).await.unwrap();
    let seen: Arc<Mutex<Vec<hearth_api::EventResponse>>> = Arc::default();
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                seen.lock().unwrap().push(event.unwrap());
            }
        })
    };

    let mut runtimes = Vec::new();
    for i in 0..12 {
        let request = CreateWorkspaceRequest { name: format!("r{i}"), issue_token: Some(true), ..Default::default() };
        let created = admin(i % 3).create_workspace(&request).await.unwrap();
        runtimes.push((created.id, created.auth_token.unwrap()));
    }
    // Each runtime heartbeats through the replicas in turn; half stop early
    // (they must go offline), the other half keep going past the kill.
    let acked: Arc<Mutex<BTreeMap<WorkspaceId, usize>>> = Arc::default();
    let mut senders = Vec::new();
    for (index, (id, token)) in runtimes.iter().cloned().enumerate() {
        let urls = urls.clone();
        let acked = acked.clone();
        let beats = if index % 2 == 0 { 20 } else { 60 };
        senders.push(tokio::spawn(async move {
            for beat in 0..beats {
                let client = Client::new(&urls[(index + beat) % 3], Some(token.clone())).unwrap();
                let hb = HeartbeatRequest {
                    workspace_id: id,
                    active_tasks: Some(0),
                    uptime_seconds: Some(beat as i64),
                    ..Default::default()
                };
                // Requests to the killed replica fail; the runtime moves on.
                if client.heartbeat(&hb).await.is_ok() {
                    *acked.lock().unwrap().entry(id).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut killed = replicas.remove(2);
    killed.child.start_kill().unwrap(); // SIGKILL, mid-load
    killed.child.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(acked.lock().unwrap().len(), runtimes.len(), "every runtime was acknowledged");

    // The early stoppers go offline: the survivors' sweeps detect it.
    let early: Vec<WorkspaceId> = runtimes.iter().step_by(2).map(|(id, _)| *id).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut offline = 0;
        for id in &early {
            if admin(0).get_workspace(*id).await.unwrap().status == WorkspaceStatus::Offline {
                offline += 1;
            }
        }
        if offline == early.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "offline detection on the survivors");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The log: each runtime went online exactly once; each early one
    // offline exactly once; seq has no gap.
    let log = admin(0).list_events(Some(0), None, Some(1000)).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gap-free seq");
    for (id, _) in &runtimes {
        let count = |kind: &str| log.iter().filter(|e| e.workspace_id == Some(*id) && e.event == kind).count();
        assert_eq!(count("WORKSPACE_ONLINE"), 1, "{id}: online once, whichever replica decided");
        let offline = if early.contains(id) { 1 } else { count("WORKSPACE_OFFLINE") };
        assert_eq!(count("WORKSPACE_OFFLINE"), offline, "{id}: offline at most once, and once if silent");
    }
    // The subscriber on a survivor saw exactly the log, in order.
    let caught_up = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if seen.lock().unwrap().len() >= log.len() {
                break true;
            }
            if tokio::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(caught_up, "the subscriber caught up");
    let seen_seqs: Vec<i64> = seen.lock().unwrap().iter().map(|e| e.seq).take(log.len()).collect();
    assert_eq!(seen_seqs, seqs, "no gap or repeat for a subscriber on a surviving replica");
    collector.abort();
    drop(replicas);
    drop(killed);
    drop(database);
}
