-- Templates, plugins, content-addressed file storage, and each workspace's
-- observed state (reported assets digest, installed plugins, conditions).

alter table workspaces
    add column reported_assets_digest text,
    add column installed_plugins jsonb not null default '[]',
    add column conditions jsonb not null default '[]';

-- File contents, stored once per sha256 so every replica serves the same bytes.
create table blobs (
    sha256 text primary key,
    content bytea not null,
    size bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create table templates (
    template_id uuid primary key,
    org_id uuid not null references orgs (org_id),
    name text not null,
    runtime text,
    model text,
    plugins jsonb not null,
    assets_digest text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (org_id, name)
);

create table template_files (
    template_id uuid not null references templates (template_id) on delete cascade,
    path text not null,
    sha256 text not null references blobs (sha256),
    size bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (template_id, path)
);

create table plugins (
    plugin_id uuid primary key,
    org_id uuid not null references orgs (org_id),
    name text not null,
    version text not null,
    description text not null,
    sha256 text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (org_id, name)
);

create table plugin_files (
    plugin_id uuid not null references plugins (plugin_id) on delete cascade,
    path text not null,
    sha256 text not null references blobs (sha256),
    size bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (plugin_id, path)
);
