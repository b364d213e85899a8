//! The storage interface of Hearth: one `Store` trait, its records and errors,
//! and the conformance suite (feature `conformance`) that every engine runs.
//!
//! Invariant: this crate enables no sqlx driver. Engines live in
//! `hearth-store-pg` and `hearth-store-sqlite`; the server picks one from the
//! database URL's scheme.

mod error;
mod evolve;
mod model;
mod notice;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hearth_core::{Input, OrgId, Outage, SweepContext, TokenId, WorkspaceId};

pub use error::{Conflict, StoreError, StoreResult};
pub use evolve::{evolve, Changed, LivenessWrite};
pub use model::*;
pub use notice::{Notice, NoticeFeed, CHANNEL};

/// The database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// Everything Hearth persists. Implementations must be safe to use from many
/// tasks and, for Postgres, from many replicas at once: every lifecycle change
/// goes through [`Store::apply`], which serializes writers on the workspace row
/// and writes the new status and its events in one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn engine(&self) -> Engine;

    /// Connections that batches of plain heartbeats are written on
    /// ([`Store::write_liveness`]): the server runs one batch writer per
    /// connection, so two batches never wait for one.
    fn liveness_writers(&self) -> usize;

    /// One cheap round trip; `Err(Unavailable)` when the database is down.
    async fn ping(&self) -> StoreResult<()>;

    /// The newest applied migration version.
    async fn schema_version(&self) -> StoreResult<i64>;

    /// The newest migration this build ships.
    fn expected_schema_version(&self) -> i64;

    /// Notices of the changes every replica commits (see [`Notice`]);
    /// `None` when the engine serves one process only (SQLite), where the
    /// server's own calls are all there is to hear.
    async fn listen(&self) -> StoreResult<Option<Box<dyn NoticeFeed>>>;

    // --- orgs -------------------------------------------------------------

    /// Creates an org named `name` (unique among orgs not deleted:
    /// `Conflict { OrgExists }`), without quotas.
    async fn create_org(&self, id: OrgId, name: &str, now: DateTime<Utc>) -> StoreResult<Org>;

    /// Every org not deleted, by name (byte order).
    async fn list_orgs(&self) -> StoreResult<Vec<Org>>;

    /// The org `id`; NotFound("org") when there is none or it was deleted.
    async fn get_org(&self, id: OrgId) -> StoreResult<Org>;

    /// Sets the org's quotas (all of them: `None` lifts one). A quota below
    /// what is used now is allowed: nothing more may be added until use
    /// falls under it.
    async fn set_org_quotas(&self, id: OrgId, quotas: Quotas, now: DateTime<Utc>) -> StoreResult<Org>;

    /// What counts against the org's quotas now.
    async fn org_usage(&self, id: OrgId) -> StoreResult<Usage>;

    /// Deletes the org, in one transaction under its row lock: refused
    /// with `OrgNotEmpty` while it holds workspaces not removed; otherwise
    /// its org tokens are revoked (every replica told), its secrets, templates
    /// and plugins deleted, and the org marked deleted (its removed
    /// workspaces and their events stay, as history; its name is free).
    /// Returns the revoked tokens. NotFound("org") when there is none.
    async fn delete_org(&self, id: OrgId, now: DateTime<Utc>) -> StoreResult<Vec<TokenId>>;

    // --- workspaces -------------------------------------------------------

    /// Inserts a workspace in `provisioning` with its `WORKSPACE_PROVISIONING`
    /// event (and a workspace token when `token` is given), atomically.
    async fn create_workspace(&self, new: NewWorkspace, token: Option<NewToken>) -> StoreResult<Workspace> {
        let mut created = self.create_workspaces(vec![(new, token)]).await?;
        created.pop().ok_or_else(|| StoreError::Corrupt {
            operation: "create_workspace",
            message: "no workspace was returned".into(),
        })
    }

    /// Like [`Store::create_workspace`] for many workspaces at once, in one
    /// transaction: all are created, or none (the bulk registration path).
    async fn create_workspaces(&self, batch: Vec<(NewWorkspace, Option<NewToken>)>) -> StoreResult<Vec<Workspace>>;

    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Workspace>;

    /// Workspaces not removed, in all orgs (the fleet the heartbeat pace
    /// is set for).
    async fn count_workspaces(&self) -> StoreResult<i64>;

    /// Workspaces of `org` (all orgs when `None`), oldest first.
    async fn list_workspaces(&self, org: Option<OrgId>, include_removed: bool) -> StoreResult<Vec<Workspace>>;

    /// One page of workspaces (creation order) with each one's desired
    /// state, in two queries whatever the page size.
    async fn list_workspaces_page(
        &self,
        page: WorkspacePage,
    ) -> StoreResult<Vec<(Workspace, hearth_core::reconcile::DesiredState)>>;

    /// [`Store::list_workspaces_page`] keeping only the workspaces that
    /// match `filter` (the page holds up to `limit` matches; the cursor is
    /// the last match), in two queries whatever the page size.
    async fn list_workspaces_filtered(
        &self,
        page: WorkspacePage,
        filter: &WorkspaceFilter,
    ) -> StoreResult<Vec<(Workspace, hearth_core::reconcile::DesiredState)>>;

    /// How many workspaces of `org` (all orgs when `None`) are in each
    /// status, removed included; statuses with none are left out.
    async fn count_workspaces_by_status(
        &self,
        org: Option<OrgId>,
    ) -> StoreResult<Vec<(hearth_core::WorkspaceStatus, i64)>>;

    /// One page of a workspace's peers, each with its group: its siblings
    /// (same parent; for a root, the other roots of its org), then its
    /// children, each group in creation order, then its parent; removed
    /// workspaces left out, `name_or_role_contains` applied in the query.
    /// Each group is read by its own indexed query, in the index's order
    /// (siblings and children by `(org_id, parent_id, created_at,
    /// workspace_id)`, roots by `(org_id, created_at, workspace_id)`, the
    /// parent by its key), and only as far as the page needs: never the
    /// whole org.
    async fn list_peers(&self, page: &PeersPage) -> StoreResult<Vec<(PeerGroup, Workspace)>>;

    /// Whether one of `a` and `b` is an ancestor of the other, at most
    /// `generations` levels above it: walks the parent links up from both,
    /// one primary-key read per level, in one query.
    async fn is_ancestor_or_descendant(&self, a: WorkspaceId, b: WorkspaceId, generations: i32) -> StoreResult<bool>;

    /// Runs the state machine on the locked row and persists its decision,
    /// the input's field updates and the events in one transaction.
    async fn apply(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied>;

    /// [`Store::apply`] under the org's lock, for an operator's input that
    /// may start a runtime (a resume, a restart of a failed workspace):
    /// refused with `QuotaExceeded` when the decision would start one past
    /// the org's `running` quota, so two at once cannot both pass it.
    async fn apply_starting(&self, id: WorkspaceId, input: Input, now: DateTime<Utc>) -> StoreResult<Applied>;

    /// The bootstrap: [`Store::apply`] of a register without a token that
    /// also inserts `bootstrap.token`, in one transaction under the row
    /// lock. The state machine decides first (a removed workspace is
    /// `Rejected(Removed)`, a paused one `Rejected(Stopped)`); then the token
    /// is minted only if the workspace never had a token (no row in
    /// `tokens`, revoked or not), is `provisioning`, and was created after
    /// `bootstrap.created_after`. Otherwise [`StoreError::BootstrapRefused`]
    /// and nothing is written, so of two concurrent bootstraps one mints.
    async fn register_minting(&self, id: WorkspaceId, bootstrap: Bootstrap, now: DateTime<Utc>)
        -> StoreResult<Applied>;

    /// [`Store::apply`] for many inputs in one transaction (group commit
    /// for transitions): each input is decided on its row as it is then,
    /// locked in workspace-id order (two batches never wait on each other
    /// in a cycle), and the events of all are appended after every row is
    /// written. One outcome per input, in the order given: a refused input
    /// (`Rejected`, `NotFound`) writes nothing and does not stop the others;
    /// any other error fails the whole batch, and nothing is written.
    async fn apply_batch(
        &self,
        batch: Vec<(WorkspaceId, Input, DateTime<Utc>)>,
    ) -> StoreResult<Vec<StoreResult<Applied>>>;

    /// The group-commit writer's one statement: writes the liveness columns
    /// of each heartbeat in `batch` where the row version is still the one
    /// it was decided on, in one statement (Postgres) or one transaction
    /// (SQLite). Returns the ids written; an id missing from the answer
    /// failed its guard (the row changed meanwhile) and must be re-decided
    /// through [`Store::apply`]. Ids in a batch are distinct.
    async fn write_liveness(&self, batch: &[LivenessWrite]) -> StoreResult<Vec<WorkspaceId>>;

    /// Deletes a workspace and all its descendants (each gets its own
    /// `WORKSPACE_REMOVED`), in one transaction. Idempotent.
    async fn delete_workspace(&self, id: WorkspaceId, by: hearth_core::By, now: DateTime<Utc>) -> StoreResult<Deleted>;

    /// Replaces the plugins an operator added to a workspace (desired state
    /// beyond the template's). Refused for a removed workspace.
    async fn set_operator_plugins(
        &self,
        id: WorkspaceId,
        plugins: Vec<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<Workspace>;

    /// Replaces the agent card and appends `AGENT_CARD_UPDATED` (a digest
    /// and the changed keys, not the card: `hearth_core::agent_card`).
    /// A card equal to the stored one writes nothing and returns `None`.
    async fn update_agent_card(
        &self,
        id: WorkspaceId,
        agent_card: serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Event>>;

    /// One batch of a sweep, set-based, in one transaction: the candidates
    /// of `sweep` whose reference time is before `now - age` (at most
    /// `limit`; on Postgres rows another replica holds are skipped, not
    /// waited for), each re-decided by the state machine on its locked row,
    /// with their transitions and events. `context`: the control plane's
    /// latest outage ([`Store::control_plane_alive`]), which the liveness
    /// sweep does not count, and a mass silence it says in its events.
    /// Returns what changed.
    async fn sweep(
        &self,
        sweep: Sweep,
        age: chrono::Duration,
        now: DateTime<Utc>,
        limit: i64,
        context: SweepContext,
    ) -> StoreResult<Vec<Applied>>;

    /// The live workspaces the liveness sweep would take at `cutoff`
    /// (last heard, or changed status, before it), oldest first, at most
    /// `limit`: read without locks, so that one scan of the fleet feeds
    /// many [`Store::sweep_these`] batches (a fleet silent together).
    async fn liveness_due(&self, cutoff: DateTime<Utc>, limit: i64) -> StoreResult<Vec<WorkspaceId>>;

    /// [`Store::sweep`] of the workspaces `ids` rather than the oldest
    /// candidates: each row locked (on Postgres skipped when another
    /// replica holds it), re-decided by the state machine (one no longer
    /// due is left as it is), written and its events appended, in one
    /// transaction.
    async fn sweep_these(
        &self,
        sweep: Sweep,
        ids: &[WorkspaceId],
        age: chrono::Duration,
        now: DateTime<Utc>,
        context: SweepContext,
    ) -> StoreResult<Vec<Applied>>;

    /// Of the live (online or degraded) workspaces: how many were last
    /// heard (or changed status) before `cutoff`, and how many there are.
    /// One scan of the live rows.
    async fn count_liveness(&self, cutoff: DateTime<Utc>) -> StoreResult<(u64, u64)>;

    /// The control plane's own liveness, advanced by every sweep of every
    /// replica: records that it is alive at `now`, and when it was last
    /// recorded alive more than `gap` before (every replica was down, or
    /// the database did not answer), that window as its latest outage. One
    /// transaction on one row, so replicas agree. Returns the latest outage
    /// ever recorded.
    async fn control_plane_alive(&self, now: DateTime<Utc>, gap: chrono::Duration) -> StoreResult<Option<Outage>>;

    // --- tokens -----------------------------------------------------------

    async fn insert_token(&self, token: NewToken) -> StoreResult<Token>;

    /// Inserts an org token (`token.workspace_id` is `None`) unless its org
    /// already holds `max_live` org tokens live at `token.now` (revoked ones
    /// do not count): then [`StoreError::LimitReached`], and nothing is
    /// written. The count and the insert are one transaction under the org
    /// row's lock (Postgres `for update`; SQLite's single writer), so two
    /// concurrent creates cannot both pass the cap.
    async fn insert_org_token(&self, token: NewToken, max_live: u64) -> StoreResult<Token>;

    /// Issues a token for a workspace. With
    /// `revoke_others_at`, this is a rotation: every other token of the
    /// workspace stops working at that time (an earlier revocation stays).
    /// One transaction, under the workspace's lock; refused for a removed
    /// workspace.
    async fn issue_workspace_token(
        &self,
        token: NewWorkspaceToken,
        revoke_others_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Token>;

    /// The tokens of a workspace, newest first (revoked ones too).
    async fn list_workspace_tokens(&self, workspace: WorkspaceId) -> StoreResult<Vec<Token>>;

    /// Revokes a token of `workspace` at `now` (a later end, such as a
    /// rotation's overlap, is brought forward to `now`). NotFound when it is
    /// not one of that workspace's tokens.
    async fn revoke_workspace_token(&self, workspace: WorkspaceId, id: TokenId, now: DateTime<Utc>) -> StoreResult<()>;

    /// The token with this sha256 that is live at `now` (not revoked, or
    /// revoked only from a later time), if any.
    async fn find_token_by_hash(&self, hash: &[u8], now: DateTime<Utc>) -> StoreResult<Option<Token>>;

    /// The tokens live at `now` among those whose sha256 is one of
    /// `hashes`, each with its hash, in one query; hashes of tokens that
    /// are unknown, revoked or expired are left out. The token cache renews
    /// many entries at once with it.
    async fn find_tokens_by_hashes(&self, hashes: &[Vec<u8>], now: DateTime<Utc>)
        -> StoreResult<Vec<(Vec<u8>, Token)>>;

    /// Org tokens of `org` (workspace tokens excluded), newest first.
    async fn list_org_tokens(&self, org: OrgId) -> StoreResult<Vec<Token>>;

    /// Revokes an org token (not a workspace's) of `org` (`None`: of any
    /// org, for the admin; the token's id determines its org) at `now`, or
    /// at once if a later end was set. NotFound when there is no such org
    /// token.
    async fn revoke_token(&self, org: Option<OrgId>, id: TokenId, now: DateTime<Utc>) -> StoreResult<()>;

    // --- secrets ----------------------------------------------------------

    /// Inserts or replaces sealed secrets of an org (`workspace == None`) or
    /// of one workspace.
    async fn put_secrets(
        &self,
        org: OrgId,
        workspace: Option<WorkspaceId>,
        secrets: Vec<SealedSecret>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    async fn list_secrets(&self, org: OrgId, workspace: Option<WorkspaceId>) -> StoreResult<Vec<SealedSecret>>;

    // --- templates, plugins, blobs --------------------------------------------

    /// Stores a template (its files content-addressed), replacing one of the
    /// same name in the org, atomically.
    async fn put_template(&self, template: NewTemplate) -> StoreResult<Template>;

    async fn get_template_by_name(&self, org: OrgId, name: &str) -> StoreResult<Template>;

    async fn get_template_by_id(&self, id: uuid::Uuid) -> StoreResult<Template>;

    /// One page of the templates of `org` (all orgs when `None`), by name,
    /// after the template with id `after` (keyset paging), with their
    /// files: two queries whatever the page size.
    async fn list_templates(
        &self,
        org: Option<OrgId>,
        after: Option<uuid::Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<Template>>;

    /// Stores a plugin, replacing one of the same name in the org, atomically.
    async fn put_plugin(&self, plugin: NewPlugin) -> StoreResult<Plugin>;

    async fn get_plugin(&self, org: OrgId, name: &str) -> StoreResult<Plugin>;

    /// One page of the plugins of `org` (all orgs when `None`), by name,
    /// after the plugin with id `after` (keyset paging), with their files:
    /// two queries whatever the page size.
    async fn list_plugins(&self, org: Option<OrgId>, after: Option<uuid::Uuid>, limit: i64)
        -> StoreResult<Vec<Plugin>>;

    /// What a workspace on template `name` must converge to, in one query:
    /// the template's assets digest and its declared plugins with their
    /// stored version and hash (empty strings for a declared plugin that is
    /// not in the registry). `None` when the template does not exist.
    async fn desired_state(
        &self,
        org: OrgId,
        template: &str,
    ) -> StoreResult<Option<hearth_core::reconcile::DesiredState>>;

    /// What workspace `id` must converge to, in one query: its template's
    /// digest and declared plugins, then the plugins an operator added
    /// (each plugin once, with its stored version and hash; empty strings
    /// for one not in the registry). NotFound for an unknown workspace.
    async fn desired_state_for_workspace(&self, id: WorkspaceId) -> StoreResult<hearth_core::reconcile::DesiredState>;

    /// [`Store::desired_state_for_workspace`] of many workspaces in one
    /// query (the heartbeat path groups the reads of its locked
    /// heartbeats); an unknown workspace is missing from the answer.
    async fn desired_states_for_workspaces(
        &self,
        ids: &[WorkspaceId],
    ) -> StoreResult<std::collections::HashMap<WorkspaceId, hearth_core::reconcile::DesiredState>>;

    /// The content of a stored file.
    async fn get_blob(&self, sha256: &str) -> StoreResult<Vec<u8>>;

    // --- events -----------------------------------------------------------

    /// The `seq` of the newest event (0 when the log is empty).
    async fn last_event_seq(&self) -> StoreResult<i64>;

    /// Events with `seq > since`, ascending, at most `limit`. What
    /// retention removed is simply not there: a reader that must know
    /// whether it missed anything uses [`Store::read_events`].
    async fn list_events(&self, query: EventQuery) -> StoreResult<Vec<Event>>;

    /// The log's compaction watermark: every event with seq up to this may
    /// have been removed by retention (0: nothing was).
    async fn compacted_through(&self) -> StoreResult<i64>;

    /// [`Store::list_events`], then the watermark, in that order: a
    /// compaction that removed an event the page would have held commits
    /// its watermark with the removal, so the watermark read after the page
    /// shows it. A reader at `since` missed nothing if `since` is at least
    /// `compacted_through`.
    async fn read_events(&self, query: EventQuery) -> StoreResult<EventPage> {
        let events = self.list_events(query).await?;
        let compacted_through = self.compacted_through().await?;
        Ok(EventPage { events, compacted_through })
    }

    /// One step of the event log's retention, in one transaction: judges
    /// the next events by their workspace's count (up to 10 × `batch`
    /// events: a workspace beyond `per_workspace` loses its oldest, and a
    /// workspace's old status events go once it has a newer one), then up
    /// to `batch` events by age (older than `max_age` at `now`), never
    /// removing a workspace's latest status event, and advances the
    /// watermark past what it removed. Safe on many replicas at once (one
    /// compacts, the others find it `busy`). Call again while `more`.
    async fn compact_events(&self, retention: Retention, now: DateTime<Utc>) -> StoreResult<Compaction>;
}

#[cfg(test)]
mod tests {
    /// The scenarios of the conformance suite: every `pub async fn` of
    /// `conformance.rs` that takes the store and nothing else (the helpers
    /// engine tests share, such as `create`, are generic over the store).
    fn scenarios(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split_once('('))
            .filter(|(name, _)| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(|(name, _)| name)
            .collect()
    }

    /// The names `conformance_tests!` runs on every engine: its `@each`
    /// list, kept by hand.
    fn listed(source: &str) -> Vec<&str> {
        let start = source.find("@each $make;").map(|at| at + "@each $make;".len());
        let list = start.and_then(|start| source[start..].find(");").map(|end| &source[start..start + end]));
        let list = list.unwrap_or_else(|| panic!("conformance_tests! has no `@each $make; …);` list"));
        list.split(',').map(str::trim).filter(|name| !name.is_empty()).collect()
    }

    /// A scenario left out of the list would run on no engine.
    #[test]
    fn every_conformance_scenario_runs_on_every_engine() {
        let source = include_str!("conformance.rs");
        let mut scenarios = scenarios(source);
        let mut listed = listed(source);
        assert!(scenarios.len() > 40, "the scenarios are found: {scenarios:?}");
        scenarios.sort_unstable();
        listed.sort_unstable();
        let missing: Vec<&&str> = scenarios.iter().filter(|name| !listed.contains(name)).collect();
        let unknown: Vec<&&str> = listed.iter().filter(|name| !scenarios.contains(name)).collect();
        assert!(missing.is_empty(), "scenarios missing from conformance_tests!: {missing:?}");
        assert!(unknown.is_empty(), "conformance_tests! lists what is no scenario: {unknown:?}");
        let mut distinct = listed.clone();
        distinct.dedup();
        assert_eq!(distinct, listed, "a scenario is listed once");
    }
}
