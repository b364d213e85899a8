-- A steady heartbeat rewrites last_heartbeat_at; an index on it made every
-- heartbeat write an index entry too. The liveness sweep finds its
-- candidates by status instead.
drop index if exists workspaces_status_heartbeat_idx;
