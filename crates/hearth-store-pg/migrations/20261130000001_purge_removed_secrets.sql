-- A removed workspace's secrets are deleted with it (since this release, in
-- the delete's transaction); this removes those left by earlier releases.
delete from secrets
where workspace_id in (select workspace_id from workspaces where status = 'removed');
