-- Fleet pages are keyset-paged by (created_at, workspace_id). Without an
-- index in that order each page sorted the whole table: 0.44 s a page at a
-- million workspaces. Neither column ever changes, so the index costs a
-- heartbeat nothing (its updates stay HOT on Postgres).
create index workspaces_created_idx on workspaces (created_at, workspace_id);
