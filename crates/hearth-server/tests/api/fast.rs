//! The heartbeat fast path (cached token, remembered desired state,
//! group-commit writer): what a runtime and an operator see must be exactly
//! what the locked path gives, on one server and across replicas.

use std::time::Duration;

use hearth_api::{CreateWorkspaceRequest, FileContent, HeartbeatRequest, ImportTemplateRequest};
use hearth_client::ClientError;
use hearth_core::{WorkspaceId, WorkspaceStatus};

use crate::harness::{eventually, Engine, TestApp};

crate::on_both_engines!(
    a_steady_heartbeat_is_written_by_the_batch_and_durable_when_answered,
    an_operator_change_between_heartbeats_is_seen_by_the_next_one,
    a_reimported_template_reaches_the_next_heartbeat,
    a_revoked_token_is_refused_at_once,
    a_deleted_workspace_is_refused_at_once,
    queued_heartbeats_are_answered_at_once_and_written_by_the_batch,
    a_queued_heartbeat_whose_guard_fails_is_redone_under_the_lock,
    a_local_operator_change_reaches_the_next_queued_heartbeat,
    shutdown_writes_the_queued_heartbeats,
    two_senders_racing_on_each_workspace_lose_no_queued_heartbeat,
);

mod replicas {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_on_one_postgres_agree() {
        super::replicas_on_one_postgres_agree().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_on_a_connection_postgres_closed_is_decided_again_not_lost() {
        super::a_batch_on_a_connection_postgres_closed_is_decided_again_not_lost().await
    }
}

fn steady(id: WorkspaceId, uptime: i64) -> HeartbeatRequest {
    HeartbeatRequest { workspace_id: id, active_tasks: Some(0), uptime_seconds: Some(uptime), ..Default::default() }
}

async fn version(app: &TestApp, id: WorkspaceId) -> (i64, hearth_store::Workspace) {
    let row = app.state.store.get_workspace(id).await.unwrap();
    (row.version, row)
}

async fn a_steady_heartbeat_is_written_by_the_batch_and_durable_when_answered(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("steady").await;
    let first = runtime.heartbeat(&steady(id, 1)).await.unwrap();
    assert_eq!(first.workspace_status, WorkspaceStatus::Online);
    let (locked_version, _) = version(&app, id).await;
    for uptime in 2..=20 {
        let answer = runtime.heartbeat(&steady(id, uptime)).await.unwrap();
        assert_eq!(answer.workspace_status, WorkspaceStatus::Online);
        // Answered means committed: the row already holds this heartbeat.
        let (now_version, row) = version(&app, id).await;
        assert_eq!(row.uptime_seconds, uptime, "an answered heartbeat is in the database");
        assert_eq!(now_version, locked_version, "written by the batch writer, not under the lock");
    }
    assert!(app.state.heartbeats.remembered() >= 1);
    let names: Vec<String> = app.events_of(id).await.into_iter().map(|e| e.event).collect();
    assert_eq!(names, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"], "steady heartbeats write no event");

    // A heartbeat that changes a decision input takes the lock and writes its event.
    let task = HeartbeatRequest { current_task: Some("crawl".into()), ..steady(id, 21) };
    runtime.heartbeat(&task).await.unwrap();
    let (after_task, row) = version(&app, id).await;
    assert!(after_task > locked_version);
    assert_eq!(row.current_task.as_deref(), Some("crawl"));
    assert!(app.events_of(id).await.iter().any(|e| e.event == "TASK_UPDATED"));
    // The same task again is steady: fast, and busy (last_active_at moves).
    let before = row.last_active_at;
    runtime.heartbeat(&HeartbeatRequest { current_task: Some("crawl".into()), ..steady(id, 22) }).await.unwrap();
    runtime.heartbeat(&HeartbeatRequest { current_task: Some("crawl".into()), ..steady(id, 23) }).await.unwrap();
    let (last, row) = version(&app, id).await;
    assert_eq!(row.uptime_seconds, 23);
    assert!(row.last_active_at > before, "a busy runtime is active");
    assert!(last <= after_task + 1, "at most the remembering heartbeat took the lock");
}

async fn an_operator_change_between_heartbeats_is_seen_by_the_next_one(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("paused-meanwhile").await;
    for uptime in 1..=3 {
        runtime.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    app.admin.pause(id).await.unwrap();
    // The remembered version is stale now: the guard fails and the
    // heartbeat is decided under the lock, which says paused.
    let answer = runtime.heartbeat(&steady(id, 4)).await.unwrap();
    assert_eq!(answer.workspace_status, WorkspaceStatus::Paused);
    let (_, row) = version(&app, id).await;
    assert_eq!(row.status, WorkspaceStatus::Paused);
    assert_eq!(row.uptime_seconds, 4, "the heartbeat is still recorded");
    // Paused heartbeats are steady too, and stay paused.
    for uptime in 5..=7 {
        assert_eq!(runtime.heartbeat(&steady(id, uptime)).await.unwrap().workspace_status, WorkspaceStatus::Paused);
    }
    app.admin.resume(id).await.unwrap();
    let answer = runtime.heartbeat(&steady(id, 8)).await.unwrap();
    assert_eq!(answer.workspace_status, WorkspaceStatus::Online, "resume then heartbeat: online again");
    let names: Vec<String> = app.events_of(id).await.into_iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE", "WORKSPACE_PAUSED", "WORKSPACE_RESUMED", "WORKSPACE_ONLINE"]
    );
}

fn template(name: &str, prompt: &str) -> ImportTemplateRequest {
    ImportTemplateRequest {
        name: name.into(),
        files: [
            ("config.yaml".to_owned(), FileContent::Text(format!("name: {name}\n"))),
            ("prompts/system.md".to_owned(), FileContent::Text(prompt.into())),
        ]
        .into(),
    }
}

async fn a_reimported_template_reaches_the_next_heartbeat(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first = app.admin.import_template(&template("tpl", "one")).await.unwrap();
    let ws = app
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "templated".into(),
            template: Some("tpl".into()),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let runtime = app.client(ws.auth_token.as_deref());
    for uptime in 1..=3 {
        let answer = runtime.heartbeat(&steady(ws.id, uptime)).await.unwrap();
        assert_eq!(answer.desired.assets_digest.as_deref(), Some(first.assets_digest.as_str()));
    }
    let second = app.admin.import_template(&template("tpl", "two")).await.unwrap();
    assert_ne!(first.assets_digest, second.assets_digest);
    let answer = runtime.heartbeat(&steady(ws.id, 4)).await.unwrap();
    assert_eq!(answer.desired.assets_digest.as_deref(), Some(second.assets_digest.as_str()));
}

async fn a_revoked_token_is_refused_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("revoked").await;
    runtime.heartbeat(&steady(id, 1)).await.unwrap();
    runtime.heartbeat(&steady(id, 2)).await.unwrap();
    let tokens = app.admin.list_workspace_tokens(id).await.unwrap();
    app.admin.revoke_workspace_token(id, tokens[0].id).await.unwrap();
    let refused = runtime.heartbeat(&steady(id, 3)).await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
}

async fn a_deleted_workspace_is_refused_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("deleted").await;
    runtime.heartbeat(&steady(id, 1)).await.unwrap();
    runtime.heartbeat(&steady(id, 2)).await.unwrap();
    app.admin.delete_workspace(id).await.unwrap();
    let refused = runtime.heartbeat(&steady(id, 3)).await.unwrap_err();
    assert_eq!(refused.status(), Some(410), "{refused}");
}

async fn queued(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, |s| s.heartbeat_ack = hearth_server::HeartbeatAck::Queued).await
}

/// `--heartbeat-ack queued`: the answer does not wait for the batch, and
/// the batch still writes every heartbeat, guarded, without the lock.
async fn queued_heartbeats_are_answered_at_once_and_written_by_the_batch(engine: Engine) {
    let app = queued(engine).await;
    let (id, runtime, _) = app.create_registered("queued").await;
    runtime.heartbeat(&steady(id, 1)).await.unwrap();
    let (locked_version, _) = version(&app, id).await;
    for uptime in 2..=20 {
        let answer = runtime.heartbeat(&steady(id, uptime)).await.unwrap();
        assert_eq!(answer.workspace_status, WorkspaceStatus::Online);
    }
    let stored = eventually(Duration::from_secs(5), || async { version(&app, id).await.1.uptime_seconds == 20 }).await;
    assert!(stored, "the last answered heartbeat reaches the database");
    let (now_version, row) = version(&app, id).await;
    assert_eq!(now_version, locked_version, "written by the batch writer, not under the lock");
    assert!(row.last_heartbeat_at.is_some());
    let names: Vec<String> = app.events_of(id).await.into_iter().map(|e| e.event).collect();
    assert_eq!(names, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"], "steady heartbeats write no event");
    // A decision input still takes the lock and is committed when answered.
    let task = HeartbeatRequest { current_task: Some("crawl".into()), ..steady(id, 21) };
    runtime.heartbeat(&task).await.unwrap();
    let (_, row) = version(&app, id).await;
    assert_eq!(row.current_task.as_deref(), Some("crawl"), "a task change is committed before its answer");
    assert!(app.events_of(id).await.iter().any(|e| e.event == "TASK_UPDATED"));
}

/// The row changes behind this server's back (as another replica would
/// change it: straight through the store), so the queued heartbeat is
/// answered from memory, its batch guard fails, and it is decided again
/// under the lock: recorded on the paused row, and the next answer says
/// paused.
async fn a_queued_heartbeat_whose_guard_fails_is_redone_under_the_lock(engine: Engine) {
    let app = queued(engine).await;
    let (id, runtime, _) = app.create_registered("redone").await;
    for uptime in 1..=3 {
        runtime.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    let written = eventually(Duration::from_secs(5), || async { version(&app, id).await.1.uptime_seconds == 3 }).await;
    assert!(written, "the third heartbeat is written");
    app.state.store.apply(id, hearth_core::Input::Pause(hearth_core::By::ADMIN), chrono::Utc::now()).await.unwrap();
    let answer = runtime.heartbeat(&steady(id, 4)).await.unwrap();
    assert_eq!(answer.workspace_status, WorkspaceStatus::Online, "answered from memory, before the guard");
    let redone = eventually(Duration::from_secs(5), || async { version(&app, id).await.1.uptime_seconds == 4 }).await;
    assert!(redone, "the heartbeat is recorded on the paused row");
    let (_, row) = version(&app, id).await;
    assert_eq!(row.status, WorkspaceStatus::Paused, "the redo does not undo the pause");
    assert_eq!(runtime.heartbeat(&steady(id, 5)).await.unwrap().workspace_status, WorkspaceStatus::Paused);
}

/// A change made through this server forgets the workspace at once, so
/// even a queued answer is never stale for it.
async fn a_local_operator_change_reaches_the_next_queued_heartbeat(engine: Engine) {
    let app = queued(engine).await;
    let (id, runtime, _) = app.create_registered("paused-here").await;
    for uptime in 1..=3 {
        runtime.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    app.admin.pause(id).await.unwrap();
    assert_eq!(runtime.heartbeat(&steady(id, 4)).await.unwrap().workspace_status, WorkspaceStatus::Paused);
    app.admin.resume(id).await.unwrap();
    assert_eq!(runtime.heartbeat(&steady(id, 5)).await.unwrap().workspace_status, WorkspaceStatus::Online);
}

/// A graceful stop writes what was answered but not yet written.
async fn shutdown_writes_the_queued_heartbeats(engine: Engine) {
    let mut app = queued(engine).await;
    let mut runtimes = Vec::new();
    for i in 0..8 {
        let (id, runtime, _) = app.create_registered(&format!("stopping-{i}")).await;
        runtime.heartbeat(&steady(id, 1)).await.unwrap();
        runtimes.push((id, runtime));
    }
    let sends = runtimes.iter().map(|(id, runtime)| async move {
        for uptime in 2..=30 {
            runtime.heartbeat(&steady(*id, uptime)).await.unwrap();
        }
    });
    futures_util::future::join_all(sends).await;
    let store = app.state.store.clone();
    app.stop().await;
    for (id, _) in &runtimes {
        assert_eq!(store.get_workspace(*id).await.unwrap().uptime_seconds, 30, "{id}: the last answer is stored");
    }
}

/// The worst case for `queued`: two clients heartbeat each workspace at
/// once, as fast as they can, so batch guards fail and heartbeats are
/// redone under the lock while more arrive. Every request is answered,
/// no redo is dropped or fails, and the lifecycle is untouched.
async fn two_senders_racing_on_each_workspace_lose_no_queued_heartbeat(engine: Engine) {
    let app = queued(engine).await;
    let mut runtimes = Vec::new();
    for i in 0..10 {
        let (id, runtime, _) = app.create_registered(&format!("raced-{i}")).await;
        runtimes.push((id, runtime));
    }
    let sends = runtimes.iter().flat_map(|(id, runtime)| {
        (0..2).map(move |sender| async move {
            for n in 0..150 {
                runtime.heartbeat(&steady(*id, sender * 1000 + n)).await.unwrap();
            }
        })
    });
    futures_util::future::join_all(sends).await;
    let metrics = hearth_server::metrics::handle().render();
    let count = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // How often the race made a guard fail (a few dozen in thousands, here).
    eprintln!(
        "redo {} queued {}",
        count("hearth_heartbeat_fast_path_total{outcome=\"redo\"}"),
        count("hearth_heartbeat_fast_path_total{outcome=\"queued\"}")
    );
    assert_eq!(count("hearth_heartbeat_redo_dropped_total"), 0.0, "{metrics}");
    assert_eq!(count("hearth_heartbeat_redo_errors_total"), 0.0, "{metrics}");
    for (id, _) in &runtimes {
        let (_, row) = version(&app, *id).await;
        assert_eq!(row.status, WorkspaceStatus::Online);
        let names: Vec<String> = app.events_of(*id).await.into_iter().map(|e| e.event).collect();
        assert_eq!(names, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"], "{id}");
    }
}

/// Two servers on one database: what one does, the other's fast path sees.
async fn replicas_on_one_postgres_agree() {
    let a = TestApp::spawn(Engine::Postgres).await;
    let database_url = a.state.settings.database_url.clone();
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = crate::harness::test_settings(tmp.path().to_path_buf(), "unused");
    settings.database_url = database_url;
    settings.admin_token = Some(a.admin_token.clone().into());
    let b = TestApp::start(settings).await;

    let (id, on_a, token) = a.create_registered("shared").await;
    let on_b = b.client(Some(&token));
    for uptime in 1..=3 {
        on_b.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    // A pause on A: B's next heartbeat fails its guard and answers paused.
    a.admin.pause(id).await.unwrap();
    assert_eq!(on_b.heartbeat(&steady(id, 4)).await.unwrap().workspace_status, WorkspaceStatus::Paused);
    a.admin.resume(id).await.unwrap();
    on_b.heartbeat(&steady(id, 5)).await.unwrap();
    on_a.heartbeat(&steady(id, 6)).await.unwrap();

    // A template change on A reaches B's remembered desired state.
    a.admin.import_template(&template("tpl", "one")).await.unwrap();
    // A revocation on A: B's cached token stops working (B hears A's notice).
    let tokens = a.admin.list_workspace_tokens(id).await.unwrap();
    a.admin.revoke_workspace_token(id, tokens[0].id).await.unwrap();
    let refused = eventually(Duration::from_secs(5), || async {
        matches!(on_b.heartbeat(&steady(id, 7)).await, Err(ClientError::Api { status: 401, .. }))
    })
    .await;
    assert!(refused, "B refuses a token A revoked");
}

mod pace {
    use std::time::Duration;

    use crate::harness::{Engine, TestApp};

    /// Each answer says when to send the next heartbeat: the configured
    /// interval with ±10 % jitter, stretched when the fleet exceeds the
    /// heartbeat budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_answer_sets_the_pace_and_the_budget_stretches_it() {
        let app = TestApp::spawn_with(Engine::Sqlite, |s| {
            s.heartbeat_interval = Duration::from_secs(2);
            s.max_heartbeat_rate = 1;
        })
        .await;
        let (id, runtime, _) = app.create_registered("paced").await;
        let next = runtime.heartbeat(&super::steady(id, 1)).await.unwrap().next_heartbeat_seconds.unwrap();
        assert!((1.8..=2.2).contains(&next), "2 s ± 10 %: {next}");
        for i in 0..3 {
            app.create(&format!("more-{i}")).await;
        }
        // The sweeper counts the fleet: 4 workspaces at 1 heartbeat/s.
        hearth_server::sweeper::Sweeper::new(app.state.clone()).run_once().await;
        let next = runtime.heartbeat(&super::steady(id, 2)).await.unwrap().next_heartbeat_seconds.unwrap();
        assert!((3.6..=4.4).contains(&next), "4 s ± 10 %: {next}");
    }
}

/// The liveness pool does not ping its connection before each batch: when
/// Postgres has closed it, the batch fails, and its heartbeats are decided
/// again under the lock. The runtime sees an ordinary answer, the row holds
/// the heartbeat, and the next batches go through a new connection.
async fn a_batch_on_a_connection_postgres_closed_is_decided_again_not_lost() {
    use hearth_store_pg::testing::sqlx::{self, Connection};
    use secrecy::ExposeSecret;
    let app = TestApp::spawn(Engine::Postgres).await;
    let (id, runtime, _) = app.create_registered("closed-under-it").await;
    for uptime in 1..=3 {
        runtime.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    let (fast_version, _) = version(&app, id).await;

    let url = app.state.settings.database_url.as_ref().expect("tests name their database").expose_secret().to_owned();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // With a timeout, pg_terminate_backend waits until the backend is gone
    // (PostgreSQL 14+); without one it only signals it, and a heartbeat
    // sent at once could still be written on it (the test then flaked
    // under load: the row version was not bumped).
    let closed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid, 10000) from pg_stat_activity \
         where datname = current_database() and query like 'update workspaces as w set last_heartbeat_at%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(closed, [true], "the batch writer's connection was found and closed");

    let answer = runtime.heartbeat(&steady(id, 4)).await.unwrap();
    assert_eq!(answer.workspace_status, WorkspaceStatus::Online);
    let (redone_version, row) = version(&app, id).await;
    assert_eq!(row.uptime_seconds, 4, "the heartbeat whose batch failed is stored");
    assert_eq!(redone_version, fast_version + 1, "it was decided again under the lock");

    for uptime in 5..=7 {
        runtime.heartbeat(&steady(id, uptime)).await.unwrap();
    }
    let (last, row) = version(&app, id).await;
    assert_eq!(row.uptime_seconds, 7);
    assert_eq!(last, redone_version, "later heartbeats are batched again, on a new connection");
}
