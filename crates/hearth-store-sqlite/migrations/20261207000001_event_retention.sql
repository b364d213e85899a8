-- The event log's retention. Events older than --event-retention, and a
-- workspace's events beyond its newest --event-retention-per-workspace, are
-- compacted away; each workspace's latest status event is kept however old.
-- One row records how far compaction has got:
--   compacted_through: every event with seq <= this may be gone (a reader
--     resuming below it is answered 410 with the seq to resume from);
--   aged_through: events up to this seq have been judged by age;
--   counted_through: events up to this seq have been judged by each
--     workspace's count (and each workspace's older status events dropped
--     once a newer one exists).
create table event_log (
    event_log_id integer primary key check (event_log_id = 1),
    compacted_through integer not null,
    aged_through integer not null,
    counted_through integer not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

insert into event_log (event_log_id, compacted_through, aged_through, counted_through) values (1, 0, 0, 0);

-- A workspace's status events by seq: whether a status event is still its
-- workspace's latest is one probe of this index. The list is
-- hearth_core::EventKind::is_status (a test keeps them equal).
create index events_status_idx on events (workspace_id, seq)
    where kind in ('WORKSPACE_PROVISIONING', 'WORKSPACE_ONLINE', 'WORKSPACE_OFFLINE', 'WORKSPACE_DEGRADED',
                   'WORKSPACE_PROVISION_FAILED', 'WORKSPACE_PAUSED', 'WORKSPACE_RESUMED', 'WORKSPACE_HIBERNATED',
                   'WORKSPACE_REMOVED');
