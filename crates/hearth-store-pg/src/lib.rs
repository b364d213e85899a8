//! The PostgreSQL engine: its migrations, its [`Pg`] dialect and its
//! connection setup. Everything that runs a query is `hearth_store_sql`'s,
//! shared with SQLite.
//!
//! Every lifecycle write locks the workspace row (`select … for update`)
//! inside a plain transaction, so writers of one workspace serialize on any
//! number of replicas.

use std::time::Duration;

use hearth_store::Event;
use hearth_store::{Changed, Engine, LivenessWrite, Notice, NoticeFeed, StoreError, StoreResult, Workspace};
use hearth_store_sql::rows::WorkspaceRow;
use hearth_store_sql::sql::Statements;
use hearth_store_sql::{
    event_columns, live_token_columns, liveness_batch_columns, liveness_update, plugin_columns, template_columns,
    workspace_columns, Dialect, Failure,
};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgListener;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgTypeInfo};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

#[cfg(feature = "testing")]
pub mod testing;

/// The migrations of this engine, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The store on Postgres.
pub type PgStore = hearth_store_sql::SqlStore<Pg>;

/// The `where` clause of the filtered workspace page (see
/// `Statements::list_workspaces_filtered` for its parameters).
macro_rules! pg_filter {
    () => {
        "($1::uuid is null or w.org_id = $1) and ($2 or w.status <> 'removed') \
        and ($6::text is null or w.status::text = $6) \
        and ($7::text is null or strpos(lower(w.name), lower($7)) > 0) \
        and ($8::text is null or w.template = $8) \
        and ($9::text is null or w.operator_plugins ? $9 or exists (select 1 from templates t \
            where t.org_id = w.org_id and t.name = w.template and t.plugins ? $9)) \
        and (w.created_at, w.workspace_id) > ($3, $4) order by w.created_at, w.workspace_id limit $5"
    };
}

/// A peer's name or role contains parameter `$q` (null: any peer), ASCII
/// case ignored: the fleet filter's `strpos(lower(…))`, on both columns.
macro_rules! pg_peer_match {
    ($q:literal) => {
        concat!(
            "(",
            $q,
            "::text is null or strpos(lower(name), lower(",
            $q,
            ")) > 0 or strpos(lower(role), lower(",
            $q,
            ")) > 0)"
        )
    };
}

/// [`Dialect::APPEND_EVENTS`]: the counter advanced and every event inserted
/// in one statement.
const APPEND_EVENTS: &str =
    "with reserved as (update event_counters set last_seq = last_seq + cardinality($1::uuid[]), updated_at = $7 \
         where event_counter_id = 1 returning last_seq) \
         insert into events (seq, event_id, org_id, workspace_id, kind, payload, created_at) \
         select r.last_seq - cardinality($1::uuid[]) + e.ord, e.event_id, e.org_id, e.workspace_id, e.kind, \
         e.payload, e.created_at from reserved r cross join \
         unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::timestamptz[]) \
         with ordinality as e (event_id, org_id, workspace_id, kind, payload, created_at, ord) \
         returning event_id, seq";

/// [`Dialect::LOCK_WORKSPACES`]: a batch's rows locked in one statement.
const LOCK_WORKSPACES: &str = concat!(
    "select ",
    workspace_columns!(),
    " from workspaces where workspace_id = any($1::uuid[]) order by workspace_id for update"
);

/// [`Dialect::WRITE_WORKSPACES`]: `UPDATE_GROUPS` for a batch's rows in
/// one statement, each row's groups flagged as there, bound as arrays
/// (`$1` ids, then each group's flag and columns, `$23` updated_at).
const WRITE_WORKSPACES: &str = "update workspaces w set \
    status = case when b.lifecycle then b.status::workspace_status else w.status end, \
    status_changed_at = case when b.lifecycle then b.status_changed_at else w.status_changed_at end, \
    last_heartbeat_at = case when b.liveness then b.last_heartbeat_at else w.last_heartbeat_at end, \
    last_error_rate = case when b.liveness then b.last_error_rate else w.last_error_rate end, \
    last_sample_error = case when b.liveness then b.last_sample_error else w.last_sample_error end, \
    active_tasks = case when b.liveness then b.active_tasks else w.active_tasks end, \
    uptime_seconds = case when b.liveness then b.uptime_seconds else w.uptime_seconds end, \
    current_task = case when b.liveness then b.current_task else w.current_task end, \
    monthly_spend = case when b.liveness then b.monthly_spend else w.monthly_spend end, \
    runtime_state = case when b.liveness then b.runtime_state else w.runtime_state end, \
    last_active_at = case when b.liveness then b.last_active_at else w.last_active_at end, \
    url = case when b.runtime then b.url else w.url end, \
    agent_card = case when b.runtime then b.agent_card else w.agent_card end, \
    runtime_metadata = case when b.runtime then b.runtime_metadata else w.runtime_metadata end, \
    reported_assets_digest = case when b.delivery then b.reported_assets_digest else w.reported_assets_digest end, \
    installed_plugins = case when b.delivery then b.installed_plugins else w.installed_plugins end, \
    conditions = case when b.delivery then b.conditions else w.conditions end, \
    updated_at = b.updated_at, version = w.version + 1 \
    from unnest($1::uuid[], $2::bool[], $3::text[], $4::timestamptz[], $5::bool[], $6::timestamptz[], \
        $7::float8[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::int8[], $13::text[], \
        $14::timestamptz[], $15::bool[], $16::text[], $17::jsonb[], $18::jsonb[], $19::bool[], $20::text[], \
        $21::jsonb[], $22::jsonb[], $23::timestamptz[]) \
    as b(workspace_id, lifecycle, status, status_changed_at, liveness, last_heartbeat_at, last_error_rate, \
        last_sample_error, active_tasks, uptime_seconds, current_task, monthly_spend, runtime_state, \
        last_active_at, runtime, url, agent_card, runtime_metadata, delivery, reported_assets_digest, \
        installed_plugins, conditions, updated_at) \
    where w.workspace_id = b.workspace_id \
    returning w.workspace_id, w.version";

/// The desired-state rows (`desired_state_for_page`'s columns and order) of
/// the workspaces in the CTE `page` (workspace_id, org_id, template,
/// operator_plugins) that precedes it.
macro_rules! desired_of_page {
    () => {
        "select p.workspace_id, t.assets_digest, d.name as plugin_name, pl.version, pl.sha256, d.ord as ord \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            left join lateral jsonb_array_elements_text(case when t.template_id is null then '[]'::jsonb \
                else t.plugins end) with ordinality as d(name, ord) on true \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.name \
            union all \
            select p.workspace_id, t.assets_digest, d.name, pl.version, pl.sha256, 1000000 + d.ord \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            cross join lateral jsonb_array_elements_text(p.operator_plugins) with ordinality as d(name, ord) \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.name \
            order by 1, 6"
    };
}

/// The Postgres dialect.
#[derive(Debug, Clone, Copy)]
pub struct Pg;

impl Dialect for Pg {
    type Db = Postgres;

    const ENGINE: Engine = Engine::Postgres;

    const NOTIFY: Option<&'static str> = Some("select pg_notify('hearth', $1)");

    const APPEND_EVENTS: Option<&'static str> = Some(APPEND_EVENTS);

    const LOCK_WORKSPACES: Option<&'static str> = Some(LOCK_WORKSPACES);

    const WRITE_WORKSPACES: Option<&'static str> = Some(WRITE_WORKSPACES);

    const SQL: Statements = Statements {
        select_workspace_for_update: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id = $1 for update"
        ),
        select_subtree_for_update: concat!(
            "with recursive subtree (workspace_id, depth) as ( \
                select workspace_id, 0 from workspaces where workspace_id = $1 \
                union all \
                select w.workspace_id, s.depth + 1 from workspaces w join subtree s on w.parent_id = s.workspace_id \
            ) select ",
            workspace_columns!(),
            " from workspaces join subtree s using (workspace_id) order by s.depth, created_at for update of workspaces"
        ),
        list_workspaces: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where ($1::uuid is null or org_id = $1) and ($2 or status <> 'removed') \
            order by created_at, workspace_id"
        ),
        list_workspaces_page: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where ($1::uuid is null or org_id = $1) and ($2 or status <> 'removed') \
            and (created_at, workspace_id) > ($3, $4) order by created_at, workspace_id limit $5"
        ),
        list_workspaces_filtered: concat!("select ", workspace_columns!(), " from workspaces w where ", pg_filter!()),
        desired_state_for_filtered_page: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins, created_at from workspaces w where ",
            pg_filter!(),
            ") ",
            desired_of_page!()
        ),
        count_workspaces_by_status: "select status::text, count(*) from workspaces \
            where ($1::uuid is null or org_id = $1) group by status order by status",
        desired_state_for_page: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins, created_at \
                    from workspaces where (created_at, workspace_id) >= ($1, $2) and (created_at, workspace_id) <= ($3, $4) \
                    and ($5::uuid is null or org_id = $5)) ",
            desired_of_page!()
        ),
        list_templates: concat!(
            "select ",
            template_columns!(),
            " from templates where ($1::uuid is null or org_id = $1) and ($2::uuid is null or \
            (name collate \"C\", template_id) > (select name collate \"C\", template_id from templates where template_id = $2)) \
            order by name collate \"C\", template_id limit $3"
        ),
        list_template_files_page: "select f.template_id, f.path, f.sha256, f.size from template_files f \
            where f.template_id in (select template_id from templates where ($1::uuid is null or org_id = $1) \
                and ($2::uuid is null or (name collate \"C\", template_id) > \
                    (select name collate \"C\", template_id from templates where template_id = $2)) \
                order by name collate \"C\", template_id limit $3) \
            order by f.template_id, f.path collate \"C\"",
        list_template_files: "select path, sha256, size from template_files where template_id = $1 \
            order by path collate \"C\"",
        list_plugins: concat!(
            "select ",
            plugin_columns!(),
            " from plugins where ($1::uuid is null or org_id = $1) and ($2::uuid is null or \
            (name collate \"C\", plugin_id) > (select name collate \"C\", plugin_id from plugins where plugin_id = $2)) \
            order by name collate \"C\", plugin_id limit $3"
        ),
        list_plugin_files: "select path, sha256, size from plugin_files where plugin_id = $1 \
            order by path collate \"C\"",
        list_plugin_files_page: "select f.plugin_id, f.path, f.sha256, f.size from plugin_files f \
            where f.plugin_id in (select plugin_id from plugins where ($1::uuid is null or org_id = $1) \
                and ($2::uuid is null or (name collate \"C\", plugin_id) > \
                    (select name collate \"C\", plugin_id from plugins where plugin_id = $2)) \
                order by name collate \"C\", plugin_id limit $3) \
            order by f.plugin_id, f.path collate \"C\"",
        desired_state: "select t.assets_digest, d.name as plugin_name, p.version, p.sha256 from templates t \
            left join lateral jsonb_array_elements_text(t.plugins) with ordinality as d(name, ord) on true \
            left join plugins p on p.org_id = t.org_id and p.name = d.name \
            where t.org_id = $1 and t.name = $2 order by d.ord",
        desired_state_for_workspace: "select t.assets_digest, d.name as plugin_name, p.version, p.sha256, \
            d.ord as ord from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
            left join lateral jsonb_array_elements_text(case when t.template_id is null then '[]'::jsonb \
                else t.plugins end) with ordinality as d(name, ord) on true \
            left join plugins p on p.org_id = w.org_id and p.name = d.name where w.workspace_id = $1 \
            union all \
            select t.assets_digest, d.name, p.version, p.sha256, 1000000 + d.ord \
            from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
            cross join lateral jsonb_array_elements_text(w.operator_plugins) with ordinality as d(name, ord) \
            left join plugins p on p.org_id = w.org_id and p.name = d.name where w.workspace_id = $1 \
            order by 5",
        desired_states_for_workspaces: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins \
                    from workspaces where workspace_id in (select h::uuid from json_array_elements_text($1::json) as h)) ",
            desired_of_page!()
        ),
        list_events: concat!(
            "select ",
            event_columns!(),
            " from events where seq > $1 and ($2::uuid is null or org_id = $2) \
            and ($3::uuid is null or workspace_id = $3) order by seq limit $4"
        ),
        lock_event_log: "select compacted_through, aged_through, counted_through from event_log \
            where event_log_id = 1 for update skip locked",
        sweep_liveness_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status in ('online', 'degraded') \
            and coalesce(last_heartbeat_at, status_changed_at) < $1 \
            order by coalesce(last_heartbeat_at, status_changed_at) limit $2 for update skip locked"
        ),
        lock_sweep_ids: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id in (select h::uuid from json_array_elements_text($1::json) as h) \
            for update skip locked"
        ),
        revoke_org_token: "update tokens set revoked_at = case when revoked_at is not null and revoked_at <= $3 \
            then revoked_at else $3 end, updated_at = $3 \
            where token_id = $1 and ($2::uuid is null or org_id = $2) and workspace_id is null returning token_id",
        sweep_provision_timeout_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status = 'provisioning' and status_changed_at < $1 \
            order by status_changed_at limit $2 for update skip locked"
        ),
        sweep_idle_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status = 'online' and coalesce(last_active_at, status_changed_at) < $1 \
            and active_tasks = 0 order by coalesce(last_active_at, status_changed_at) limit $2 for update skip locked"
        ),
        write_liveness: concat!(
            liveness_update!(concat!(
                "unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::float8[], $5::text[], $6::bool[], \
                $7::int8[], $8::int8[], $9::bool[], $10::text[], $11::int8[], $12::bool[], $13::text[], \
                $14::bool[], $15::bool[]) as b(",
                liveness_batch_columns!(),
                ")"
            )),
            " returning w.workspace_id"
        ),
        find_tokens_by_hashes: concat!(
            "select t.token_hash, ",
            live_token_columns!(),
            // `= any(array(…))`, not `in (select …)`: the planner cannot
            // see how many hashes the JSON holds and chose a hash join over
            // a scan of every token (4.4 ms at 20k tokens, on every grouped
            // lookup); an array is looked up in the index (0.3 ms).
            " from tokens t where t.token_hash = \
            any(array(select decode(h, 'hex') from json_array_elements_text($1::json) as h)) \
            and (t.revoked_at is null or t.revoked_at > $2)"
        ),
        list_peers_under: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where org_id = $1 and parent_id = $2 and workspace_id <> $3 and status <> 'removed' \
            and (created_at, workspace_id) > ($4, $5) and ",
            pg_peer_match!("$6"),
            " order by created_at, workspace_id limit $7"
        ),
        list_peers_at_root: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where org_id = $1 and parent_id is null and workspace_id <> $2 \
            and status <> 'removed' and (created_at, workspace_id) > ($3, $4) and ",
            pg_peer_match!("$5"),
            " order by created_at, workspace_id limit $6"
        ),
        select_peer_parent: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id = $1 and org_id = $2 and status <> 'removed' and ",
            pg_peer_match!("$3")
        ),
        lock_org: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null for no key update",
        share_org: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null for key share",
        lock_org_to_delete: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null for update",
        lock_control_plane: "select alive_at, outage_started_at, outage_ended_at from control_plane \
            where control_plane_id = 1 for update",
    };

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn status_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("workspace_status")
    }

    async fn begin_write(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }

    async fn write_liveness(pool: &PgPool, batch: &[LivenessWrite]) -> Result<Vec<Uuid>, sqlx::Error> {
        let column = |f: fn(&LivenessWrite) -> i64| batch.iter().map(f).collect::<Vec<_>>();
        sqlx::query_scalar(Self::SQL.write_liveness)
            .bind(batch.iter().map(|w| w.id.0).collect::<Vec<_>>())
            .bind(column(|w| w.version))
            .bind(batch.iter().map(|w| w.at).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.error_rate).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.sample_error.clone()).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.sample_error.is_some()).collect::<Vec<_>>())
            .bind(column(|w| w.active_tasks))
            .bind(column(|w| w.uptime_seconds.unwrap_or(0)))
            .bind(batch.iter().map(|w| w.uptime_seconds.is_some()).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.current_task.clone()).collect::<Vec<_>>())
            .bind(column(|w| w.monthly_spend.unwrap_or(0)))
            .bind(batch.iter().map(|w| w.monthly_spend.is_some()).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.runtime_state.clone()).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.busy).collect::<Vec<_>>())
            .bind(batch.iter().map(|w| w.current_task.is_some()).collect::<Vec<_>>())
            .fetch_all(pool)
            .await
    }

    async fn append_events(
        conn: &mut PgConnection,
        events: &mut [Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sqlx::Error> {
        let seqs: Vec<(Uuid, i64)> = sqlx::query_as(APPEND_EVENTS)
            .bind(events.iter().map(|e| e.id.0).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.org_id.0).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.workspace_id.map(|w| w.0)).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| Json(&e.payload)).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.timestamp).collect::<Vec<_>>())
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
        let seqs: std::collections::HashMap<Uuid, i64> = seqs.into_iter().collect();
        for event in events.iter_mut() {
            event.seq = *seqs
                .get(&event.id.0)
                .ok_or_else(|| sqlx::Error::Protocol(format!("event {} was not appended", event.id.0)))?;
        }
        Ok(())
    }

    async fn write_workspaces(
        conn: &mut PgConnection,
        rows: &[(&Workspace, &Workspace)],
    ) -> Result<Option<Vec<i64>>, sqlx::Error> {
        let changed: Vec<Changed> = rows.iter().map(|(current, next)| Changed::between(current, next)).collect();
        let next = || rows.iter().map(|(_, next)| *next);
        let flags = |f: fn(&Changed) -> bool| changed.iter().map(f).collect::<Vec<bool>>();
        // A group that did not change is bound as null (its columns kept):
        // its JSON is not even serialized.
        let runtime = |value: fn(&Workspace) -> Option<&sqlx::types::JsonValue>| {
            changed.iter().zip(next()).map(|(c, w)| value(w).filter(|_| c.runtime).map(Json)).collect::<Vec<_>>()
        };
        let plugins: Vec<_> =
            changed.iter().zip(next()).map(|(c, w)| c.delivery.then_some(Json(&w.installed_plugins))).collect();
        let conditions: Vec<_> =
            changed.iter().zip(next()).map(|(c, w)| c.delivery.then_some(Json(&w.conditions))).collect();
        let versions: Vec<(Uuid, i64)> = sqlx::query_as(WRITE_WORKSPACES)
            .bind(next().map(|w| w.id.0).collect::<Vec<_>>())
            .bind(flags(|c| c.lifecycle))
            .bind(next().map(|w| w.status.as_str()).collect::<Vec<_>>())
            .bind(next().map(|w| w.status_changed_at).collect::<Vec<_>>())
            .bind(flags(|c| c.liveness))
            .bind(next().map(|w| w.last_heartbeat_at).collect::<Vec<_>>())
            .bind(next().map(|w| w.last_error_rate).collect::<Vec<_>>())
            .bind(next().map(|w| w.last_sample_error.clone()).collect::<Vec<_>>())
            .bind(next().map(|w| w.active_tasks).collect::<Vec<_>>())
            .bind(next().map(|w| w.uptime_seconds).collect::<Vec<_>>())
            .bind(next().map(|w| w.current_task.clone()).collect::<Vec<_>>())
            .bind(next().map(|w| w.monthly_spend).collect::<Vec<_>>())
            .bind(next().map(|w| w.runtime_state.clone()).collect::<Vec<_>>())
            .bind(next().map(|w| w.last_active_at).collect::<Vec<_>>())
            .bind(flags(|c| c.runtime))
            .bind(next().map(|w| w.url.clone()).collect::<Vec<_>>())
            .bind(runtime(|w| w.agent_card.as_ref()))
            .bind(runtime(|w| w.runtime_metadata.as_ref()))
            .bind(flags(|c| c.delivery))
            .bind(next().map(|w| w.reported_assets_digest.clone()).collect::<Vec<_>>())
            .bind(plugins)
            .bind(conditions)
            .bind(next().map(|w| w.updated_at).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        let versions: std::collections::HashMap<Uuid, i64> = versions.into_iter().collect();
        let ordered = next()
            .map(|w| {
                versions
                    .get(&w.id.0)
                    .copied()
                    .ok_or_else(|| sqlx::Error::Protocol(format!("workspace {} was not written", w.id.0)))
            })
            .collect::<Result<Vec<i64>, sqlx::Error>>()?;
        Ok(Some(ordered))
    }

    async fn lock_workspaces(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<WorkspaceRow<Self>>, sqlx::Error> {
        sqlx::query_as(LOCK_WORKSPACES).bind(ids).fetch_all(&mut *conn).await
    }

    async fn listen(pool: &PgPool) -> Result<Option<Box<dyn NoticeFeed>>, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(hearth_store::CHANNEL).await?;
        Ok(Some(Box::new(PgFeed { listener })))
    }

    fn classify(error: &dyn DatabaseError) -> Option<Failure> {
        let code = error.code().unwrap_or_default();
        if code == "22021" || code == "22P05" {
            // character_not_in_repertoire (a NUL in text), untranslatable_character (\u0000 in jsonb)
            Some(Failure::InvalidInput)
        } else if code.starts_with("08")
            || code.starts_with("57P")
            || matches!(code.as_ref(), "53300" | "55P03" | "25006")
        {
            // connection exceptions, admin shutdown / cannot connect now, too
            // many connections, a lock not granted within `lock_timeout`, and
            // a read-only database (a failover's old primary, a standby): all
            // pass, so a client is told to retry, never that Hearth broke.
            Some(Failure::Unavailable)
        } else {
            None
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Connects lazily (the first query opens the first connection), so that a
/// server can start, answer `/readyz` with 503 and recover by itself.
pub fn connect_lazy(url: &str, settings: &PgSettings) -> StoreResult<PgStore> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Database {
        operation: "parse database url",
        source: Box::new(std::io::Error::other(hearth_store_sql::redact(&e.to_string()))),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options.clone());
    Ok(from_pool(pool).with_liveness_pool(liveness_pool(options, settings)))
}

/// Connections for the group-commit writer's batches of plain heartbeats
/// (one per batch writer). They commit asynchronously (`synchronous_commit =
/// off`) and plan once (see [`ASYNCHRONOUS_LIVENESS_COMMIT`]): a batch is
/// visible to every reader and survives a crash of Hearth
/// as soon as its commit returns, and Postgres's WAL writer flushes it to
/// disk within 3 × `wal_writer_delay`: a heartbeat that changes nothing but
/// liveness must be on disk within 1 s of its answer. Where the server's
/// `wal_writer_delay` is above [`MAX_WAL_WRITER_DELAY_MS`] the connection
/// keeps synchronous commit (and says so once per connection). Everything
/// else (transitions, events, tokens) commits synchronously on the main pool.
///
/// The pool does not ping a connection before each batch (sqlx's default,
/// `test_before_acquire`): that is a round trip to Postgres per batch, and
/// the batch itself finds out as well. A batch that fails on a dead
/// connection is not lost: its heartbeats are decided again on the locked
/// path, through the main pool, and sqlx drops the broken connection.
pub fn liveness_pool(options: PgConnectOptions, settings: &PgSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(LIVENESS_CONNECTIONS)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                let (delay_ms, commit, _): (i32, String, String) = sqlx::query_as(ASYNCHRONOUS_LIVENESS_COMMIT)
                    .bind(MAX_WAL_WRITER_DELAY_MS)
                    .fetch_one(&mut *conn)
                    .await?;
                if commit != "off" {
                    tracing::warn!(
                        wal_writer_delay_ms = delay_ms,
                        "Postgres's wal_writer_delay is above {MAX_WAL_WRITER_DELAY_MS} ms: heartbeat batches commit \
                         synchronously (slower), since an asynchronous commit would not be durable within 1 s"
                    );
                }
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// Connections of the liveness pool: as many as the server has batch
/// writers on Postgres (`Store::liveness_writers`; `hearth-server`'s `heartbeat/mod.rs` says why one).
pub const LIVENESS_CONNECTIONS: u32 = 1;
/// Longest `wal_writer_delay` under which an asynchronous commit is on disk
/// within 1 s (Postgres flushes within three of them).
pub const MAX_WAL_WRITER_DELAY_MS: i32 = 333;
/// Turns synchronous commit off for this connection if the server flushes
/// asynchronous commits within 1 s; answers the server's `wal_writer_delay`
/// (ms) and the setting now in force. A SELECT, so that the statement check
/// (rule 2) prepares it like every other.
///
/// It also makes the connection plan its statements once
/// (`plan_cache_mode = force_generic_plan`): a batch's `update … from
/// unnest(…)` was otherwise planned anew for every batch, a large share of
/// Postgres's time under heartbeat load (see BENCHMARKS.md, "Heartbeat
/// ingest"), and its generic plan is the right one at any fleet size (a
/// nested loop over the batch, each row found by its primary key).
pub const ASYNCHRONOUS_LIVENESS_COMMIT: &str = "select setting::int4, set_config('synchronous_commit', \
    case when setting::int4 <= $1 then 'off' else 'on' end, false), \
    set_config('plan_cache_mode', 'force_generic_plan', false) from pg_settings where name = 'wal_writer_delay'";

/// A store on an existing pool (reads and writes share it).
pub fn from_pool(pool: PgPool) -> PgStore {
    PgStore::new(pool.clone(), pool)
}

/// Notices from `LISTEN hearth`, on the listener's own connection.
struct PgFeed {
    listener: PgListener,
}

#[async_trait::async_trait]
impl NoticeFeed for PgFeed {
    async fn next(&mut self) -> StoreResult<Notice> {
        loop {
            // `Ok(None)`: the connection was lost; the next call reconnects
            // and listens again, and what was sent meanwhile is lost.
            let notification = match self.listener.try_recv().await {
                Ok(Some(notification)) => notification,
                Ok(None) => return Ok(Notice::Lost),
                Err(e) => return Err(hearth_store_sql::map_err::<Pg>("listen")(e)),
            };
            match Notice::parse(notification.payload()) {
                Some(notice) => return Ok(notice),
                // A newer replica's notice: nothing this build caches.
                None => continue,
            }
        }
    }
}
