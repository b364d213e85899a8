-- The control plane's own liveness (issue 22). Every sweep of every
-- replica records when the control plane was last alive (alive_at). A gap
-- longer than a few sweep intervals means it could not hear runtimes
-- (every replica down, or the database unreachable); the gap is recorded
-- as the latest outage, whose time does not count against a workspace's
-- liveness.
create table control_plane (
    control_plane_id smallint primary key check (control_plane_id = 1),
    alive_at timestamptz not null,
    outage_started_at timestamptz,
    outage_ended_at timestamptz
);

-- A deployment that already ran was last alive when it last heard a
-- runtime: the downtime of the upgrade itself is an outage too.
insert into control_plane (control_plane_id, alive_at)
select 1, coalesce(max(last_heartbeat_at), now()) from workspaces;
