-- A register without a token (the bootstrap) mints one only for a workspace
-- that never had a token, revoked ones included, so the question is "any row
-- for this workspace", which the partial index of live tokens cannot answer
-- (without this, every unauthenticated register read the whole table). A
-- workspace has a handful of tokens, so one index over all of them also
-- serves the live-token lookups the partial one was for.
drop index tokens_workspace_live_idx;
create index tokens_workspace_idx on tokens (workspace_id);
