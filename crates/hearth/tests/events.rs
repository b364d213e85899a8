//! `hearth events` over a log that retention compacted: a reader behind the
//! compaction is told what it missed and goes on from where the log is
//! complete, instead of failing or missing events silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use hearth_api::{CreateWorkspaceRequest, HeartbeatRequest};
use support::{Engine, Server, ADMIN_TOKEN};

async fn events_behind_the_compaction_resume_where_the_log_is_complete(engine: Engine) {
    let server = Server::start(
        engine,
        &[
            "--event-retention-per-workspace",
            "2",
            "--sweep-interval",
            "1",
            "--rate-limit-per-token",
            "0",
            "--rate-limit-per-workspace",
            "0",
        ],
        &[],
    )
    .await;
    let admin = hearth_client::Client::new(&server.url, Some(ADMIN_TOKEN.to_owned())).unwrap();
    let request = CreateWorkspaceRequest { name: "chatty".into(), issue_token: Some(true), ..Default::default() };
    let created = admin.create_workspace(&request).await.unwrap(); // seq 1
    let runtime = hearth_client::Client::new(&server.url, created.auth_token.clone()).unwrap();
    for i in 0..6 {
        let heartbeat = HeartbeatRequest {
            workspace_id: created.id,
            current_task: Some(format!("task {i}")),
            ..Default::default()
        };
        runtime.heartbeat(&heartbeat).await.unwrap(); // seq 2 ONLINE, then TASK_UPDATED 3..=8
    }
    // The server's retention (every second) keeps ONLINE (2) and the newest two (7, 8).
    let mut earliest = None;
    for _ in 0..200 {
        if let Err(err) = admin.list_events(Some(1), None, None).await {
            earliest = err.compacted_until();
            if earliest.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(earliest, Some(7), "the log was compacted through seq 6");
    let run = server.hearth(&["events", "--since", "1", "--json"]).await;
    run.expect_code(0);
    let seqs: Vec<i64> = run.json().as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [7, 8], "the events after the compaction, each once");
    assert!(
        run.stderr.contains("are no longer all on the server (retention); continuing from seq 7"),
        "{}",
        run.stderr
    );
    // From the start, nothing is missed: the log from where it is complete.
    let all = server.hearth(&["events", "--json"]).await;
    all.expect_code(0);
    assert_eq!(all.json().as_array().unwrap().len(), 2);
    assert_eq!(all.stderr, "", "nothing to say when reading from the start");
}

#[tokio::test]
async fn events_behind_the_compaction_resume_where_the_log_is_complete_on_sqlite() {
    events_behind_the_compaction_resume_where_the_log_is_complete(Engine::Sqlite).await;
}

#[tokio::test]
async fn events_behind_the_compaction_resume_where_the_log_is_complete_on_postgres() {
    events_behind_the_compaction_resume_where_the_log_is_complete(Engine::Postgres).await;
}
