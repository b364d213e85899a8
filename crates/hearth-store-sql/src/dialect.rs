//! What differs between engines, and nothing else.

use std::future::Future;

use chrono::{DateTime, Utc};
use hearth_store::{Engine, Event, LivenessWrite, NoticeFeed, Workspace};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, Transaction};

use crate::rows::WorkspaceRow;
use crate::sql::Statements;

/// One database engine as the shared store sees it: its sqlx database type,
/// how a write transaction begins, the statements it spells its own way, how
/// a workspace status is typed, and what its error codes mean. Everything
/// else (every query that runs, every row, every transaction's shape) lives
/// once in [`crate::SqlStore`].
pub trait Dialect: Send + Sync + Sized + 'static {
    type Db: Database;

    const ENGINE: Engine;

    /// The statements whose text differs between engines.
    const SQL: Statements;

    /// Sends a [`hearth_store::Notice`] (`$1`, its payload) to every replica
    /// when the transaction commits; `None` for an engine without replicas.
    const NOTIFY: Option<&'static str>;

    /// Advances the event counter by the number of events and inserts them
    /// with those seqs, in one statement (arrays: `$1` event ids, `$2`
    /// orgs, `$3` workspaces, `$4` kinds, `$5` payloads, `$6` times; `$7`
    /// the counter's time; returns `(event_id, seq)`). On Postgres the
    /// counter row's lock serializes every transaction that appends events
    /// until it commits, so the fewer round trips after taking it, the more
    /// transitions per second. `None`: reserve the seqs, then insert row by
    /// row (SQLite, whose write transactions are serialized anyway).
    const APPEND_EVENTS: Option<&'static str>;

    /// Selects and locks the rows of many workspaces in one statement, in
    /// workspace-id order (`$1` an array of ids). `None`: one
    /// [`Statements::select_workspace_for_update`] per row (SQLite, whose
    /// writer holds the database lock already).
    const LOCK_WORKSPACES: Option<&'static str>;

    /// Writes the changed column groups of many rows in one statement
    /// (`update … from unnest(…)`), as [`crate::sql::UPDATE_GROUPS`] does for
    /// one. `None`: one `UPDATE_GROUPS` per row (SQLite, where a statement
    /// is no network round trip).
    const WRITE_WORKSPACES: Option<&'static str>;

    /// Statements of the engine's own beyond [`Statements`] (name, sql),
    /// prepared by the every-statement test like the rest.
    const MORE_STATEMENTS: &'static [(&'static str, &'static str)] = &[];

    /// The engine's migrations, embedded in the binary.
    fn migrator() -> &'static Migrator;

    /// The SQL type a workspace status is bound as (the `workspace_status`
    /// ENUM on Postgres, TEXT under a CHECK constraint on SQLite).
    fn status_type_info() -> <Self::Db as Database>::TypeInfo;

    /// Begins a transaction that writes: on Postgres a plain `BEGIN` (rows
    /// are then locked with `select … for update`), on SQLite
    /// `BEGIN IMMEDIATE` on the single writer connection (the database lock
    /// is taken before the first read).
    fn begin_write(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// Runs [`Statements::write_liveness`] for a batch, in one transaction,
    /// and returns the ids whose guard held. The one statement whose
    /// execution differs by engine: Postgres binds the batch as arrays
    /// (`update … from unnest(…)`, one statement), SQLite binds it as
    /// `values` lists of a fixed number of rows on its single writer.
    fn write_liveness(
        pool: &Pool<Self::Db>,
        batch: &[LivenessWrite],
    ) -> impl Future<Output = Result<Vec<uuid::Uuid>, sqlx::Error>> + Send;

    /// Appends `events` (in this order, under the event counter) and sets
    /// each one's seq: [`Dialect::APPEND_EVENTS`] once, or reserve then
    /// insert.
    fn append_events<'c>(
        conn: &'c mut <Self::Db as Database>::Connection,
        events: &'c mut [Event],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// The rows of `ids` (sorted, distinct), locked for the transaction
    /// ([`Dialect::LOCK_WORKSPACES`], or a select per row); ids without a
    /// row are left out.
    fn lock_workspaces<'c>(
        conn: &'c mut <Self::Db as Database>::Connection,
        ids: &'c [uuid::Uuid],
    ) -> impl Future<Output = Result<Vec<WorkspaceRow<Self>>, sqlx::Error>> + Send + 'c;

    /// Writes each `(current, next)` pair's changed column groups with
    /// [`Dialect::WRITE_WORKSPACES`] and returns each row's new version,
    /// in order; `None` when the engine has no such statement (the caller
    /// writes the rows one by one).
    fn write_workspaces<'c>(
        conn: &'c mut <Self::Db as Database>::Connection,
        rows: &'c [(&'c Workspace, &'c Workspace)],
    ) -> impl Future<Output = Result<Option<Vec<i64>>, sqlx::Error>> + Send + 'c;

    /// A feed of the notices on [`hearth_store::CHANNEL`], on a connection
    /// of its own (`None` when [`Dialect::NOTIFY`] is).
    fn listen(pool: &Pool<Self::Db>) -> impl Future<Output = Result<Option<Box<dyn NoticeFeed>>, sqlx::Error>> + Send;

    /// What an engine-specific error code means, when it means more than
    /// "a database error" (constraint violations are recognised for every
    /// engine by sqlx).
    fn classify(error: &dyn DatabaseError) -> Option<Failure>;
}

/// The engine-specific error codes the store acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot serve now (connection lost, shutting down,
    /// busy): the API answers 503 with `Retry-After`.
    Unavailable,
    /// The database refused a value of the caller's (a 400).
    InvalidInput,
}
