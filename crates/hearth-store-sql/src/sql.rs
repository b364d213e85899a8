//! Every SQL statement, in one place, so that a test can prepare each of them
//! against each engine's migrated schema (rule 2: a statement that does not
//! fit the schema fails CI, not production). Code outside this module and the
//! dialects never writes SQL text.
//!
//! Statements here run unchanged on both engines: parameters are `$N`, which
//! Postgres numbers natively and sqlx's SQLite driver maps to the same
//! positions. What an engine spells its own way (row locks, casts, JSON
//! functions, collations) is a field of [`Statements`], which each dialect
//! must fill in completely: a missing statement is a compile error.

/// The columns of a workspace row, in [`crate::rows::WorkspaceRow`]'s order.
/// A macro so that dialects can `concat!` it into their own statements.
#[macro_export]
macro_rules! workspace_columns {
    () => {
        "workspace_id, org_id, name, role, tier, status, url, agent_card, parent_id, template, runtime, model, \
         max_concurrent_tasks, budget_limit, external, last_heartbeat_at, last_error_rate, last_sample_error, \
         active_tasks, uptime_seconds, current_task, monthly_spend, runtime_state, runtime_metadata, \
         reported_assets_digest, installed_plugins, conditions, operator_plugins, status_changed_at, last_active_at, \
         created_at, updated_at, version"
    };
}

/// The columns of the liveness batch `b`, in parameter order (see
/// `Statements::write_liveness`; each engine binds `b` its own way).
#[macro_export]
macro_rules! liveness_batch_columns {
    () => {
        "workspace_id, version, at, error_rate, sample_error, sample_error_reported, active_tasks, \
         uptime_seconds, uptime_reported, current_task, monthly_spend, spend_reported, runtime_state, busy, \
         task_reported"
    };
}

/// The liveness write of the batch's rows `b` to the rows `w` they match,
/// where the row version still holds: what `LivenessWrite::apply_to` does.
#[macro_export]
macro_rules! liveness_update {
    ($from:expr) => {
        concat!(
            "update workspaces as w set last_heartbeat_at = b.at, last_error_rate = b.error_rate, \
            last_sample_error = case when b.sample_error_reported then b.sample_error else w.last_sample_error end, \
            active_tasks = b.active_tasks, \
            uptime_seconds = case when b.uptime_reported then b.uptime_seconds else w.uptime_seconds end, \
            current_task = case when b.task_reported then b.current_task else w.current_task end, \
            monthly_spend = case when b.spend_reported then b.monthly_spend else w.monthly_spend end, \
            runtime_state = b.runtime_state, \
            last_active_at = case when b.busy then b.at else w.last_active_at end, updated_at = b.at from ",
            $from,
            " where w.workspace_id = b.workspace_id and w.version = b.version"
        )
    };
}

/// The columns of a token `t` as a runtime's credential
/// ([`crate::rows::TokenRow`]), whether its workspace is removed included.
#[macro_export]
macro_rules! live_token_columns {
    () => {
        "t.token_id, t.org_id, t.workspace_id, t.role, t.name, t.prefix, t.created_at, t.revoked_at, \
         exists (select 1 from workspaces w where w.workspace_id = t.workspace_id and w.status = 'removed') \
         as workspace_removed"
    };
}

/// The columns of a template row ([`crate::rows::TemplateRow`]).
#[macro_export]
macro_rules! template_columns {
    () => {
        "template_id, org_id, name, runtime, model, plugins, assets_digest, created_at, updated_at"
    };
}

/// The columns of a plugin row ([`crate::rows::PluginRow`]).
#[macro_export]
macro_rules! plugin_columns {
    () => {
        "plugin_id, org_id, name, version, description, sha256, created_at, updated_at"
    };
}

/// The columns of an event row ([`crate::rows::EventRow`]).
#[macro_export]
macro_rules! event_columns {
    () => {
        "seq, event_id, org_id, workspace_id, kind, payload, created_at"
    };
}

/// The status event kinds (`hearth_core::EventKind::is_status`) as an SQL
/// list, the same text as the predicate of the `events_status_idx` partial
/// index (a planner uses that index only for a query that repeats it).
#[macro_export]
macro_rules! status_kinds {
    () => {
        "('WORKSPACE_PROVISIONING', 'WORKSPACE_ONLINE', 'WORKSPACE_OFFLINE', 'WORKSPACE_DEGRADED', \
         'WORKSPACE_PROVISION_FAILED', 'WORKSPACE_PAUSED', 'WORKSPACE_RESUMED', 'WORKSPACE_HIBERNATED', \
         'WORKSPACE_REMOVED')"
    };
}

/// The condition under which retention may delete the row `events` of a
/// `delete from events`: anything but its workspace's latest status event,
/// which the log keeps however old (one probe of `events_status_idx`).
macro_rules! not_kept {
    () => {
        concat!(
            " not (events.kind in ",
            status_kinds!(),
            " and events.workspace_id is not null and not exists (select 1 from events later \
             where later.workspace_id = events.workspace_id and later.seq > events.seq and later.kind in ",
            status_kinds!(),
            "))"
        )
    };
}

macro_rules! statement_set {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$doc:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            $($(#[$doc])* pub $field: &'static str,)*
        }

        impl $name {
            /// (name, sql) of every statement of the set.
            pub fn all(&self) -> Vec<(&'static str, &'static str)> {
                vec![$((stringify!($field), self.$field)),*]
            }
        }
    };
}

statement_set! {
    /// The statements each engine spells its own way.
    pub struct Statements {
        /// The workspace row, locked for the rest of the write transaction
        /// (Postgres `for update`; on SQLite the transaction's
        /// `BEGIN IMMEDIATE` already holds the database's write lock).
        select_workspace_for_update,
        /// The workspace and its descendants, the workspace first, locked.
        select_subtree_for_update,
        /// `$1`: org or null for all; `$2`: include removed.
        list_workspaces,
        /// A page in creation order: `$1` org or null, `$2` include removed,
        /// after (`$3` created_at, `$4` workspace_id), at most `$5`.
        list_workspaces_page,
        /// A page in creation order keeping only matches: `$1`..`$5` as in
        /// `list_workspaces_page`, then `$6` status (text), `$7` name
        /// substring (case-insensitive), `$8` template name, `$9` plugin
        /// name (declared by the template or added by an operator); a null
        /// filter matches everything.
        list_workspaces_filtered,
        /// The desired state of exactly the workspaces of
        /// `list_workspaces_filtered` with the same parameters, in
        /// `desired_state_for_page`'s columns and order.
        desired_state_for_filtered_page,
        /// (status as text, count) per status of org `$1` or all.
        count_workspaces_by_status,
        /// The desired state of the workspaces from (`$1`, `$2`) to (`$3`,
        /// `$4`) in creation order (a page's first and last), of org `$5` or
        /// all: (workspace_id, digest, plugin name, version, sha256, ord),
        /// by workspace then ord; every workspace has at least one row.
        desired_state_for_page,
        /// A page of templates by name (byte order): `$1` org or null for
        /// all, `$2` the id of the previous page's last template or null,
        /// at most `$3`.
        list_templates,
        /// The files of one template, by path (byte order).
        list_template_files,
        /// The files of the templates of the same page (same parameters):
        /// (template_id, path, sha256, size).
        list_template_files_page,
        /// A page of plugins by name (byte order): `$1` org or null for
        /// all, `$2` the id of the previous page's last plugin or null, at
        /// most `$3`.
        list_plugins,
        /// The files of one plugin, by path (byte order).
        list_plugin_files,
        /// The files of the plugins of the same page (same parameters):
        /// (plugin_id, path, sha256, size).
        list_plugin_files_page,
        /// One row per declared plugin (one row with null plugin columns when
        /// the template declares none), in declaration order:
        /// (digest, plugin name, version, sha256).
        desired_state,
        /// Template plugins (ord 0..) then operator plugins (ord 1000000..);
        /// the first branch always yields a row, so an existing workspace is
        /// never empty: (digest, plugin name, version, sha256, ord).
        desired_state_for_workspace,
        /// `desired_state_for_workspace` for every workspace of `$1`, a JSON
        /// array of their ids as 32 hex digits: (workspace_id, digest,
        /// plugin name, version, sha256, ord), by workspace then ord; an
        /// existing workspace has at least one row, an unknown one none.
        desired_states_for_workspaces,
        /// `$1`: after seq; `$2`: org or null; `$3`: workspace or null; `$4`: limit.
        list_events,
        /// The retention's row (compacted_through, aged_through,
        /// counted_through), locked for the compaction's transaction
        /// (Postgres: `for update skip locked`, so a replica finding another
        /// compacting skips its turn; SQLite's writer holds the lock).
        lock_event_log,
        /// Sweep candidates as whole rows, locked for the sweep's
        /// transaction (Postgres: `for update skip locked`, so replicas
        /// sweeping at once split the work): `$1` cutoff, `$2` limit.
        sweep_liveness_rows,
        sweep_provision_timeout_rows,
        sweep_idle_rows,
        /// The rows of the workspaces `$1` (a JSON array of ids as 32 hex
        /// digits; found by `LIVENESS_DUE`) as whole rows, locked for a
        /// sweep batch's transaction (Postgres: `for update skip locked`).
        lock_sweep_ids,
        /// Org tokens only (a workspace's token is revoked through its
        /// workspace); a later end is brought forward, as for workspace
        /// tokens. `$1` token, `$2` its org or null for any (the admin),
        /// `$3` now; returns the token's id.
        revoke_org_token,
        /// The group-commit writer's guarded liveness write
        /// (`hearth_store::LivenessWrite`), where `version` still matches:
        /// one statement over arrays on Postgres, returning the ids written;
        /// on SQLite `values` lists of up to 32 rows, counting them (the
        /// 32-row shape here; the smaller ones are its `MORE_STATEMENTS`).
        write_liveness,
        /// The live tokens (as `FIND_TOKEN_BY_HASH` at `$2`) whose sha256 is
        /// one of `$1`, a JSON array of lowercase hex strings, each with its
        /// hash first: the token cache's renewal, many tokens per query.
        find_tokens_by_hashes,
        /// A page of the workspaces under parent `$2` in org `$1` but `$3`,
        /// not removed, in creation order after (`$4` created_at, `$5`
        /// workspace_id), whose name or role contains `$6` (null: all; ASCII
        /// case ignored, as the fleet's `q`), at most `$7`: a workspace's
        /// siblings, or its children (read from `workspaces_peers_idx`).
        list_peers_under,
        /// The same for the roots of org `$1` but `$2`: after (`$3`, `$4`),
        /// name or role containing `$5`, at most `$6` (read from
        /// `workspaces_roots_idx`).
        list_peers_at_root,
        /// Workspace `$1` if it is in org `$2`, not removed, and its name or
        /// role contains `$3` (null: any): a workspace's parent as a peer.
        select_peer_parent,
        /// The org row `$1`, locked for the rest of the write transaction
        /// (Postgres `for no key update`: writers that only reference the
        /// org, such as an event's foreign key, take `key share` and are not
        /// blocked, so no deadlock with the event counter's holder; SQLite's
        /// `BEGIN IMMEDIATE` already serializes writers), with its quotas
        /// ([`crate::rows::OrgRow`]; a deleted org is none): what counting
        /// an org's live tokens or workspaces and adding one more holds, so
        /// two writes cannot both pass the cap.
        lock_org,
        /// [`lock_org`](Self::lock_org) as a writer that adds to the org
        /// without counting it takes it (Postgres `for key share`): any
        /// number at once, but none while the org is being deleted
        /// ([`lock_org_to_delete`](Self::lock_org_to_delete)), after which
        /// the org is none.
        share_org,
        /// [`lock_org`](Self::lock_org) to delete the org (Postgres `for
        /// update`): waits for every writer that shares it, and keeps new
        /// ones out until the deletion commits.
        lock_org_to_delete,
        /// The control plane's liveness row (alive_at, outage_started_at,
        /// outage_ended_at), locked for the rest of the transaction
        /// (Postgres `for update`; SQLite's writer holds the lock).
        lock_control_plane,
    }
}

macro_rules! shared {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub const $name: &str = $sql;)*
        /// (name, sql) of every shared statement.
        pub const SHARED: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

shared! {
    PING = "select 1";
    SCHEMA_VERSION = "select coalesce(max(version), 0) from _sqlx_migrations where success";
    INSERT_WORKSPACE = "insert into workspaces (workspace_id, org_id, name, role, tier, status, url, parent_id, \
        template, runtime, model, max_concurrent_tasks, budget_limit, external, status_changed_at, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, 'provisioning', $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14)";
    COUNT_WORKSPACES = "select count(*) from workspaces where status <> 'removed'";
    SELECT_WORKSPACE = concat!("select ", workspace_columns!(), " from workspaces where workspace_id = $1");
    // The locked writes of a workspace row. A steady heartbeat changes only
    // the liveness group, so it writes no JSON.
    /// The column groups of `hearth_store::Changed` that changed, in one
    /// statement: lifecycle (what the state machine decided), liveness
    /// (what every heartbeat reports, scalars only), runtime (its
    /// description of itself) and delivery (observed assets and plugins,
    /// and the conditions about them). A group whose flag is false keeps
    /// its columns (its JSON is bound as NULL and ignored). Flags: $2
    /// lifecycle, $5 liveness, $15 runtime, $19 delivery; $23 the time.
    UPDATE_GROUPS = "update workspaces set \
        status = case when $2 then $3 else status end, \
        status_changed_at = case when $2 then $4 else status_changed_at end, \
        last_heartbeat_at = case when $5 then $6 else last_heartbeat_at end, \
        last_error_rate = case when $5 then $7 else last_error_rate end, \
        last_sample_error = case when $5 then $8 else last_sample_error end, \
        active_tasks = case when $5 then $9 else active_tasks end, \
        uptime_seconds = case when $5 then $10 else uptime_seconds end, \
        current_task = case when $5 then $11 else current_task end, \
        monthly_spend = case when $5 then $12 else monthly_spend end, \
        runtime_state = case when $5 then $13 else runtime_state end, \
        last_active_at = case when $5 then $14 else last_active_at end, \
        url = case when $15 then $16 else url end, \
        agent_card = case when $15 then $17 else agent_card end, \
        runtime_metadata = case when $15 then $18 else runtime_metadata end, \
        reported_assets_digest = case when $19 then $20 else reported_assets_digest end, \
        installed_plugins = case when $19 then $21 else installed_plugins end, \
        conditions = case when $19 then $22 else conditions end, \
        updated_at = $23, version = version + 1 where workspace_id = $1 returning version";
    /// Whether one of `$1` and `$2` is the other's ancestor at most `$3`
    /// levels up: the parent links are walked up from both, one primary-key
    /// read per level (no more than `$3` levels, whatever the tree holds).
    ANCESTOR_OR_DESCENDANT = "with recursive up (start, workspace_id, parent_id, depth) as ( \
            select workspace_id, workspace_id, parent_id, 1 from workspaces where workspace_id in ($1, $2) \
            union all \
            select up.start, w.workspace_id, w.parent_id, up.depth + 1 from up \
            join workspaces w on w.workspace_id = up.parent_id where up.depth < $3 \
        ) select exists (select 1 from up \
            where (up.start = $1 and up.parent_id = $2) or (up.start = $2 and up.parent_id = $1))";
    SET_OPERATOR_PLUGINS = "update workspaces set operator_plugins = $2, updated_at = $3, version = version + 1 \
        where workspace_id = $1 returning version";
    UPDATE_AGENT_CARD = "update workspaces set agent_card = $2, updated_at = $3, version = version + 1 \
        where workspace_id = $1";
    /// `$1` id, `$2` name (unique: `orgs_name_idx`), `$3` now.
    INSERT_ORG = "insert into orgs (org_id, name, created_at, updated_at) values ($1, $2, $3, $3)";
    /// Every org not deleted (the store orders them by name: collations
    /// differ by engine), with its quotas ([`crate::rows::OrgRow`]).
    LIST_ORGS = "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, max_plugin_bytes \
        from orgs where deleted_at is null";
    SELECT_ORG = "select org_id, name, created_at, max_workspaces, max_running, max_template_bytes, max_plugin_bytes \
        from orgs where org_id = $1 and deleted_at is null";
    /// `$2`–`$5` the quotas (null: none), `$6` now.
    SET_ORG_QUOTAS = "update orgs set max_workspaces = $2, max_running = $3, max_template_bytes = $4, \
        max_plugin_bytes = $5, updated_at = $6 where org_id = $1 and deleted_at is null returning org_id";
    /// The org's workspaces not removed, and those running (what a
    /// provisioner keeps a runtime for: `WorkspaceStatus::keeps_a_runtime`),
    /// read under the org's lock when a quota applies
    /// (`workspaces_org_created_idx`).
    COUNT_ORG_WORKSPACES = "select count(*), \
        coalesce(sum(case when status in ('provisioning', 'online', 'degraded', 'offline') then 1 else 0 end), 0) \
        from workspaces where org_id = $1 and status <> 'removed'";
    /// Bytes of the org's template files, but those of template `$2` (which
    /// the write replaces).
    ORG_TEMPLATE_BYTES = "select cast(coalesce(sum(f.size), 0) as bigint) from template_files f \
        join templates t on t.template_id = f.template_id where t.org_id = $1 and t.name <> $2";
    /// Bytes of the org's plugin files, but those of plugin `$2`.
    ORG_PLUGIN_BYTES = "select cast(coalesce(sum(f.size), 0) as bigint) from plugin_files f \
        join plugins p on p.plugin_id = f.plugin_id where p.org_id = $1 and p.name <> $2";
    /// A deleted org's org tokens stop at `$2` (an earlier stop stays). Its
    /// workspaces' own tokens stay: every workspace of a deleted org is
    /// removed, so they are refused already (410), but `/state` still tells
    /// a runtime that its workspace is gone, so that it exits.
    REVOKE_ORG_TOKENS = "update tokens set revoked_at = $2, updated_at = $2 \
        where org_id = $1 and workspace_id is null and (revoked_at is null or revoked_at > $2) returning token_id";
    DELETE_ORG_SECRETS = "delete from secrets where org_id = $1";
    /// Their files go with them (`on delete cascade`).
    DELETE_ORG_TEMPLATES = "delete from templates where org_id = $1";
    DELETE_ORG_PLUGINS = "delete from plugins where org_id = $1";
    MARK_ORG_DELETED = "update orgs set deleted_at = $2, updated_at = $2 where org_id = $1";
    /// The live org tokens (no workspace; not revoked at `$2`) of org `$1`.
    COUNT_LIVE_ORG_TOKENS = "select count(*) from tokens where org_id = $1 and workspace_id is null \
        and (revoked_at is null or revoked_at > $2)";
    INSERT_TOKEN = "insert into tokens (token_id, org_id, workspace_id, role, name, prefix, token_hash, created_at, \
        updated_at) values ($1, $2, $3, $8, $4, $5, $6, $7, $7)";
    /// Whether the workspace ever had a token, revoked or not: only one that
    /// never had one may bootstrap (`tokens_workspace_idx`).
    WORKSPACE_HAS_HAD_TOKEN = "select exists (select 1 from tokens where workspace_id = $1)";
    /// Rotation: the workspace's other tokens stop at `$2` (an earlier stop stays).
    REVOKE_OTHER_WORKSPACE_TOKENS = "update tokens set revoked_at = $2, updated_at = $3 \
        where workspace_id = $1 and token_id <> $4 and (revoked_at is null or revoked_at > $2)";
    LIST_WORKSPACE_TOKENS = "select token_id, org_id, workspace_id, role, name, prefix, created_at, revoked_at, \
        false as workspace_removed from tokens where workspace_id = $1 order by created_at desc, token_id";
    REVOKE_WORKSPACE_TOKEN = "update tokens set revoked_at = case when revoked_at is not null and revoked_at <= $3 \
        then revoked_at else $3 end, updated_at = $3 where token_id = $1 and workspace_id = $2 returning token_id";
    /// `workspace_removed`: whether the token's workspace is removed (false for
    /// org tokens), so a removed workspace's own token is refused (410) at
    /// authentication, on every route.
    FIND_TOKEN_BY_HASH = concat!(
        "select ",
        live_token_columns!(),
        " from tokens t where t.token_hash = $1 and (t.revoked_at is null or t.revoked_at > $2)"
    );
    LIST_ORG_TOKENS = "select token_id, org_id, workspace_id, role, name, prefix, created_at, revoked_at, \
        false as workspace_removed from tokens \
        where org_id = $1 and workspace_id is null order by created_at desc, token_id";
    /// A removed workspace's secrets go with it (in the delete's transaction).
    DELETE_WORKSPACE_SECRETS = "delete from secrets where workspace_id = $1";
    DELETE_SECRET = "delete from secrets where org_id = $1 and workspace_id is not distinct from $2 and key = $3";
    INSERT_SECRET = "insert into secrets (org_id, workspace_id, key, nonce, ciphertext, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $6, $6)";
    LIST_SECRETS = "select key, nonce, ciphertext from secrets \
        where org_id = $1 and workspace_id is not distinct from $2 order by key";
    /// Takes the event counter's row lock until commit (see the migration).
    RESERVE_EVENT_SEQS = "update event_counters set last_seq = last_seq + $1, updated_at = $2 \
        where event_counter_id = 1 returning last_seq";
    LAST_EVENT_SEQ = "select last_seq from event_counters where event_counter_id = 1";
    INSERT_EVENT = "insert into events (seq, event_id, org_id, workspace_id, kind, payload, created_at) \
        values ($1, $2, $3, $4, $5, $6, $7)";
    /// Every event with seq up to this may have been compacted away.
    COMPACTED_THROUGH = "select compacted_through from event_log where event_log_id = 1";
    /// The next events to judge by age: (seq, created_at) after `$1`, up to
    /// `$2`, at most `$3`.
    EVENTS_FOR_AGE = "select seq, created_at from events where seq > $1 and seq <= $2 order by seq limit $3";
    /// Retention by age: the events in (`$1`, `$2`] (all older than the
    /// retention) but each workspace's latest status event.
    DELETE_AGED_EVENTS = concat!("delete from events where seq > $1 and seq <= $2 and", not_kept!(), " returning seq");
    /// Status events already judged by age (seq up to `$1`, so older than
    /// the retention) of the workspaces that have a newer status event in
    /// (`$2`, `$3`]: no longer their latest, so no longer kept.
    DELETE_SUPERSEDED_STATUS_EVENTS = concat!(
        "delete from events where seq <= $1 and kind in ",
        status_kinds!(),
        " and workspace_id in (select n.workspace_id from events n where n.seq > $2 and n.seq <= $3 and n.kind in ",
        status_kinds!(),
        ") returning seq"
    );
    /// The workspaces with events in (`$1`, `$2`] that hold more than `$3`
    /// events, each with the seq of its newest event beyond its `$3`
    /// newest (its events up to there may go): one index walk of at most
    /// `$3` + 1 entries per workspace.
    WORKSPACES_OVER_COUNT = "select workspace_id, cut from (select w.workspace_id, \
        (select e.seq from events e where e.workspace_id = w.workspace_id order by e.seq desc limit 1 offset $3) as cut \
        from (select distinct workspace_id from events where seq > $1 and seq <= $2 and workspace_id is not null) w) x \
        where cut is not null";
    /// Retention by count: workspace `$1`'s events up to `$2` but its latest
    /// status event.
    DELETE_WORKSPACE_EVENTS_THROUGH =
        concat!("delete from events where workspace_id = $1 and seq <= $2 and", not_kept!(), " returning seq");
    UPDATE_EVENT_LOG = "update event_log set compacted_through = $1, aged_through = $2, counted_through = $3, \
        updated_at = $4 where event_log_id = 1";
    INSERT_BLOB = "insert into blobs (sha256, content, size, created_at, updated_at) values ($1, $2, $3, $4, $4) \
        on conflict (sha256) do nothing";
    SELECT_BLOB = "select content from blobs where sha256 = $1";
    /// Keeps the template's id when a template of the same name is re-imported.
    UPSERT_TEMPLATE = "insert into templates (template_id, org_id, name, runtime, model, plugins, assets_digest, \
        created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
        on conflict (org_id, name) do update set runtime = excluded.runtime, model = excluded.model, \
        plugins = excluded.plugins, assets_digest = excluded.assets_digest, updated_at = excluded.updated_at \
        returning template_id";
    DELETE_TEMPLATE_FILES = "delete from template_files where template_id = $1";
    INSERT_TEMPLATE_FILE = "insert into template_files (template_id, path, sha256, size, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $5)";
    SELECT_TEMPLATE_BY_NAME = concat!("select ", template_columns!(), " from templates where org_id = $1 and name = $2");
    SELECT_TEMPLATE_BY_ID = concat!("select ", template_columns!(), " from templates where template_id = $1");
    UPSERT_PLUGIN = "insert into plugins (plugin_id, org_id, name, version, description, sha256, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $6, $7, $7) \
        on conflict (org_id, name) do update set version = excluded.version, description = excluded.description, \
        sha256 = excluded.sha256, updated_at = excluded.updated_at returning plugin_id";
    DELETE_PLUGIN_FILES = "delete from plugin_files where plugin_id = $1";
    INSERT_PLUGIN_FILE = "insert into plugin_files (plugin_id, path, sha256, size, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $5)";
    SELECT_PLUGIN_BY_NAME = concat!("select ", plugin_columns!(), " from plugins where org_id = $1 and name = $2");
    SELECT_PLUGIN_BY_ID = concat!("select ", plugin_columns!(), " from plugins where plugin_id = $1");
    /// Of the live workspaces: those due at cutoff `$1` (as
    /// `sweep_liveness_rows` sees them), and all.
    COUNT_LIVENESS = "select count(*) filter (where coalesce(last_heartbeat_at, status_changed_at) < $1), count(*) \
        from workspaces where status in ('online', 'degraded')";
    /// The ids of the live workspaces due at cutoff `$1` (as
    /// `sweep_liveness_rows` sees them), oldest first, at most `$2`: read
    /// without locks, once for many sweep batches (`lock_sweep_ids`).
    LIVENESS_DUE = "select workspace_id from workspaces where status in ('online', 'degraded') \
        and coalesce(last_heartbeat_at, status_changed_at) < $1 \
        order by coalesce(last_heartbeat_at, status_changed_at) limit $2";
    /// `$1` alive_at, `$2` outage_started_at, `$3` outage_ended_at.
    UPDATE_CONTROL_PLANE = "update control_plane set alive_at = $1, outage_started_at = $2, outage_ended_at = $3 \
        where control_plane_id = 1";
}

/// (name, sql) of every statement an engine runs: the shared ones and its
/// dialect's.
/// Statements that name no key that determines one org (`org_id`, or a
/// workspace, token, template or plugin key compared for equality): what
/// a shard router could not send to one shard. Each one that is meant to
/// read or write across orgs is in [`ACROSS_ORGS`] with why; the rest are
/// returned (the sharding check wants none).
pub fn unscoped_statements<D: crate::Dialect>() -> Vec<&'static str> {
    all_statements::<D>()
        .into_iter()
        .filter(|(name, statement)| !ACROSS_ORGS.iter().any(|(n, _)| n == name) && !names_an_org_key(statement))
        .map(|(name, _)| name)
        .collect()
}

/// Whether `statement` compares a key that determines the org for
/// equality (`= `, `= any`, `in (`, a join on it), or inserts rows that
/// carry one (`insert into t (…, org_id, …)`).
pub fn names_an_org_key(statement: &str) -> bool {
    const KEYS: [&str; 6] = ["org_id", "workspace_id", "token_id", "token_hash", "template_id", "plugin_id"];
    let text = statement.to_ascii_lowercase();
    if let Some(columns) = text.trim_start().strip_prefix("insert into").and_then(|rest| rest.split(')').next()) {
        if KEYS.iter().any(|key| columns.contains(key)) {
            return true;
        }
    }
    KEYS.iter().any(|key| {
        text.match_indices(key).any(|(at, _)| {
            let rest = text[at + key.len()..].trim_start();
            rest.starts_with('=') || rest.starts_with("in (") || rest.starts_with("in(")
        })
    })
}

const EVENT_LOG: &str = "the event log is one gap-free seq across orgs (sharded, it needs a seq per org)";
const FLEET: &str = "the sweeps and the heartbeat pace read the whole fleet (sharded: one query per shard)";
const DEPLOYMENT: &str = "a table of the deployment, not of an org (sharded: a reference table)";

/// The statements that read or write across orgs on purpose, and why: the
/// list a move to a sharded Postgres (ROADMAP: Citus, distributed by
/// `org_id`) must go through.
pub const ACROSS_ORGS: &[(&str, &str)] = &[
    ("PING", "no data"),
    ("SCHEMA_VERSION", "no data"),
    ("notify", "a notice to every replica, no data"),
    ("INSERT_ORG", DEPLOYMENT),
    ("LIST_ORGS", DEPLOYMENT),
    ("INSERT_BLOB", "blobs are content-addressed and shared by every org (sharded: a reference table)"),
    ("SELECT_BLOB", "blobs are content-addressed and shared by every org (sharded: a reference table)"),
    ("UPDATE_CONTROL_PLANE", DEPLOYMENT),
    ("lock_control_plane", DEPLOYMENT),
    ("COMPACTED_THROUGH", EVENT_LOG),
    ("EVENTS_FOR_AGE", EVENT_LOG),
    ("LAST_EVENT_SEQ", EVENT_LOG),
    ("RESERVE_EVENT_SEQS", EVENT_LOG),
    ("UPDATE_EVENT_LOG", EVENT_LOG),
    ("lock_event_log", EVENT_LOG),
    ("append_events", EVENT_LOG),
    ("COUNT_WORKSPACES", FLEET),
    ("COUNT_LIVENESS", FLEET),
    ("LIVENESS_DUE", FLEET),
    ("sweep_idle_rows", FLEET),
    ("sweep_liveness_rows", FLEET),
    ("sweep_provision_timeout_rows", FLEET),
];

pub fn all_statements<D: crate::Dialect>() -> Vec<(&'static str, &'static str)> {
    let notify = D::NOTIFY.map(|sql| ("notify", sql));
    let append_events = D::APPEND_EVENTS.map(|sql| ("append_events", sql));
    let lock_workspaces = D::LOCK_WORKSPACES.map(|sql| ("lock_workspaces", sql));
    let write_workspaces = D::WRITE_WORKSPACES.map(|sql| ("write_workspaces", sql));
    SHARED
        .iter()
        .copied()
        .chain(D::SQL.all())
        .chain(notify)
        .chain(append_events)
        .chain(lock_workspaces)
        .chain(write_workspaces)
        .chain(D::MORE_STATEMENTS.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use hearth_core::EventKind;

    /// The sharding check finds a query by an org key, and only that: a
    /// status scan, or a key compared with `<>`, is across orgs.
    #[test]
    fn an_org_key_is_found_only_where_it_picks_the_org() {
        use super::names_an_org_key as scoped;
        assert!(scoped("select * from workspaces where workspace_id = $1"));
        assert!(scoped("select * from tokens t where t.token_hash = any(array(select …))"));
        assert!(scoped("update templates set x = 1 where org_id=$1"));
        assert!(scoped("insert into secrets (org_id, workspace_id, key) values ($1, $2, $3)"));
        assert!(!scoped("select workspace_id from workspaces where status = 'online' and last_heartbeat_at < $1"));
        assert!(!scoped("update tokens set revoked_at = $2 where token_id <> $1"));
        assert!(!scoped("insert into blobs (sha256, content) values ($1, $2)"));
        // Every listed statement exists (a renamed one leaves no stale entry).
        for (name, _) in super::ACROSS_ORGS {
            let known = super::SHARED.iter().any(|(n, _)| n == name)
                || ["notify", "append_events", "lock_control_plane", "lock_event_log"].contains(name)
                || name.ends_with("_rows");
            assert!(known, "{name} is in ACROSS_ORGS but is no statement");
        }
    }

    /// The SQL list of status kinds, the partial index's predicate on both
    /// engines, and `EventKind::is_status` say the same: a kind added to one
    /// and not the others would make retention drop a latest status event,
    /// or keep events the index cannot find.
    #[test]
    fn the_status_kinds_in_sql_are_the_status_events() {
        let expected: Vec<String> =
            EventKind::ALL.iter().filter(|kind| kind.is_status()).map(|kind| format!("'{}'", kind.as_str())).collect();
        let listed = |text: &str| -> Vec<String> {
            let start =
                text.find("kind in (").map(|at| at + "kind in (".len()).or_else(|| text.find('(').map(|at| at + 1));
            let start = start.unwrap_or_else(|| panic!("no list in {text}"));
            let end = start + text[start..].find(')').unwrap_or_else(|| panic!("no end in {text}"));
            text[start..end].split(',').map(|kind| kind.trim().to_owned()).collect()
        };
        assert_eq!(listed(status_kinds!()), expected);
        for migration in [
            include_str!("../../hearth-store-pg/migrations/20261207000001_event_retention.sql"),
            include_str!("../../hearth-store-sqlite/migrations/20261207000001_event_retention.sql"),
        ] {
            let index = &migration[migration.find("create index events_status_idx").unwrap()..];
            assert_eq!(listed(index), expected);
        }
    }
}
