//! The schema itself: what the migrations enforce on this engine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use hearth_core::WorkspaceStatus;
use hearth_store::{NewWorkspace, Store};

#[tokio::test]
async fn the_check_constraint_admits_exactly_the_eight_statuses() {
    let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
    let ws = store
        .create_workspace(NewWorkspace::named(hearth_core::OrgId::DEFAULT, "w", chrono::Utc::now()), None)
        .await
        .unwrap();
    let writer = sqlx::SqlitePool::connect(&_db.url).await.unwrap();
    for status in WorkspaceStatus::ALL {
        sqlx::query("update workspaces set status = ?1 where workspace_id = ?2")
            .bind(status.as_str())
            .bind(ws.id.0)
            .execute(&writer)
            .await
            .unwrap_or_else(|e| panic!("{status} must be accepted: {e}"));
    }
    for bad in ["", "zombie", "Online"] {
        let err = sqlx::query("update workspaces set status = ?1 where workspace_id = ?2")
            .bind(bad)
            .bind(ws.id.0)
            .execute(&writer)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{bad:?}: {err}");
    }
}
