//! Rows as the database returns them, and their mapping onto domain types.
//! Written once for every engine: only the status type depends on the
//! dialect.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use hearth_core::reconcile::{ConditionRecord, InstalledPlugin};
use hearth_core::{EventKind, Role, WorkspaceStatus};
use hearth_store::{Event, FileRef, Org, Plugin, Quotas, SealedSecret, StoreError, Template, Token, Workspace};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::types::Json;
use sqlx::{Database, Decode, Encode, Type};
use uuid::Uuid;

use crate::Dialect;

/// `hearth_core::WorkspaceStatus` as the dialect types it in SQL (the
/// Postgres ENUM `workspace_status`, or TEXT under SQLite's CHECK
/// constraint). Decoding a value that is not one of the eight is an error,
/// never a default.
pub struct DbStatus<D>(pub WorkspaceStatus, PhantomData<fn() -> D>);

impl<D> DbStatus<D> {
    pub fn new(status: WorkspaceStatus) -> Self {
        Self(status, PhantomData)
    }
}

impl<D: Dialect> Type<D::Db> for DbStatus<D> {
    fn type_info() -> <D::Db as Database>::TypeInfo {
        D::status_type_info()
    }
}

impl<'r, D: Dialect> Decode<'r, D::Db> for DbStatus<D>
where
    &'r str: Decode<'r, D::Db>,
{
    fn decode(value: <D::Db as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<D::Db>>::decode(value)?;
        Ok(DbStatus::new(text.parse()?))
    }
}

impl<'q, D: Dialect> Encode<'q, D::Db> for DbStatus<D>
where
    &'q str: Encode<'q, D::Db>,
{
    fn encode_by_ref(&self, buf: &mut <D::Db as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <&str as Encode<D::Db>>::encode(self.0.as_str(), buf)
    }
}

#[derive(sqlx::FromRow)]
pub struct WorkspaceRow<D: Dialect> {
    workspace_id: Uuid,
    org_id: Uuid,
    name: String,
    role: Option<String>,
    tier: i32,
    status: DbStatus<D>,
    url: Option<String>,
    agent_card: Option<Json<Value>>,
    parent_id: Option<Uuid>,
    template: Option<String>,
    runtime: Option<String>,
    model: Option<String>,
    max_concurrent_tasks: Option<i32>,
    budget_limit: Option<i64>,
    external: bool,
    last_heartbeat_at: Option<DateTime<Utc>>,
    last_error_rate: f64,
    last_sample_error: Option<String>,
    active_tasks: i64,
    uptime_seconds: i64,
    current_task: Option<String>,
    monthly_spend: i64,
    runtime_state: Option<String>,
    runtime_metadata: Option<Json<Value>>,
    reported_assets_digest: Option<String>,
    installed_plugins: Json<Vec<InstalledPlugin>>,
    conditions: Json<Vec<ConditionRecord>>,
    operator_plugins: Json<Vec<String>>,
    status_changed_at: DateTime<Utc>,
    last_active_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl<D: Dialect> From<WorkspaceRow<D>> for Workspace {
    fn from(row: WorkspaceRow<D>) -> Self {
        Workspace {
            id: row.workspace_id.into(),
            org_id: row.org_id.into(),
            name: row.name,
            role: row.role,
            tier: row.tier,
            status: row.status.0,
            url: row.url,
            agent_card: row.agent_card.map(|j| j.0),
            parent_id: row.parent_id.map(Into::into),
            template: row.template,
            runtime: row.runtime,
            model: row.model,
            max_concurrent_tasks: row.max_concurrent_tasks,
            budget_limit: row.budget_limit,
            external: row.external,
            last_heartbeat_at: row.last_heartbeat_at,
            last_error_rate: row.last_error_rate,
            last_sample_error: row.last_sample_error,
            active_tasks: row.active_tasks,
            uptime_seconds: row.uptime_seconds,
            current_task: row.current_task,
            monthly_spend: row.monthly_spend,
            runtime_state: row.runtime_state,
            runtime_metadata: row.runtime_metadata.map(|j| j.0),
            reported_assets_digest: row.reported_assets_digest,
            installed_plugins: row.installed_plugins.0,
            conditions: row.conditions.0,
            operator_plugins: row.operator_plugins.0,
            status_changed_at: row.status_changed_at,
            last_active_at: row.last_active_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
        }
    }
}

/// An org with its quotas.
#[derive(sqlx::FromRow)]
pub struct OrgRow {
    org_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    max_workspaces: Option<i64>,
    max_running: Option<i64>,
    max_template_bytes: Option<i64>,
    max_plugin_bytes: Option<i64>,
}

impl OrgRow {
    pub fn into_quotas(self) -> Quotas {
        Org::from(self).quotas
    }
}

impl From<OrgRow> for Org {
    fn from(row: OrgRow) -> Self {
        Org {
            id: row.org_id.into(),
            name: row.name,
            created_at: row.created_at,
            quotas: Quotas {
                workspaces: row.max_workspaces,
                running: row.max_running,
                template_bytes: row.max_template_bytes,
                plugin_bytes: row.max_plugin_bytes,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct TokenRow {
    token_id: Uuid,
    org_id: Uuid,
    workspace_id: Option<Uuid>,
    #[sqlx(try_from = "Option<String>")]
    role: RoleColumn,
    name: Option<String>,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    workspace_removed: bool,
}

impl From<TokenRow> for Token {
    fn from(row: TokenRow) -> Self {
        Token {
            id: row.token_id.into(),
            org_id: row.org_id.into(),
            workspace_id: row.workspace_id.map(Into::into),
            role: row.role.0,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            workspace_removed: row.workspace_removed,
        }
    }
}

/// A token's role column: null for a workspace's own token; a value that
/// is not a role is an error, never a default.
pub struct RoleColumn(Option<Role>);

impl TryFrom<Option<String>> for RoleColumn {
    type Error = hearth_core::role::UnknownRole;

    fn try_from(text: Option<String>) -> Result<Self, Self::Error> {
        text.map(|text| text.parse()).transpose().map(RoleColumn)
    }
}

/// A [`TokenRow`] with the hash it was found by.
#[derive(sqlx::FromRow)]
pub struct HashedTokenRow {
    pub token_hash: Vec<u8>,
    #[sqlx(flatten)]
    pub token: TokenRow,
}

#[derive(sqlx::FromRow)]
pub struct SecretRow {
    key: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl From<SecretRow> for SealedSecret {
    fn from(row: SecretRow) -> Self {
        SealedSecret { key: row.key, nonce: row.nonce, ciphertext: row.ciphertext }
    }
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    seq: i64,
    event_id: Uuid,
    org_id: Uuid,
    workspace_id: Option<Uuid>,
    kind: String,
    payload: Json<Value>,
    created_at: DateTime<Utc>,
}

impl EventRow {
    pub fn into_event(self) -> Result<Event, StoreError> {
        let kind: EventKind = self.kind.parse().map_err(|e| StoreError::Corrupt {
            operation: "list_events",
            message: format!("event {}: {e}", self.seq),
        })?;
        Ok(Event {
            seq: self.seq,
            id: self.event_id.into(),
            kind,
            org_id: self.org_id.into(),
            workspace_id: self.workspace_id.map(Into::into),
            timestamp: self.created_at,
            payload: self.payload.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct FileRow {
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

impl From<FileRow> for FileRef {
    fn from(row: FileRow) -> Self {
        FileRef { path: row.path, sha256: row.sha256, size: row.size }
    }
}

#[derive(sqlx::FromRow)]
pub struct TemplateRow {
    pub template_id: Uuid,
    org_id: Uuid,
    name: String,
    runtime: Option<String>,
    model: Option<String>,
    plugins: Json<Vec<String>>,
    assets_digest: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TemplateRow {
    pub fn with_files(self, files: Vec<FileRow>) -> Template {
        Template {
            id: self.template_id,
            org_id: self.org_id.into(),
            name: self.name,
            runtime: self.runtime,
            model: self.model,
            plugins: self.plugins.0,
            assets_digest: self.assets_digest,
            files: files.into_iter().map(Into::into).collect(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct PluginRow {
    pub plugin_id: Uuid,
    org_id: Uuid,
    name: String,
    version: String,
    description: String,
    sha256: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PluginRow {
    pub fn with_files(self, files: Vec<FileRow>) -> Plugin {
        Plugin {
            id: self.plugin_id,
            org_id: self.org_id.into(),
            name: self.name,
            version: self.version,
            description: self.description,
            sha256: self.sha256,
            files: files.into_iter().map(Into::into).collect(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A row of `DESIRED_STATE`: digest, plugin name, version, sha256.
pub type DesiredRow = (String, Option<String>, Option<String>, Option<String>);

/// Folds the rows of `DESIRED_STATE`.
pub fn desired_state(rows: Vec<DesiredRow>) -> Option<hearth_core::reconcile::DesiredState> {
    let digest = rows.first()?.0.clone();
    let plugins = rows
        .into_iter()
        .filter_map(|(_, name, version, sha256)| {
            name.map(|name| hearth_core::reconcile::DesiredPlugin { name, stored: stored(version, sha256) })
        })
        .collect();
    Some(hearth_core::reconcile::DesiredState { assets_digest: Some(digest), plugins })
}

/// A row of `DESIRED_STATE_FOR_WORKSPACE`: digest (none without a template),
/// plugin name, version, sha256, order.
pub type WorkspaceDesiredRow = (Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>);

/// Folds the rows of `DESIRED_STATE_FOR_WORKSPACE`; `None` when there are
/// none (no such workspace). A plugin named twice keeps its first place.
pub fn desired_state_for_workspace(rows: Vec<WorkspaceDesiredRow>) -> Option<hearth_core::reconcile::DesiredState> {
    let assets_digest = rows.first()?.0.clone();
    let mut plugins: Vec<hearth_core::reconcile::DesiredPlugin> = Vec::new();
    for (_, name, version, sha256, _) in rows {
        if let Some(name) = name {
            if !plugins.iter().any(|p| p.name == name) {
                plugins.push(hearth_core::reconcile::DesiredPlugin { name, stored: stored(version, sha256) });
            }
        }
    }
    Some(hearth_core::reconcile::DesiredState { assets_digest, plugins })
}

/// The registry's columns of a desired plugin: both set (it is stored) or
/// both null (the left join found nothing).
fn stored(version: Option<String>, sha256: Option<String>) -> Option<hearth_core::reconcile::StoredPlugin> {
    match (version, sha256) {
        (Some(version), Some(sha256)) => Some(hearth_core::reconcile::StoredPlugin { version, sha256 }),
        _ => None,
    }
}

/// A row of `desired_state_for_page`: the workspace, then a
/// [`WorkspaceDesiredRow`].
pub type PageDesiredRow = (Uuid, Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>);

/// Folds the rows of `desired_state_for_page` per workspace.
pub fn desired_state_by_workspace(
    rows: Vec<PageDesiredRow>,
) -> std::collections::HashMap<Uuid, hearth_core::reconcile::DesiredState> {
    let mut grouped: std::collections::HashMap<Uuid, Vec<WorkspaceDesiredRow>> = std::collections::HashMap::new();
    for (id, digest, name, version, sha256, ord) in rows {
        grouped.entry(id).or_default().push((digest, name, version, sha256, ord));
    }
    grouped.into_iter().filter_map(|(id, rows)| Some((id, desired_state_for_workspace(rows)?))).collect()
}
