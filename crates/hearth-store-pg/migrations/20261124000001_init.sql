-- Hearth's first schema. Never edit an applied migration: add a new one.

create type workspace_status as enum (
    'provisioning', 'online', 'offline', 'degraded', 'failed', 'removed', 'paused', 'hibernated'
);

create table orgs (
    org_id uuid primary key,
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- The org a single-org deployment uses (hearth_core::OrgId::DEFAULT).
insert into orgs (org_id, name) values ('00000000-0000-4000-8000-000000000001', 'default');

create table workspaces (
    workspace_id uuid primary key,
    org_id uuid not null references orgs (org_id),
    name text not null,
    role text,
    tier integer not null default 1,
    status workspace_status not null,
    url text,
    agent_card jsonb,
    parent_id uuid references workspaces (workspace_id),
    template text,
    runtime text,
    model text,
    max_concurrent_tasks integer,
    budget_limit bigint,
    external boolean not null default false,
    last_heartbeat_at timestamptz,
    last_error_rate double precision not null default 0,
    last_sample_error text,
    active_tasks bigint not null default 0,
    uptime_seconds bigint not null default 0,
    current_task text,
    monthly_spend bigint not null default 0,
    runtime_state text,
    runtime_metadata jsonb,
    status_changed_at timestamptz not null,
    last_active_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create index workspaces_org_created_idx on workspaces (org_id, created_at);
create index workspaces_parent_idx on workspaces (parent_id);
-- The sweeps scan by status and age.
create index workspaces_status_heartbeat_idx on workspaces (status, last_heartbeat_at);
create index workspaces_status_changed_idx on workspaces (status, status_changed_at);

create table tokens (
    token_id uuid primary key,
    org_id uuid not null references orgs (org_id),
    workspace_id uuid references workspaces (workspace_id),
    name text,
    prefix text not null,
    token_hash bytea not null unique,
    revoked_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create index tokens_workspace_live_idx on tokens (workspace_id) where revoked_at is null;

create table secrets (
    secret_id bigint generated always as identity primary key,
    org_id uuid not null references orgs (org_id),
    workspace_id uuid references workspaces (workspace_id),
    key text not null,
    nonce bytea not null,
    ciphertext bytea not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create index secrets_scope_idx on secrets (org_id, workspace_id, key);

-- One row that hands out event sequence numbers. Taking it under the row lock
-- inside the writing transaction makes `seq` gap-free and makes commit order
-- equal `seq` order, so a reader that resumes after seq N never misses an
-- event that commits later with a smaller seq.
create table event_counters (
    event_counter_id smallint primary key check (event_counter_id = 1),
    last_seq bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

insert into event_counters (event_counter_id, last_seq) values (1, 0);

-- Events are immutable, so they have created_at and no updated_at.
create table events (
    seq bigint primary key,
    event_id uuid not null unique,
    org_id uuid not null references orgs (org_id),
    workspace_id uuid,
    kind text not null,
    payload jsonb not null,
    created_at timestamptz not null
);

create index events_workspace_seq_idx on events (workspace_id, seq);
create index events_org_seq_idx on events (org_id, seq);
