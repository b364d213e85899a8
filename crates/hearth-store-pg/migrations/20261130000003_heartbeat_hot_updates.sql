-- A steady heartbeat rewrites last_heartbeat_at. With that column in an
-- index, no heartbeat could be a HOT update: each one wrote a new entry
-- into every index of the table (five). The liveness sweep finds its
-- candidates by status instead (a scan of the online rows, well under a
-- second at a million), and pages keep room for HOT updates.
drop index if exists workspaces_status_heartbeat_idx;
alter table workspaces set (fillfactor = 80);
