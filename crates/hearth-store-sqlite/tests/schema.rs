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
