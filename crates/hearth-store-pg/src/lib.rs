//! The PostgreSQL engine: its migrations, its [`Pg`] dialect and its
//! connection setup. Everything that runs a query is `hearth_store_sql`'s,
//! shared with SQLite.
//!
//! Every lifecycle write locks the workspace row (`select … for update`)
//! inside a plain transaction, so writers of one workspace serialize on any
//! number of replicas.

use std::time::Duration;

use hearth_store::{Engine, StoreError, StoreResult};
use hearth_store_sql::sql::Statements;
use hearth_store_sql::{event_columns, plugin_columns, template_columns, workspace_columns, Dialect, Failure};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgTypeInfo};
use sqlx::{PgPool, Postgres};

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

/// The Postgres dialect.
#[derive(Debug, Clone, Copy)]
pub struct Pg;

impl Dialect for Pg {
    type Db = Postgres;

    const ENGINE: Engine = Engine::Postgres;

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
            ") select p.workspace_id, t.assets_digest, d.name as plugin_name, pl.version, pl.sha256, d.ord as ord \
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
        ),
        count_workspaces_by_status: "select status::text, count(*) from workspaces \
            where ($1::uuid is null or org_id = $1) group by status order by status",
        desired_state_for_page: "with page as (select workspace_id, org_id, template, operator_plugins, created_at \
                from workspaces where (created_at, workspace_id) >= ($1, $2) and (created_at, workspace_id) <= ($3, $4) \
                and ($5::uuid is null or org_id = $5)) \
            select p.workspace_id, t.assets_digest, d.name as plugin_name, pl.version, pl.sha256, d.ord as ord \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            left join lateral jsonb_array_elements_text(case when t.template_id is null then '[]'::jsonb \
                else t.plugins end) with ordinality as d(name, ord) on true \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.name \
            union all \
            select p.workspace_id, t.assets_digest, d.name, pl.version, pl.sha256, 1000000 + d.ord \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            cross join lateral jsonb_array_elements_text(p.operator_plugins) with ordinality as d(name, ord) \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.name \
            order by 1, 6",
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
            " from plugins where ($1::uuid is null or org_id = $1) order by name collate \"C\", plugin_id"
        ),
        list_plugin_files: "select path, sha256, size from plugin_files where plugin_id = $1 \
            order by path collate \"C\"",
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
        list_events: concat!(
            "select ",
            event_columns!(),
            " from events where seq > $1 and ($2::uuid is null or org_id = $2) \
            and ($3::uuid is null or workspace_id = $3) order by seq limit $4"
        ),
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

    fn classify(error: &dyn DatabaseError) -> Option<Failure> {
        let code = error.code().unwrap_or_default();
        if code == "22021" || code == "22P05" {
            // character_not_in_repertoire (a NUL in text), untranslatable_character (\u0000 in jsonb)
            Some(Failure::InvalidInput)
        } else if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
            // connection exceptions, admin shutdown / cannot connect now, too many connections
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
        .connect_lazy_with(options);
    Ok(from_pool(pool))
}

/// A store on an existing pool (reads and writes share it).
pub fn from_pool(pool: PgPool) -> PgStore {
    PgStore::new(pool.clone(), pool)
}
