//! Every SQL statement of the Postgres engine, in one place, so that a test
//! can prepare each of them against the migrated schema (rule 2: a statement
//! that does not fit the schema fails CI, not production). Code outside this
//! module never writes SQL text.

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub(crate) const $name: &str = $sql;)*
        /// (name, sql) of every statement above.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

macro_rules! select_workspaces {
    ($($tail:literal)?) => {
        concat!(
            "select workspace_id, org_id, name, role, tier, status, url, agent_card, parent_id, template, runtime, \
             model, max_concurrent_tasks, budget_limit, external, last_heartbeat_at, last_error_rate, \
             last_sample_error, active_tasks, uptime_seconds, current_task, monthly_spend, runtime_state, \
             runtime_metadata, reported_assets_digest, installed_plugins, conditions, operator_plugins, status_changed_at, last_active_at, \
             created_at, updated_at from workspaces "
            $(, $tail)?
        )
    };
}

statements! {
    PING = "select 1";
    SCHEMA_VERSION = "select coalesce(max(version), 0) from _sqlx_migrations where success";
    INSERT_WORKSPACE = "insert into workspaces (workspace_id, org_id, name, role, tier, status, url, parent_id, \
        template, runtime, model, max_concurrent_tasks, budget_limit, external, status_changed_at, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, 'provisioning', $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14)";
    SELECT_WORKSPACE = select_workspaces!("where workspace_id = $1");
    /// The row lock that serializes every writer of one workspace.
    SELECT_WORKSPACE_FOR_UPDATE = select_workspaces!("where workspace_id = $1 for update");
    LIST_WORKSPACES = select_workspaces!("where ($1::uuid is null or org_id = $1) and ($2 or status <> 'removed') \
        order by created_at, workspace_id");
    /// Writes every mutable column; the values come from `hearth_store::evolve`.
    UPDATE_WORKSPACE = "update workspaces set status = $2, url = $3, agent_card = $4, last_heartbeat_at = $5, \
        last_error_rate = $6, last_sample_error = $7, active_tasks = $8, uptime_seconds = $9, current_task = $10, \
        monthly_spend = $11, runtime_state = $12, runtime_metadata = $13, status_changed_at = $14, \
        last_active_at = $15, updated_at = $16, reported_assets_digest = $17, installed_plugins = $18, \
        conditions = $19 where workspace_id = $1";
    SET_OPERATOR_PLUGINS = "update workspaces set operator_plugins = $2, updated_at = $3 where workspace_id = $1";
    UPDATE_AGENT_CARD = "update workspaces set agent_card = $2, updated_at = $3 where workspace_id = $1";
    /// The workspace and all its descendants, the workspace first, locked.
    SELECT_SUBTREE_FOR_UPDATE = "with recursive subtree (workspace_id, depth) as ( \
            select workspace_id, 0 from workspaces where workspace_id = $1 \
            union all \
            select w.workspace_id, s.depth + 1 from workspaces w join subtree s on w.parent_id = s.workspace_id \
        ) \
        select w.workspace_id, w.org_id, w.name, w.role, w.tier, w.status, w.url, w.agent_card, w.parent_id, \
            w.template, w.runtime, w.model, w.max_concurrent_tasks, w.budget_limit, w.external, w.last_heartbeat_at, \
            w.last_error_rate, w.last_sample_error, w.active_tasks, w.uptime_seconds, w.current_task, w.monthly_spend, \
            w.runtime_state, w.runtime_metadata, w.reported_assets_digest, w.installed_plugins, w.conditions, w.operator_plugins, \
            w.status_changed_at, w.last_active_at, w.created_at, w.updated_at \
        from workspaces w join subtree s using (workspace_id) order by s.depth, w.created_at for update of w";
    SWEEP_LIVENESS = "select workspace_id from workspaces where status in ('online', 'degraded') \
        and coalesce(last_heartbeat_at, status_changed_at) < $1 order by workspace_id limit $2";
    SWEEP_PROVISION_TIMEOUT = "select workspace_id from workspaces where status = 'provisioning' \
        and status_changed_at < $1 order by workspace_id limit $2";
    SWEEP_IDLE = "select workspace_id from workspaces where status = 'online' \
        and coalesce(last_active_at, status_changed_at) < $1 and active_tasks = 0 order by workspace_id limit $2";
    INSERT_TOKEN = "insert into tokens (token_id, org_id, workspace_id, name, prefix, token_hash, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $6, $7, $7)";
    WORKSPACE_HAS_LIVE_TOKEN = "select exists (select 1 from tokens where workspace_id = $1 and revoked_at is null)";
    /// `workspace_removed`: whether the token's workspace is removed (false for
    /// org tokens), so a removed workspace's own token is refused (410) at
    /// authentication, on every route.
    FIND_TOKEN_BY_HASH = "select t.token_id, t.org_id, t.workspace_id, t.name, t.prefix, t.created_at, t.revoked_at, \
        exists (select 1 from workspaces w where w.workspace_id = t.workspace_id and w.status = 'removed') \
        as workspace_removed from tokens t where t.token_hash = $1 and t.revoked_at is null";
    LIST_ORG_TOKENS = "select token_id, org_id, workspace_id, name, prefix, created_at, revoked_at, \
        false as workspace_removed from tokens \
        where org_id = $1 and workspace_id is null order by created_at desc, token_id";
    REVOKE_TOKEN = "update tokens set revoked_at = coalesce(revoked_at, $3), updated_at = $3 \
        where token_id = $1 and org_id = $2";
    /// A removed workspace's secrets go with it (in the delete's transaction).
    DELETE_WORKSPACE_SECRETS = "delete from secrets where workspace_id = $1";
    DELETE_SECRET = "delete from secrets where org_id = $1 and workspace_id is not distinct from $2 and key = $3";
    INSERT_SECRET = "insert into secrets (org_id, workspace_id, key, nonce, ciphertext, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $6, $6)";
    LIST_SECRETS = "select key, nonce, ciphertext from secrets \
        where org_id = $1 and workspace_id is not distinct from $2 order by key";
    /// Takes the event counter's row lock until commit (see the migration).
    RESERVE_EVENT_SEQS = "update event_counters set last_seq = last_seq + $1, updated_at = now() \
        where event_counter_id = 1 returning last_seq";
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
    SELECT_TEMPLATE_BY_NAME = "select template_id, org_id, name, runtime, model, plugins, assets_digest, created_at, \
        updated_at from templates where org_id = $1 and name = $2";
    SELECT_TEMPLATE_BY_ID = "select template_id, org_id, name, runtime, model, plugins, assets_digest, created_at, \
        updated_at from templates where template_id = $1";
    LIST_TEMPLATES = "select template_id, org_id, name, runtime, model, plugins, assets_digest, created_at, \
        updated_at from templates where ($1::uuid is null or org_id = $1) order by name collate \"C\", template_id";
    LIST_TEMPLATE_FILES = "select path, sha256, size from template_files where template_id = $1 order by path collate \"C\"";
    UPSERT_PLUGIN = "insert into plugins (plugin_id, org_id, name, version, description, sha256, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $6, $7, $7) \
        on conflict (org_id, name) do update set version = excluded.version, description = excluded.description, \
        sha256 = excluded.sha256, updated_at = excluded.updated_at returning plugin_id";
    DELETE_PLUGIN_FILES = "delete from plugin_files where plugin_id = $1";
    INSERT_PLUGIN_FILE = "insert into plugin_files (plugin_id, path, sha256, size, created_at, updated_at) \
        values ($1, $2, $3, $4, $5, $5)";
    SELECT_PLUGIN_BY_NAME = "select plugin_id, org_id, name, version, description, sha256, created_at, updated_at \
        from plugins where org_id = $1 and name = $2";
    SELECT_PLUGIN_BY_ID = "select plugin_id, org_id, name, version, description, sha256, created_at, updated_at \
        from plugins where plugin_id = $1";
    LIST_PLUGINS = "select plugin_id, org_id, name, version, description, sha256, created_at, updated_at \
        from plugins where ($1::uuid is null or org_id = $1) order by name collate \"C\", plugin_id";
    LIST_PLUGIN_FILES = "select path, sha256, size from plugin_files where plugin_id = $1 order by path collate \"C\"";
    /// One row per declared plugin (one row with null plugin columns when
    /// the template declares none), in declaration order.
    DESIRED_STATE = "select t.assets_digest, d.name as plugin_name, p.version, p.sha256 from templates t \
        left join lateral jsonb_array_elements_text(t.plugins) with ordinality as d(name, ord) on true \
        left join plugins p on p.org_id = t.org_id and p.name = d.name \
        where t.org_id = $1 and t.name = $2 order by d.ord";
    /// Template plugins (ord 0..) then operator plugins (ord 1000000..); the
    /// first branch always yields a row, so an existing workspace is never empty.
    DESIRED_STATE_FOR_WORKSPACE = "select t.assets_digest, d.name as plugin_name, p.version, p.sha256, d.ord as ord \
        from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
        left join lateral jsonb_array_elements_text(case when t.template_id is null then '[]'::jsonb else t.plugins end) \
            with ordinality as d(name, ord) on true \
        left join plugins p on p.org_id = w.org_id and p.name = d.name where w.workspace_id = $1 \
        union all \
        select t.assets_digest, d.name, p.version, p.sha256, 1000000 + d.ord \
        from workspaces w left join templates t on t.org_id = w.org_id and t.name = w.template \
        cross join lateral jsonb_array_elements_text(w.operator_plugins) with ordinality as d(name, ord) \
        left join plugins p on p.org_id = w.org_id and p.name = d.name where w.workspace_id = $1 \
        order by 5";
    LAST_EVENT_SEQ = "select last_seq from event_counters where event_counter_id = 1";
    INSERT_EVENT = "insert into events (seq, event_id, org_id, workspace_id, kind, payload, created_at) \
        values ($1, $2, $3, $4, $5, $6, $7)";
    LIST_EVENTS = "select seq, event_id, org_id, workspace_id, kind, payload, created_at from events \
        where seq > $1 and ($2::uuid is null or org_id = $2) and ($3::uuid is null or workspace_id = $3) \
        order by seq limit $4";
}
