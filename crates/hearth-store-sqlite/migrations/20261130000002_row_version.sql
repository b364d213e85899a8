-- A row version, bumped by every write that goes through the workspace's row
-- lock (lifecycle, runtime, delivery, operator plugins, agent card, and the
-- liveness write of a locked heartbeat). The group-commit heartbeat writer
-- does not bump it: it writes liveness columns only where the version is
-- still the one its decision was made on (the guard).
alter table workspaces add column version integer not null default 0;
