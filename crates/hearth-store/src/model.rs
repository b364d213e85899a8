//! Records the store reads and writes. These are domain types, not wire types:
//! the server maps them onto `hearth-api` responses.

use chrono::{DateTime, Utc};
use hearth_core::reconcile::{ConditionRecord, InstalledPlugin};
use hearth_core::{EventId, EventKind, OrgId, Role, Snapshot, TokenId, WorkspaceId, WorkspaceStatus};
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;

/// A workspace as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub org_id: OrgId,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub status: WorkspaceStatus,
    pub url: Option<String>,
    pub agent_card: Option<Value>,
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
    /// The assets digest the runtime last reported.
    pub reported_assets_digest: Option<String>,
    /// The plugins the runtime last reported holding (observed state).
    pub installed_plugins: Vec<InstalledPlugin>,
    /// `AssetsDelivered` and `PluginsInstalled`, as of the last evaluation.
    pub conditions: Vec<ConditionRecord>,
    /// Plugins an operator added to this workspace beyond its template's.
    pub operator_plugins: Vec<String>,
    pub status_changed_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The row version: bumped by every write under the row lock, not by the
    /// group-commit liveness writer, whose writes it guards.
    pub version: i64,
}

impl Workspace {
    /// What the state machine sees of this workspace.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            status: self.status,
            status_changed_at: self.status_changed_at,
            last_heartbeat_at: self.last_heartbeat_at,
            current_task: self.current_task.clone(),
            active_tasks: self.active_tasks,
            last_active_at: self.last_active_at,
        }
    }
}

/// What an operator asks for when creating a workspace (already validated).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkspace {
    pub id: WorkspaceId,
    pub org_id: OrgId,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub parent_id: Option<WorkspaceId>,
    pub template: Option<String>,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub max_concurrent_tasks: Option<i32>,
    pub budget_limit: Option<i64>,
    pub external: bool,
    pub url: Option<String>,
    pub now: DateTime<Utc>,
    /// The operator who creates it (its `WORKSPACE_PROVISIONING` event's
    /// actor).
    pub by: hearth_core::By,
}

impl NewWorkspace {
    /// A workspace with only a name; the rest defaulted.
    pub fn named(org_id: OrgId, name: &str, now: DateTime<Utc>) -> Self {
        Self {
            id: WorkspaceId::new_random(),
            org_id,
            name: name.to_owned(),
            role: None,
            tier: 1,
            parent_id: None,
            template: None,
            runtime: None,
            model: None,
            max_concurrent_tasks: None,
            budget_limit: None,
            external: false,
            url: None,
            now,
            by: hearth_core::By::ADMIN,
        }
    }
}

/// One event of the durable, ordered log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Global, strictly increasing and gap-free.
    pub seq: i64,
    pub id: EventId,
    pub kind: EventKind,
    pub org_id: OrgId,
    pub workspace_id: Option<WorkspaceId>,
    pub timestamp: DateTime<Utc>,
    pub payload: Value,
}

/// One page of [`crate::Store::list_workspaces_page`]: workspaces in
/// creation order, after `after` (keyset paging, so a page costs the same
/// at any depth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkspacePage {
    pub org: Option<OrgId>,
    pub include_removed: bool,
    /// The last workspace of the previous page; `None` for the first page.
    pub after: Option<WorkspaceCursor>,
    pub limit: i64,
}

/// What [`crate::Store::list_workspaces_filtered`] keeps of a page: every
/// field that is set must match (the dashboard's filters, "which workspaces
/// use this template/plugin").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceFilter {
    pub status: Option<WorkspaceStatus>,
    /// Case-insensitive (ASCII) substring of the name.
    pub name_contains: Option<String>,
    /// Created from this template (by name).
    pub template: Option<String>,
    /// Wants this plugin: its template declares it or an operator added it.
    pub plugin: Option<String>,
}

impl WorkspaceFilter {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Where a page of workspaces ends: the last one's creation time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceCursor {
    pub created_at: DateTime<Utc>,
    pub id: WorkspaceId,
}

impl WorkspaceCursor {
    pub fn of(workspace: &Workspace) -> Self {
        Self { created_at: workspace.created_at, id: workspace.id }
    }

    /// Before every workspace (no workspace is created before 1970).
    pub fn start() -> Self {
        Self { created_at: DateTime::<Utc>::UNIX_EPOCH, id: WorkspaceId(Uuid::nil()) }
    }

    /// The opaque text clients pass back: `<unix nanoseconds>.<uuid>`.
    /// A creation time the nanoseconds cannot hold (before 1677 or after
    /// 2262) is an error: no cursor at all rather than one that restarts
    /// paging at the first page.
    pub fn encode(&self) -> Result<String, StoreError> {
        let nanos = self.created_at.timestamp_nanos_opt().ok_or_else(|| StoreError::Corrupt {
            operation: "workspace_cursor",
            message: format!(
                "workspace {} was created at {}, which a page cursor cannot hold (Unix nanoseconds: 1677 to 2262)",
                self.id, self.created_at
            ),
        })?;
        Ok(format!("{nanos}.{}", self.id))
    }

    /// Reads [`WorkspaceCursor::encode`]'s text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (nanos, id) = text.split_once('.')?;
        let created_at = DateTime::<Utc>::from_timestamp_nanos(nanos.parse().ok()?);
        Some(Self { created_at, id: id.parse().ok()? })
    }
}

/// Filter for [`crate::Store::list_events`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventQuery {
    pub since: i64,
    pub org: Option<OrgId>,
    pub workspace: Option<WorkspaceId>,
    pub limit: i64,
}

impl EventQuery {
    pub fn after(since: i64) -> Self {
        Self { since, org: None, workspace: None, limit: 1000 }
    }
}

/// A page of the event log and how far compaction had got when it was
/// read ([`crate::Store::read_events`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Every event with seq up to this may have been compacted away: a
    /// reader that had read up to a smaller seq may have missed some.
    pub compacted_through: i64,
}

/// What the event log keeps ([`crate::Store::compact_events`]). Each
/// workspace's latest status event is kept whatever these say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Events older than this go.
    pub max_age: chrono::Duration,
    /// A workspace's events beyond its newest this many go.
    pub per_workspace: i64,
    /// Events judged by age in one step at most (ten times as many are
    /// judged by count): the size of one step's transaction.
    pub batch: i64,
}

/// What one step of [`crate::Store::compact_events`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Events removed because they were older than the retention.
    pub by_age: u64,
    /// Events removed because their workspace held more than its share.
    pub by_count: u64,
    /// Old status events removed because their workspace has a newer one.
    pub superseded: u64,
    /// The log's watermark after the step (see [`EventPage`]).
    pub compacted_through: i64,
    /// There is more to do now: call again.
    pub more: bool,
    /// Another replica is compacting (Postgres): this step did nothing.
    pub busy: bool,
}

impl Compaction {
    pub fn removed(&self) -> u64 {
        self.by_age + self.by_count + self.superseded
    }
}

/// The result of an accepted [`crate::Store::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub previous: WorkspaceStatus,
    pub workspace: Workspace,
    /// The events written in the same transaction, in order.
    pub events: Vec<Event>,
}

/// The result of [`crate::Store::delete_workspace`].
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    /// Descendants that moved to `removed` with it (not counting itself).
    pub cascade_deleted: u64,
    /// Every workspace this call moved to `removed`, the target first.
    pub removed: Vec<WorkspaceId>,
    pub events: Vec<Event>,
}

/// The background sweeps and which workspaces each looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// online/degraded with `coalesce(last_heartbeat_at, status_changed_at) < cutoff`.
    Liveness,
    /// provisioning with `status_changed_at < cutoff`.
    ProvisionTimeout,
    /// online with `coalesce(last_active_at, status_changed_at) < cutoff`.
    Idle,
}

/// An organisation: the tenant that owns workspaces, templates, plugins,
/// secrets and org tokens. Its name is unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub quotas: Quotas,
}

/// An org's quotas, set by the admin; `None`: no limit (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Workspaces in total (not removed).
    pub workspaces: Option<i64>,
    /// Workspaces running at once: provisioning, online, degraded or
    /// offline (what a provisioner keeps a runtime for).
    pub running: Option<i64>,
    /// Bytes of template files.
    pub template_bytes: Option<i64>,
    /// Bytes of plugin files.
    pub plugin_bytes: Option<i64>,
}

/// What counts against an org's quotas now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub workspaces: i64,
    pub running: i64,
    pub template_bytes: i64,
    pub plugin_bytes: i64,
}

/// One of an org's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Workspaces,
    Running,
    TemplateBytes,
    PluginBytes,
}

impl Quota {
    pub const ALL: [Quota; 4] = [Quota::Workspaces, Quota::Running, Quota::TemplateBytes, Quota::PluginBytes];

    /// Its name in the API (`quota_exceeded`'s `quota`) and in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Quota::Workspaces => "workspaces",
            Quota::Running => "running",
            Quota::TemplateBytes => "template_bytes",
            Quota::PluginBytes => "plugin_bytes",
        }
    }

    pub fn limit(self, quotas: &Quotas) -> Option<i64> {
        match self {
            Quota::Workspaces => quotas.workspaces,
            Quota::Running => quotas.running,
            Quota::TemplateBytes => quotas.template_bytes,
            Quota::PluginBytes => quotas.plugin_bytes,
        }
    }

    pub fn used(self, usage: &Usage) -> i64 {
        match self {
            Quota::Workspaces => usage.workspaces,
            Quota::Running => usage.running,
            Quota::TemplateBytes => usage.template_bytes,
            Quota::PluginBytes => usage.plugin_bytes,
        }
    }
}

impl Quotas {
    /// The first quota that `used` plus `more` would exceed: `(quota,
    /// limit, used)`. A quota is reached exactly at its limit.
    pub fn exceeded(&self, used: &Usage, more: &Usage) -> Option<(Quota, i64, i64)> {
        Quota::ALL.into_iter().find_map(|quota| {
            let limit = quota.limit(self)?;
            let wanted = quota.used(more);
            (wanted > 0 && quota.used(used).saturating_add(wanted) > limit).then(|| (quota, limit, quota.used(used)))
        })
    }
}

/// A token as stored: never the secret, only its sha256 and a display prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: TokenId,
    pub org_id: OrgId,
    /// Set for workspace tokens; `None` for org API tokens.
    pub workspace_id: Option<WorkspaceId>,
    /// An org token's role in its org; `None` for a workspace's own token.
    pub role: Option<Role>,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether the token's workspace is removed (always false for org
    /// tokens). Filled in by `find_token_by_hash`.
    pub workspace_removed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    pub id: TokenId,
    pub org_id: OrgId,
    pub workspace_id: Option<WorkspaceId>,
    /// An org token's role; `None` for a workspace's token.
    pub role: Option<Role>,
    pub name: Option<String>,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub now: DateTime<Utc>,
}

/// A new token of one workspace ([`crate::Store::issue_workspace_token`]):
/// its workspace is a field, not an option, so a token without one cannot
/// be issued as a workspace's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkspaceToken {
    workspace_id: WorkspaceId,
    token: NewToken,
}

impl NewWorkspaceToken {
    /// `token` as a token of `workspace_id` (which its `workspace_id` becomes).
    pub fn new(workspace_id: WorkspaceId, token: NewToken) -> Self {
        Self { workspace_id, token: NewToken { workspace_id: Some(workspace_id), role: None, ..token } }
    }

    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }

    pub fn token(&self) -> &NewToken {
        &self.token
    }

    pub fn into_token(self) -> NewToken {
        self.token
    }
}

/// A register without a token, the bootstrap: a one-time join that mints
/// the workspace's first token ([`crate::Store::register_minting`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// What the runtime registers with, as in `Input::Register`.
    pub url: String,
    pub agent_card: serde_json::Value,
    /// The token to mint (its `workspace_id` is the registering workspace).
    pub token: NewToken,
    /// Only a workspace created after this may bootstrap: the caller's clock
    /// minus the bootstrap window.
    pub created_after: DateTime<Utc>,
}

/// A secret value sealed by the server (AES-256-GCM); the store never sees
/// plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub key: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A stored file of a template or plugin: its content lives in `blobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
    pub size: i64,
}

/// A file to store, with its content (stored once per sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: String,
    pub sha256: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    pub runtime: Option<String>,
    pub model: Option<String>,
    /// Plugin names `config.yaml` declares.
    pub plugins: Vec<String>,
    pub assets_digest: String,
    /// Sorted by path.
    pub files: Vec<FileRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A template to store; replaces one of the same name in the org.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    pub org_id: OrgId,
    pub name: String,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub plugins: Vec<String>,
    pub assets_digest: String,
    pub files: Vec<NewFile>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    pub version: String,
    pub description: String,
    /// The SDK content-manifest hash.
    pub sha256: String,
    /// Sorted by path.
    pub files: Vec<FileRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plugin to store; replaces one of the same name in the org.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlugin {
    pub org_id: OrgId,
    pub name: String,
    pub version: String,
    pub description: String,
    pub sha256: String,
    pub files: Vec<NewFile>,
    pub now: DateTime<Utc>,
}

/// The groups of a workspace's peers, in the order `GET /registry/{id}/peers`
/// answers them: its siblings (same parent; for a root, the other roots of
/// its org), then its children, then its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerGroup {
    Siblings,
    Children,
    Parent,
}

/// Where a page of peers ends: the last peer's group and place in it
/// (siblings and children are in creation order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCursor {
    pub group: PeerGroup,
    pub after: WorkspaceCursor,
}

impl PeerCursor {
    pub fn of(group: PeerGroup, workspace: &Workspace) -> Self {
        Self { group, after: WorkspaceCursor::of(workspace) }
    }

    /// The opaque text clients pass back: `s.` (siblings), `c.` (children)
    /// or `p.` (parent), then [`WorkspaceCursor::encode`].
    pub fn encode(&self) -> Result<String, StoreError> {
        let group = match self.group {
            PeerGroup::Siblings => 's',
            PeerGroup::Children => 'c',
            PeerGroup::Parent => 'p',
        };
        Ok(format!("{group}.{}", self.after.encode()?))
    }

    /// Reads [`PeerCursor::encode`]'s text; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (group, after) = text.split_once('.')?;
        let group = match group {
            "s" => PeerGroup::Siblings,
            "c" => PeerGroup::Children,
            "p" => PeerGroup::Parent,
            _ => return None,
        };
        Some(Self { group, after: WorkspaceCursor::parse(after)? })
    }
}

/// One page of [`crate::Store::list_peers`]: the peers of `workspace`, which
/// is in `org` under `parent`, removed ones left out, after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersPage {
    pub org: OrgId,
    pub workspace: WorkspaceId,
    pub parent: Option<WorkspaceId>,
    /// The last peer of the previous page; `None` for the first page.
    pub after: Option<PeerCursor>,
    /// Keeps peers whose name or role contains this (ASCII case ignored).
    pub name_or_role_contains: Option<String>,
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// A creation time a cursor's nanoseconds cannot hold (after 2262).
    fn beyond_nanoseconds() -> WorkspaceCursor {
        let created_at = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC);
        WorkspaceCursor { created_at, id: WorkspaceId(Uuid::from_u128(7)) }
    }

    #[test]
    fn a_time_a_cursor_cannot_hold_is_an_error_not_a_cursor_at_1970() {
        let refused = beyond_nanoseconds().encode();
        assert!(matches!(refused, Err(StoreError::Corrupt { operation: "workspace_cursor", .. })), "{refused:?}");
        let peers = PeerCursor { group: PeerGroup::Children, after: beyond_nanoseconds() }.encode();
        assert!(peers.is_err(), "{peers:?}");
    }

    #[test]
    fn cursors_at_the_edges_of_the_range_survive_their_text() {
        let id = WorkspaceId(Uuid::from_u128(7));
        for created_at in [DateTime::<Utc>::UNIX_EPOCH, DateTime::from_timestamp_nanos(i64::MAX)] {
            let cursor = WorkspaceCursor { created_at, id };
            let text = cursor.encode().unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(WorkspaceCursor::parse(&text), Some(cursor), "{text}");
        }
    }
}
