//! Wire types of the Hearth HTTP API (PROTOCOL.md), shared by the server and
//! every client. Only these types are serialized on the wire.
//!
//! Compatibility rule: keys marked [M] in PROTOCOL.md are never renamed or
//! removed. Request types accept unknown keys, so newer clients keep working.

use chrono::{DateTime, Utc};
use hearth_core::reconcile::{ConditionReason, ConditionRecord, ConditionStatus, ConditionType};
use hearth_core::{Role, WorkspaceId, WorkspaceStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub mod integer;

/// The header a runtime (and every `hearth-client`) sends with the protocol
/// version it speaks. A request without it is version 1 (the old SDK).
pub const PROTOCOL_HEADER: &str = "x-hearth-protocol";
/// The protocol version this build speaks: 2 adds the delivery fields
/// (`desired`, reports) and typed error bodies to version 1, and removes
/// nothing, so a version-1 runtime still works.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version this build accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// What went wrong, for programs: clients branch on this, never on the
/// human sentence next to it. A code this build does not know (from a newer
/// server) reads as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400: the request is malformed; `field` names what, when it is a field.
    InvalidJson,
    InvalidBody,
    InvalidField,
    InvalidId,
    InvalidQuery,
    InvalidPath,
    InvalidHeader,
    MissingHeader,
    InvalidUrl,
    InvalidBase64,
    InvalidArchive,
    InvalidPluginName,
    InvalidSource,
    /// The database refused a value (a safety net behind the checks above).
    InvalidInput,
    /// The runtime speaks a protocol version older or newer than this server
    /// accepts (`/buildinfo` lists them): upgrade the runtime, or the server.
    ProtocolTooOld,
    ProtocolTooNew,
    // 401, 404, 405, 408, 413
    Unauthorized,
    /// 403: the token is valid but may not do this (an org token on an
    /// admin route); the sentence names the token that may.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// 408: the request (its body, say) did not arrive in time.
    RequestTimeout,
    BodyTooLarge,
    // 409, 410: the workspace's state refuses the request; `status` says which.
    Conflict,
    TransitionRefused,
    WorkspaceStopped,
    WorkspaceRemoved,
    /// 410: the events after the asked-for seq were compacted away
    /// (retention); `earliest_seq` says where the log is complete again.
    EventsCompacted,
    /// 409: a cap on what an org may hold (its live org tokens,
    /// `--max-org-tokens`) is reached; the message names it. Revoke one first.
    LimitReached,
    /// 409: an org's quota (set by the admin) would be exceeded; `quota`,
    /// `limit` and `used` say which and by how much. Nothing was written.
    QuotaExceeded,
    /// 409: this server starts no runtimes (`--provisioner none`), so it
    /// holds no runtime logs; read them where the runtime runs.
    NoProvisioner,
    // 422: well-formed, but refers to something missing or inconsistent.
    InvalidConfig,
    InvalidManifest,
    MissingConfig,
    MissingManifest,
    NameMismatch,
    UnknownPlugin,
    UnknownTemplate,
    UnknownParent,
    Sha256Mismatch,
    /// 429: a limit per token was reached (concurrent event streams or
    /// waits, requests per second), or the server reads as many large
    /// uploads as it may (`--max-concurrent-uploads`);
    /// `Retry-After` says when to try again.
    TooManyRequests,
    // 5xx
    WorkspaceUnavailable,
    /// 503: the server holds as many long polls (event streams and waits)
    /// as it is allowed (`--max-long-polls`); `Retry-After` says when to
    /// try again.
    ServerBusy,
    Unavailable,
    NotMigrated,
    SecretDecryptFailed,
    Internal,
    /// A code this client does not know, or a body that was not an error body.
    #[default]
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidField,
        ErrorCode::InvalidId,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidHeader,
        ErrorCode::MissingHeader,
        ErrorCode::InvalidUrl,
        ErrorCode::InvalidBase64,
        ErrorCode::InvalidArchive,
        ErrorCode::InvalidPluginName,
        ErrorCode::InvalidSource,
        ErrorCode::InvalidInput,
        ErrorCode::ProtocolTooOld,
        ErrorCode::ProtocolTooNew,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::BodyTooLarge,
        ErrorCode::Conflict,
        ErrorCode::TransitionRefused,
        ErrorCode::WorkspaceStopped,
        ErrorCode::WorkspaceRemoved,
        ErrorCode::EventsCompacted,
        ErrorCode::LimitReached,
        ErrorCode::QuotaExceeded,
        ErrorCode::NoProvisioner,
        ErrorCode::InvalidConfig,
        ErrorCode::InvalidManifest,
        ErrorCode::MissingConfig,
        ErrorCode::MissingManifest,
        ErrorCode::NameMismatch,
        ErrorCode::UnknownPlugin,
        ErrorCode::UnknownTemplate,
        ErrorCode::UnknownParent,
        ErrorCode::Sha256Mismatch,
        ErrorCode::TooManyRequests,
        ErrorCode::WorkspaceUnavailable,
        ErrorCode::ServerBusy,
        ErrorCode::Unavailable,
        ErrorCode::NotMigrated,
        ErrorCode::SecretDecryptFailed,
        ErrorCode::Internal,
        ErrorCode::Unknown,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::MissingHeader => "missing_header",
            ErrorCode::InvalidUrl => "invalid_url",
            ErrorCode::InvalidBase64 => "invalid_base64",
            ErrorCode::InvalidArchive => "invalid_archive",
            ErrorCode::InvalidPluginName => "invalid_plugin_name",
            ErrorCode::InvalidSource => "invalid_source",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::ProtocolTooOld => "protocol_too_old",
            ErrorCode::ProtocolTooNew => "protocol_too_new",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TransitionRefused => "transition_refused",
            ErrorCode::WorkspaceStopped => "workspace_stopped",
            ErrorCode::WorkspaceRemoved => "workspace_removed",
            ErrorCode::EventsCompacted => "events_compacted",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::NoProvisioner => "no_provisioner",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::InvalidManifest => "invalid_manifest",
            ErrorCode::MissingConfig => "missing_config",
            ErrorCode::MissingManifest => "missing_manifest",
            ErrorCode::NameMismatch => "name_mismatch",
            ErrorCode::UnknownPlugin => "unknown_plugin",
            ErrorCode::UnknownTemplate => "unknown_template",
            ErrorCode::UnknownParent => "unknown_parent",
            ErrorCode::Sha256Mismatch => "sha256_mismatch",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::WorkspaceUnavailable => "workspace_unavailable",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotMigrated => "not_migrated",
            ErrorCode::SecretDecryptFailed => "secret_decrypt_failed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error body: a sentence for people (`error`), a code for programs,
/// and the typed details a program may act on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub error: String,
    #[serde(default)]
    pub code: ErrorCode,
    /// The workspace's status when it is why the request was refused (409
    /// `workspace_stopped`/`transition_refused`, 503 `workspace_unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub status: Option<WorkspaceStatus>,
    /// The request field that was wrong: a JSON path (`installed_plugins[0].name`),
    /// a query parameter, a header, or `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The names concerned: secrets that cannot be decrypted, plugins a
    /// template declares that are not pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// 410 `events_compacted`: the first seq from which the event log is
    /// complete. Resume after `earliest_seq - 1` (`?since=` or
    /// `Last-Event-ID`); the events before it are gone (retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_seq: Option<i64>,
    /// 409 `quota_exceeded`: the quota (`workspaces`, `running`,
    /// `template_bytes`, `plugin_bytes`), its limit, and what was used
    /// before the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
}

impl ApiErrorBody {
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        Self { error: error.into(), code, ..Self::default() }
    }
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
    /// ≥ 0.5 degrades, < 0.1 recovers; absent counts as 0.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate: Option<f64>,
    #[serde(default)]
    pub sample_error: Option<String>,
    /// Absent leaves the stored value unchanged.
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub active_tasks: Option<i64>,
    /// Absent leaves the stored value unchanged.
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
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
    /// The program the runtime runs for its template's `command`; absent
    /// when it runs none. Makes the `AgentRunning` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramStatus>,
}

/// What a runtime says of the program it runs for its template's `command`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProgramStatus {
    pub state: ProgramStateName,
    /// The last exit's code, when it exited with one.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer::option")]
    pub exit_code: Option<i32>,
    /// The signal that ended the last run, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer::option")]
    pub signal: Option<i32>,
    /// How often the runtime restarted the program since it started it.
    #[serde(default, deserialize_with = "integer::required")]
    pub restarts: u32,
    /// The kernel killed the last run for using more memory than its
    /// limit allows (`AgentRunning` says `OOMKilled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// Where the program is: `waiting` (delivery is not complete and
/// verified yet), `running`, `exited` (started again after a backoff),
/// `stopped` (the workspace is paused or hibernated).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProgramStateName {
    Waiting,
    Running,
    Exited,
    Stopped,
}

impl From<&ProgramStatus> for hearth_core::reconcile::ProgramReport {
    fn from(status: &ProgramStatus) -> Self {
        use hearth_core::reconcile::ProgramState;
        Self {
            state: match status.state {
                ProgramStateName::Waiting => ProgramState::Waiting,
                ProgramStateName::Running => ProgramState::Running,
                ProgramStateName::Exited => ProgramState::Exited,
                ProgramStateName::Stopped => ProgramState::Stopped,
            },
            exit_code: status.exit_code,
            signal: status.signal,
            restarts: status.restarts,
            oom_killed: status.oom_killed,
        }
    }
}

/// The wire heartbeat as the state machine's input, before validation.
impl From<HeartbeatRequest> for hearth_core::heartbeat::RawHeartbeat {
    fn from(req: HeartbeatRequest) -> Self {
        use hearth_core::reconcile::{PluginFailure, Report};
        let report = Report {
            assets_digest: req.assets_digest,
            installed: req.installed_plugins.map(|list| list.into_iter().map(|p| (p.name, p.sha256)).collect()),
            // Absent means the runtime reports no failures.
            failures: req
                .plugin_errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| PluginFailure { name: e.name, error: e.error })
                .collect(),
            program: req.program.as_ref().map(|status| Box::new(status.into())),
        };
        Self {
            error_rate: req.error_rate,
            sample_error: req.sample_error,
            active_tasks: req.active_tasks,
            uptime_seconds: req.uptime_seconds,
            current_task: req.current_task,
            monthly_spend: req.monthly_spend,
            runtime_state: req.runtime_state,
            runtime_metadata: req.runtime_metadata,
            report,
        }
    }
}

/// A plugin install that failed on the runtime, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PluginError {
    pub name: String,
    pub error: String,
}

/// A plugin the workspace must hold. `version` and `sha256` are null when
/// Hearth's registry does not hold the plugin (declared, never pushed): a
/// runtime cannot install it, and `PluginsInstalled` says `NotInRegistry`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DesiredPlugin {
    pub name: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
}

/// What the runtime must converge to; sent on every heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Desired {
    pub assets_digest: Option<String>,
    pub plugins: Vec<DesiredPlugin>,
}

/// What a workspace must converge to, as a runtime reads it: the template's
/// digest and each desired plugin with the version and hash stored now.
impl From<&hearth_core::reconcile::DesiredState> for Desired {
    fn from(desired: &hearth_core::reconcile::DesiredState) -> Self {
        Desired {
            assets_digest: desired.assets_digest.clone(),
            plugins: desired
                .plugins
                .iter()
                .map(|p| DesiredPlugin {
                    name: p.name.clone(),
                    version: p.stored.as_ref().map(|s| s.version.clone()),
                    sha256: p.stored.as_ref().map(|s| s.sha256.clone()),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub status: String,
    #[schema(value_type = String)]
    pub workspace_status: WorkspaceStatus,
    pub desired: Desired,
    /// Send the next heartbeat after about this many seconds (the server
    /// sets the fleet's pace; jittered). Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_heartbeat_seconds: Option<f64>,
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
    /// On the 404 of a removed workspace: its sentence and code, as on every
    /// error body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspaceRequest {
    /// 1 to 255 characters, no control characters.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0, maximum = 100)]
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
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub max_concurrent_tasks: Option<i32>,
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub budget_limit: Option<i64>,
    #[serde(default)]
    pub external: Option<bool>,
    #[serde(default)]
    pub url: Option<String>,
    /// Return a workspace token in the response (shown once).
    #[serde(default)]
    pub issue_token: Option<bool>,
}

/// `POST /workspaces/batch`: many workspaces in one request, created
/// together or not at all (the bulk registration path).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspacesRequest {
    /// 1 to 1000 workspaces.
    #[schema(min_items = 1, max_items = 1000)]
    pub workspaces: Vec<CreateWorkspaceRequest>,
}

/// The workspaces of a batch, in the order of the request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspacesResponse {
    pub workspaces: Vec<WorkspaceResponse>,
}

/// A Kubernetes-style condition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `"True"`, `"False"` or `"Unknown"`.
    pub status: String,
    pub reason: String,
    /// For people: programs read `status`, `reason` and the workspace's
    /// typed fields (such as `reported_assets_digest`), never this.
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

/// Strings on the wire (a newer server's reason must not make an older
/// client fail to read the workspace), values everywhere else.
impl From<&ConditionRecord> for Condition {
    fn from(record: &ConditionRecord) -> Self {
        Condition {
            kind: record.kind.as_str().to_owned(),
            status: record.status.as_str().to_owned(),
            reason: record.reason.as_str().to_owned(),
            message: record.message.clone(),
            last_transition_time: record.last_transition_time,
        }
    }
}

impl Condition {
    /// The status as a value; `None` for one this build does not know.
    pub fn typed_status(&self) -> Option<ConditionStatus> {
        self.status.parse().ok()
    }

    /// The reason as a value; `None` for one this build does not know (a
    /// newer server's, or the `Live` condition's, which is a workspace status).
    pub fn typed_reason(&self) -> Option<ConditionReason> {
        self.reason.parse().ok()
    }

    /// Whether the condition holds (`status` is `True`).
    pub fn is_true(&self) -> bool {
        self.typed_status() == Some(ConditionStatus::True)
    }
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
    /// The assets digest the runtime last reported (`None` until it reports
    /// one); `AssetsDelivered` compares it with the template's.
    pub reported_assets_digest: Option<String>,
    pub status_changed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present only on create with `issue_token: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

impl WorkspaceResponse {
    /// The condition of this type, if the workspace shows it.
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|condition| condition.kind == kind.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeleteResponse {
    pub status: String,
    pub cascade_deleted: u64,
}

// --- orgs ------------------------------------------------------------------

/// `POST /orgs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateOrgRequest {
    /// Unique; as a workspace's name: 1 to 255 characters, not blank, no
    /// control characters.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
}

/// An organisation. `workspaces` and `usage` are given by `GET /orgs/{id}`
/// only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrgResponse {
    #[schema(value_type = Uuid)]
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub quotas: OrgQuotas,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<OrgUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<WorkspaceCounts>,
}

/// An org's quotas (`PUT /orgs/{id}/quotas`, the admin's): each a limit,
/// or null (absent) for none, the default. A quota is reached exactly at
/// its limit; one more is 409 `quota_exceeded`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrgQuotas {
    /// Workspaces in total (not removed).
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub workspaces: Option<i64>,
    /// Workspaces running at once: provisioning, online, degraded or offline
    /// (a create, a resume and a restart of a failed one start one).
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub running: Option<i64>,
    /// Bytes of template files.
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub template_bytes: Option<i64>,
    /// Bytes of plugin files.
    #[serde(default, deserialize_with = "integer::option")]
    #[schema(minimum = 0)]
    pub plugin_bytes: Option<i64>,
}

/// What counts against an org's quotas now.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct OrgUsage {
    pub workspaces: i64,
    pub running: i64,
    pub template_bytes: i64,
    pub plugin_bytes: i64,
}

/// `DELETE /orgs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeleteOrgResponse {
    pub status: String,
    /// Workspaces removed by `?cascade=true` (through their lifecycle).
    pub removed_workspaces: u64,
    /// The org's tokens revoked.
    pub revoked_tokens: u64,
}

// --- tokens ----------------------------------------------------------------

/// `POST /org/tokens`. Without `role` the token is its org's `owner`
/// (what every org token was before roles).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// `owner`, `operator` or `viewer` (README, "Tenancy").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = org_role_schema)]
    pub role: Option<Role>,
}

/// The roles an org token may have, as an OpenAPI enum.
fn org_role_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Role::ORG.map(Role::as_str)))
        .build()
}

/// `GET /whoami`: what the presented token is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WhoamiResponse {
    /// `admin`, `owner`, `operator` or `viewer`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The token's org; null for the admin (every org).
    #[schema(value_type = Option<Uuid>)]
    pub org_id: Option<Uuid>,
    /// The token's id; null for the admin token (configured, not stored).
    #[schema(value_type = Option<Uuid>)]
    pub token_id: Option<Uuid>,
}

/// `POST /workspaces/{id}/tokens`. Without `revoke_previous_after_seconds`
/// the new token is added beside the workspace's others; with it, this is a
/// rotation: every other token of the workspace stops working that many
/// seconds from now (0: at once), so a runtime can switch to the new one
/// within the overlap.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkspaceTokenRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integer::option")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub revoke_previous_after_seconds: Option<u32>,
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
    /// An org token's role; absent for a workspace's own token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    pub created_at: DateTime<Utc>,
    /// When the token stops (or stopped) working; a rotation sets a future
    /// time on the tokens it replaces. Null: until revoked.
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
    /// The runtime protocol versions this server accepts (`X-Hearth-Protocol`).
    #[serde(default)]
    pub protocol_versions: Vec<u32>,
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

// --- dashboard and waiting ---------------------------------------------------

/// `GET /workspaces/counts`: how many workspaces are in each status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkspaceCounts {
    /// Every workspace the caller may see, removed ones excluded.
    pub total: i64,
    /// One entry per status (all eight, zero included), removed too.
    pub by_status: std::collections::BTreeMap<String, i64>,
}

/// `GET /plugins/{name}`: a plugin and its files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PluginDetailResponse {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The SDK content-manifest hash.
    pub sha256: String,
    /// By path; `sha256` of each file's bytes.
    pub files: Vec<AssetFile>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `GET /workspaces/{id}/wait` waits for: the `for` parameter,
/// `status=STATUS` or `condition=TYPE` (that condition `True`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Status(WorkspaceStatus),
    Condition(String),
}

/// The condition types a workspace shows (`Live` is derived from its status).
pub const CONDITION_TYPES: [&str; 5] = [
    "Live",
    ConditionType::AssetsDelivered.as_str(),
    ConditionType::PluginsInstalled.as_str(),
    ConditionType::AgentRunning.as_str(),
    ConditionType::RuntimeRunning.as_str(),
];

impl std::str::FromStr for WaitFor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, value) = text
            .split_once('=')
            .ok_or_else(|| format!("expected status=STATUS or condition=TYPE (such as status=online), got {text:?}"))?;
        match kind.trim() {
            "status" => value.trim().parse().map(WaitFor::Status).map_err(|_| {
                let all: Vec<&str> = WorkspaceStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status {:?}; one of {}", value.trim(), all.join(", "))
            }),
            "condition" => {
                let value = value.trim();
                CONDITION_TYPES
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(value))
                    .map(|known| WaitFor::Condition((*known).to_owned()))
                    .ok_or_else(|| format!("unknown condition {value:?}; one of {}", CONDITION_TYPES.join(", ")))
            }
            other => Err(format!("expected status=… or condition=…, got {other:?}=…")),
        }
    }
}

impl std::fmt::Display for WaitFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitFor::Status(status) => write!(f, "status={status}"),
            WaitFor::Condition(kind) => write!(f, "condition={kind}"),
        }
    }
}

impl WaitFor {
    /// Whether `workspace` is there already.
    pub fn is_met(&self, workspace: &WorkspaceResponse) -> bool {
        match self {
            WaitFor::Status(status) => workspace.status == *status,
            WaitFor::Condition(kind) => workspace.conditions.iter().any(|c| c.kind == *kind && c.is_true()),
        }
    }

    /// Why `workspace` can never get there, if it cannot: a removed
    /// workspace never changes again.
    pub fn impossible(&self, workspace: &WorkspaceResponse) -> Option<String> {
        (workspace.status == WorkspaceStatus::Removed && !self.is_met(workspace))
            .then(|| format!("workspace {} is removed; {self} can no longer happen", workspace.id))
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// The workspace is in the state waited for.
    Met,
    /// The time ran out first; ask again to keep waiting.
    TimedOut,
    /// The state can no longer be reached (the workspace is removed).
    Impossible,
}

/// `GET /workspaces/{id}/wait`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WaitResponse {
    pub outcome: WaitOutcome,
    /// What was waited for, as given (`status=online`).
    #[serde(rename = "for")]
    pub waited_for: String,
    /// One sentence for people.
    pub message: String,
    /// The workspace as it was when the wait ended.
    pub workspace: WorkspaceResponse,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test: a failed step should panic
mod tests {
    use super::*;

    /// The program report's integers are integers as JSON Schema counts
    /// them: `-9.0` is -9 (schemathesis sent such a heartbeat and got a
    /// 400 for a schema-valid body), `2.5` is refused.
    #[test]
    fn the_program_reports_integers_may_be_written_with_a_zero_fraction() {
        let report: ProgramStatus =
            serde_json::from_str(r#"{"state": "exited", "exit_code": 1.0, "signal": -131073.0, "restarts": 2.0}"#)
                .unwrap();
        assert_eq!((report.exit_code, report.signal, report.restarts), (Some(1), Some(-131073), 2));
        let bare: ProgramStatus = serde_json::from_str(r#"{"state": "running"}"#).unwrap();
        assert_eq!((bare.exit_code, bare.signal, bare.restarts, bare.oom_killed), (None, None, 0, false));
        assert!(serde_json::from_str::<ProgramStatus>(r#"{"state": "exited", "signal": 2.5}"#).is_err());
        assert!(serde_json::from_str::<ProgramStatus>(r#"{"state": "exited", "restarts": -1}"#).is_err());
    }

    #[test]
    fn error_codes_read_and_write_as_their_wire_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).ok(), Some(*code));
        }
        let newer: ApiErrorBody = serde_json::from_str(r#"{"error": "x", "code": "from_a_newer_server"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Unknown, "an unknown code still parses");
        let bare: ApiErrorBody = serde_json::from_str(r#"{"error": "x"}"#).unwrap();
        assert_eq!((bare.error.as_str(), bare.code), ("x", ErrorCode::Unknown));
    }

    #[test]
    fn error_details_are_typed_and_omitted_when_absent() {
        let body: ApiErrorBody = serde_json::from_str(
            r#"{"error": "workspace is paused", "code": "workspace_stopped", "status": "paused"}"#,
        )
        .unwrap();
        assert_eq!(body.status, Some(WorkspaceStatus::Paused));
        let json = serde_json::to_value(ApiErrorBody::new(ErrorCode::NotFound, "no")).unwrap();
        assert_eq!(json, serde_json::json!({"error": "no", "code": "not_found"}));
    }

    #[test]
    fn wait_targets_parse_and_print_back() {
        for (text, parsed) in [
            ("status=online", WaitFor::Status(WorkspaceStatus::Online)),
            (" status = paused ", WaitFor::Status(WorkspaceStatus::Paused)),
            ("condition=PluginsInstalled", WaitFor::Condition("PluginsInstalled".into())),
            ("condition=assetsdelivered", WaitFor::Condition("AssetsDelivered".into())),
        ] {
            assert_eq!(text.parse::<WaitFor>().as_ref(), Ok(&parsed), "{text}");
            assert_eq!(parsed.to_string().parse::<WaitFor>(), Ok(parsed.clone()), "round trip");
        }
        for bad in ["online", "status=sleeping", "condition=Ready", "phase=online", ""] {
            assert!(bad.parse::<WaitFor>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn text_stays_text_and_binary_becomes_base64() {
        assert_eq!(FileContent::from_bytes(b"h\xc3\xa9".to_vec()), FileContent::Text("hé".into()));
        assert_eq!(FileContent::from_bytes(vec![0xff, 0x00]), FileContent::Binary { base64: "/wA=".into() });
    }
}
