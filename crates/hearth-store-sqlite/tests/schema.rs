//! The schema itself: what the migrations enforce on this engine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use hearth_core::WorkspaceStatus;

#[tokio::test]
async fn the_check_constraint_admits_exactly_the_eight_statuses() {
    let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
    let id = hearth_store::conformance::create(&store, "w").await;
    let writer = sqlx::SqlitePool::connect(&_db.url).await.unwrap();
    for status in WorkspaceStatus::ALL {
        sqlx::query("update workspaces set status = ?1 where workspace_id = ?2")
            .bind(status.as_str())
            .bind(id.0)
            .execute(&writer)
            .await
            .unwrap_or_else(|e| panic!("{status} must be accepted: {e}"));
    }
    for bad in ["", "zombie", "Online"] {
        let err = sqlx::query("update workspaces set status = ?1 where workspace_id = ?2")
            .bind(bad)
            .bind(id.0)
            .execute(&writer)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{bad:?}: {err}");
    }
}

/// The batched liveness write finds each row by its key, in every shape:
/// the `values` rows drive the join and `workspaces` is searched by its
/// primary key, never scanned (a scan per statement would read the whole
/// table for every few heartbeats).
#[tokio::test]
async fn the_liveness_statements_search_workspaces_by_key() {
    let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
    for i in 0..50 {
        hearth_store::conformance::create(&store, &format!("w{i}")).await;
    }
    let shapes: Vec<_> = hearth_store_sql::sql::all_statements::<hearth_store_sqlite::Sqlite>()
        .into_iter()
        .filter(|(name, _)| name.starts_with("write_liveness"))
        .collect();
    assert_eq!(shapes.len(), 6, "32, 16, 8, 4, 2 and 1 rows");
    for (name, statement) in shapes {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("explain query plan {statement}")).fetch_all(store.writer()).await.unwrap();
        let details: Vec<&str> = plan.iter().map(|(_, _, _, detail)| detail.as_str()).collect();
        // `w`: the statements alias `workspaces` (the one-row shape does not).
        let searched = ["SEARCH workspaces USING INDEX", "SEARCH w USING INDEX"];
        assert!(
            details.iter().any(|d| searched.iter().any(|s| d.starts_with(s))),
            "{name}: workspaces must be searched by key: {details:?}"
        );
        let scanned = ["SCAN workspaces", "SCAN w"];
        assert!(
            !details.iter().any(|d| scanned.iter().any(|s| d == s || d.starts_with(&format!("{s} ")))),
            "{name}: not scanned: {details:?}"
        );
    }
}

/// Retention judges whether an event is its workspace's latest status event
/// with one probe of `events_status_idx` (the partial index's predicate is
/// the statements' own `kind in (…)`), and reads events by seq, never a
/// scan of the log.
#[tokio::test]
async fn the_retention_statements_use_the_status_index_and_never_scan_the_log() {
    let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
    let statements = [
        ("delete_aged_events", hearth_store_sql::sql::DELETE_AGED_EVENTS),
        ("delete_workspace_events_through", hearth_store_sql::sql::DELETE_WORKSPACE_EVENTS_THROUGH),
        ("delete_superseded_status_events", hearth_store_sql::sql::DELETE_SUPERSEDED_STATUS_EVENTS),
        ("workspaces_over_count", hearth_store_sql::sql::WORKSPACES_OVER_COUNT),
        ("events_for_age", hearth_store_sql::sql::EVENTS_FOR_AGE),
    ];
    for (name, statement) in statements {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("explain query plan {statement}")).fetch_all(store.writer()).await.unwrap();
        let details: Vec<&str> = plan.iter().map(|(_, _, _, detail)| detail.as_str()).collect();
        assert!(
            !details
                .iter()
                .any(|d| d.starts_with("SCAN events") || d.starts_with("SCAN later") || d.starts_with("SCAN e ")),
            "{name}: the log is never scanned: {details:?}"
        );
        if statement.contains("later.kind") || name == "delete_superseded_status_events" {
            assert!(
                details.iter().any(|d| d.contains("events_status_idx")),
                "{name}: uses events_status_idx: {details:?}"
            );
        }
    }
}
