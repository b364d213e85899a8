-- A workspace's peers (GET /registry/{id}/peers) are read group by group,
-- each in creation order and keyset-paged by (created_at, workspace_id):
-- its siblings (the workspaces under its parent) and its children (those
-- under itself) from the first index, and, for a root, the other roots of
-- its org from the second. Each page then reads only its own rows, never
-- the whole org. Roots get an index of their own because `parent_id is
-- null` is no equality: with one index over (org_id, parent_id, …)
-- Postgres cannot read the roots in (created_at, workspace_id) order from
-- it, and sorted the org instead. Both are partial, so each row is in one.
-- None of their columns is written after the insert (not by a heartbeat,
-- not by any lifecycle change), so they cost a heartbeat nothing (its
-- updates stay HOT on Postgres).
create index workspaces_peers_idx on workspaces (org_id, parent_id, created_at, workspace_id)
    where parent_id is not null;
create index workspaces_roots_idx on workspaces (org_id, created_at, workspace_id)
    where parent_id is null;
