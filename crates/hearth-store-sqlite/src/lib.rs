//! The SQLite engine, Hearth's zero-setup default: its migrations, its
//! [`Sqlite`] dialect and its connection setup on one embedded database
//! file. Everything that runs a query is `hearth_store_sql`'s, shared with
//! Postgres.
//!
//! Writes go through a pool of exactly one connection and start with
//! `BEGIN IMMEDIATE`, so every lifecycle write holds SQLite's write lock while
//! it reads the row, runs the pure state machine and writes the columns and
//! events: the same serialization Postgres gets from `select … for update`.
//! Reads use a separate pool (WAL mode lets them run beside the writer).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use hearth_store::Event;
use hearth_store::{Engine, LivenessWrite, NoticeFeed, StoreError, StoreResult};
use hearth_store_sql::rows::WorkspaceRow;
use hearth_store_sql::sql;
use hearth_store_sql::sql::Statements;
use hearth_store_sql::{
    event_columns, live_token_columns, liveness_batch_columns, liveness_update, map_err, plugin_columns,
    template_columns, workspace_columns, Dialect, Failure,
};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous, SqliteTypeInfo};
use sqlx::types::Json;
use sqlx::{SqliteConnection, SqlitePool, Type};
use uuid::Uuid;

#[cfg(feature = "testing")]
pub mod testing;

/// The migrations of this engine, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Rows of `b`, the batch: 15 parameters each.
macro_rules! liveness_row {
    () => {
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    };
}

macro_rules! twice {
    ($($rows:tt)*) => {
        concat!($($rows)*, ", ", $($rows)*)
    };
}

/// The liveness write of the rows `b` bound as a `values` list.
macro_rules! liveness_values {
    ($($rows:tt)*) => {
        concat!("with b(", liveness_batch_columns!(), ") as (values ", $($rows)*, ") ", liveness_update!("b"))
    };
}

/// The liveness statement in six shapes: 32, 16, 8, 4, 2 and 1 rows. A
/// batch is written 32 rows per statement, then the rest by its binary
/// digits (27 rows: 16, 8, 2, 1), so a batch of n rows takes at most
/// n / 32 + 5 statements and a lone heartbeat one. Each statement is one
/// round trip to the connection's worker thread (sqlx runs SQLite on a
/// thread of its own), where one statement per row made a batch of 200
/// heartbeats 200 round trips. The shapes of two rows and more are
/// `with b as (values …) update … from b`, which costs SQLite two
/// ephemeral tables per execution (so one row has a plain `update` of its
/// own), and report only how many rows they wrote: when that is fewer than
/// the rows bound (a guard failed), the chunk is written again row by row
/// to learn which (the writes are idempotent). Every shape is prepared
/// once, and checked by the every-statement test
/// ([`Dialect::MORE_STATEMENTS`]).
const WRITE_LIVENESS_SHAPES: [(usize, &str); 6] = [
    (32, liveness_values!(twice!(twice!(twice!(twice!(twice!(liveness_row!()))))))),
    (16, liveness_values!(twice!(twice!(twice!(twice!(liveness_row!())))))),
    (8, liveness_values!(twice!(twice!(twice!(liveness_row!()))))),
    (4, liveness_values!(twice!(twice!(liveness_row!())))),
    (2, liveness_values!(twice!(liveness_row!()))),
    (1, WRITE_LIVENESS_ROW),
];

/// The liveness write of one row.
const WRITE_LIVENESS_ROW: &str = "update workspaces set last_heartbeat_at = $3, last_error_rate = $4, \
    last_sample_error = case when $6 then $5 else last_sample_error end, active_tasks = $7, \
    uptime_seconds = case when $9 then $8 else uptime_seconds end, \
    current_task = case when $15 then $10 else current_task end, \
    monthly_spend = case when $12 then $11 else monthly_spend end, runtime_state = $13, \
    last_active_at = case when $14 then $3 else last_active_at end, updated_at = $3 \
    where workspace_id = $1 and version = $2";

/// The store on SQLite.
pub type SqliteStore = hearth_store_sql::SqlStore<Sqlite>;

/// The `where` clause of the filtered workspace page (see
/// `Statements::list_workspaces_filtered` for its parameters).
macro_rules! sqlite_filter {
    () => {
        "($1 is null or w.org_id = $1) and ($2 or w.status <> 'removed') \
        and ($6 is null or w.status = $6) \
        and ($7 is null or instr(lower(w.name), lower($7)) > 0) \
        and ($8 is null or w.template = $8) \
        and ($9 is null or exists (select 1 from json_each(w.operator_plugins) o where o.value = $9) \
            or exists (select 1 from templates t, json_each(t.plugins) tp \
                where t.org_id = w.org_id and t.name = w.template and tp.value = $9)) \
        and (w.created_at, w.workspace_id) > ($3, $4) order by w.created_at, w.workspace_id limit $5"
    };
}

/// A peer's name or role contains parameter `$q` (null: any peer), ASCII
/// case ignored: the fleet filter's `instr(lower(…))`, on both columns.
macro_rules! sqlite_peer_match {
    ($q:literal) => {
        concat!(
            "(",
            $q,
            " is null or instr(lower(name), lower(",
            $q,
            ")) > 0 or instr(lower(role), lower(",
            $q,
            ")) > 0)"
        )
    };
}

/// Binds the rows of a liveness statement, 15 parameters each.
fn bind_liveness<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    rows: &'q [LivenessWrite],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for w in rows {
        query = query
            .bind(w.id.0)
            .bind(w.version)
            .bind(w.at)
            .bind(w.error_rate)
            .bind(&w.sample_error)
            .bind(w.sample_error.is_some())
            .bind(w.active_tasks)
            .bind(w.uptime_seconds.unwrap_or(0))
            .bind(w.uptime_seconds.is_some())
            .bind(&w.current_task)
            .bind(w.monthly_spend.unwrap_or(0))
            .bind(w.monthly_spend.is_some())
            .bind(&w.runtime_state)
            .bind(w.busy)
            .bind(w.current_task.is_some());
    }
    query
}

/// The desired-state rows (`desired_state_for_page`'s columns and order) of
/// the workspaces in the CTE `page` (workspace_id, org_id, template,
/// operator_plugins) that precedes it.
macro_rules! desired_of_page {
    () => {
        "select p.workspace_id, t.assets_digest, d.value as plugin_name, pl.version, pl.sha256, d.key as ord \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            left join json_each(case when t.template_id is null then '[]' else t.plugins end) d \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.value \
            union all \
            select p.workspace_id, t.assets_digest, d.value, pl.version, pl.sha256, 1000000 + d.key \
            from page p left join templates t on t.org_id = p.org_id and t.name = p.template \
            join json_each(p.operator_plugins) d \
            left join plugins pl on pl.org_id = p.org_id and pl.name = d.value \
            order by 1, 6"
    };
}

/// The SQLite dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;

    const ENGINE: Engine = Engine::Sqlite;

    /// One process owns the database file: nobody else to tell.
    const NOTIFY: Option<&'static str> = None;

    /// Reserve, then insert: the write transaction holds the database lock
    /// from `BEGIN IMMEDIATE` on, so fewer statements shorten no lock (each
    /// is still a round trip to sqlx's worker thread: a multi-row insert, as
    /// the liveness writer does, would save those).
    const APPEND_EVENTS: Option<&'static str> = None;

    /// The writer holds the database lock: a select per row locks nothing
    /// more (each is a round trip to sqlx's worker thread, though).
    const LOCK_WORKSPACES: Option<&'static str> = None;

    const WRITE_WORKSPACES: Option<&'static str> = None;

    /// The smaller shapes of the liveness statement.
    const MORE_STATEMENTS: &'static [(&'static str, &'static str)] = &[
        ("write_liveness_16", WRITE_LIVENESS_SHAPES[1].1),
        ("write_liveness_8", WRITE_LIVENESS_SHAPES[2].1),
        ("write_liveness_4", WRITE_LIVENESS_SHAPES[3].1),
        ("write_liveness_2", WRITE_LIVENESS_SHAPES[4].1),
        ("write_liveness_1", WRITE_LIVENESS_SHAPES[5].1),
    ];

    /// Inside a write transaction (the single writer connection, begun with
    /// `BEGIN IMMEDIATE`) every read is already serialized with every other
    /// writer: SQLite's database lock replaces `for update`.
    const SQL: Statements = Statements {
        select_workspace_for_update: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id = $1"
        ),
        select_subtree_for_update: concat!(
            "with recursive subtree (workspace_id, depth) as ( \
                select workspace_id, 0 from workspaces where workspace_id = $1 \
                union all \
                select w.workspace_id, s.depth + 1 from workspaces w join subtree s on w.parent_id = s.workspace_id \
            ) select ",
            workspace_columns!(),
            " from workspaces join subtree s using (workspace_id) order by s.depth, created_at"
        ),
        list_workspaces: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where ($1 is null or org_id = $1) and ($2 or status <> 'removed') \
            order by created_at, workspace_id"
        ),
        list_workspaces_page: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where ($1 is null or org_id = $1) and ($2 or status <> 'removed') \
            and (created_at, workspace_id) > ($3, $4) order by created_at, workspace_id limit $5"
        ),
        list_workspaces_filtered: concat!("select ", workspace_columns!(), " from workspaces w where ", sqlite_filter!()),
        desired_state_for_filtered_page: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins, created_at from workspaces w where ",
            sqlite_filter!(),
            ") ",
            desired_of_page!()
        ),
        count_workspaces_by_status: "select status, count(*) from workspaces \
            where ($1 is null or org_id = $1) group by status order by status",
        desired_state_for_page: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins, created_at \
                    from workspaces where (created_at, workspace_id) >= ($1, $2) and (created_at, workspace_id) <= ($3, $4) \
                    and ($5 is null or org_id = $5)) ",
            desired_of_page!()
        ),
        list_templates: concat!(
            "select ",
            template_columns!(),
            " from templates where ($1 is null or org_id = $1) and ($2 is null or \
            (name, template_id) > (select name, template_id from templates where template_id = $2)) \
            order by name, template_id limit $3"
        ),
        list_template_files_page: "select f.template_id, f.path, f.sha256, f.size from template_files f \
            where f.template_id in (select template_id from templates where ($1 is null or org_id = $1) \
                and ($2 is null or (name, template_id) > (select name, template_id from templates where template_id = $2)) \
                order by name, template_id limit $3) \
            order by f.template_id, f.path",
        list_template_files: "select path, sha256, size from template_files where template_id = $1 order by path",
        list_plugins: concat!(
            "select ",
            plugin_columns!(),
            " from plugins where ($1 is null or org_id = $1) and ($2 is null or \
            (name, plugin_id) > (select name, plugin_id from plugins where plugin_id = $2)) \
            order by name, plugin_id limit $3"
        ),
        list_plugin_files: "select path, sha256, size from plugin_files where plugin_id = $1 order by path",
        list_plugin_files_page: "select f.plugin_id, f.path, f.sha256, f.size from plugin_files f \
            where f.plugin_id in (select plugin_id from plugins where ($1 is null or org_id = $1) \
                and ($2 is null or (name, plugin_id) > (select name, plugin_id from plugins where plugin_id = $2)) \
                order by name, plugin_id limit $3) \
            order by f.plugin_id, f.path",
        desired_state: "select t.assets_digest, d.value as plugin_name, p.version, p.sha256 from templates t \
            left join json_each(t.plugins) d \
            left join plugins p on p.org_id = t.org_id and p.name = d.value \
            where t.org_id = $1 and t.name = $2 order by d.key",
        desired_state_for_workspace: "select t.assets_digest, d.value as plugin_name, p.version, p.sha256, \
            d.key as ord from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
            left join json_each(case when t.template_id is null then '[]' else t.plugins end) d \
            left join plugins p on p.org_id = w.org_id and p.name = d.value where w.workspace_id = $1 \
            union all \
            select t.assets_digest, d.value, p.version, p.sha256, 1000000 + d.key \
            from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
            join json_each(w.operator_plugins) d \
            left join plugins p on p.org_id = w.org_id and p.name = d.value where w.workspace_id = $1 \
            order by 5",
        desired_states_for_workspaces: concat!(
            "with page as (select workspace_id, org_id, template, operator_plugins \
                    from workspaces where workspace_id in (select unhex(value) from json_each($1))) ",
            desired_of_page!()
        ),
        list_events: concat!(
            "select ",
            event_columns!(),
            " from events where seq > $1 and ($2 is null or org_id = $2) \
            and ($3 is null or workspace_id = $3) order by seq limit $4"
        ),
        lock_event_log: "select compacted_through, aged_through, counted_through from event_log where event_log_id = 1",
        sweep_liveness_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status in ('online', 'degraded') \
            and coalesce(last_heartbeat_at, status_changed_at) < $1 \
            order by coalesce(last_heartbeat_at, status_changed_at) limit $2"
        ),
        lock_sweep_ids: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id in (select unhex(value) from json_each($1))"
        ),
        revoke_org_token: "update tokens set revoked_at = case when revoked_at is not null and revoked_at <= $3 \
            then revoked_at else $3 end, updated_at = $3 \
            where token_id = $1 and ($2 is null or org_id = $2) and workspace_id is null returning token_id",
        sweep_provision_timeout_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status = 'provisioning' and status_changed_at < $1 \
            order by status_changed_at limit $2"
        ),
        sweep_idle_rows: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where status = 'online' and coalesce(last_active_at, status_changed_at) < $1 \
            and active_tasks = 0 order by coalesce(last_active_at, status_changed_at) limit $2"
        ),
        write_liveness: WRITE_LIVENESS_SHAPES[0].1,
        find_tokens_by_hashes: concat!(
            "select t.token_hash, ",
            live_token_columns!(),
            " from tokens t where t.token_hash in (select unhex(value) from json_each($1)) \
            and (t.revoked_at is null or t.revoked_at > $2)"
        ),
        list_peers_under: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where org_id = $1 and parent_id = $2 and workspace_id <> $3 and status <> 'removed' \
            and (created_at, workspace_id) > ($4, $5) and ",
            sqlite_peer_match!("$6"),
            " order by created_at, workspace_id limit $7"
        ),
        list_peers_at_root: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where org_id = $1 and parent_id is null and workspace_id <> $2 \
            and status <> 'removed' and (created_at, workspace_id) > ($3, $4) and ",
            sqlite_peer_match!("$5"),
            " order by created_at, workspace_id limit $6"
        ),
        select_peer_parent: concat!(
            "select ",
            workspace_columns!(),
            " from workspaces where workspace_id = $1 and org_id = $2 and status <> 'removed' and ",
            sqlite_peer_match!("$3")
        ),
        lock_org: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null",
        share_org: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null",
        lock_org_to_delete: "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, \
            max_plugin_bytes from orgs where org_id = $1 and deleted_at is null",
        lock_control_plane: "select alive_at, outage_started_at, outage_ended_at from control_plane \
            where control_plane_id = 1",
    };

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn status_type_info() -> SqliteTypeInfo {
        <&str as Type<sqlx::Sqlite>>::type_info()
    }

    async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn write_liveness(pool: &SqlitePool, batch: &[LivenessWrite]) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut tx = Self::begin_write(pool).await?;
        let mut written = Vec::with_capacity(batch.len());
        let mut rest = batch;
        for (rows, statement) in WRITE_LIVENESS_SHAPES {
            while rest.len() >= rows {
                let (chunk, after) = rest.split_at(rows);
                rest = after;
                let done = bind_liveness(sqlx::query(statement), chunk).execute(&mut *tx).await?;
                if done.rows_affected() == chunk.len() as u64 {
                    written.extend(chunk.iter().map(|w| w.id.0));
                    continue;
                }
                // A guard failed: which one, row by row.
                for w in chunk {
                    let done = bind_liveness(sqlx::query(WRITE_LIVENESS_ROW), std::slice::from_ref(w))
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 1 {
                        written.push(w.id.0);
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn append_events(
        conn: &mut SqliteConnection,
        events: &mut [Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sqlx::Error> {
        let count = events.len() as i64;
        let (last,): (i64,) =
            sqlx::query_as(sql::RESERVE_EVENT_SEQS).bind(count).bind(now).fetch_one(&mut *conn).await?;
        for (seq, event) in (last - count + 1..).zip(events.iter_mut()) {
            event.seq = seq;
            sqlx::query(sql::INSERT_EVENT)
                .bind(event.seq)
                .bind(event.id.0)
                .bind(event.org_id.0)
                .bind(event.workspace_id.map(|w| w.0))
                .bind(event.kind.as_str())
                .bind(Json(&event.payload))
                .bind(event.timestamp)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn write_workspaces(
        _conn: &mut SqliteConnection,
        _rows: &[(&hearth_store::Workspace, &hearth_store::Workspace)],
    ) -> Result<Option<Vec<i64>>, sqlx::Error> {
        Ok(None)
    }

    async fn lock_workspaces(
        conn: &mut SqliteConnection,
        ids: &[Uuid],
    ) -> Result<Vec<WorkspaceRow<Self>>, sqlx::Error> {
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query_as(Self::SQL.select_workspace_for_update).bind(id).fetch_optional(&mut *conn).await?;
            rows.extend(row);
        }
        Ok(rows)
    }

    async fn listen(_pool: &SqlitePool) -> Result<Option<Box<dyn NoticeFeed>>, sqlx::Error> {
        Ok(None)
    }

    /// sqlx reports SQLite's *extended* result code (`SQLITE_BUSY_SNAPSHOT`
    /// is 517), whose low byte is the primary code, so the decision is on
    /// that byte: every form of busy, locked and cannot-open is a 503.
    fn classify(error: &dyn DatabaseError) -> Option<Failure> {
        let primary = error.code()?.parse::<i32>().ok()? & 0xff;
        match primary {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN
            5 | 6 | 14 => Some(Failure::Unavailable),
            _ => None,
        }
    }
}

/// Opens (creating if missing) the database at a `sqlite:` URL.
pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(map_err::<Sqlite>("parse database url"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable {
            operation: "create database directory",
            message: format!("{}: {e}", dir.display()),
        })?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .map_err(map_err::<Sqlite>("open database"))?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.read_only(true))
        .await
        .map_err(map_err::<Sqlite>("open database"))?;
    Ok(SqliteStore::new(writer, reader))
}

/// Opens the database file at `path`.
pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
    connect(&format!("sqlite://{}", path.display())).await
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::error::ErrorKind;

    use super::*;

    /// An error as sqlx-sqlite reports it: `code()` is the *extended* result
    /// code (`sqlite3_extended_errcode`), the primary code in its low byte.
    #[derive(Debug)]
    struct Coded(i32);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "(code: {})", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "a message no decision reads"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.to_string().into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    #[test]
    fn busy_locked_and_cantopen_are_unavailable_in_every_extended_form() {
        let unavailable = [
            (5, "SQLITE_BUSY"),
            (261, "SQLITE_BUSY_RECOVERY"),
            (517, "SQLITE_BUSY_SNAPSHOT"),
            (773, "SQLITE_BUSY_TIMEOUT"),
            (6, "SQLITE_LOCKED"),
            (262, "SQLITE_LOCKED_SHAREDCACHE"),
            (518, "SQLITE_LOCKED_VTAB"),
            (14, "SQLITE_CANTOPEN"),
            (270, "SQLITE_CANTOPEN_NOTEMPDIR"),
            (526, "SQLITE_CANTOPEN_ISDIR"),
            (782, "SQLITE_CANTOPEN_FULLPATH"),
            (1038, "SQLITE_CANTOPEN_CONVPATH"),
            (1294, "SQLITE_CANTOPEN_DIRTYWAL"),
            (1550, "SQLITE_CANTOPEN_SYMLINK"),
        ];
        for (code, name) in unavailable {
            assert_eq!(Sqlite::classify(&Coded(code)), Some(Failure::Unavailable), "{name} ({code})");
        }
    }

    #[test]
    fn other_codes_are_plain_database_errors() {
        let other = [
            (1, "SQLITE_ERROR"),
            (11, "SQLITE_CORRUPT"),
            (19, "SQLITE_CONSTRAINT"),
            (2067, "SQLITE_CONSTRAINT_UNIQUE"),
            (787, "SQLITE_CONSTRAINT_FOREIGNKEY"),
            (1299, "SQLITE_CONSTRAINT_NOTNULL"),
            (266, "SQLITE_IOERR_READ"),
        ];
        for (code, name) in other {
            assert_eq!(Sqlite::classify(&Coded(code)), None, "{name} ({code})");
        }
    }
}
