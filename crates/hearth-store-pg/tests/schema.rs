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

/// The peers and discover statements (`GET /registry/{id}/peers`,
/// `GET /registry/discover/{target}`) are answered from indexes, never a
/// scan of `workspaces`, on a table where reading the org would cost: an org
/// of 20,000 roots (the outside test's shape) and a root with 2,000
/// children, beside another org. Each statement is prepared and explained
/// with the parameters bound as the store binds them, once with a custom
/// plan (Postgres plans for the values) and once with the generic plan
/// (what a prepared statement may switch to after five executions).
/// Sibling and child pages must come from `workspaces_peers_idx` and the
/// roots from `workspaces_roots_idx`, in their order (no sort: a sort would
/// have read the whole group first).
#[tokio::test]
async fn the_peers_and_discover_statements_use_indexes_never_a_scan() {
    use chrono::{DateTime, Utc};
    use hearth_store_sql::{sql, Dialect};
    use uuid::Uuid;

    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    let pool = store.writer();
    let org = hearth_core::OrgId::DEFAULT.0;
    let other_org = Uuid::new_v4();
    sqlx::query("insert into orgs (org_id, name) values ($1, 'other')").bind(other_org).execute(pool).await.unwrap();
    let insert = "insert into workspaces (workspace_id, org_id, name, role, tier, status, parent_id, \
        status_changed_at, created_at, updated_at) \
        select gen_random_uuid(), $1, 'w' || i, 'role-' || (i % 7), 1, 'online', $2, now(), \
        now() + i * interval '1 ms', now() from generate_series(1, $3) as i";
    let hub = Uuid::new_v4();
    sqlx::query(
        "insert into workspaces (workspace_id, org_id, name, tier, status, status_changed_at, created_at, \
        updated_at) values ($1, $2, 'hub', 1, 'online', now(), now(), now())",
    )
    .bind(hub)
    .bind(org)
    .execute(pool)
    .await
    .unwrap();
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
    sqlx::query("analyze workspaces").execute(pool).await.unwrap();

    let start = DateTime::<Utc>::UNIX_EPOCH;
    let mut conn = pool.acquire().await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        conn.execute(format!("set plan_cache_mode = {mode}").as_str()).await.unwrap();
        for q in [None, Some("role-3")] {
            let cases: Vec<(&str, &str, Vec<Bound>)> = vec![
                // A child's siblings, and the hub's children: under a parent.
                (
                    "list_peers_under",
                    hearth_store_pg::Pg::SQL.list_peers_under,
                    vec![
                        Bound::Id(org),
                        Bound::Id(hub),
                        Bound::Id(child),
                        Bound::At(start),
                        Bound::Id(Uuid::nil()),
                        Bound::Text(q),
                        Bound::Int(101),
                    ],
                ),
                (
                    "list_peers_at_root",
                    hearth_store_pg::Pg::SQL.list_peers_at_root,
                    vec![
                        Bound::Id(org),
                        Bound::Id(root),
                        Bound::At(start),
                        Bound::Id(Uuid::nil()),
                        Bound::Text(q),
                        Bound::Int(101),
                    ],
                ),
                (
                    "select_peer_parent",
                    hearth_store_pg::Pg::SQL.select_peer_parent,
                    vec![Bound::Id(hub), Bound::Id(org), Bound::Text(q)],
                ),
                (
                    "ancestor_or_descendant",
                    sql::ANCESTOR_OR_DESCENDANT,
                    vec![Bound::Id(child), Bound::Id(root), Bound::Int4(1000)],
                ),
            ];
            for (name, statement, params) in cases {
                let plan = explain(&mut conn, mode, statement, &params).await;
                let context = format!("{name} ({mode}, q = {q:?}):\n{plan}");
                assert!(!plan.contains("Seq Scan on workspaces"), "{context}");
                if let Some(index) = peers_index(name) {
                    assert!(plan.contains(&format!("using {index} on workspaces")), "{context}");
                    assert!(!plan.contains("Sort"), "read in the index's order: {context}");
                } else {
                    assert!(plan.contains("using workspaces_pkey on workspaces"), "{context}");
                }
            }
        }
    }
}

/// The index a page of peers is read from.
fn peers_index(statement: &str) -> Option<&'static str> {
    match statement {
        "list_peers_under" => Some("workspaces_peers_idx"),
        "list_peers_at_root" => Some("workspaces_roots_idx"),
        _ => None,
    }
}

/// A parameter as the store binds it.
enum Bound {
    Id(uuid::Uuid),
    At(chrono::DateTime<chrono::Utc>),
    Text(Option<&'static str>),
    Int(i64),
    Int4(i32),
}

/// The plan of `statement` for `params`, as text. A custom plan: `explain`
/// with the values bound through the protocol, as the store sends them. The
/// generic plan: prepared by name, then `explain execute` (its plan does not
/// depend on the values, which are written as literals of the same types).
async fn explain(conn: &mut sqlx::PgConnection, mode: &str, statement: &str, params: &[Bound]) -> String {
    let lines: Vec<String> = if mode == "force_custom_plan" {
        let text = format!("explain {statement}");
        let mut query = sqlx::query_scalar::<_, String>(&text);
        for param in params {
            query = match param {
                Bound::Id(id) => query.bind(*id),
                Bound::At(at) => query.bind(*at),
                Bound::Text(text) => query.bind(*text),
                Bound::Int(n) => query.bind(*n),
                Bound::Int4(n) => query.bind(*n),
            };
        }
        query.fetch_all(&mut *conn).await.unwrap()
    } else {
        // The simple protocol: the statement's `$N` are the prepared statement's.
        conn.execute(format!("prepare planned as {statement}").as_str()).await.unwrap();
        let literals: Vec<String> = params
            .iter()
            .map(|param| match param {
                Bound::Id(id) => format!("'{id}'::uuid"),
                Bound::At(at) => format!("'{}'::timestamptz", at.to_rfc3339()),
                Bound::Text(Some(text)) => format!("'{text}'::text"),
                Bound::Text(None) => "null::text".to_owned(),
                Bound::Int(n) => format!("{n}::int8"),
                Bound::Int4(n) => format!("{n}::int4"),
            })
            .collect();
        let text = format!("explain execute planned({})", literals.join(", "));
        let lines = sqlx::query_scalar::<_, String>(&text).fetch_all(&mut *conn).await.unwrap();
        conn.execute("deallocate planned").await.unwrap();
        lines
    };
    lines.join("\n")
}

/// The tokens of a grouped lookup (`find_tokens_by_hashes`: a fleet's first
/// requests, and the cache's renewals) are found in `tokens_token_hash_key`,
/// never by a scan of every token: with `in (select …)` over the JSON the
/// planner chose a hash join over a sequential scan (4.4 ms per lookup at
/// 20,000 tokens, the grouped lookup's whole gain lost; BENCHMARKS.md,
/// "Fleet recovery"). Custom and generic plans, as above.
#[tokio::test]
async fn the_grouped_token_lookup_reads_the_hash_index_never_a_scan() {
    use hearth_store_sql::Dialect;

    let (store, _db) = hearth_store_pg::testing::fresh_store().await;
    let pool = store.writer();
    sqlx::query(
        "insert into tokens (token_id, org_id, name, prefix, token_hash, created_at, updated_at) \
         select gen_random_uuid(), $1, 't' || i, 'prefix', sha256(i::text::bytea), now(), now() \
         from generate_series(1, 20000) as i",
    )
    .bind(hearth_core::OrgId::DEFAULT.0)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("analyze tokens").execute(pool).await.unwrap();
    let hashes: Vec<String> =
        sqlx::query_scalar("select encode(sha256(i::text::bytea), 'hex') from generate_series(1, 50) i")
            .fetch_all(pool)
            .await
            .unwrap();
    let statement = hearth_store_pg::Pg::SQL.find_tokens_by_hashes;
    let quoted: Vec<String> = hashes.iter().map(|h| format!("\"{h}\"")).collect();
    let json = format!("[{}]", quoted.join(","));
    let mut conn = pool.acquire().await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        conn.execute(format!("set plan_cache_mode = {mode}").as_str()).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("explain {statement}"))
            .bind(&json)
            .bind(chrono::Utc::now())
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan on tokens"), "{mode}:\n{plan}");
        assert!(plan.contains("tokens_token_hash_key"), "{mode}:\n{plan}");
    }
    // And it finds them.
    let wanted: Vec<Vec<u8>> = sqlx::query_scalar("select sha256(i::text::bytea) from generate_series(1, 50) i")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(store.find_tokens_by_hashes(&wanted, chrono::Utc::now()).await.unwrap().len(), 50);
}
