-- Hearth's first schema, SQLite dialect of the Postgres migration with the
-- same name. Never edit an applied migration: add a new one.
-- Ids are 16-byte BLOBs (sqlx's UUID encoding), timestamps RFC 3339 TEXT in
-- UTC (one format, so text order is time order), JSON as TEXT.

create table orgs (
    org_id blob primary key,
    name text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The org a single-org deployment uses (hearth_core::OrgId::DEFAULT).
insert into orgs (org_id, name) values (x'00000000000040008000000000000001', 'default');

create table workspaces (
    workspace_id blob primary key,
    org_id blob not null references orgs (org_id),
    name text not null,
    role text,
    tier integer not null default 1,
    -- The status set of the Postgres ENUM workspace_status, enforced here.
    status text not null check (status in (
        'provisioning', 'online', 'offline', 'degraded', 'failed', 'removed', 'paused', 'hibernated'
    )),
    url text,
    agent_card text,
    parent_id blob references workspaces (workspace_id),
    template text,
    runtime text,
    model text,
    max_concurrent_tasks integer,
    budget_limit integer,
    external integer not null default 0 check (external in (0, 1)),
    last_heartbeat_at text,
    last_error_rate real not null default 0,
    last_sample_error text,
    active_tasks integer not null default 0,
    uptime_seconds integer not null default 0,
    current_task text,
    monthly_spend integer not null default 0,
    runtime_state text,
    runtime_metadata text,
    status_changed_at text not null,
    last_active_at text,
    created_at text not null,
    updated_at text not null
);

create index workspaces_org_created_idx on workspaces (org_id, created_at);
create index workspaces_parent_idx on workspaces (parent_id);
create index workspaces_status_heartbeat_idx on workspaces (status, last_heartbeat_at);
create index workspaces_status_changed_idx on workspaces (status, status_changed_at);

create table tokens (
    token_id blob primary key,
    org_id blob not null references orgs (org_id),
    workspace_id blob references workspaces (workspace_id),
    name text,
    prefix text not null,
    token_hash blob not null unique,
    revoked_at text,
    created_at text not null,
    updated_at text not null
);

create index tokens_workspace_live_idx on tokens (workspace_id) where revoked_at is null;

create table secrets (
    secret_id integer primary key autoincrement,
    org_id blob not null references orgs (org_id),
    workspace_id blob references workspaces (workspace_id),
    key text not null,
    nonce blob not null,
    ciphertext blob not null,
    created_at text not null,
    updated_at text not null
);

create index secrets_scope_idx on secrets (org_id, workspace_id, key);

-- Hands out event sequence numbers inside the writing transaction, exactly as
-- on Postgres: gap-free, and commit order equals seq order.
create table event_counters (
    event_counter_id integer primary key check (event_counter_id = 1),
    last_seq integer not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

insert into event_counters (event_counter_id, last_seq) values (1, 0);

create table events (
    seq integer primary key,
    event_id blob not null unique,
    org_id blob not null references orgs (org_id),
    workspace_id blob,
    kind text not null,
    payload text not null,
    created_at text not null
);

create index events_workspace_seq_idx on events (workspace_id, seq);
create index events_org_seq_idx on events (org_id, seq);
