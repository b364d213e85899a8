//! Wire types of the Hearth HTTP API (PROTOCOL.md), shared by the server and
//! every client. Only these types are serialized on the wire.
//!
//! Compatibility rule: keys marked [M] in PROTOCOL.md are never renamed or
//! removed. Request types accept unknown keys, so newer clients keep working.

use chrono::{DateTime, Utc};
use hearth_core::{WorkspaceId, WorkspaceStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Every error body: a sentence for people and a code for programs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ApiErrorBody {
    pub error: String,
    #[serde(default)]
    pub code: String,
}

/// `{"status": "..."}`, the answer of many small calls.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatusResponse {
    pub status: String,
}

// --- registry --------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(value_type = Uuid)]
    pub id: WorkspaceId,
    /// `http(s)://…` or `remote://no-inbound` for poll-mode runtimes.
    pub url: String,
    #[serde(default)]
    pub agent_card: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub status: String,
    /// Present only when this call minted the workspace's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct InstalledPlugin {
    pub name: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    #[schema(value_type = Uuid)]
    pub workspace_id: WorkspaceId,
    #[serde(default)]
    pub error_rate: Option<f64>,
    #[serde(default)]
    pub sample_error: Option<String>,
    #[serde(default)]
    pub active_tasks: Option<i64>,
    #[serde(default)]
    pub uptime_seconds: Option<i64>,
    #[serde(default)]
    pub current_task: Option<String>,
    /// USD cents; clamped to [0, 10^12]; 0 or absent leaves it unchanged.
    #[serde(default)]
    pub monthly_spend: Option<f64>,
    #[serde(default)]
    pub runtime_state: Option<String>,
    #[serde(default)]
    pub runtime_metadata: Option<Value>,
    /// Digest of the assets the runtime holds.
    #[serde(default)]
    pub assets_digest: Option<String>,
    /// Plugins the runtime holds.
    #[serde(default)]
    pub installed_plugins: Option<Vec<InstalledPlugin>>,
    /// Plugins the runtime tried and failed to install (Hearth).
    #[serde(default)]
    pub plugin_errors: Option<Vec<PluginError>>,
}

/// A plugin install that failed on the runtime, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PluginError {
    pub name: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DesiredPlugin {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// What the runtime must converge to; sent on every heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Desired {
    pub assets_digest: Option<String>,
    pub plugins: Vec<DesiredPlugin>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub status: String,
    #[schema(value_type = String)]
    pub workspace_status: WorkspaceStatus,
    pub desired: Desired,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateCardRequest {
    #[schema(value_type = Uuid)]
    pub workspace_id: WorkspaceId,
    pub agent_card: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Peer {
    #[schema(value_type = Uuid)]
    pub id: WorkspaceId,
    pub name: String,
    /// `""` when the workspace has no role.
    pub role: String,
    pub tier: i32,
    #[schema(value_type = String)]
    pub status: WorkspaceStatus,
    pub agent_card: Option<Value>,
    pub url: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<WorkspaceId>,
    pub active_tasks: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DiscoverResponse {
    #[schema(value_type = Uuid)]
    pub id: WorkspaceId,
    pub url: Option<String>,
    pub name: String,
}

// --- workspaces ------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StateResponse {
    #[schema(value_type = Uuid)]
    pub workspace_id: WorkspaceId,
    #[schema(value_type = String)]
    pub status: WorkspaceStatus,
    pub paused: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub tier: Option<i32>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<WorkspaceId>,
    #[serde(default)]
    pub max_concurrent_tasks: Option<i32>,
    #[serde(default)]
    pub budget_limit: Option<i64>,
    #[serde(default)]
    pub external: Option<bool>,
    #[serde(default)]
    pub url: Option<String>,
    /// Return a workspace token in the response (shown once).
    #[serde(default)]
    pub issue_token: Option<bool>,
}

/// A Kubernetes-style condition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `"True"`, `"False"` or `"Unknown"`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkspaceResponse {
    #[schema(value_type = Uuid)]
    pub id: WorkspaceId,
    #[schema(value_type = Uuid)]
    pub org_id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    #[schema(value_type = String)]
    pub status: WorkspaceStatus,
    pub url: Option<String>,
    pub agent_card: Option<Value>,
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<WorkspaceId>,
    pub template: Option<String>,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub max_concurrent_tasks: Option<i32>,
    pub budget_limit: Option<i64>,
    pub external: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub last_error_rate: f64,
    pub last_sample_error: Option<String>,
    pub active_tasks: i64,
    pub uptime_seconds: i64,
    pub current_task: Option<String>,
    pub monthly_spend: i64,
    pub runtime_state: Option<String>,
    pub runtime_metadata: Option<Value>,
    pub conditions: Vec<Condition>,
    pub desired_plugins: Vec<DesiredPlugin>,
    pub installed_plugins: Vec<InstalledPlugin>,
    pub status_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present only on create with `issue_token: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeleteResponse {
    pub status: String,
    pub cascade_deleted: u64,
}

// --- tokens ----------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TokenResponse {
    #[schema(value_type = Uuid)]
    pub id: Uuid,
    pub name: Option<String>,
    /// The first 8 characters, for recognising a token.
    pub prefix: String,
    #[schema(value_type = Option<Uuid>)]
    pub workspace_id: Option<WorkspaceId>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The secret; returned once, by the call that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

// --- events ----------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EventResponse {
    /// Global, strictly increasing, gap-free.
    pub seq: i64,
    #[schema(value_type = Uuid)]
    pub id: Uuid,
    /// The event name, e.g. `WORKSPACE_ONLINE`.
    pub event: String,
    #[schema(value_type = Option<Uuid>)]
    pub workspace_id: Option<WorkspaceId>,
    pub timestamp: DateTime<Utc>,
    pub payload: Value,
}

// --- service ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BuildInfo {
    pub version: String,
    pub git_sha: String,
    pub git_dirty: bool,
    pub built_at: String,
    pub rustc: String,
    /// `postgres` or `sqlite`.
    pub database: String,
    pub schema_version: i64,
    /// `none` or `process` (Hearth).
    #[serde(default)]
    pub provisioner: String,
}

// --- templates, plugins, assets ----------------------------------------------

/// One file of a template or plugin upload: UTF-8 text, or `{"base64": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(untagged)]
pub enum FileContent {
    Text(String),
    Binary { base64: String },
}

impl FileContent {
    /// One file as the wire wants it: text when UTF-8, base64 otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        use base64::Engine;
        match String::from_utf8(bytes) {
            Ok(text) => Self::Text(text),
            Err(err) => Self::Binary { base64: base64::engine::general_purpose::STANDARD.encode(err.into_bytes()) },
        }
    }

    /// The `files` of an upload, from relative paths and bytes.
    pub fn files<P: Into<String>, B: Into<Vec<u8>>>(
        files: impl IntoIterator<Item = (P, B)>,
    ) -> std::collections::BTreeMap<String, Self> {
        files.into_iter().map(|(path, bytes)| (path.into(), Self::from_bytes(bytes.into()))).collect()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ImportTemplateRequest {
    pub name: String,
    /// Path → content. Must contain a valid `config.yaml`.
    pub files: std::collections::BTreeMap<String, FileContent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ImportTemplateResponse {
    pub status: String,
    #[schema(value_type = Uuid)]
    pub id: Uuid,
    pub name: String,
    pub assets_digest: String,
}

/// A file of a template's assets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AssetFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TemplateResponse {
    #[schema(value_type = Uuid)]
    pub id: Uuid,
    pub name: String,
    pub runtime: Option<String>,
    pub model: Option<String>,
    /// Plugins `config.yaml` declares.
    pub plugins: Vec<String>,
    pub assets_digest: String,
    pub files: Vec<AssetFile>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /workspaces/:id/assets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AssetsManifest {
    pub digest: String,
    pub files: Vec<AssetFile>,
}

/// `POST /plugins` as JSON (a gzip tarball body is accepted too).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UploadPluginRequest {
    /// Optional; when given it must equal the name in `plugin.yaml`.
    #[serde(default)]
    pub name: Option<String>,
    pub files: std::collections::BTreeMap<String, FileContent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PluginResponse {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The SDK content-manifest hash.
    pub sha256: String,
}

/// `POST /workspaces/:id/plugins`: a runtime reports an install.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordInstallRequest {
    /// `local://<name>` or a bare plugin name.
    pub source: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RecordInstallResponse {
    pub status: String,
    pub plugin: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct InstalledPluginRecord {
    pub name: String,
    pub sha256: Option<String>,
    pub installed_at: DateTime<Utc>,
}

/// `GET /workspaces/:id/plugins`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkspacePluginsResponse {
    pub desired: Vec<DesiredPlugin>,
    pub installed: Vec<InstalledPluginRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_binary_becomes_base64() {
        assert_eq!(FileContent::from_bytes(b"h\xc3\xa9".to_vec()), FileContent::Text("hé".into()));
        assert_eq!(FileContent::from_bytes(vec![0xff, 0x00]), FileContent::Binary { base64: "/wA=".into() });
    }
}
