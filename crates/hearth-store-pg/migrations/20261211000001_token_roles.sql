-- Roles (issue 23): an org token is the `owner`, `operator` or `viewer` of
-- its org; a workspace's own token has none (it is its runtime's). Every
-- org token that exists could do everything in its org, so it becomes an
-- owner: existing deployments keep working unchanged.
alter table tokens add column role text check (role in ('owner', 'operator', 'viewer'));
update tokens set role = 'owner' where workspace_id is null;
