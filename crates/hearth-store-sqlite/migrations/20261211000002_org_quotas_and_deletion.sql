-- Tenancy (issue 23): an org's quotas (set by the admin; null: none, the
-- default) and its deletion (the row stays, marked, so its removed
-- workspaces and their events keep their org; its name is free again).
alter table orgs add column max_workspaces integer check (max_workspaces >= 0);
alter table orgs add column max_running integer check (max_running >= 0);
alter table orgs add column max_template_bytes integer check (max_template_bytes >= 0);
alter table orgs add column max_plugin_bytes integer check (max_plugin_bytes >= 0);
alter table orgs add column deleted_at text;
drop index orgs_name_idx;
create unique index orgs_name_idx on orgs (name) where deleted_at is null;
