//! The schema itself: what the migrations enforce on this engine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use hearth_core::WorkspaceStatus;
use hearth_store::Store;
use sqlx::Executor;

#[tokio::test]
async fn the_postgres_enum_has_exactly_the_eight_statuses_in_order() {
    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    let labels: Vec<String> = sqlx::query_scalar(
        "select enumlabel::text from pg_enum e join pg_type t on t.oid = e.enumtypid \
         where t.typname = 'workspace_status' order by e.enumsortorder",
    )
    .fetch_all(store.writer())
    .await
    .unwrap();
    let expected: Vec<&str> = WorkspaceStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, expected);
}

/// The seed bug (molecule-core PR 3004): `COALESCE(status, '')` on the enum
/// fails against real Postgres, both when the statement is prepared — which is
/// what the statement check above does to every Hearth statement — and when it
/// runs. Hearth reads the status bare and sees `provisioning`.
#[tokio::test]
async fn reading_the_previous_status_the_way_the_seed_did_fails_and_hearth_reads_provisioning() {
    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    let id = hearth_store::conformance::create(&store, "seo-agent").await;
    let seed_sql = "select coalesce(current_task, ''), coalesce(monthly_spend, 0), coalesce(status, '') \
                    from workspaces where workspace_id = $1";
    let prepared = store.writer().prepare(seed_sql).await;
    let err = prepared.expect_err("the statement check must reject the seed's query");
    assert!(err.to_string().contains("invalid input value for enum workspace_status"), "{err}");
    let run = sqlx::query(seed_sql).bind(id.0).fetch_one(store.writer()).await;
    assert!(run.is_err(), "and it fails at run time, which the seed's handler ignored");

    let hb = hearth_core::Heartbeat::validate(Default::default()).unwrap();
    let applied = store.apply(id, hearth_core::Input::Heartbeat(hb), chrono::Utc::now()).await.unwrap();
    assert_eq!(applied.previous, WorkspaceStatus::Provisioning);
    assert_eq!(applied.workspace.status, WorkspaceStatus::Online);
}

#[tokio::test]
async fn a_status_outside_the_enum_cannot_be_written() {
    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    let id = hearth_store::conformance::create(&store, "w").await;
    let err = sqlx::query("update workspaces set status = 'zombie' where workspace_id = $1")
        .bind(id.0)
        .execute(store.writer())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid input value for enum"), "{err}");
}

/// Heartbeat batches commit asynchronously on their own connections (Postgres
/// flushes them within 3 × `wal_writer_delay`, 600 ms by default); every
/// other write commits synchronously.
#[tokio::test]
async fn only_heartbeat_batches_commit_asynchronously() {
    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    store.writer().prepare(hearth_store_pg::ASYNCHRONOUS_LIVENESS_COMMIT).await.expect("the statement prepares");
    let delay_ms: i32 = sqlx::query_scalar("select setting::int4 from pg_settings where name = 'wal_writer_delay'")
        .fetch_one(store.writer())
        .await
        .unwrap();
    let setting =
        |pool| async move { sqlx::query_scalar::<_, String>("show synchronous_commit").fetch_one(pool).await.unwrap() };
    let expected = if delay_ms <= hearth_store_pg::MAX_WAL_WRITER_DELAY_MS { "off" } else { "on" };
    assert_eq!(setting(store.liveness()).await, expected, "wal_writer_delay = {delay_ms} ms");
    assert_eq!(setting(store.writer()).await, "on");
    let plans = sqlx::query_scalar::<_, String>("show plan_cache_mode").fetch_one(store.liveness()).await.unwrap();
    assert_eq!(plans, "force_generic_plan");
}
