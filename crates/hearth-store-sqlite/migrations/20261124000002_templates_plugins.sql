-- Templates, plugins, content-addressed file storage, and each workspace's
-- observed state (SQLite dialect of the Postgres migration of the same name).

alter table workspaces add column reported_assets_digest text;
alter table workspaces add column installed_plugins text not null default '[]';
alter table workspaces add column conditions text not null default '[]';

create table blobs (
    sha256 text primary key,
    content blob not null,
    size integer not null,
    created_at text not null,
    updated_at text not null
);

create table templates (
    template_id blob primary key,
    org_id blob not null references orgs (org_id),
    name text not null,
    runtime text,
    model text,
    plugins text not null,
    assets_digest text not null,
    created_at text not null,
    updated_at text not null,
    unique (org_id, name)
);

create table template_files (
    template_id blob not null references templates (template_id) on delete cascade,
    path text not null,
    sha256 text not null references blobs (sha256),
    size integer not null,
    created_at text not null,
    updated_at text not null,
    primary key (template_id, path)
);

create table plugins (
    plugin_id blob primary key,
    org_id blob not null references orgs (org_id),
    name text not null,
    version text not null,
    description text not null,
    sha256 text not null,
    created_at text not null,
    updated_at text not null,
    unique (org_id, name)
);

create table plugin_files (
    plugin_id blob not null references plugins (plugin_id) on delete cascade,
    path text not null,
    sha256 text not null references blobs (sha256),
    size integer not null,
    created_at text not null,
    updated_at text not null,
    primary key (plugin_id, path)
);
