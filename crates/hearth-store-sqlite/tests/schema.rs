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
