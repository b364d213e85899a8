//! `SqlStore<D>`: the one implementation of `hearth_store::Store`.
//!
//! Every lifecycle write begins a write transaction ([`Dialect::begin_write`]),
//! reads the workspace row under lock, runs the pure state machine, and
//! writes the changed column groups and the events in that transaction.
//! Event sequence numbers come from a one-row counter taken under lock in
//! the same transaction, so `seq` is gap-free and commit order equals `seq`
//! order on every replica.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_core::reconcile::{ConditionRecord, DesiredState, InstalledPlugin};
use hearth_core::{
    decide, Actor, By, Decision, EventDraft, EventId, Input, OrgId, Outage, Rejection, Role, SweepContext, TokenId,
    WorkspaceId, WorkspaceStatus,
};
use hearth_store::{
    evolve, Applied, Bootstrap, Changed, Compaction, Conflict, Deleted, Engine, Event, EventQuery, LivenessWrite,
    NewFile, NewPlugin, NewTemplate, NewToken, NewWorkspace, NewWorkspaceToken, Notice, NoticeFeed, Org, PeerGroup,
    PeersPage, Plugin, Quota, Quotas, Retention, SealedSecret, Store, StoreError, StoreResult, Sweep, Template, Token,
    Usage, Workspace, WorkspaceCursor, WorkspaceFilter, WorkspacePage,
};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use uuid::Uuid;

/// A stored file larger than this leaves the connection's buffers large:
/// they are shrunk after the write.
const LARGE_CONTENT: usize = 1 << 20;

/// The files of a page of templates or plugins, read in one query
/// (`(owner id, path, sha256, size)`, by owner then path), by owner.
fn files_by_owner(files: Vec<(Uuid, String, String, i64)>) -> HashMap<Uuid, Vec<FileRow>> {
    let mut by_owner: HashMap<Uuid, Vec<FileRow>> = HashMap::new();
    for (owner, path, sha256, size) in files {
        by_owner.entry(owner).or_default().push(FileRow { path, sha256, size });
    }
    by_owner
}

use crate::error::{map_err, map_write_err, Violations};

/// The conflict of a write that refers to its org and to nothing else a
/// caller names (templates, plugins, secrets).
const ORG_MUST_EXIST: Violations = Violations { unique: None, foreign_key: Some(Conflict::OrgMissing) };
use crate::rows::{
    self, DbStatus, DesiredRow, EventRow, FileRow, HashedTokenRow, OrgRow, PageDesiredRow, PluginRow, SecretRow,
    TemplateRow, TokenRow, WorkspaceDesiredRow, WorkspaceRow,
};
use crate::sql;
use crate::Dialect;

/// The store over dialect `D`. Writes go through `writer`, reads through
/// `reader`: the same pool on Postgres; on SQLite a one-connection writer
/// (the single writer that `BEGIN IMMEDIATE` serializes) and a read-only
/// pool beside it (WAL lets reads run beside the writer).
pub struct SqlStore<D: Dialect> {
    writer: Pool<D::Db>,
    reader: Pool<D::Db>,
    /// The group-commit writer's batches of plain heartbeats
    /// ([`Store::write_liveness`]); the writer pool unless an engine gives
    /// them connections of their own ([`SqlStore::with_liveness_pool`]).
    liveness: Pool<D::Db>,
}

/// A workspace row written in the current transaction whose events are
/// still to be appended ([`SqlStore::append_last`]).
struct Written {
    previous: WorkspaceStatus,
    workspace: Workspace,
    drafts: Vec<EventDraft>,
    now: DateTime<Utc>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self { writer: self.writer.clone(), reader: self.reader.clone(), liveness: self.liveness.clone() }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("engine", &D::ENGINE).finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D> {
    pub fn new(writer: Pool<D::Db>, reader: Pool<D::Db>) -> Self {
        Self { liveness: writer.clone(), writer, reader }
    }

    /// Batches of plain heartbeats go through `pool` (Postgres: connections
    /// that commit asynchronously, see `hearth-store-pg`).
    pub fn with_liveness_pool(mut self, pool: Pool<D::Db>) -> Self {
        self.liveness = pool;
        self
    }

    /// The pool batches of plain heartbeats go through.
    pub fn liveness(&self) -> &Pool<D::Db> {
        &self.liveness
    }

    /// The pool writes go through (tests use it to inspect the schema).
    pub fn writer(&self) -> &Pool<D::Db> {
        &self.writer
    }

    /// The pool reads go through.
    pub fn reader(&self) -> &Pool<D::Db> {
        &self.reader
    }
}

// The where-clause below lists what the shared SQL needs of an engine's sqlx
// driver; Postgres and SQLite provide all of it. It is spelled out twice
// (here and on the `Store` impl) because Rust does not carry such bounds
// from one impl block to another.
impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> Uuid: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + Decode<'q, D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> f64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> DateTime<Utc>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Uuid>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i32>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Value>>: Encode<'q, D::Db> + Type<D::Db>,
    <D::Db as Database>::Connection: sqlx::migrate::Migrate,
    for<'q> Json<Value>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<String>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<InstalledPlugin>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<ConditionRecord>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Vec<InstalledPlugin>>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Vec<ConditionRecord>>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'r> WorkspaceRow<D>: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> TokenRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HashedTokenRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> SecretRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> EventRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> FileRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> TemplateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PluginRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> DesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> WorkspaceDesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PageDesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> OrgRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid, String, String, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, i64, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, DateTime<Utc>): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (bool,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, <D::Db as Database>::Row>,
{
    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        D::migrator().run(&self.writer).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err::<D>("migrate")(e),
            other => StoreError::Database { operation: "migrate", source: Box::new(other) },
        })
    }

    /// Statements that do not prepare against this database's schema, as
    /// "name: error" lines (rule 2; empty when every statement fits).
    pub async fn unpreparable_statements(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for (name, statement) in sql::all_statements::<D>() {
            if let Err(e) = (&self.reader).prepare(statement).await {
                failures.push(format!("{name}: {e}"));
            }
        }
        failures
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, D::Db>> {
        D::begin_write(&self.writer).await.map_err(map_err::<D>("begin"))
    }

    /// The workspace row, locked until the transaction ends.
    async fn lock_workspace(conn: &mut <D::Db as Database>::Connection, id: WorkspaceId) -> StoreResult<Workspace> {
        let row: Option<WorkspaceRow<D>> = sqlx::query_as(D::SQL.select_workspace_for_update)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err::<D>("lock_workspace"))?;
        Ok(row.ok_or(StoreError::NotFound("workspace"))?.into())
    }

    /// The workspace row, locked, refused when removed.
    async fn lock_live_workspace(
        conn: &mut <D::Db as Database>::Connection,
        id: WorkspaceId,
    ) -> StoreResult<Workspace> {
        let workspace = Self::lock_workspace(conn, id).await?;
        if workspace.status == WorkspaceStatus::Removed {
            return Err(Rejection::Removed.into());
        }
        Ok(workspace)
    }

    /// Locks org `id`'s row for the rest of the transaction and reads its
    /// quotas; NotFound("org") when there is none or it was deleted.
    async fn lock_org(conn: &mut <D::Db as Database>::Connection, id: OrgId) -> StoreResult<Quotas> {
        Self::org_locked(conn, (D::SQL.lock_org, "lock_org"), id).await
    }

    /// Org `id`'s row under the lock `statement` takes (`lock_org`,
    /// `share_org`, `lock_org_to_delete`), and its quotas; NotFound("org")
    /// when there is none or it was deleted.
    async fn org_locked(
        conn: &mut <D::Db as Database>::Connection,
        (statement, operation): (&'static str, &'static str),
        id: OrgId,
    ) -> StoreResult<Quotas> {
        let row: Option<OrgRow> =
            sqlx::query_as(statement).bind(id.0).fetch_optional(&mut *conn).await.map_err(map_err::<D>(operation))?;
        Ok(row.ok_or(StoreError::NotFound("org"))?.into_quotas())
    }

    /// The org's workspaces not removed, and those running.
    async fn count_org_workspaces(conn: &mut <D::Db as Database>::Connection, id: OrgId) -> StoreResult<(i64, i64)> {
        sqlx::query_as(sql::COUNT_ORG_WORKSPACES)
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err::<D>("count_org_workspaces"))
    }

    /// Bytes of the org's template or plugin files (as `statement` says),
    /// but those of the one named `except`.
    async fn org_bytes(
        conn: &mut <D::Db as Database>::Connection,
        (statement, operation): (&'static str, &'static str),
        id: OrgId,
        except: &str,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(statement)
            .bind(id.0)
            .bind(except)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err::<D>(operation))
    }

    /// Refuses (`QuotaExceeded`, nothing written) when `more` would take
    /// org `id` past a quota. An org with no quota on what `more` adds is
    /// only shared (writers to it run at once; its deletion waits for
    /// them); one with such a quota is locked for the rest of the
    /// transaction, so two writes cannot both pass the last unit. Counts
    /// only what a set quota needs; `replacing` names the template or
    /// plugin the write replaces (its bytes are not counted twice).
    async fn within_quotas(
        conn: &mut <D::Db as Database>::Connection,
        id: OrgId,
        more: Usage,
        replacing: &str,
    ) -> StoreResult<()> {
        let shared = Self::org_locked(conn, (D::SQL.share_org, "share_org"), id).await?;
        let counted = |quotas: &Quotas| Quota::ALL.iter().any(|q| q.used(&more) > 0 && q.limit(quotas).is_some());
        if !counted(&shared) {
            return Ok(());
        }
        // The quotas as they are under the lock (they may have changed).
        let quotas = Self::lock_org(conn, id).await?;
        let mut used = Usage::default();
        if (more.workspaces > 0 && quotas.workspaces.is_some()) || (more.running > 0 && quotas.running.is_some()) {
            (used.workspaces, used.running) = Self::count_org_workspaces(conn, id).await?;
        }
        if more.template_bytes > 0 && quotas.template_bytes.is_some() {
            let statement = (sql::ORG_TEMPLATE_BYTES, "org_template_bytes");
            used.template_bytes = Self::org_bytes(conn, statement, id, replacing).await?;
        }
        if more.plugin_bytes > 0 && quotas.plugin_bytes.is_some() {
            used.plugin_bytes =
                Self::org_bytes(conn, (sql::ORG_PLUGIN_BYTES, "org_plugin_bytes"), id, replacing).await?;
        }
        if let Some((quota, limit, used)) = quotas.exceeded(&used, &more) {
            return Err(StoreError::QuotaExceeded { quota, limit, used });
        }
        Ok(())
    }

    async fn append_events(
        conn: &mut <D::Db as Database>::Connection,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        drafts: Vec<EventDraft>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Event>> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let mut events: Vec<Event> = drafts.into_iter().map(|draft| new_event(draft, org, workspace, now)).collect();
        D::append_events(conn, &mut events, now).await.map_err(map_err::<D>("append_events"))?;
        Ok(events)
    }

    /// Tells every replica about `notice` when the transaction commits.
    async fn notify(conn: &mut <D::Db as Database>::Connection, notice: &Notice) -> StoreResult<()> {
        if let Some(statement) = D::NOTIFY {
            sqlx::query(statement).bind(notice.encode()).execute(&mut *conn).await.map_err(map_err::<D>("notify"))?;
        }
        Ok(())
    }

    /// Appends events and tells every replica's streams.
    async fn append_and_notify(
        conn: &mut <D::Db as Database>::Connection,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        drafts: Vec<EventDraft>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Event>> {
        // The notice first: it is sent at commit either way, and every round
        // trip after the first event holds the event counter's lock.
        if !drafts.is_empty() {
            Self::notify(conn, &Notice::Events).await?;
        }
        Self::append_events(conn, org, workspace, drafts, now).await
    }

    /// Writes the column groups that changed between `current` and `next`
    /// ([`Changed`]) in one UPDATE: a group that did not change keeps its
    /// columns and its JSON is not even bound, so a steady heartbeat writes
    /// no JSON, and a transition (lifecycle, liveness and delivery at once)
    /// is one round trip. Bumps the row version; returns the version the
    /// row has now.
    async fn write_workspace(
        conn: &mut <D::Db as Database>::Connection,
        current: &Workspace,
        next: &Workspace,
    ) -> StoreResult<i64> {
        let changed = Changed::between(current, next);
        let json = |on: bool, value: &Value| on.then(|| Json(value.clone()));
        // Bound by position: each group's flag, then its columns, as
        // UPDATE_GROUPS numbers them.
        let (version,) = sqlx::query_as(sql::UPDATE_GROUPS)
            .bind(next.id.0) // $1 workspace_id
            .bind(changed.lifecycle) // $2 lifecycle: $3 status, $4 status_changed_at
            .bind(DbStatus::<D>::new(next.status))
            .bind(next.status_changed_at)
            .bind(changed.liveness) // $5 liveness: $6 last_heartbeat_at … $14 last_active_at
            .bind(next.last_heartbeat_at)
            .bind(next.last_error_rate)
            .bind(&next.last_sample_error)
            .bind(next.active_tasks)
            .bind(next.uptime_seconds)
            .bind(&next.current_task)
            .bind(next.monthly_spend)
            .bind(&next.runtime_state)
            .bind(next.last_active_at)
            .bind(changed.runtime) // $15 runtime: $16 url, $17 agent_card, $18 runtime_metadata
            .bind(&next.url)
            .bind(next.agent_card.as_ref().and_then(|card| json(changed.runtime, card)))
            .bind(next.runtime_metadata.as_ref().and_then(|meta| json(changed.runtime, meta)))
            .bind(changed.delivery) // $19 delivery: $20 digest, $21 plugins, $22 conditions
            .bind(&next.reported_assets_digest)
            .bind(changed.delivery.then(|| Json(next.installed_plugins.clone())))
            .bind(changed.delivery.then(|| Json(next.conditions.clone())))
            .bind(next.updated_at) // $23 updated_at
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err::<D>("update_workspace"))?;
        Ok(version)
    }

    /// Replaces the files of a template or plugin (`owner`): deletes the old
    /// list, stores each content once per sha256, inserts the new list.
    async fn replace_files(
        conn: &mut <D::Db as Database>::Connection,
        owner: Uuid,
        files: &[NewFile],
        (delete, insert): (&'static str, &'static str),
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(delete).bind(owner).execute(&mut *conn).await.map_err(map_err::<D>("delete_files"))?;
        for file in files {
            sqlx::query(sql::INSERT_BLOB)
                .bind(&file.sha256)
                .bind(&file.content)
                .bind(file.content.len() as i64)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_err::<D>("insert_blob"))?;
            sqlx::query(insert)
                .bind(owner)
                .bind(&file.path)
                .bind(&file.sha256)
                .bind(file.content.len() as i64)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_write_err::<D>(
                    "insert_file",
                    Violations { unique: Some(Conflict::DuplicatePath), foreign_key: None },
                ))?;
        }
        if files.iter().any(|file| file.content.len() > LARGE_CONTENT) {
            // The connection's buffers grew to hold the largest file (on
            // Postgres, its write buffer holds the whole bind message) and
            // would keep that size for as long as the pool keeps the
            // connection: give it back.
            sqlx::Connection::shrink_buffers(&mut *conn);
        }
        Ok(())
    }

    async fn files_of(&self, statement: &'static str, owner: Uuid) -> StoreResult<Vec<FileRow>> {
        sqlx::query_as(statement).bind(owner).fetch_all(&self.reader).await.map_err(map_err::<D>("list_files"))
    }

    async fn template_from(&self, row: Option<TemplateRow>) -> StoreResult<Template> {
        let row = row.ok_or(StoreError::NotFound("template"))?;
        let files = self.files_of(D::SQL.list_template_files, row.template_id).await?;
        Ok(row.with_files(files))
    }

    /// A plugin by id with its files (the store has no route to ask by id:
    /// plugins are named, but a write knows the id it wrote).
    async fn plugin_by_id(&self, id: Uuid) -> StoreResult<Plugin> {
        let row: Option<PluginRow> = sqlx::query_as(sql::SELECT_PLUGIN_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_plugin"))?;
        self.plugin_from(row).await
    }

    async fn plugin_from(&self, row: Option<PluginRow>) -> StoreResult<Plugin> {
        let row = row.ok_or(StoreError::NotFound("plugin"))?;
        let files = self.files_of(D::SQL.list_plugin_files, row.plugin_id).await?;
        Ok(row.with_files(files))
    }

    /// Revokes token `id` of `owner` (an org or a workspace, as `statement`
    /// says) and tells every replica, in one transaction. NotFound when the
    /// token is not the owner's.
    async fn revoke(
        &self,
        (statement, operation): (&'static str, &'static str),
        id: TokenId,
        owner: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let revoked: Option<(Uuid,)> = sqlx::query_as(statement)
            .bind(id.0)
            .bind(owner)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err::<D>(operation))?;
        revoked.ok_or(StoreError::NotFound("token"))?;
        Self::notify(&mut tx, &Notice::TokenRevoked(id)).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))
    }

    /// Evolves the locked row `current` by `decision` (made for `input`)
    /// and writes the column groups that changed; its events (the
    /// decision's, then reconciliation's) are left for [`Self::append_last`].
    async fn write_decided(
        conn: &mut <D::Db as Database>::Connection,
        current: Workspace,
        input: &Input,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> StoreResult<Written> {
        let (mut next, reconcile_events) = evolve(&current, input, &decision, now);
        if next != current {
            next.version = Self::write_workspace(conn, &current, &next).await?;
        }
        let mut drafts = decision.events;
        drafts.extend(reconcile_events);
        Ok(Written { previous: current.status, workspace: next, drafts, now })
    }

    /// A sweep batch's locked `rows`: each re-decided on `input` (the
    /// candidate query and the state machine agree on who is due; the
    /// machine has the last word), the changed ones written and their
    /// events appended, and the transaction committed.
    async fn sweep_rows(
        mut tx: sqlx::Transaction<'static, D::Db>,
        rows: Vec<WorkspaceRow<D>>,
        input: &Input,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Applied>> {
        let (mut currents, mut transitions) = (Vec::new(), Vec::new());
        for row in rows {
            let current: Workspace = row.into();
            let decision = decide(&current.snapshot(), input, now)?;
            if decision.next == current.status {
                continue;
            }
            let (next, _) = evolve(&current, input, &decision, now);
            transitions.push(Written { previous: current.status, workspace: next, drafts: decision.events, now });
            currents.push(current);
        }
        Self::write_rows(&mut tx, &currents, &mut transitions).await?;
        let applied = Self::append_last(&mut tx, transitions).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(applied)
    }

    /// Writes the rows of a batch decided together: `written[k]`'s
    /// workspace was `currents[k]`; the rows that changed are written in one
    /// statement where the engine has one ([`Dialect::write_workspaces`]),
    /// else one by one, and each gets its new version.
    async fn write_rows(
        conn: &mut <D::Db as Database>::Connection,
        currents: &[Workspace],
        written: &mut [Written],
    ) -> StoreResult<()> {
        let changed: Vec<usize> = (0..written.len()).filter(|&k| written[k].workspace != currents[k]).collect();
        if changed.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&Workspace, &Workspace)> =
            changed.iter().map(|&k| (&currents[k], &written[k].workspace)).collect();
        let versions = D::write_workspaces(conn, &pairs).await.map_err(map_err::<D>("write_workspaces"))?;
        drop(pairs);
        match versions {
            Some(versions) => {
                for (&k, version) in changed.iter().zip(versions) {
                    written[k].workspace.version = version;
                }
            }
            None => {
                for &k in &changed {
                    written[k].workspace.version =
                        Self::write_workspace(conn, &currents[k], &written[k].workspace).await?;
                }
            }
        }
        Ok(())
    }

    /// Appends the events of the rows this transaction wrote, with one
    /// notice, after every row is written: appending takes the event
    /// counter's lock until commit.
    async fn append_last(
        conn: &mut <D::Db as Database>::Connection,
        written: Vec<Written>,
    ) -> StoreResult<Vec<Applied>> {
        // Every row's events in one append (one statement on Postgres), in
        // the order the rows were written.
        let mut events: Vec<Event> = Vec::new();
        let mut rows = Vec::with_capacity(written.len());
        let mut last: Option<DateTime<Utc>> = None;
        for Written { previous, workspace, drafts, now } in written {
            if !drafts.is_empty() {
                last = Some(last.map_or(now, |t| t.max(now)));
            }
            let count = drafts.len();
            events.extend(drafts.into_iter().map(|draft| new_event(draft, workspace.org_id, Some(workspace.id), now)));
            rows.push((previous, workspace, count));
        }
        if let Some(now) = last {
            Self::notify(conn, &Notice::Events).await?;
            D::append_events(conn, &mut events, now).await.map_err(map_err::<D>("append_events"))?;
        }
        let mut events = events.into_iter();
        Ok(rows
            .into_iter()
            .map(|(previous, workspace, count)| Applied {
                previous,
                workspace,
                events: events.by_ref().take(count).collect(),
            })
            .collect())
    }

    /// Writes `decision` on the locked row `current`, appends its events and
    /// commits: the end of [`Store::apply`] and [`Store::register_minting`].
    async fn write_one(
        mut tx: sqlx::Transaction<'static, D::Db>,
        current: Workspace,
        input: Input,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> StoreResult<Applied> {
        let written = Self::write_decided(&mut tx, current, &input, decision, now).await?;
        let mut applied = Self::append_last(&mut tx, vec![written]).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        applied
            .pop()
            .ok_or_else(|| StoreError::Corrupt { operation: "apply", message: "no outcome was returned".into() })
    }

    async fn insert_token_on(conn: &mut <D::Db as Database>::Connection, token: &NewToken) -> StoreResult<()> {
        match (token.workspace_id, token.role) {
            (Some(_), None) | (None, Some(Role::Owner | Role::Operator | Role::Viewer)) => {}
            (Some(_), Some(_)) => return Err(StoreError::InvalidInput("a workspace's token has no role".into())),
            (None, None) => return Err(StoreError::InvalidInput("an org token needs a role".into())),
            (None, Some(Role::Admin)) => {
                return Err(StoreError::InvalidInput(
                    "no org token is the admin (the admin token is configured)".into(),
                ))
            }
        }
        sqlx::query(sql::INSERT_TOKEN)
            .bind(token.id.0)
            .bind(token.org_id.0)
            .bind(token.workspace_id.map(|w| w.0))
            .bind(&token.name)
            .bind(&token.prefix)
            .bind(&token.hash)
            .bind(token.now)
            .bind(token.role.map(|role| role.as_str().to_owned()))
            .execute(&mut *conn)
            .await
            .map_err(map_write_err::<D>(
                "insert_token",
                Violations {
                    unique: Some(Conflict::TokenExists),
                    foreign_key: Some(match token.workspace_id {
                        Some(_) => Conflict::TokenWorkspaceMissing,
                        None => Conflict::OrgMissing,
                    }),
                },
            ))?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> Uuid: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + Decode<'q, D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> f64: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> DateTime<Utc>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Uuid>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i32>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Value>>: Encode<'q, D::Db> + Type<D::Db>,
    <D::Db as Database>::Connection: sqlx::migrate::Migrate,
    for<'q> Json<Value>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<String>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<InstalledPlugin>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Json<Vec<ConditionRecord>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Vec<InstalledPlugin>>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<Json<Vec<ConditionRecord>>>: Encode<'q, D::Db> + Type<D::Db>,
    for<'r> WorkspaceRow<D>: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> TokenRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> HashedTokenRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> SecretRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> EventRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> FileRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> TemplateRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PluginRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> DesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> WorkspaceDesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> PageDesiredRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> OrgRow: FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid, String, String, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (String, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, i64, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid, String, DateTime<Utc>): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, DateTime<Utc>): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid, i64): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (bool,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Uuid,): FromRow<'r, <D::Db as Database>::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, <D::Db as Database>::Row>,
{
    fn engine(&self) -> Engine {
        D::ENGINE
    }

    fn liveness_writers(&self) -> usize {
        self.liveness.options().get_max_connections() as usize
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(sql::PING).execute(&self.writer).await.map_err(map_err::<D>("ping"))?;
        Ok(())
    }

    async fn listen(&self) -> StoreResult<Option<Box<dyn NoticeFeed>>> {
        D::listen(&self.writer).await.map_err(map_err::<D>("listen"))
    }

    fn expected_schema_version(&self) -> i64 {
        D::migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::SCHEMA_VERSION).fetch_one(&self.reader).await.map_err(map_err::<D>("schema_version"))
    }

    async fn create_workspaces(&self, batch: Vec<(NewWorkspace, Option<NewToken>)>) -> StoreResult<Vec<Workspace>> {
        let mut tx = self.begin().await?;
        let mut created = Vec::with_capacity(batch.len());
        let creators: Vec<By> = batch.iter().map(|(new, _)| new.by).collect();
        // Each org's quotas, under its lock, in a fixed order (no deadlock
        // between two batches): the whole batch or nothing.
        let mut per_org: std::collections::BTreeMap<OrgId, i64> = std::collections::BTreeMap::new();
        for (new, _) in &batch {
            *per_org.entry(new.org_id).or_default() += 1;
        }
        for (org, count) in per_org {
            let more = Usage { workspaces: count, running: count, ..Usage::default() };
            Self::within_quotas(&mut tx, org, more, "").await?;
        }
        for (new, token) in batch {
            sqlx::query(sql::INSERT_WORKSPACE)
                .bind(new.id.0)
                .bind(new.org_id.0)
                .bind(&new.name)
                .bind(&new.role)
                .bind(new.tier)
                .bind(&new.url)
                .bind(new.parent_id.map(|p| p.0))
                .bind(&new.template)
                .bind(&new.runtime)
                .bind(&new.model)
                .bind(new.max_concurrent_tasks)
                .bind(new.budget_limit)
                .bind(new.external)
                .bind(new.now)
                .execute(&mut *tx)
                .await
                .map_err(map_write_err::<D>(
                    "insert_workspace",
                    Violations {
                        unique: Some(Conflict::WorkspaceExists),
                        foreign_key: Some(match new.parent_id {
                            Some(_) => Conflict::ParentMissing,
                            None => Conflict::OrgMissing,
                        }),
                    },
                ))?;
            if let Some(token) = &token {
                Self::insert_token_on(&mut tx, token).await?;
            }
            let row: WorkspaceRow<D> = sqlx::query_as(sql::SELECT_WORKSPACE)
                .bind(new.id.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err::<D>("get_workspace"))?;
            created.push(Workspace::from(row));
        }
        if !created.is_empty() {
            // One notice for the whole batch: listeners re-read the log.
            Self::notify(&mut tx, &Notice::Events).await?;
        }
        // The events last: appending takes the event counter's lock until
        // commit (every other writer of events waits for it).
        for (workspace, by) in created.iter().zip(creators) {
            let draft = EventDraft::new(
                hearth_core::EventKind::WorkspaceProvisioning,
                serde_json::json!({"name": workspace.name, "template": workspace.template}),
            )
            .by(Actor::Operator(by));
            Self::append_events(&mut tx, workspace.org_id, Some(workspace.id), vec![draft], workspace.created_at)
                .await?;
        }
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(created)
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        let row: Option<WorkspaceRow<D>> = sqlx::query_as(sql::SELECT_WORKSPACE)
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_workspace"))?;
        row.map(Into::into).ok_or(StoreError::NotFound("workspace"))
    }

    async fn count_workspaces(&self) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as(sql::COUNT_WORKSPACES)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err::<D>("count_workspaces"))?;
        Ok(count)
    }

    async fn list_workspaces(&self, org: Option<OrgId>, include_removed: bool) -> StoreResult<Vec<Workspace>> {
        let rows: Vec<WorkspaceRow<D>> = sqlx::query_as(D::SQL.list_workspaces)
            .bind(org.map(|o| o.0))
            .bind(include_removed)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_workspaces"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn list_workspaces_page(&self, page: WorkspacePage) -> StoreResult<Vec<(Workspace, DesiredState)>> {
        let after = page.after.unwrap_or_else(WorkspaceCursor::start);
        let rows: Vec<WorkspaceRow<D>> = sqlx::query_as(D::SQL.list_workspaces_page)
            .bind(page.org.map(|o| o.0))
            .bind(page.include_removed)
            .bind(after.created_at)
            .bind(after.id.0)
            .bind(page.limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_workspaces_page"))?;
        let workspaces: Vec<Workspace> = rows.into_iter().map(Into::into).collect();
        let (Some(first), Some(last)) = (workspaces.first(), workspaces.last()) else { return Ok(Vec::new()) };
        let desired: Vec<PageDesiredRow> = sqlx::query_as(D::SQL.desired_state_for_page)
            .bind(first.created_at)
            .bind(first.id.0)
            .bind(last.created_at)
            .bind(last.id.0)
            .bind(page.org.map(|o| o.0))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("desired_state_for_page"))?;
        with_desired(workspaces, desired, "desired_state_for_page")
    }

    async fn list_peers(&self, page: &PeersPage) -> StoreResult<Vec<(PeerGroup, Workspace)>> {
        let mut peers = Vec::new();
        for group in [PeerGroup::Siblings, PeerGroup::Children, PeerGroup::Parent] {
            let after = match page.after {
                // The previous page ended in a later group.
                Some(cursor) if cursor.group > group => continue,
                Some(cursor) if cursor.group == group => cursor.after,
                _ => WorkspaceCursor::start(),
            };
            let wanted = page.limit - peers.len() as i64;
            if wanted <= 0 {
                break;
            }
            let rows: Vec<WorkspaceRow<D>> = match (group, page.parent) {
                // The parent is one row: a page that ended on it leaves nothing.
                (PeerGroup::Parent, Some(parent)) if page.after.map(|c| c.group) != Some(PeerGroup::Parent) => {
                    sqlx::query_as(D::SQL.select_peer_parent)
                        .bind(parent.0)
                        .bind(page.org.0)
                        .bind(page.name_or_role_contains.clone())
                        .fetch_all(&self.reader)
                        .await
                        .map_err(map_err::<D>("select_peer_parent"))?
                }
                (PeerGroup::Parent, _) => Vec::new(),
                // Siblings: under the same parent, or the org's other roots;
                // children: under this workspace.
                (group, parent) => {
                    let under = if group == PeerGroup::Siblings { parent } else { Some(page.workspace) };
                    let query = match under {
                        Some(under) => sqlx::query_as(D::SQL.list_peers_under)
                            .bind(page.org.0)
                            .bind(under.0)
                            .bind(page.workspace.0),
                        None => sqlx::query_as(D::SQL.list_peers_at_root).bind(page.org.0).bind(page.workspace.0),
                    };
                    query
                        .bind(after.created_at)
                        .bind(after.id.0)
                        .bind(page.name_or_role_contains.clone())
                        .bind(wanted)
                        .fetch_all(&self.reader)
                        .await
                        .map_err(map_err::<D>("list_peers"))?
                }
            };
            peers.extend(rows.into_iter().map(|row| (group, Workspace::from(row))));
        }
        Ok(peers)
    }

    async fn is_ancestor_or_descendant(&self, a: WorkspaceId, b: WorkspaceId, generations: i32) -> StoreResult<bool> {
        let (related,): (bool,) = sqlx::query_as(sql::ANCESTOR_OR_DESCENDANT)
            .bind(a.0)
            .bind(b.0)
            .bind(generations)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err::<D>("is_ancestor_or_descendant"))?;
        Ok(related)
    }

    async fn apply(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied> {
        let mut tx = self.begin().await?;
        let current = Self::lock_workspace(&mut tx, id).await?;
        let decision = decide(&current.snapshot(), &input, now)?;
        Self::write_one(tx, current, input, decision, now).await
    }

    async fn apply_starting(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied> {
        let mut tx = self.begin().await?;
        // The org first, then the row (as creates lock the org): a
        // workspace's org never changes, so it is read unlocked.
        let row: Option<WorkspaceRow<D>> = sqlx::query_as(sql::SELECT_WORKSPACE)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err::<D>("get_workspace"))?;
        let org = Workspace::from(row.ok_or(StoreError::NotFound("workspace"))?).org_id;
        let quotas = Self::lock_org(&mut tx, org).await?;
        let current = Self::lock_workspace(&mut tx, id).await?;
        let decision = decide(&current.snapshot(), &input, now)?;
        let starts = !current.status.keeps_a_runtime() && decision.next.keeps_a_runtime();
        if let (true, Some(limit)) = (starts, quotas.running) {
            let (_, running) = Self::count_org_workspaces(&mut tx, org).await?;
            if running >= limit {
                return Err(StoreError::QuotaExceeded { quota: hearth_store::Quota::Running, limit, used: running });
            }
        }
        Self::write_one(tx, current, input, decision, now).await
    }

    async fn register_minting(
        &self,
        id: WorkspaceId,
        bootstrap: Bootstrap,
        now: DateTime<Utc>,
    ) -> StoreResult<Applied> {
        let Bootstrap { url, agent_card, token, created_after } = bootstrap;
        let input = Input::Register { url, agent_card };
        let mut tx = self.begin().await?;
        let current = Self::lock_workspace(&mut tx, id).await?;
        // Removed (410) and paused (409) answer as they do to any register.
        let decision = decide(&current.snapshot(), &input, now)?;
        // The one-time join, decided on the locked row: a concurrent
        // bootstrap, rotation or issue of this workspace waits for the lock.
        if current.status != WorkspaceStatus::Provisioning || current.created_at <= created_after {
            return Err(StoreError::BootstrapRefused);
        }
        let had_token: bool = sqlx::query_scalar(sql::WORKSPACE_HAS_HAD_TOKEN)
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err::<D>("workspace_has_had_token"))?;
        if had_token {
            return Err(StoreError::BootstrapRefused);
        }
        Self::insert_token_on(&mut tx, &token).await?;
        Self::write_one(tx, current, input, decision, now).await
    }

    async fn apply_batch(
        &self,
        batch: Vec<(WorkspaceId, Input, DateTime<Utc>)>,
    ) -> StoreResult<Vec<StoreResult<Applied>>> {
        let mut outcomes: Vec<Option<StoreResult<Applied>>> = batch.iter().map(|_| None).collect();
        let mut order: Vec<usize> = (0..batch.len()).collect();
        // Stable: two inputs for one workspace are decided in the order given.
        order.sort_by_key(|&i| batch[i].0 .0);
        let mut ids: Vec<Uuid> = order.iter().map(|&i| batch[i].0 .0).collect();
        ids.dedup();
        let mut tx = self.begin().await?;
        // Every row of the batch, locked in workspace-id order, at once.
        let rows = D::lock_workspaces(&mut tx, &ids).await.map_err(map_err::<D>("lock_workspaces"))?;
        let mut rows: HashMap<WorkspaceId, Workspace> = rows
            .into_iter()
            .map(|row| {
                let workspace: Workspace = row.into();
                (workspace.id, workspace)
            })
            .collect();
        let (mut written, mut positions) = (Vec::with_capacity(batch.len()), Vec::with_capacity(batch.len()));
        // Each workspace once in the batch (the usual case): decided row by
        // row, written together. A workspace twice: each input decided on
        // what the one before wrote, so each is written as it is decided.
        let set_wise = ids.len() == batch.len();
        let mut currents: Vec<Workspace> = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            let (id, input, now) = &batch[i];
            // A workspace's inputs are next to each other in `order`: the
            // next one is decided on what this one wrote.
            let more = order.get(k + 1).is_some_and(|&j| batch[j].0 == *id);
            let Some(current) = rows.remove(id) else {
                outcomes[i] = Some(Err(StoreError::NotFound("workspace")));
                continue;
            };
            let decision = match decide(&current.snapshot(), input, *now) {
                Ok(decision) => decision,
                Err(rejection) => {
                    outcomes[i] = Some(Err(rejection.into()));
                    rows.insert(*id, current);
                    continue;
                }
            };
            let done = if set_wise {
                // Written below, with the rest of the batch.
                let (next, reconcile_events) = evolve(&current, input, &decision, *now);
                let mut drafts = decision.events;
                drafts.extend(reconcile_events);
                currents.push(current);
                Written { previous: currents[currents.len() - 1].status, workspace: next, drafts, now: *now }
            } else {
                Self::write_decided(&mut tx, current, input, decision, *now).await?
            };
            if more {
                rows.insert(*id, done.workspace.clone());
            }
            written.push(done);
            positions.push(i);
        }
        if set_wise {
            Self::write_rows(&mut tx, &currents, &mut written).await?;
        }
        for (i, applied) in positions.into_iter().zip(Self::append_last(&mut tx, written).await?) {
            outcomes[i] = Some(Ok(applied));
        }
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(StoreError::Corrupt { operation: "apply_batch", message: "an input got no outcome".into() })
                })
            })
            .collect())
    }

    async fn write_liveness(&self, batch: &[LivenessWrite]) -> StoreResult<Vec<WorkspaceId>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let written = D::write_liveness(&self.liveness, batch).await.map_err(map_err::<D>("write_liveness"))?;
        Ok(written.into_iter().map(Into::into).collect())
    }

    async fn delete_workspace(&self, id: WorkspaceId, by: By, now: DateTime<Utc>) -> StoreResult<Deleted> {
        let mut tx = self.begin().await?;
        let rows: Vec<WorkspaceRow<D>> = sqlx::query_as(D::SQL.select_subtree_for_update)
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err::<D>("lock_subtree"))?;
        if rows.is_empty() {
            return Err(StoreError::NotFound("workspace"));
        }
        let mut deleted = Deleted { cascade_deleted: 0, removed: Vec::new(), events: Vec::new() };
        for row in rows {
            let current: Workspace = row.into();
            let decision = decide(&current.snapshot(), &Input::Delete(by), now)?;
            if decision.next == current.status {
                continue;
            }
            let (next, _) = evolve(&current, &Input::Delete(by), &decision, now);
            Self::write_workspace(&mut tx, &current, &next).await?;
            let events =
                Self::append_and_notify(&mut tx, current.org_id, Some(current.id), decision.events, now).await?;
            sqlx::query(sql::DELETE_WORKSPACE_SECRETS)
                .bind(current.id.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err::<D>("delete_workspace_secrets"))?;
            Self::notify(&mut tx, &Notice::WorkspaceTokens(current.id)).await?;
            if current.id != id {
                deleted.cascade_deleted += 1;
            }
            deleted.removed.push(current.id);
            deleted.events.extend(events);
        }
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(deleted)
    }

    async fn set_operator_plugins(
        &self,
        id: WorkspaceId,
        plugins: Vec<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<Workspace> {
        let mut tx = self.begin().await?;
        let mut workspace = Self::lock_live_workspace(&mut tx, id).await?;
        let (version,): (i64,) = sqlx::query_as(sql::SET_OPERATOR_PLUGINS)
            .bind(id.0)
            .bind(Json(plugins.clone()))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err::<D>("set_operator_plugins"))?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        workspace.operator_plugins = plugins;
        workspace.version = version;
        workspace.updated_at = now;
        Ok(workspace)
    }

    async fn update_agent_card(
        &self,
        id: WorkspaceId,
        agent_card: serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Event>> {
        let mut tx = self.begin().await?;
        let current = Self::lock_live_workspace(&mut tx, id).await?;
        // An unchanged card writes nothing: no row, no event.
        let Some(draft) = hearth_core::agent_card::update_event(current.agent_card.as_ref(), &agent_card) else {
            return Ok(None);
        };
        let draft = draft.by(Actor::Runtime);
        sqlx::query(sql::UPDATE_AGENT_CARD)
            .bind(id.0)
            .bind(Json(agent_card))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err::<D>("update_agent_card"))?;
        let mut events = Self::append_and_notify(&mut tx, current.org_id, Some(id), vec![draft], now).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        events
            .pop()
            .map(Some)
            .ok_or(StoreError::Corrupt { operation: "update_agent_card", message: "no event written".into() })
    }

    async fn sweep(
        &self,
        sweep: Sweep,
        age: chrono::Duration,
        now: DateTime<Utc>,
        limit: i64,
        context: SweepContext,
    ) -> StoreResult<Vec<Applied>> {
        let statement = match sweep {
            Sweep::Liveness => D::SQL.sweep_liveness_rows,
            Sweep::ProvisionTimeout => D::SQL.sweep_provision_timeout_rows,
            Sweep::Idle => D::SQL.sweep_idle_rows,
        };
        let mut tx = self.begin().await?;
        let rows: Vec<WorkspaceRow<D>> = sqlx::query_as(statement)
            .bind(now.checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err::<D>("sweep_rows"))?;
        Self::sweep_rows(tx, rows, &sweep_input(sweep, age, context), now).await
    }

    async fn liveness_due(&self, cutoff: DateTime<Utc>, limit: i64) -> StoreResult<Vec<WorkspaceId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(sql::LIVENESS_DUE)
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("liveness_due"))?;
        Ok(ids.into_iter().map(WorkspaceId).collect())
    }

    async fn sweep_these(
        &self,
        sweep: Sweep,
        ids: &[WorkspaceId],
        age: chrono::Duration,
        now: DateTime<Utc>,
        context: SweepContext,
    ) -> StoreResult<Vec<Applied>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let hex: Vec<Vec<u8>> = ids.iter().map(|id| id.0.as_bytes().to_vec()).collect();
        let mut tx = self.begin().await?;
        let rows: Vec<WorkspaceRow<D>> = sqlx::query_as(D::SQL.lock_sweep_ids)
            .bind(hex_array(&hex))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err::<D>("lock_sweep_ids"))?;
        Self::sweep_rows(tx, rows, &sweep_input(sweep, age, context), now).await
    }

    async fn count_liveness(&self, cutoff: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        let (due, live): (i64, i64) = sqlx::query_as(sql::COUNT_LIVENESS)
            .bind(cutoff)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err::<D>("count_liveness"))?;
        Ok((u64::try_from(due).unwrap_or(0), u64::try_from(live).unwrap_or(0)))
    }

    async fn control_plane_alive(&self, now: DateTime<Utc>, gap: chrono::Duration) -> StoreResult<Option<Outage>> {
        type Row = (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let mut tx = self.begin().await?;
        let row: Option<Row> = sqlx::query_as(D::SQL.lock_control_plane)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err::<D>("lock_control_plane"))?;
        let Some((alive_at, started_at, ended_at)) = row else {
            return Err(StoreError::Corrupt {
                operation: "control_plane_alive",
                message: "no control_plane row".into(),
            });
        };
        let mut outage = started_at.zip(ended_at).map(|(started_at, ended_at)| Outage { started_at, ended_at });
        if now - alive_at > gap {
            outage = Some(Outage { started_at: alive_at, ended_at: now });
        }
        // A replica whose clock lags never moves the record back.
        sqlx::query(sql::UPDATE_CONTROL_PLANE)
            .bind(alive_at.max(now))
            .bind(outage.map(|o| o.started_at))
            .bind(outage.map(|o| o.ended_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err::<D>("update_control_plane"))?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(outage)
    }

    async fn create_org(&self, id: OrgId, name: &str, now: DateTime<Utc>) -> StoreResult<Org> {
        let mut conn = self.writer.acquire().await.map_err(map_err::<D>("acquire"))?;
        sqlx::query(sql::INSERT_ORG).bind(id.0).bind(name).bind(now).execute(&mut *conn).await.map_err(
            map_write_err::<D>("create_org", Violations { unique: Some(Conflict::OrgExists), foreign_key: None }),
        )?;
        Ok(Org { id, name: name.to_owned(), created_at: now, quotas: Quotas::default() })
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Org>> {
        let rows: Vec<OrgRow> =
            sqlx::query_as(sql::LIST_ORGS).fetch_all(&self.reader).await.map_err(map_err::<D>("list_orgs"))?;
        let mut orgs: Vec<Org> = rows.into_iter().map(Org::from).collect();
        orgs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(orgs)
    }

    async fn get_org(&self, id: OrgId) -> StoreResult<Org> {
        let row: Option<OrgRow> = sqlx::query_as(sql::SELECT_ORG)
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_org"))?;
        row.map(Org::from).ok_or(StoreError::NotFound("org"))
    }

    async fn set_org_quotas(&self, id: OrgId, quotas: Quotas, now: DateTime<Utc>) -> StoreResult<Org> {
        let mut tx = self.begin().await?;
        let set: Option<(Uuid,)> = sqlx::query_as(sql::SET_ORG_QUOTAS)
            .bind(id.0)
            .bind(quotas.workspaces)
            .bind(quotas.running)
            .bind(quotas.template_bytes)
            .bind(quotas.plugin_bytes)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err::<D>("set_org_quotas"))?;
        set.ok_or(StoreError::NotFound("org"))?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        self.get_org(id).await
    }

    async fn org_usage(&self, id: OrgId) -> StoreResult<Usage> {
        let mut conn = self.reader.acquire().await.map_err(map_err::<D>("acquire"))?;
        let (workspaces, running) = Self::count_org_workspaces(&mut conn, id).await?;
        let template_bytes =
            Self::org_bytes(&mut conn, (sql::ORG_TEMPLATE_BYTES, "org_template_bytes"), id, "").await?;
        let plugin_bytes = Self::org_bytes(&mut conn, (sql::ORG_PLUGIN_BYTES, "org_plugin_bytes"), id, "").await?;
        Ok(Usage { workspaces, running, template_bytes, plugin_bytes })
    }

    async fn delete_org(&self, id: OrgId, now: DateTime<Utc>) -> StoreResult<Vec<TokenId>> {
        let mut tx = self.begin().await?;
        Self::org_locked(&mut tx, (D::SQL.lock_org_to_delete, "lock_org_to_delete"), id).await?;
        let (live, _) = Self::count_org_workspaces(&mut tx, id).await?;
        if live > 0 {
            return Err(StoreError::OrgNotEmpty { live });
        }
        let revoked: Vec<(Uuid,)> = sqlx::query_as(sql::REVOKE_ORG_TOKENS)
            .bind(id.0)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err::<D>("revoke_org_tokens"))?;
        for (statement, operation) in [
            (sql::DELETE_ORG_SECRETS, "delete_org_secrets"),
            (sql::DELETE_ORG_TEMPLATES, "delete_org_templates"),
            (sql::DELETE_ORG_PLUGINS, "delete_org_plugins"),
        ] {
            sqlx::query(statement).bind(id.0).execute(&mut *tx).await.map_err(map_err::<D>(operation))?;
        }
        sqlx::query(sql::MARK_ORG_DELETED)
            .bind(id.0)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err::<D>("mark_org_deleted"))?;
        let revoked: Vec<TokenId> = revoked.into_iter().map(|(token,)| TokenId(token)).collect();
        for token in &revoked {
            Self::notify(&mut tx, &Notice::TokenRevoked(*token)).await?;
        }
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(revoked)
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<Token> {
        let mut conn = self.writer.acquire().await.map_err(map_err::<D>("acquire"))?;
        Self::insert_token_on(&mut conn, &token).await?;
        Ok(issued(token))
    }

    async fn insert_org_token(&self, token: NewToken, max_live: u64) -> StoreResult<Token> {
        if token.workspace_id.is_some() {
            return Err(StoreError::InvalidInput("an org token has no workspace".into()));
        }
        let mut tx = self.begin().await?;
        Self::lock_org(&mut tx, token.org_id).await?;
        let (live,): (i64,) = sqlx::query_as(sql::COUNT_LIVE_ORG_TOKENS)
            .bind(token.org_id.0)
            .bind(token.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err::<D>("count_live_org_tokens"))?;
        if u64::try_from(live).unwrap_or(0) >= max_live {
            return Err(StoreError::LimitReached { what: "org tokens", limit: max_live });
        }
        Self::insert_token_on(&mut tx, &token).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(issued(token))
    }

    async fn issue_workspace_token(
        &self,
        token: NewWorkspaceToken,
        revoke_others_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Token> {
        let id = token.workspace_id();
        let token = token.into_token();
        let mut tx = self.begin().await?;
        Self::lock_live_workspace(&mut tx, id).await?;
        if let Some(at) = revoke_others_at {
            sqlx::query(sql::REVOKE_OTHER_WORKSPACE_TOKENS)
                .bind(id.0)
                .bind(at)
                .bind(token.now)
                .bind(token.id.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err::<D>("revoke_other_workspace_tokens"))?;
            Self::notify(&mut tx, &Notice::WorkspaceTokens(id)).await?;
        }
        Self::insert_token_on(&mut tx, &token).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        Ok(issued(token))
    }

    async fn list_workspace_tokens(&self, workspace: WorkspaceId) -> StoreResult<Vec<Token>> {
        let rows: Vec<TokenRow> = sqlx::query_as(sql::LIST_WORKSPACE_TOKENS)
            .bind(workspace.0)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_workspace_tokens"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_workspace_token(&self, workspace: WorkspaceId, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
        self.revoke((sql::REVOKE_WORKSPACE_TOKEN, "revoke_workspace_token"), id, Some(workspace.0), now).await
    }

    async fn find_token_by_hash(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Token>> {
        let row: Option<TokenRow> = sqlx::query_as(sql::FIND_TOKEN_BY_HASH)
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("find_token_by_hash"))?;
        Ok(row.map(Into::into))
    }

    async fn find_tokens_by_hashes(
        &self,
        hashes: &[Vec<u8>],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Vec<u8>, Token)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<HashedTokenRow> = sqlx::query_as(D::SQL.find_tokens_by_hashes)
            .bind(hex_array(hashes))
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("find_tokens_by_hashes"))?;
        Ok(rows.into_iter().map(|row| (row.token_hash, row.token.into())).collect())
    }

    async fn list_org_tokens(&self, org: OrgId) -> StoreResult<Vec<Token>> {
        let rows: Vec<TokenRow> = sqlx::query_as(sql::LIST_ORG_TOKENS)
            .bind(org.0)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_org_tokens"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_token(&self, org: Option<OrgId>, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
        self.revoke((D::SQL.revoke_org_token, "revoke_token"), id, org.map(|o| o.0), now).await
    }

    async fn put_secrets(
        &self,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        secrets: Vec<SealedSecret>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if let Some(id) = workspace {
            // Under the workspace's lock: a secret never lands on a removed
            // workspace, even one removed a moment ago.
            Self::lock_live_workspace(&mut tx, id).await?;
        }
        for secret in &secrets {
            sqlx::query(sql::DELETE_SECRET)
                .bind(org.0)
                .bind(workspace.map(|w| w.0))
                .bind(&secret.key)
                .execute(&mut *tx)
                .await
                .map_err(map_err::<D>("delete_secret"))?;
            sqlx::query(sql::INSERT_SECRET)
                .bind(org.0)
                .bind(workspace.map(|w| w.0))
                .bind(&secret.key)
                .bind(&secret.nonce)
                .bind(&secret.ciphertext)
                .bind(now)
                .execute(&mut *tx)
                .await
                // The workspace is locked above, so only the org can be missing.
                .map_err(map_write_err::<D>("insert_secret", ORG_MUST_EXIST))?;
        }
        tx.commit().await.map_err(map_err::<D>("commit"))
    }

    async fn list_secrets(&self, org: OrgId, workspace: Option<WorkspaceId>) -> StoreResult<Vec<SealedSecret>> {
        let rows: Vec<SecretRow> = sqlx::query_as(sql::LIST_SECRETS)
            .bind(org.0)
            .bind(workspace.map(|w| w.0))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_secrets"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn put_template(&self, template: NewTemplate) -> StoreResult<Template> {
        let mut tx = self.begin().await?;
        let more = Usage { template_bytes: files_bytes(&template.files), ..Usage::default() };
        Self::within_quotas(&mut tx, template.org_id, more, &template.name).await?;
        let id: Uuid = sqlx::query_scalar(sql::UPSERT_TEMPLATE)
            .bind(Uuid::new_v4())
            .bind(template.org_id.0)
            .bind(&template.name)
            .bind(&template.runtime)
            .bind(&template.model)
            .bind(Json(template.plugins.clone()))
            .bind(&template.assets_digest)
            .bind(template.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_write_err::<D>("upsert_template", ORG_MUST_EXIST))?;
        let statements = (sql::DELETE_TEMPLATE_FILES, sql::INSERT_TEMPLATE_FILE);
        Self::replace_files(&mut tx, id, &template.files, statements, template.now).await?;
        Self::notify(&mut tx, &Notice::Template { org: template.org_id, name: template.name.clone() }).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        self.get_template_by_id(id).await
    }

    async fn get_template_by_name(&self, org: OrgId, name: &str) -> StoreResult<Template> {
        let row: Option<TemplateRow> = sqlx::query_as(sql::SELECT_TEMPLATE_BY_NAME)
            .bind(org.0)
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_template"))?;
        self.template_from(row).await
    }

    async fn get_template_by_id(&self, id: Uuid) -> StoreResult<Template> {
        let row: Option<TemplateRow> = sqlx::query_as(sql::SELECT_TEMPLATE_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_template"))?;
        self.template_from(row).await
    }

    async fn list_templates(&self, org: Option<OrgId>, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<Template>> {
        let rows: Vec<TemplateRow> = sqlx::query_as(D::SQL.list_templates)
            .bind(org.map(|o| o.0))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_templates"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let files: Vec<(Uuid, String, String, i64)> = sqlx::query_as(D::SQL.list_template_files_page)
            .bind(org.map(|o| o.0))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_template_files"))?;
        let mut by_template = files_by_owner(files);
        Ok(rows
            .into_iter()
            .map(|row| {
                // No rows: a template without files (none is stored so).
                let files = by_template.remove(&row.template_id).unwrap_or_default();
                row.with_files(files)
            })
            .collect())
    }

    async fn put_plugin(&self, plugin: NewPlugin) -> StoreResult<Plugin> {
        let mut tx = self.begin().await?;
        let more = Usage { plugin_bytes: files_bytes(&plugin.files), ..Usage::default() };
        Self::within_quotas(&mut tx, plugin.org_id, more, &plugin.name).await?;
        let id: Uuid = sqlx::query_scalar(sql::UPSERT_PLUGIN)
            .bind(Uuid::new_v4())
            .bind(plugin.org_id.0)
            .bind(&plugin.name)
            .bind(&plugin.version)
            .bind(&plugin.description)
            .bind(&plugin.sha256)
            .bind(plugin.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_write_err::<D>("upsert_plugin", ORG_MUST_EXIST))?;
        let statements = (sql::DELETE_PLUGIN_FILES, sql::INSERT_PLUGIN_FILE);
        Self::replace_files(&mut tx, id, &plugin.files, statements, plugin.now).await?;
        Self::notify(&mut tx, &Notice::Plugin { org: plugin.org_id, name: plugin.name.clone() }).await?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        self.plugin_by_id(id).await
    }

    async fn get_plugin(&self, org: OrgId, name: &str) -> StoreResult<Plugin> {
        let row: Option<PluginRow> = sqlx::query_as(sql::SELECT_PLUGIN_BY_NAME)
            .bind(org.0)
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_plugin"))?;
        self.plugin_from(row).await
    }

    async fn list_plugins(&self, org: Option<OrgId>, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<Plugin>> {
        let rows: Vec<PluginRow> = sqlx::query_as(D::SQL.list_plugins)
            .bind(org.map(|o| o.0))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_plugins"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let files: Vec<(Uuid, String, String, i64)> = sqlx::query_as(D::SQL.list_plugin_files_page)
            .bind(org.map(|o| o.0))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_plugin_files"))?;
        let mut by_plugin = files_by_owner(files);
        Ok(rows
            .into_iter()
            .map(|row| {
                // No rows: a plugin without files (none is stored so).
                let files = by_plugin.remove(&row.plugin_id).unwrap_or_default();
                row.with_files(files)
            })
            .collect())
    }

    async fn desired_state(&self, org: OrgId, template: &str) -> StoreResult<Option<DesiredState>> {
        let rows: Vec<DesiredRow> = sqlx::query_as(D::SQL.desired_state)
            .bind(org.0)
            .bind(template)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("desired_state"))?;
        Ok(rows::desired_state(rows))
    }

    async fn desired_state_for_workspace(&self, id: WorkspaceId) -> StoreResult<DesiredState> {
        let rows: Vec<WorkspaceDesiredRow> = sqlx::query_as(D::SQL.desired_state_for_workspace)
            .bind(id.0)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("desired_state_for_workspace"))?;
        rows::desired_state_for_workspace(rows).ok_or(StoreError::NotFound("workspace"))
    }

    async fn desired_states_for_workspaces(
        &self,
        ids: &[WorkspaceId],
    ) -> StoreResult<HashMap<WorkspaceId, DesiredState>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let hex: Vec<Vec<u8>> = ids.iter().map(|id| id.0.as_bytes().to_vec()).collect();
        let rows: Vec<PageDesiredRow> = sqlx::query_as(D::SQL.desired_states_for_workspaces)
            .bind(hex_array(&hex))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("desired_states_for_workspaces"))?;
        Ok(rows::desired_state_by_workspace(rows).into_iter().map(|(id, desired)| (WorkspaceId(id), desired)).collect())
    }

    async fn get_blob(&self, sha256: &str) -> StoreResult<Vec<u8>> {
        let content: Option<Vec<u8>> = sqlx::query_scalar(sql::SELECT_BLOB)
            .bind(sha256)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err::<D>("get_blob"))?;
        content.ok_or(StoreError::NotFound("file"))
    }

    async fn last_event_seq(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::LAST_EVENT_SEQ).fetch_one(&self.reader).await.map_err(map_err::<D>("last_event_seq"))
    }

    async fn list_events(&self, query: EventQuery) -> StoreResult<Vec<Event>> {
        let rows: Vec<EventRow> = sqlx::query_as(D::SQL.list_events)
            .bind(query.since)
            .bind(query.org.map(|o| o.0))
            .bind(query.workspace.map(|w| w.0))
            .bind(query.limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_events"))?;
        rows.into_iter().map(EventRow::into_event).collect()
    }

    async fn compacted_through(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::COMPACTED_THROUGH)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err::<D>("compacted_through"))
    }

    async fn compact_events(&self, retention: Retention, now: DateTime<Utc>) -> StoreResult<Compaction> {
        let mut tx = self.begin().await?;
        let log: Option<(i64, i64, i64)> = sqlx::query_as(D::SQL.lock_event_log)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err::<D>("lock_event_log"))?;
        let Some((mut compacted, mut aged, counted)) = log else {
            return Ok(Compaction { busy: true, ..Compaction::default() });
        };
        let last: i64 = sqlx::query_scalar(sql::LAST_EVENT_SEQ)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err::<D>("last_event_seq"))?;
        let mut done = Compaction::default();
        let removed = |compacted: &mut i64, seqs: Vec<(i64,)>| {
            *compacted = seqs.iter().map(|(seq,)| *seq).fold(*compacted, i64::max);
            seqs.len() as u64
        };
        // By count, over the events appended since the last step.
        let count_to = last.min(counted.saturating_add(retention.batch.saturating_mul(10)));
        if count_to > counted {
            let seqs: Vec<(i64,)> = sqlx::query_as(sql::DELETE_SUPERSEDED_STATUS_EVENTS)
                .bind(aged)
                .bind(counted)
                .bind(count_to)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err::<D>("delete_superseded_status_events"))?;
            done.superseded = removed(&mut compacted, seqs);
            let over: Vec<(Uuid, i64)> = sqlx::query_as(sql::WORKSPACES_OVER_COUNT)
                .bind(counted)
                .bind(count_to)
                .bind(retention.per_workspace)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err::<D>("workspaces_over_count"))?;
            for (workspace, cut) in over {
                let seqs: Vec<(i64,)> = sqlx::query_as(sql::DELETE_WORKSPACE_EVENTS_THROUGH)
                    .bind(workspace)
                    .bind(cut)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err::<D>("delete_workspace_events_through"))?;
                done.by_count += removed(&mut compacted, seqs);
            }
        }
        // By age, never past what was counted (so a status event judged here
        // is one the count step above can still find superseded later).
        let cutoff = now.checked_sub_signed(retention.max_age).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let candidates: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(sql::EVENTS_FOR_AGE)
            .bind(aged)
            .bind(count_to)
            .bind(retention.batch)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err::<D>("events_for_age"))?;
        // Seqs and times rise together but not strictly: stop at the first
        // event that is not old enough.
        let old = candidates.iter().take_while(|(_, at)| *at < cutoff).count();
        if let Some(&(through, _)) = old.checked_sub(1).and_then(|i| candidates.get(i)) {
            let seqs: Vec<(i64,)> = sqlx::query_as(sql::DELETE_AGED_EVENTS)
                .bind(aged)
                .bind(through)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err::<D>("delete_aged_events"))?;
            done.by_age = removed(&mut compacted, seqs);
            aged = through;
        }
        sqlx::query(sql::UPDATE_EVENT_LOG)
            .bind(compacted)
            .bind(aged)
            .bind(count_to)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err::<D>("update_event_log"))?;
        tx.commit().await.map_err(map_err::<D>("commit"))?;
        done.compacted_through = compacted;
        done.more = count_to < last || (old == candidates.len() && old as i64 == retention.batch);
        Ok(done)
    }

    async fn list_workspaces_filtered(
        &self,
        page: WorkspacePage,
        filter: &WorkspaceFilter,
    ) -> StoreResult<Vec<(Workspace, DesiredState)>> {
        let after = page.after.unwrap_or_else(WorkspaceCursor::start);
        let status = filter.status.map(|s| s.as_str().to_owned());
        // Both statements take the same parameters, so the desired state is
        // read for exactly the workspaces of the page.
        macro_rules! bind_filter {
            ($query:expr) => {
                $query
                    .bind(page.org.map(|o| o.0))
                    .bind(page.include_removed)
                    .bind(after.created_at)
                    .bind(after.id.0)
                    .bind(page.limit)
                    .bind(status.clone())
                    .bind(filter.name_contains.clone())
                    .bind(filter.template.clone())
                    .bind(filter.plugin.clone())
            };
        }
        let rows: Vec<WorkspaceRow<D>> = bind_filter!(sqlx::query_as(D::SQL.list_workspaces_filtered))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("list_workspaces_filtered"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let desired: Vec<PageDesiredRow> = bind_filter!(sqlx::query_as(D::SQL.desired_state_for_filtered_page))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("desired_state_for_filtered_page"))?;
        with_desired(rows.into_iter().map(Workspace::from), desired, "desired_state_for_filtered_page")
    }

    async fn count_workspaces_by_status(&self, org: Option<OrgId>) -> StoreResult<Vec<(WorkspaceStatus, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(D::SQL.count_workspaces_by_status)
            .bind(org.map(|o| o.0))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err::<D>("count_workspaces_by_status"))?;
        rows.into_iter()
            .map(|(status, count)| match status.parse::<WorkspaceStatus>() {
                Ok(status) => Ok((status, count)),
                Err(error) => {
                    Err(StoreError::Corrupt { operation: "count_workspaces_by_status", message: error.to_string() })
                }
            })
            .collect()
    }
}

/// The bytes of files to store (what counts against a storage quota).
fn files_bytes(files: &[NewFile]) -> i64 {
    files.iter().map(|file| i64::try_from(file.content.len()).unwrap_or(i64::MAX)).fold(0, i64::saturating_add)
}

/// The record of a token just inserted.
fn issued(token: NewToken) -> Token {
    Token {
        id: token.id,
        org_id: token.org_id,
        workspace_id: token.workspace_id,
        role: token.role,
        name: token.name,
        prefix: token.prefix,
        created_at: token.now,
        revoked_at: None,
        workspace_removed: false,
    }
}

/// Pairs each workspace of a page with its desired state. Every listed
/// workspace has desired rows (workspaces are never deleted, and the desired
/// query covers exactly the page's range; one created between the two reads
/// is newer than the page's last), so a missing one is corrupt.
fn with_desired(
    workspaces: impl IntoIterator<Item = Workspace>,
    desired: Vec<PageDesiredRow>,
    operation: &'static str,
) -> StoreResult<Vec<(Workspace, DesiredState)>> {
    let mut desired = rows::desired_state_by_workspace(desired);
    workspaces
        .into_iter()
        .map(|w| match desired.remove(&w.id.0) {
            Some(state) => Ok((w, state)),
            None => Err(StoreError::Corrupt { operation, message: format!("no desired state for workspace {}", w.id) }),
        })
        .collect()
}

/// An event to append (its seq is assigned when it is).
fn new_event(draft: EventDraft, org: OrgId, workspace: Option<WorkspaceId>, now: DateTime<Utc>) -> Event {
    let (kind, payload) = draft.into_parts();
    Event { seq: 0, id: EventId::new_random(), kind, org_id: org, workspace_id: workspace, timestamp: now, payload }
}

/// `hashes` as a JSON array of lowercase hex strings, the one way both
/// engines take a list of byte strings as a parameter.
fn hex_array(hashes: &[Vec<u8>]) -> String {
    use std::fmt::Write;
    let mut json = String::with_capacity(2 + hashes.iter().map(|h| h.len() * 2 + 3).sum::<usize>());
    json.push('[');
    for (i, hash) in hashes.iter().enumerate() {
        json.push_str(if i == 0 { "\"" } else { ",\"" });
        for byte in hash {
            write!(json, "{byte:02x}").expect("writing to a String cannot fail");
        }
        json.push('"');
    }
    json.push(']');
    json
}

/// The input a sweep of `kind` decides on each of its rows.
fn sweep_input(kind: Sweep, age: chrono::Duration, context: SweepContext) -> Input {
    let SweepContext { outage, mass_silence } = context;
    match kind {
        Sweep::Liveness => Input::LivenessCheck { ttl: age, outage, mass_silence },
        Sweep::ProvisionTimeout => Input::ProvisionCheck { timeout: age, outage },
        Sweep::Idle => Input::IdleCheck { threshold: age },
    }
}
