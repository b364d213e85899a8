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

/// The peers and discover statements (`GET /registry/{id}/peers`,
/// `GET /registry/discover/{target}`) search `workspaces` by an index,
/// never scan it, on a table where reading the org would cost: an org of
/// 20,000 roots (the outside test's shape) and a root with 2,000 children,
/// beside another org. Planned with the parameters bound as the store binds
/// them, without statistics (Hearth runs no `ANALYZE`) and with them. Pages
/// of siblings and children come from `workspaces_peers_idx`, the roots from
/// `workspaces_roots_idx`, in their order (no temporary b-tree: sorting
/// would have read the whole group first).
#[tokio::test]
async fn the_peers_and_discover_statements_search_workspaces_by_index() {
    use chrono::{DateTime, Utc};
    use hearth_store_sql::{sql, Dialect};
    use hearth_store_sqlite::Sqlite;
    use uuid::Uuid;

    let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
    let pool = store.writer();
    let org = hearth_core::OrgId::DEFAULT.0;
    let other_org = Uuid::new_v4();
    sqlx::query("insert into orgs (org_id, name) values ($1, 'other')").bind(other_org).execute(pool).await.unwrap();
    let hub = Uuid::new_v4();
    sqlx::query(
        "insert into workspaces (workspace_id, org_id, name, tier, status, status_changed_at, created_at, updated_at) \
         values ($1, $2, 'hub', 1, 'online', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    .bind(hub)
    .bind(org)
    .execute(pool)
    .await
    .unwrap();
    let insert = "with recursive n(i) as (select 1 union all select i + 1 from n where i < $3) \
        insert into workspaces (workspace_id, org_id, name, role, tier, status, parent_id, status_changed_at, \
        created_at, updated_at) select randomblob(16), $1, 'w' || i, 'role-' || (i % 7), 1, 'online', $2, \
        '2026-01-01T00:00:00Z', strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || i || ' seconds'), \
        '2026-01-01T00:00:00Z' from n";
    for (org, parent, count) in [(org, None, 20_000), (org, Some(hub), 2_000), (other_org, None, 5_000)] {
        sqlx::query(insert).bind(org).bind(parent).bind(count).execute(pool).await.unwrap();
    }
    let child: Uuid = sqlx::query_scalar("select workspace_id from workspaces where parent_id = $1 limit 1")
        .bind(hub)
        .fetch_one(pool)
        .await
        .unwrap();
    let root: Uuid = sqlx::query_scalar("select workspace_id from workspaces where name = 'w10' and org_id = $1")
        .bind(org)
        .fetch_one(pool)
        .await
        .unwrap();

    let start = DateTime::<Utc>::UNIX_EPOCH;
    let explain = |statement: &str| format!("explain query plan {statement}");
    let (under, at_root, parent, lineage) = (
        explain(Sqlite::SQL.list_peers_under),
        explain(Sqlite::SQL.list_peers_at_root),
        explain(Sqlite::SQL.select_peer_parent),
        explain(sql::ANCESTOR_OR_DESCENDANT),
    );
    for statistics in [false, true] {
        if statistics {
            sqlx::query("analyze").execute(pool).await.unwrap();
        }
        for q in [None, Some("role-3")] {
            let plans = [
                (
                    "list_peers_under",
                    sqlx::query_as(&under)
                        .bind(org)
                        .bind(hub)
                        .bind(child)
                        .bind(start)
                        .bind(Uuid::nil())
                        .bind(q)
                        .bind(101_i64),
                ),
                (
                    "list_peers_at_root",
                    sqlx::query_as(&at_root).bind(org).bind(root).bind(start).bind(Uuid::nil()).bind(q).bind(101_i64),
                ),
                ("select_peer_parent", sqlx::query_as(&parent).bind(hub).bind(org).bind(q)),
                ("ancestor_or_descendant", sqlx::query_as(&lineage).bind(child).bind(root).bind(1000_i32)),
            ];
            for (name, query) in plans {
                let plan: Vec<(i64, i64, i64, String)> = query.fetch_all(pool).await.unwrap();
                let details: Vec<&str> = plan.iter().map(|(_, _, _, detail)| detail.as_str()).collect();
                let context = format!("{name} (statistics: {statistics}, q = {q:?}): {details:?}");
                let searched: Vec<&&str> = details
                    .iter()
                    .filter(|d| d.starts_with("SEARCH workspaces ") || d.starts_with("SEARCH w "))
                    .collect();
                assert!(!searched.is_empty(), "workspaces is searched: {context}");
                for detail in &searched {
                    assert!(
                        ["USING INDEX", "USING COVERING INDEX", "USING PRIMARY KEY"].iter().any(|u| detail.contains(u)),
                        "by an index: {context}"
                    );
                }
                let scanned = ["SCAN workspaces", "SCAN w"];
                assert!(
                    !details.iter().any(|d| scanned.iter().any(|s| *d == *s || d.starts_with(&format!("{s} ")))),
                    "never scanned: {context}"
                );
                let index = match name {
                    "list_peers_under" => Some("workspaces_peers_idx"),
                    "list_peers_at_root" => Some("workspaces_roots_idx"),
                    _ => None,
                };
                if let Some(index) = index {
                    assert!(
                        searched.iter().all(|d| d.starts_with(&format!("SEARCH workspaces USING INDEX {index} "))),
                        "{context}"
                    );
                    assert!(!details.iter().any(|d| d.contains("TEMP B-TREE")), "in the index's order: {context}");
                }
            }
        }
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
