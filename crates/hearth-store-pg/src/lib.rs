//! The PostgreSQL engine: `PgStore` implements `hearth_store::Store`.
//!
//! Every lifecycle write locks the workspace row (`select … for update`),
//! runs the pure state machine, and writes the new columns and the events in
//! the same transaction. Event sequence numbers come from a one-row counter
//! taken under lock in that transaction, so `seq` is gap-free and commit order
//! equals `seq` order on every replica.

mod rows;
pub mod sql;
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_core::{decide, EventDraft, EventId, Input, OrgId, TokenId, WorkspaceId};
use hearth_store::{
    evolve, Applied, Deleted, Engine, Event, EventQuery, NewFile, NewPlugin, NewTemplate, NewToken, NewWorkspace,
    Plugin, SealedSecret, Store, StoreError, StoreResult, Sweep, Template, Token, Workspace,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use rows::{EventRow, FileRow, PgStatus, PluginRow, SecretRow, TemplateRow, TokenRow, WorkspaceRow};

/// The migrations of this engine, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects lazily (the first query opens the first connection), so that
    /// a server can start, answer `/readyz` with 503 and recover by itself.
    pub fn connect_lazy(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Database {
            operation: "parse database url",
            source: Box::new(std::io::Error::other(redact(&e.to_string()))),
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err("migrate")(e),
            other => StoreError::Database { operation: "migrate", source: Box::new(other) },
        })
    }

    async fn append_events(
        conn: &mut PgConnection,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        drafts: Vec<EventDraft>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Event>> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let count = drafts.len() as i64;
        let last: i64 = sqlx::query_scalar(sql::RESERVE_EVENT_SEQS)
            .bind(count)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err("reserve_event_seqs"))?;
        let mut events = Vec::with_capacity(drafts.len());
        for (offset, draft) in drafts.into_iter().enumerate() {
            let event = Event {
                seq: last - count + 1 + offset as i64,
                id: EventId::new_random(),
                kind: draft.kind,
                org_id: org,
                workspace_id: workspace,
                timestamp: now,
                payload: draft.payload,
            };
            sqlx::query(sql::INSERT_EVENT)
                .bind(event.seq)
                .bind(event.id.0)
                .bind(org.0)
                .bind(workspace.map(|w| w.0))
                .bind(event.kind.as_str())
                .bind(Json(&event.payload))
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_err("insert_event"))?;
            events.push(event);
        }
        Ok(events)
    }

    async fn write_workspace(conn: &mut PgConnection, ws: &Workspace) -> StoreResult<()> {
        sqlx::query(sql::UPDATE_WORKSPACE)
            .bind(ws.id.0)
            .bind(PgStatus(ws.status))
            .bind(&ws.url)
            .bind(ws.agent_card.as_ref().map(Json))
            .bind(ws.last_heartbeat_at)
            .bind(ws.last_error_rate)
            .bind(&ws.last_sample_error)
            .bind(ws.active_tasks)
            .bind(ws.uptime_seconds)
            .bind(&ws.current_task)
            .bind(ws.monthly_spend)
            .bind(&ws.runtime_state)
            .bind(ws.runtime_metadata.as_ref().map(Json))
            .bind(ws.status_changed_at)
            .bind(ws.last_active_at)
            .bind(ws.updated_at)
            .bind(&ws.reported_assets_digest)
            .bind(Json(&ws.installed_plugins))
            .bind(Json(&ws.conditions))
            .execute(&mut *conn)
            .await
            .map_err(map_err("update_workspace"))?;
        Ok(())
    }

    /// Replaces the files of a template or plugin (`owner`): deletes the old
    /// list, stores each content once per sha256, inserts the new list.
    async fn replace_files(
        conn: &mut PgConnection,
        owner: Uuid,
        files: &[NewFile],
        (delete, insert): (&'static str, &'static str),
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(delete).bind(owner).execute(&mut *conn).await.map_err(map_err("delete_files"))?;
        for file in files {
            sqlx::query(sql::INSERT_BLOB)
                .bind(&file.sha256)
                .bind(&file.content)
                .bind(file.content.len() as i64)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_err("insert_blob"))?;
            sqlx::query(insert)
                .bind(owner)
                .bind(&file.path)
                .bind(&file.sha256)
                .bind(file.content.len() as i64)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_err("insert_file"))?;
        }
        Ok(())
    }

    async fn files_of(&self, statement: &'static str, owner: Uuid) -> StoreResult<Vec<FileRow>> {
        sqlx::query_as(statement).bind(owner).fetch_all(&self.pool).await.map_err(map_err("list_files"))
    }

    async fn template_from(&self, row: Option<TemplateRow>) -> StoreResult<Template> {
        let row = row.ok_or(StoreError::NotFound("template"))?;
        let files = self.files_of(sql::LIST_TEMPLATE_FILES, row.template_id).await?;
        Ok(row.with_files(files))
    }

    async fn plugin_from(&self, row: Option<PluginRow>) -> StoreResult<Plugin> {
        let row = row.ok_or(StoreError::NotFound("plugin"))?;
        let files = self.files_of(sql::LIST_PLUGIN_FILES, row.plugin_id).await?;
        Ok(row.with_files(files))
    }

    async fn insert_token_on(conn: &mut PgConnection, token: &NewToken) -> StoreResult<()> {
        sqlx::query(sql::INSERT_TOKEN)
            .bind(token.id.0)
            .bind(token.org_id.0)
            .bind(token.workspace_id.map(|w| w.0))
            .bind(&token.name)
            .bind(&token.prefix)
            .bind(&token.hash)
            .bind(token.now)
            .execute(&mut *conn)
            .await
            .map_err(map_err("insert_token"))?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(sql::PING).execute(&self.pool).await.map_err(map_err("ping"))?;
        Ok(())
    }

    fn expected_schema_version(&self) -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::SCHEMA_VERSION).fetch_one(&self.pool).await.map_err(map_err("schema_version"))
    }

    async fn create_workspace(&self, new: NewWorkspace, token: Option<NewToken>) -> StoreResult<Workspace> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
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
            .map_err(map_err("insert_workspace"))?;
        if let Some(token) = &token {
            Self::insert_token_on(&mut tx, token).await?;
        }
        let draft = EventDraft::new(
            hearth_core::EventKind::WorkspaceProvisioning,
            serde_json::json!({"name": new.name, "template": new.template}),
        );
        Self::append_events(&mut tx, new.org_id, Some(new.id), vec![draft], new.now).await?;
        let row: WorkspaceRow = sqlx::query_as(sql::SELECT_WORKSPACE)
            .bind(new.id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err("get_workspace"))?;
        tx.commit().await.map_err(map_err("commit"))?;
        Ok(row.into())
    }

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        let row: Option<WorkspaceRow> = sqlx::query_as(sql::SELECT_WORKSPACE)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_workspace"))?;
        row.map(Into::into).ok_or(StoreError::NotFound("workspace"))
    }

    async fn list_workspaces(&self, org: Option<OrgId>, include_removed: bool) -> StoreResult<Vec<Workspace>> {
        let rows: Vec<WorkspaceRow> = sqlx::query_as(sql::LIST_WORKSPACES)
            .bind(org.map(|o| o.0))
            .bind(include_removed)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_workspaces"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn apply(
        &self,
        id: WorkspaceId,
        input: Input,
        now: DateTime<Utc>,
        bootstrap_token: Option<NewToken>,
    ) -> StoreResult<Applied> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        let row: Option<WorkspaceRow> = sqlx::query_as(sql::SELECT_WORKSPACE_FOR_UPDATE)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err("lock_workspace"))?;
        let current: Workspace = row.ok_or(StoreError::NotFound("workspace"))?.into();
        let decision = decide(&current.snapshot(), &input, now)?;
        let minted_token = match &bootstrap_token {
            Some(token) => {
                let has_live: bool = sqlx::query_scalar(sql::WORKSPACE_HAS_LIVE_TOKEN)
                    .bind(id.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err("workspace_has_live_token"))?;
                if has_live {
                    return Err(StoreError::TokenExists);
                }
                Self::insert_token_on(&mut tx, token).await?;
                true
            }
            None => false,
        };
        let (next, reconcile_events) = evolve(&current, &input, &decision, now);
        if next != current {
            Self::write_workspace(&mut tx, &next).await?;
        }
        let mut drafts = decision.events;
        drafts.extend(reconcile_events);
        let events = Self::append_events(&mut tx, current.org_id, Some(id), drafts, now).await?;
        tx.commit().await.map_err(map_err("commit"))?;
        Ok(Applied { previous: current.status, workspace: next, events, minted_token })
    }

    async fn delete_workspace(&self, id: WorkspaceId, now: DateTime<Utc>) -> StoreResult<Deleted> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        let rows: Vec<WorkspaceRow> = sqlx::query_as(sql::SELECT_SUBTREE_FOR_UPDATE)
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err("lock_subtree"))?;
        if rows.is_empty() {
            return Err(StoreError::NotFound("workspace"));
        }
        let mut deleted = Deleted { cascade_deleted: 0, removed: Vec::new(), events: Vec::new() };
        for row in rows {
            let current: Workspace = row.into();
            let decision = decide(&current.snapshot(), &Input::Delete, now)?;
            if decision.next == current.status {
                continue;
            }
            let (next, _) = evolve(&current, &Input::Delete, &decision, now);
            Self::write_workspace(&mut tx, &next).await?;
            let events = Self::append_events(&mut tx, current.org_id, Some(current.id), decision.events, now).await?;
            sqlx::query(sql::DELETE_WORKSPACE_SECRETS)
                .bind(current.id.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err("delete_workspace_secrets"))?;
            if current.id != id {
                deleted.cascade_deleted += 1;
            }
            deleted.removed.push(current.id);
            deleted.events.extend(events);
        }
        tx.commit().await.map_err(map_err("commit"))?;
        Ok(deleted)
    }

    async fn set_operator_plugins(
        &self,
        id: WorkspaceId,
        plugins: Vec<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<Workspace> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        let row: Option<WorkspaceRow> = sqlx::query_as(sql::SELECT_WORKSPACE_FOR_UPDATE)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err("lock_workspace"))?;
        let mut workspace: Workspace = row.ok_or(StoreError::NotFound("workspace"))?.into();
        if workspace.status == hearth_core::WorkspaceStatus::Removed {
            return Err(hearth_core::Rejection::Removed.into());
        }
        sqlx::query(sql::SET_OPERATOR_PLUGINS)
            .bind(id.0)
            .bind(Json(&plugins))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err("set_operator_plugins"))?;
        tx.commit().await.map_err(map_err("commit"))?;
        workspace.operator_plugins = plugins;
        workspace.updated_at = now;
        Ok(workspace)
    }

    async fn update_agent_card(
        &self,
        id: WorkspaceId,
        agent_card: serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Event> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        let row: Option<WorkspaceRow> = sqlx::query_as(sql::SELECT_WORKSPACE_FOR_UPDATE)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err("lock_workspace"))?;
        let current: Workspace = row.ok_or(StoreError::NotFound("workspace"))?.into();
        if current.status == hearth_core::WorkspaceStatus::Removed {
            return Err(hearth_core::Rejection::Removed.into());
        }
        sqlx::query(sql::UPDATE_AGENT_CARD)
            .bind(id.0)
            .bind(Json(&agent_card))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err("update_agent_card"))?;
        let draft =
            EventDraft::new(hearth_core::EventKind::AgentCardUpdated, serde_json::json!({"agent_card": agent_card}));
        let mut events = Self::append_events(&mut tx, current.org_id, Some(id), vec![draft], now).await?;
        tx.commit().await.map_err(map_err("commit"))?;
        events.pop().ok_or(StoreError::Corrupt { operation: "update_agent_card", message: "no event written".into() })
    }

    async fn sweep_candidates(&self, sweep: Sweep, cutoff: DateTime<Utc>, limit: i64) -> StoreResult<Vec<WorkspaceId>> {
        let statement = match sweep {
            Sweep::Liveness => sql::SWEEP_LIVENESS,
            Sweep::ProvisionTimeout => sql::SWEEP_PROVISION_TIMEOUT,
            Sweep::Idle => sql::SWEEP_IDLE,
        };
        let ids: Vec<Uuid> = sqlx::query_scalar(statement)
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("sweep_candidates"))?;
        Ok(ids.into_iter().map(Into::into).collect())
    }

    async fn insert_token(&self, token: NewToken) -> StoreResult<Token> {
        let mut conn = self.pool.acquire().await.map_err(map_err("acquire"))?;
        Self::insert_token_on(&mut conn, &token).await?;
        Ok(Token {
            id: token.id,
            org_id: token.org_id,
            workspace_id: token.workspace_id,
            name: token.name,
            prefix: token.prefix,
            created_at: token.now,
            revoked_at: None,
            workspace_removed: false,
        })
    }

    async fn find_token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<Token>> {
        let row: Option<TokenRow> = sqlx::query_as(sql::FIND_TOKEN_BY_HASH)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("find_token_by_hash"))?;
        Ok(row.map(Into::into))
    }

    async fn list_org_tokens(&self, org: OrgId) -> StoreResult<Vec<Token>> {
        let rows: Vec<TokenRow> = sqlx::query_as(sql::LIST_ORG_TOKENS)
            .bind(org.0)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_org_tokens"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_token(&self, org: OrgId, id: TokenId, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(sql::REVOKE_TOKEN)
            .bind(id.0)
            .bind(org.0)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err("revoke_token"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("token"));
        }
        Ok(())
    }

    async fn put_secrets(
        &self,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        secrets: Vec<SealedSecret>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        if let Some(id) = workspace {
            // Under the workspace's lock: a secret never lands on a removed
            // workspace, even one removed a moment ago.
            let row: Option<WorkspaceRow> = sqlx::query_as(sql::SELECT_WORKSPACE_FOR_UPDATE)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err("lock_workspace"))?;
            let current: Workspace = row.ok_or(StoreError::NotFound("workspace"))?.into();
            if current.status == hearth_core::WorkspaceStatus::Removed {
                return Err(hearth_core::Rejection::Removed.into());
            }
        }
        for secret in &secrets {
            sqlx::query(sql::DELETE_SECRET)
                .bind(org.0)
                .bind(workspace.map(|w| w.0))
                .bind(&secret.key)
                .execute(&mut *tx)
                .await
                .map_err(map_err("delete_secret"))?;
            sqlx::query(sql::INSERT_SECRET)
                .bind(org.0)
                .bind(workspace.map(|w| w.0))
                .bind(&secret.key)
                .bind(&secret.nonce)
                .bind(&secret.ciphertext)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err("insert_secret"))?;
        }
        tx.commit().await.map_err(map_err("commit"))
    }

    async fn list_secrets(&self, org: OrgId, workspace: Option<WorkspaceId>) -> StoreResult<Vec<SealedSecret>> {
        let rows: Vec<SecretRow> = sqlx::query_as(sql::LIST_SECRETS)
            .bind(org.0)
            .bind(workspace.map(|w| w.0))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_secrets"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn put_template(&self, template: NewTemplate) -> StoreResult<Template> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
        let id: Uuid = sqlx::query_scalar(sql::UPSERT_TEMPLATE)
            .bind(Uuid::new_v4())
            .bind(template.org_id.0)
            .bind(&template.name)
            .bind(&template.runtime)
            .bind(&template.model)
            .bind(Json(&template.plugins))
            .bind(&template.assets_digest)
            .bind(template.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err("upsert_template"))?;
        let statements = (sql::DELETE_TEMPLATE_FILES, sql::INSERT_TEMPLATE_FILE);
        Self::replace_files(&mut tx, id, &template.files, statements, template.now).await?;
        tx.commit().await.map_err(map_err("commit"))?;
        self.get_template_by_id(id).await
    }

    async fn get_template_by_name(&self, org: OrgId, name: &str) -> StoreResult<Template> {
        let row: Option<TemplateRow> = sqlx::query_as(sql::SELECT_TEMPLATE_BY_NAME)
            .bind(org.0)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_template"))?;
        self.template_from(row).await
    }

    async fn get_template_by_id(&self, id: Uuid) -> StoreResult<Template> {
        let row: Option<TemplateRow> = sqlx::query_as(sql::SELECT_TEMPLATE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_template"))?;
        self.template_from(row).await
    }

    async fn list_templates(&self, org: Option<OrgId>) -> StoreResult<Vec<Template>> {
        let rows: Vec<TemplateRow> = sqlx::query_as(sql::LIST_TEMPLATES)
            .bind(org.map(|o| o.0))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_templates"))?;
        let mut templates = Vec::with_capacity(rows.len());
        for row in rows {
            templates.push(self.template_from(Some(row)).await?);
        }
        Ok(templates)
    }

    async fn put_plugin(&self, plugin: NewPlugin) -> StoreResult<Plugin> {
        let mut tx = self.pool.begin().await.map_err(map_err("begin"))?;
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
            .map_err(map_err("upsert_plugin"))?;
        let statements = (sql::DELETE_PLUGIN_FILES, sql::INSERT_PLUGIN_FILE);
        Self::replace_files(&mut tx, id, &plugin.files, statements, plugin.now).await?;
        tx.commit().await.map_err(map_err("commit"))?;
        let row: Option<PluginRow> = sqlx::query_as(sql::SELECT_PLUGIN_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_plugin"))?;
        self.plugin_from(row).await
    }

    async fn get_plugin(&self, org: OrgId, name: &str) -> StoreResult<Plugin> {
        let row: Option<PluginRow> = sqlx::query_as(sql::SELECT_PLUGIN_BY_NAME)
            .bind(org.0)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_plugin"))?;
        self.plugin_from(row).await
    }

    async fn list_plugins(&self, org: Option<OrgId>) -> StoreResult<Vec<Plugin>> {
        let rows: Vec<PluginRow> = sqlx::query_as(sql::LIST_PLUGINS)
            .bind(org.map(|o| o.0))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_plugins"))?;
        let mut plugins = Vec::with_capacity(rows.len());
        for row in rows {
            plugins.push(self.plugin_from(Some(row)).await?);
        }
        Ok(plugins)
    }

    async fn desired_state(
        &self,
        org: OrgId,
        template: &str,
    ) -> StoreResult<Option<hearth_core::reconcile::DesiredState>> {
        let rows: Vec<rows::DesiredRow> = sqlx::query_as(sql::DESIRED_STATE)
            .bind(org.0)
            .bind(template)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("desired_state"))?;
        Ok(rows::desired_state(rows))
    }

    async fn desired_state_for_workspace(&self, id: WorkspaceId) -> StoreResult<hearth_core::reconcile::DesiredState> {
        let rows: Vec<rows::WorkspaceDesiredRow> = sqlx::query_as(sql::DESIRED_STATE_FOR_WORKSPACE)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("desired_state_for_workspace"))?;
        rows::desired_state_for_workspace(rows).ok_or(StoreError::NotFound("workspace"))
    }

    async fn get_blob(&self, sha256: &str) -> StoreResult<Vec<u8>> {
        let content: Option<Vec<u8>> = sqlx::query_scalar(sql::SELECT_BLOB)
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err("get_blob"))?;
        content.ok_or(StoreError::NotFound("file"))
    }

    async fn last_event_seq(&self) -> StoreResult<i64> {
        sqlx::query_scalar(sql::LAST_EVENT_SEQ).fetch_one(&self.pool).await.map_err(map_err("last_event_seq"))
    }

    async fn list_events(&self, query: EventQuery) -> StoreResult<Vec<Event>> {
        let rows: Vec<EventRow> = sqlx::query_as(sql::LIST_EVENTS)
            .bind(query.since)
            .bind(query.org.map(|o| o.0))
            .bind(query.workspace.map(|w| w.0))
            .bind(query.limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err("list_events"))?;
        rows.into_iter().map(EventRow::into_event).collect()
    }
}

/// Maps a sqlx error onto the store's error kinds. Connection problems become
/// `Unavailable` (the API answers 503 with `Retry-After`); constraint
/// violations become `Conflict`.
fn map_err(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable { operation, message: error.to_string() }
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.is_unique_violation() || db.is_foreign_key_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else if code == "22021" || code == "22P05" {
                // character_not_in_repertoire (a NUL in text), untranslatable_character (\u0000 in jsonb)
                StoreError::InvalidInput(db.message().to_owned())
            } else if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                // connection exceptions, admin shutdown / cannot connect now, too many connections
                StoreError::Unavailable { operation, message: error.to_string() }
            } else {
                StoreError::Database { operation, source: Box::new(error) }
            }
        }
        _ => StoreError::Database { operation, source: Box::new(error) },
    }
}

/// Removes a password from anything that looks like a URL with credentials.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &text[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &text[..scheme + 3], &creds[..colon], &text[at..]),
                None => text.to_owned(),
            }
        }
        _ => text.to_owned(),
    }
}
