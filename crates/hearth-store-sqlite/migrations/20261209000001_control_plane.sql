-- The control plane's own liveness (issue 22). Every sweep records when
-- the control plane was last alive (alive_at). A gap longer than a few
-- sweep intervals means it could not hear runtimes (it was down, or the
-- database file could not be written); the gap is recorded as the latest
-- outage, whose time does not count against a workspace's liveness.
create table control_plane (
    control_plane_id integer primary key check (control_plane_id = 1),
    alive_at text not null,
    outage_started_at text,
    outage_ended_at text
);

-- A deployment that already ran was last alive when it last heard a
-- runtime: the downtime of the upgrade itself is an outage too.
insert into control_plane (control_plane_id, alive_at)
select 1, coalesce(max(last_heartbeat_at), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) from workspaces;
