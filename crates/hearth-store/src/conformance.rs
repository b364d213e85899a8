//! The conformance suite: every scenario is written once against `&dyn Store`
//! and run on every engine through [`conformance_tests!`], each test on a
//! fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step should panic

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hearth_core::heartbeat::RawHeartbeat;
use hearth_core::{
    EventKind, Heartbeat, Input, OrgId, Outage, Rejection, SweepContext, TokenId, WorkspaceId, WorkspaceStatus,
};
use serde_json::json;

use crate::{
    Applied, Bootstrap, Compaction, Conflict, EventQuery, LivenessWrite, NewFile, NewPlugin, NewTemplate, NewToken,
    NewWorkspace, NewWorkspaceToken, Quota, Quotas, Retention, SealedSecret, Store, StoreError, StoreResult, Sweep,
    Usage,
};
use hearth_core::reconcile::{
    ConditionReason, ConditionStatus, ConditionType, DesiredPlugin, DesiredState, PluginFailure, ProgramReport,
    ProgramState, Report,
};

/// Generates one `#[tokio::test]` per scenario. `$make` is an async
/// expression returning `(store, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            create_then_get_returns_every_field,
            first_heartbeat_moves_provisioning_to_online_with_a_durable_event,
            error_rate_degrades_and_recovers_with_hysteresis,
            task_updated_is_written_once_per_change,
            liveness_sweep_finds_silent_workspaces_and_a_heartbeat_brings_them_back,
            the_control_planes_outage_is_recorded_and_not_counted_by_the_liveness_sweep,
            the_live_and_the_due_are_counted_and_a_mass_silence_is_said,
            provision_timeout_fails_and_a_later_heartbeat_recovers,
            paused_workspaces_are_not_revived_by_their_runtime,
            refused_transitions_write_nothing,
            removed_workspaces_reject_runtimes_and_stay_removed,
            delete_cascades_to_descendants_and_is_idempotent,
            concurrent_heartbeats_write_exactly_one_transition,
            event_seq_is_strictly_increasing_and_gap_free_under_concurrency,
            events_filter_by_workspace_and_page,
            bootstrap_register_mints_once_and_never_for_removed,
            a_workspace_that_ever_had_a_token_never_bootstraps,
            bootstrap_is_refused_past_the_window,
            bootstrap_is_refused_outside_provisioning,
            concurrent_bootstraps_mint_one_token,
            tokens_are_found_by_hash_and_revoked,
            many_tokens_are_found_at_once_with_their_hashes,
            workspace_tokens_rotate_after_an_overlap_and_revoke_at_once,
            secrets_are_replaced_per_key_and_scoped,
            list_hides_removed_unless_asked,
            unknown_workspace_is_not_found,
            duplicate_ids_and_bad_parents_are_conflicts,
            conflicts_say_what_conflicted_in_the_same_words_on_every_engine,
            heartbeat_fields_are_stored,
            templates_are_content_addressed_and_replaced_by_name,
            plugins_are_stored_and_replaced_by_name,
            plugins_page_by_name_each_with_its_own_files,
            heartbeats_converge_to_the_desired_state_level_triggered,
            install_reports_update_the_observed_plugins,
            operator_plugins_are_stored_and_survive_heartbeats,
            desired_state_of_a_workspace_joins_template_and_operator_plugins,
            workspaces_page_in_creation_order_with_their_desired_state,
            every_locked_write_bumps_the_row_version,
            liveness_batches_write_what_evolve_writes_where_the_guard_holds,
            a_large_liveness_batch_writes_every_row_whose_guard_holds,
            a_sweep_batch_transitions_every_due_workspace_once,
            the_due_are_read_oldest_first_and_swept_by_id_each_once,
            filtered_pages_keep_only_matches_and_counts_group_by_status,
            bulk_creation_writes_every_workspace_token_and_event_or_nothing,
            a_batch_of_inputs_does_what_applying_them_one_by_one_does,
            what_is_stored_is_what_evolve_decided_whichever_groups_change,
            a_batch_stores_what_evolve_decided_whichever_groups_change,
            agent_card_events_are_small_and_only_for_a_change,
            no_event_payload_is_larger_than_the_cap,
            retention_removes_old_events_but_each_workspaces_latest_status,
            retention_keeps_a_workspaces_newest_events_beyond_its_share,
            peers_are_siblings_then_children_then_the_parent_page_by_page,
            ancestry_is_found_up_the_parent_links_within_the_bound,
            live_org_tokens_are_capped_per_org_even_when_created_at_once,
            orgs_are_created_by_a_unique_name_and_hold_their_own_workspaces,
            quotas_are_reached_exactly_at_their_limit_and_a_batch_is_all_or_nothing,
            an_org_is_deleted_only_empty_its_tokens_revoked_and_its_name_freed,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::conformance::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

type S = Arc<dyn Store>;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
}

fn heartbeat(error_rate: f64) -> Input {
    Input::Heartbeat(Heartbeat::validate(RawHeartbeat { error_rate: Some(error_rate), ..Default::default() }).unwrap())
}

fn heartbeat_with(raw: RawHeartbeat) -> Input {
    Input::Heartbeat(Heartbeat::validate(raw).unwrap())
}

fn register() -> Input {
    Input::Register { url: "http://localhost:9000".into(), agent_card: json!({"name": "agent"}) }
}

/// Creates a workspace named `name` in the default org (for engine tests too).
pub async fn create<T: Store + ?Sized>(store: &T, name: &str) -> WorkspaceId {
    store.create_workspace(NewWorkspace::named(OrgId::DEFAULT, name, t(0)), None).await.unwrap().id
}

async fn events_of<T: Store + ?Sized>(store: &T, id: WorkspaceId) -> Vec<(EventKind, serde_json::Value)> {
    let query = EventQuery { workspace: Some(id), ..EventQuery::after(0) };
    store.list_events(query).await.unwrap().into_iter().map(|e| (e.kind, e.payload)).collect()
}

fn token(workspace: Option<WorkspaceId>, secret: &str) -> NewToken {
    NewToken {
        id: TokenId::new_random(),
        org_id: OrgId::DEFAULT,
        workspace_id: workspace,
        role: workspace.is_none().then_some(hearth_core::Role::Owner),
        name: Some("t".into()),
        prefix: secret.chars().take(8).collect(),
        hash: secret.as_bytes().to_vec(),
        now: t(0),
    }
}

/// A token of workspace `id` made at `t(secs)`.
fn workspace_token(id: WorkspaceId, secret: &str, secs: i64) -> NewWorkspaceToken {
    NewWorkspaceToken::new(id, NewToken { now: t(secs), ..token(None, secret) })
}

pub async fn create_then_get_returns_every_field(store: S) {
    let parent = create(&*store, "parent").await;
    let mut new = NewWorkspace::named(OrgId::DEFAULT, "seo-agent", t(5));
    new.role = Some("writer".into());
    new.tier = 3;
    new.parent_id = Some(parent);
    new.template = Some("seo".into());
    new.runtime = Some("claude".into());
    new.model = Some("m-1".into());
    new.max_concurrent_tasks = Some(4);
    new.budget_limit = Some(5000);
    new.external = true;
    new.url = Some("http://localhost:1".into());
    let created = store.create_workspace(new.clone(), None).await.unwrap();
    let got = store.get_workspace(new.id).await.unwrap();
    assert_eq!(created, got);
    assert_eq!(got.status, WorkspaceStatus::Provisioning);
    assert_eq!(got.name, "seo-agent");
    assert_eq!(got.role.as_deref(), Some("writer"));
    assert_eq!(got.tier, 3);
    assert_eq!(got.parent_id, Some(parent));
    assert_eq!(got.template.as_deref(), Some("seo"));
    assert_eq!(got.runtime.as_deref(), Some("claude"));
    assert_eq!(got.model.as_deref(), Some("m-1"));
    assert_eq!(got.max_concurrent_tasks, Some(4));
    assert_eq!(got.budget_limit, Some(5000));
    assert!(got.external);
    assert_eq!(got.url.as_deref(), Some("http://localhost:1"));
    assert_eq!(got.created_at, t(5));
    assert_eq!(got.status_changed_at, t(5));
    assert_eq!(got.last_heartbeat_at, None);
    let events = events_of(&*store, new.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, EventKind::WorkspaceProvisioning);
}

pub async fn first_heartbeat_moves_provisioning_to_online_with_a_durable_event(store: S) {
    let id = create(&*store, "w").await;
    let applied = store.apply(id, heartbeat(0.0), t(10)).await.unwrap();
    assert_eq!(applied.previous, WorkspaceStatus::Provisioning, "the previous status is read as provisioning");
    assert_eq!(applied.workspace.status, WorkspaceStatus::Online);
    let stored = store.get_workspace(id).await.unwrap();
    assert_eq!(stored.status, WorkspaceStatus::Online);
    assert_eq!(stored.last_heartbeat_at, Some(t(10)));
    assert_eq!(stored.status_changed_at, t(10));
    let events = events_of(&*store, id).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0, EventKind::WorkspaceOnline);
    assert_eq!(events[1].1["recovered_from"], "provisioning");
    // The second heartbeat changes nothing and writes no event.
    let again = store.apply(id, heartbeat(0.0), t(20)).await.unwrap();
    assert_eq!(again.previous, WorkspaceStatus::Online);
    assert!(again.events.is_empty());
    assert_eq!(events_of(&*store, id).await.len(), 2);
}

pub async fn error_rate_degrades_and_recovers_with_hysteresis(store: S) {
    let id = create(&*store, "w").await;
    store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
    let status = |a: crate::Applied| a.workspace.status;
    assert_eq!(status(store.apply(id, heartbeat(0.3), t(2)).await.unwrap()), WorkspaceStatus::Online);
    assert_eq!(status(store.apply(id, heartbeat(0.5), t(3)).await.unwrap()), WorkspaceStatus::Degraded);
    assert_eq!(status(store.apply(id, heartbeat(0.2), t(4)).await.unwrap()), WorkspaceStatus::Degraded);
    assert_eq!(status(store.apply(id, heartbeat(0.05), t(5)).await.unwrap()), WorkspaceStatus::Online);
    let wedged = heartbeat_with(RawHeartbeat { runtime_state: Some("wedged".into()), ..Default::default() });
    assert_eq!(status(store.apply(id, wedged, t(6)).await.unwrap()), WorkspaceStatus::Degraded);
    let kinds: Vec<EventKind> = events_of(&*store, id).await.into_iter().map(|e| e.0).collect();
    use EventKind::*;
    assert_eq!(kinds, [WorkspaceProvisioning, WorkspaceOnline, WorkspaceDegraded, WorkspaceOnline, WorkspaceDegraded]);
}

pub async fn task_updated_is_written_once_per_change(store: S) {
    let id = create(&*store, "w").await;
    let with_task = |task: &str| heartbeat_with(RawHeartbeat { current_task: Some(task.into()), ..Default::default() });
    for (i, task) in ["a", "a", "a", "b", "b", "a"].iter().enumerate() {
        store.apply(id, with_task(task), t(i as i64 + 1)).await.unwrap();
    }
    let tasks: Vec<String> = events_of(&*store, id)
        .await
        .into_iter()
        .filter(|e| e.0 == EventKind::TaskUpdated)
        .map(|e| e.1["current_task"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks, ["a", "b", "a"]);
    assert_eq!(store.get_workspace(id).await.unwrap().current_task.as_deref(), Some("a"));
}

pub async fn liveness_sweep_finds_silent_workspaces_and_a_heartbeat_brings_them_back(store: S) {
    let silent = create(&*store, "silent").await;
    let chatty = create(&*store, "chatty").await;
    let never = create(&*store, "never-heartbeated").await;
    store.apply(silent, heartbeat(0.0), t(10)).await.unwrap();
    store.apply(chatty, heartbeat(0.0), t(10)).await.unwrap();
    store.apply(chatty, heartbeat(0.0), t(95)).await.unwrap();
    let ttl = Duration::seconds(90);
    let now = t(101);
    let swept = store.sweep(Sweep::Liveness, ttl, now, 100, SweepContext::default()).await.unwrap();
    let ids: Vec<WorkspaceId> = swept.iter().map(|a| a.workspace.id).collect();
    assert_eq!(ids, vec![silent], "only the silent online workspace goes");
    assert_eq!(swept[0].workspace.status, WorkspaceStatus::Offline);
    // A second sweep (another replica) finds nothing and changes nothing.
    assert!(store.sweep(Sweep::Liveness, ttl, now, 100, SweepContext::default()).await.unwrap().is_empty());
    let again = store.apply(silent, Input::LivenessCheck { ttl, outage: None, mass_silence: None }, now).await.unwrap();
    assert!(again.events.is_empty());
    let back = store.apply(silent, heartbeat(0.0), t(120)).await.unwrap();
    assert_eq!(back.workspace.status, WorkspaceStatus::Online);
    assert_eq!(back.events[0].payload["recovered_from"], "offline");
    assert_eq!(store.get_workspace(never).await.unwrap().status, WorkspaceStatus::Provisioning);
}

/// The control plane's own liveness row: a beat within the gap records no
/// outage, a later one records the gap (and keeps it, the latest, until a
/// new one), a lagging clock never moves it back; the liveness sweep does
/// not count the outage and says when it decided after one.
pub async fn the_control_planes_outage_is_recorded_and_not_counted_by_the_liveness_sweep(store: S) {
    let gap = Duration::seconds(15);
    // A fresh database: alive since its migration, no outage. (Whole
    // microseconds: what Postgres keeps.)
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    assert_eq!(store.control_plane_alive(now, gap).await.unwrap(), None);
    assert_eq!(store.control_plane_alive(now + Duration::seconds(5), gap).await.unwrap(), None, "5 s: within the gap");
    let back = now + Duration::seconds(305);
    let outage = Outage { started_at: now + Duration::seconds(5), ended_at: back };
    assert_eq!(store.control_plane_alive(back, gap).await.unwrap(), Some(outage), "300 s unheard: an outage");
    let later = back + Duration::seconds(5);
    assert_eq!(store.control_plane_alive(later, gap).await.unwrap(), Some(outage), "kept: the latest");
    // A replica whose clock is a minute behind: alive_at stays at `later`.
    assert_eq!(store.control_plane_alive(later - Duration::seconds(60), gap).await.unwrap(), Some(outage));
    assert_eq!(store.control_plane_alive(later + Duration::seconds(10), gap).await.unwrap(), Some(outage));

    // The sweep: heard before the outage, measured from its end.
    let silent = create(&*store, "silent").await;
    store.apply(silent, heartbeat(0.0), now).await.unwrap();
    let ttl = Duration::seconds(90);
    let within = back + Duration::seconds(60);
    assert!(store
        .sweep(Sweep::Liveness, ttl, within, 100, SweepContext { outage: Some(outage), mass_silence: None })
        .await
        .unwrap()
        .is_empty());
    let after = back + Duration::seconds(91);
    let swept = store
        .sweep(Sweep::Liveness, ttl, after, 100, SweepContext { outage: Some(outage), mass_silence: None })
        .await
        .unwrap();
    assert_eq!(swept.len(), 1);
    let payload = &swept[0].events[0].payload;
    assert_eq!(payload["after_outage"]["ended_at"], serde_json::json!(back), "{payload}");

    // The provision timeout, likewise: measured from the outage's end.
    create(&*store, "provisioning").await;
    let context = SweepContext { outage: Some(outage), mass_silence: None };
    let timeout = Duration::seconds(600);
    let early =
        store.sweep(Sweep::ProvisionTimeout, timeout, back + Duration::seconds(599), 10, context).await.unwrap();
    assert!(early.is_empty(), "within the timeout of the outage's end");
    let failed =
        store.sweep(Sweep::ProvisionTimeout, timeout, back + Duration::seconds(600), 10, context).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].events[0].payload["after_outage"]["ended_at"], serde_json::json!(back));
}

/// `count_liveness` counts the live workspaces and those due at a cutoff
/// as the liveness sweep sees them; an offline decided in a mass silence
/// says so in its event.
pub async fn the_live_and_the_due_are_counted_and_a_mass_silence_is_said(store: S) {
    let (a, b, c) = (create(&*store, "a").await, create(&*store, "b").await, create(&*store, "c").await);
    create(&*store, "never").await; // provisioning: not live
    store.apply(a, heartbeat(0.0), t(10)).await.unwrap();
    store.apply(b, heartbeat(0.0), t(10)).await.unwrap();
    store.apply(c, heartbeat(0.0), t(95)).await.unwrap();
    assert_eq!(store.count_liveness(t(11)).await.unwrap(), (2, 3), "a and b were last heard before 11");
    assert_eq!(store.count_liveness(t(10)).await.unwrap(), (0, 3));
    let silence = hearth_core::MassSilence { due: 2, live: 3 };
    let context = SweepContext { outage: None, mass_silence: Some(silence) };
    let swept = store.sweep(Sweep::Liveness, Duration::seconds(90), t(101), 1, context).await.unwrap();
    assert_eq!(swept.len(), 1, "the limit holds");
    assert_eq!(swept[0].events[0].payload["mass_silence"], json!({"due": 2, "live": 3}));
    assert_eq!(store.count_liveness(t(11)).await.unwrap(), (1, 2));
}

pub async fn provision_timeout_fails_and_a_later_heartbeat_recovers(store: S) {
    let id = create(&*store, "slow").await;
    let timeout = Duration::seconds(600);
    assert!(store
        .sweep(Sweep::ProvisionTimeout, timeout, t(599), 10, SweepContext::default())
        .await
        .unwrap()
        .is_empty());
    let mut swept = store.sweep(Sweep::ProvisionTimeout, timeout, t(601), 10, SweepContext::default()).await.unwrap();
    assert_eq!(swept.len(), 1);
    let failed = swept.remove(0);
    assert_eq!(failed.workspace.id, id);
    assert_eq!(failed.workspace.status, WorkspaceStatus::Failed);
    assert_eq!(failed.events[0].kind, EventKind::WorkspaceProvisionFailed);
    let online = store.apply(id, heartbeat(0.0), t(700)).await.unwrap();
    assert_eq!(online.workspace.status, WorkspaceStatus::Online);
    assert_eq!(online.events[0].payload["recovered_from"], "failed");
}

pub async fn paused_workspaces_are_not_revived_by_their_runtime(store: S) {
    let id = create(&*store, "w").await;
    store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
    store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(2)).await.unwrap();
    let hb = store.apply(id, heartbeat(0.0), t(3)).await.unwrap();
    assert_eq!(hb.workspace.status, WorkspaceStatus::Paused);
    assert!(hb.events.is_empty());
    let err = store.apply(id, register(), t(4)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(Rejection::Stopped(WorkspaceStatus::Paused))), "{err:?}");
    assert_eq!(store.get_workspace(id).await.unwrap().status, WorkspaceStatus::Paused);
    let resumed = store.apply(id, Input::Resume(hearth_core::By::ADMIN), t(5)).await.unwrap();
    assert_eq!(resumed.workspace.status, WorkspaceStatus::Provisioning);
    store.apply(id, Input::Hibernate(hearth_core::By::ADMIN), t(6)).await.unwrap_err();
    store.apply(id, heartbeat(0.0), t(7)).await.unwrap();
    let hibernated = store.apply(id, Input::Hibernate(hearth_core::By::ADMIN), t(8)).await.unwrap();
    assert_eq!(hibernated.workspace.status, WorkspaceStatus::Hibernated);
    assert_eq!(store.apply(id, heartbeat(0.0), t(9)).await.unwrap().workspace.status, WorkspaceStatus::Hibernated);
    assert_eq!(
        store.apply(id, Input::Resume(hearth_core::By::ADMIN), t(10)).await.unwrap().workspace.status,
        WorkspaceStatus::Provisioning
    );
}

pub async fn refused_transitions_write_nothing(store: S) {
    let id = create(&*store, "w").await;
    store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
    store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(2)).await.unwrap();
    let before = store.get_workspace(id).await.unwrap();
    let events_before = events_of(&*store, id).await.len();
    let err = store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(3)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(Rejection::NotAllowed { current: WorkspaceStatus::Paused, .. })),
        "{err:?}"
    );
    assert_eq!(store.get_workspace(id).await.unwrap(), before);
    assert_eq!(events_of(&*store, id).await.len(), events_before);
}

pub async fn removed_workspaces_reject_runtimes_and_stay_removed(store: S) {
    let id = create(&*store, "w").await;
    store.delete_workspace(id, hearth_core::By::ADMIN, t(1)).await.unwrap();
    for input in [heartbeat(0.0), register()] {
        let err = store.apply(id, input, t(2)).await.unwrap_err();
        assert!(matches!(err, StoreError::Rejected(Rejection::Removed)), "{err:?}");
    }
    let err = store.apply(id, Input::Restart(hearth_core::By::ADMIN), t(3)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(Rejection::NotAllowed { current: WorkspaceStatus::Removed, .. })));
    let err = store.update_agent_card(id, json!({}), t(4)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(Rejection::Removed)), "{err:?}");
    assert_eq!(store.get_workspace(id).await.unwrap().status, WorkspaceStatus::Removed);
}

pub async fn delete_cascades_to_descendants_and_is_idempotent(store: S) {
    let root = create(&*store, "root").await;
    let mut child = NewWorkspace::named(OrgId::DEFAULT, "child", t(1));
    child.parent_id = Some(root);
    let child = store.create_workspace(child, None).await.unwrap().id;
    let mut grandchild = NewWorkspace::named(OrgId::DEFAULT, "grandchild", t(2));
    grandchild.parent_id = Some(child);
    let grandchild = store.create_workspace(grandchild, None).await.unwrap().id;
    let other = create(&*store, "other").await;
    let deleted = store.delete_workspace(root, hearth_core::By::ADMIN, t(3)).await.unwrap();
    assert_eq!(deleted.cascade_deleted, 2);
    assert_eq!(deleted.removed, vec![root, child, grandchild]);
    assert_eq!(deleted.events.len(), 3);
    for id in [root, child, grandchild] {
        assert_eq!(store.get_workspace(id).await.unwrap().status, WorkspaceStatus::Removed);
    }
    assert_eq!(store.get_workspace(other).await.unwrap().status, WorkspaceStatus::Provisioning);
    let again = store.delete_workspace(root, hearth_core::By::ADMIN, t(4)).await.unwrap();
    assert_eq!(again.cascade_deleted, 0);
    assert!(again.events.is_empty());
    assert!(matches!(
        store.delete_workspace(WorkspaceId::new_random(), hearth_core::By::ADMIN, t(5)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn concurrent_heartbeats_write_exactly_one_transition(store: S) {
    let id = create(&*store, "w").await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.apply(id, heartbeat(0.0), t(10 + i)).await })
        })
        .collect();
    let mut transitions = 0;
    for task in tasks {
        let applied = task.await.unwrap().unwrap();
        if applied.previous != applied.workspace.status {
            transitions += 1;
        }
    }
    assert_eq!(transitions, 1);
    let online = events_of(&*store, id).await.into_iter().filter(|e| e.0 == EventKind::WorkspaceOnline).count();
    assert_eq!(online, 1, "exactly one WORKSPACE_ONLINE");
}

pub async fn event_seq_is_strictly_increasing_and_gap_free_under_concurrency(store: S) {
    let ids: Vec<WorkspaceId> = {
        let mut ids = Vec::new();
        for i in 0..8 {
            ids.push(create(&*store, &format!("w{i}")).await);
        }
        ids
    };
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move {
                store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
                store.apply(id, heartbeat(0.9), t(2)).await.unwrap();
                store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(3)).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events = store.list_events(EventQuery::after(0)).await.unwrap();
    assert_eq!(events.len(), 8 * 4);
    assert_eq!(store.last_event_seq().await.unwrap(), 8 * 4);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as i64 + 1, "seq is 1, 2, 3, ... with no gap");
    }
}

pub async fn events_filter_by_workspace_and_page(store: S) {
    let a = create(&*store, "a").await;
    let b = create(&*store, "b").await;
    store.apply(a, heartbeat(0.0), t(1)).await.unwrap();
    store.apply(b, heartbeat(0.0), t(1)).await.unwrap();
    let page = store.list_events(EventQuery { limit: 2, ..EventQuery::after(0) }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let rest = store.list_events(EventQuery::after(2)).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let only_b = store.list_events(EventQuery { workspace: Some(b), ..EventQuery::after(0) }).await.unwrap();
    assert!(only_b.iter().all(|e| e.workspace_id == Some(b)));
    assert_eq!(only_b.len(), 2);
    let other_org = store.list_events(EventQuery { org: Some(OrgId::new_random()), ..EventQuery::after(0) }).await;
    assert!(other_org.unwrap().is_empty());
}

/// The bootstrap window the scenarios below use.
const WINDOW: Duration = Duration::seconds(600);

/// A register without a token (the bootstrap) at `at`, with the bootstrap
/// window [`WINDOW`].
async fn bootstrap(store: &S, id: WorkspaceId, at: DateTime<Utc>, secret: &str) -> StoreResult<Applied> {
    let Input::Register { url, agent_card } = register() else { unreachable!() };
    let bootstrap = Bootstrap { url, agent_card, token: token(Some(id), secret), created_after: at - WINDOW };
    store.register_minting(id, bootstrap, at).await
}

/// Asserts that a refused bootstrap wrote nothing: no token, no change to
/// the row, no event.
async fn assert_refused(store: &S, refused: StoreResult<Applied>, secret: &str) {
    assert!(matches!(refused, Err(StoreError::BootstrapRefused)), "{refused:?}");
    assert!(store.find_token_by_hash(secret.as_bytes(), t(100_000)).await.unwrap().is_none(), "no token minted");
}

pub async fn bootstrap_register_mints_once_and_never_for_removed(store: S) {
    let id = create(&*store, "w").await;
    let first = bootstrap(&store, id, t(1), "first-secret").await.unwrap();
    assert_eq!(first.workspace.status, WorkspaceStatus::Online);
    assert_eq!(first.workspace.url.as_deref(), Some("http://localhost:9000"));
    assert_eq!(first.workspace.agent_card, Some(json!({"name": "agent"})));
    assert!(store.find_token_by_hash(b"first-secret", t(2)).await.unwrap().is_some(), "the minted token is live");
    let second = bootstrap(&store, id, t(2), "second-secret").await;
    assert_refused(&store, second, "second-secret").await;
    let gone = create(&*store, "gone").await;
    store.delete_workspace(gone, hearth_core::By::ADMIN, t(3)).await.unwrap();
    let err = bootstrap(&store, gone, t(4), "third-secret").await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(Rejection::Removed)), "{err:?}");
    assert!(
        store.find_token_by_hash(b"third-secret", t(100)).await.unwrap().is_none(),
        "no token for a removed workspace"
    );
    // A paused workspace answers as it does to a runtime with a token (409).
    let paused = create(&*store, "paused").await;
    store.apply(paused, heartbeat(0.0), t(5)).await.unwrap();
    store.apply(paused, Input::Pause(hearth_core::By::ADMIN), t(6)).await.unwrap();
    let err = bootstrap(&store, paused, t(7), "fourth-secret").await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(Rejection::Stopped(WorkspaceStatus::Paused))), "{err:?}");
    assert!(store.find_token_by_hash(b"fourth-secret", t(100)).await.unwrap().is_none());
}

/// Finding 1: once a workspace has had a token, revoked or not, only an
/// operator gives it another; the bootstrap is a one-time join.
pub async fn a_workspace_that_ever_had_a_token_never_bootstraps(store: S) {
    // Its only token revoked (the operator's answer to a leak).
    let leaked = create(&*store, "leaked").await;
    let only = store.issue_workspace_token(workspace_token(leaked, "leaked-secret", 0), None).await.unwrap();
    store.revoke_workspace_token(leaked, only.id, t(1)).await.unwrap();
    let before = store.get_workspace(leaked).await.unwrap();
    let events = events_of(&*store, leaked).await.len();
    let refused = bootstrap(&store, leaked, t(2), "thief-secret").await;
    assert_refused(&store, refused, "thief-secret").await;
    assert_eq!(store.get_workspace(leaked).await.unwrap(), before, "the row is untouched");
    assert_eq!(events_of(&*store, leaked).await.len(), events, "no event");
    // Created with a token (`issue_token`), which was later revoked.
    let issued = token(None, "created-secret");
    let new = NewWorkspace::named(OrgId::DEFAULT, "issued", t(0));
    let issued = NewToken { workspace_id: Some(new.id), role: None, ..issued };
    let created = store.create_workspace(new, Some(issued.clone())).await.unwrap().id;
    store.revoke_workspace_token(created, issued.id, t(1)).await.unwrap();
    let refused = bootstrap(&store, created, t(2), "other-secret").await;
    assert_refused(&store, refused, "other-secret").await;
    // A rotation's overlap running: still a workspace with tokens.
    let rotating = create(&*store, "rotating").await;
    store.issue_workspace_token(workspace_token(rotating, "rotating-1", 1), None).await.unwrap();
    let second = store.issue_workspace_token(workspace_token(rotating, "rotating-2", 2), Some(t(3))).await.unwrap();
    store.revoke_workspace_token(rotating, second.id, t(4)).await.unwrap();
    let refused = bootstrap(&store, rotating, t(5), "rotating-3").await;
    assert_refused(&store, refused, "rotating-3").await;
}

/// Only a workspace created less than the window ago may bootstrap.
pub async fn bootstrap_is_refused_past_the_window(store: S) {
    let id = create(&*store, "late").await;
    let window = WINDOW.num_seconds();
    let refused = bootstrap(&store, id, t(window), "late-secret").await;
    assert_refused(&store, refused, "late-secret").await;
    assert_eq!(store.get_workspace(id).await.unwrap().status, WorkspaceStatus::Provisioning, "untouched");
    let minted = bootstrap(&store, id, t(window - 1), "in-time-secret").await.unwrap();
    assert_eq!(minted.workspace.status, WorkspaceStatus::Online, "a second earlier it was inside the window");
    assert!(store.find_token_by_hash(b"in-time-secret", t(window)).await.unwrap().is_some());
}

/// Only a workspace still `provisioning` (never registered) may bootstrap.
pub async fn bootstrap_is_refused_outside_provisioning(store: S) {
    // Online through a heartbeat (its runtime had a token the store does
    // not see here, as with a token-less heartbeat under the lock).
    let online = create(&*store, "online").await;
    store.apply(online, heartbeat(0.0), t(1)).await.unwrap();
    let refused = bootstrap(&store, online, t(2), "online-secret").await;
    assert_refused(&store, refused, "online-secret").await;
    // Offline: online, then silent past the liveness TTL.
    let offline = create(&*store, "offline").await;
    store.apply(offline, heartbeat(0.0), t(1)).await.unwrap();
    store
        .apply(offline, Input::LivenessCheck { ttl: Duration::seconds(90), outage: None, mass_silence: None }, t(200))
        .await
        .unwrap();
    assert_eq!(store.get_workspace(offline).await.unwrap().status, WorkspaceStatus::Offline);
    let refused = bootstrap(&store, offline, t(201), "offline-secret").await;
    assert_refused(&store, refused, "offline-secret").await;
    // Failed: never registered within the provision timeout.
    let failed = create(&*store, "failed").await;
    let swept =
        store.sweep(Sweep::ProvisionTimeout, Duration::seconds(60), t(61), 10, SweepContext::default()).await.unwrap();
    assert!(swept.iter().any(|a| a.workspace.id == failed && a.workspace.status == WorkspaceStatus::Failed));
    let refused = bootstrap(&store, failed, t(62), "failed-secret").await;
    assert_refused(&store, refused, "failed-secret").await;
}

/// Two runtimes bootstrapping one workspace at once: one token, one ONLINE.
pub async fn concurrent_bootstraps_mint_one_token(store: S) {
    let id = create(&*store, "raced").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { bootstrap(&store, id, t(10), &format!("raced-{i}")).await })
        })
        .collect();
    let (mut minted, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(applied) => {
                assert_eq!(applied.workspace.status, WorkspaceStatus::Online);
                minted += 1;
            }
            Err(StoreError::BootstrapRefused) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((minted, refused), (1, 7));
    assert_eq!(store.list_workspace_tokens(id).await.unwrap().len(), 1, "exactly one token");
    let online = events_of(&*store, id).await.into_iter().filter(|e| e.0 == EventKind::WorkspaceOnline).count();
    assert_eq!(online, 1, "exactly one WORKSPACE_ONLINE");
}

pub async fn workspace_tokens_rotate_after_an_overlap_and_revoke_at_once(store: S) {
    let id = create(&*store, "w").await;
    let old = store.issue_workspace_token(workspace_token(id, "old-secret", 0), None).await.unwrap();
    let extra = store.issue_workspace_token(workspace_token(id, "extra-secret", 0), None).await.unwrap();
    assert!(store.find_token_by_hash(b"old-secret", t(1)).await.unwrap().is_some(), "issuing adds by default");
    // A rotation at t(10) with 60 s of overlap: the others work until t(70).
    let rotated = store.issue_workspace_token(workspace_token(id, "new-secret", 10), Some(t(70))).await.unwrap();
    for secret in [&b"old-secret"[..], b"extra-secret", b"new-secret"] {
        assert!(store.find_token_by_hash(secret, t(69)).await.unwrap().is_some(), "during the overlap");
    }
    assert!(store.find_token_by_hash(b"old-secret", t(70)).await.unwrap().is_none(), "replaced at the end of it");
    assert!(store.find_token_by_hash(b"extra-secret", t(71)).await.unwrap().is_none());
    assert!(store.find_token_by_hash(b"new-secret", t(1000)).await.unwrap().is_some(), "the new one stays");
    // A later rotation with a longer overlap never extends an earlier end.
    store.issue_workspace_token(workspace_token(id, "later-secret", 20), Some(t(500))).await.unwrap();
    let listed = store.list_workspace_tokens(id).await.unwrap();
    let end = |tid| listed.iter().find(|t| t.id == tid).and_then(|t| t.revoked_at);
    assert_eq!(end(old.id), Some(t(70)));
    assert_eq!(end(extra.id), Some(t(70)));
    assert_eq!(end(rotated.id), Some(t(500)));
    assert_eq!(listed.len(), 4, "every token of the workspace, revoked ones too");
    // An explicit revoke takes effect at once, and only for that workspace's tokens.
    store.revoke_workspace_token(id, rotated.id, t(30)).await.unwrap();
    assert!(store.find_token_by_hash(b"new-secret", t(31)).await.unwrap().is_none());
    let other = create(&*store, "other").await;
    let foreign = store.revoke_workspace_token(other, old.id, t(30)).await;
    assert!(matches!(foreign, Err(StoreError::NotFound("token"))), "{foreign:?}");
    // A removed workspace gets no token.
    store.delete_workspace(id, hearth_core::By::ADMIN, t(40)).await.unwrap();
    let refused = store.issue_workspace_token(workspace_token(id, "too-late", 0), None).await;
    assert!(matches!(refused, Err(StoreError::Rejected(Rejection::Removed))), "{refused:?}");
    assert!(store.find_token_by_hash(b"too-late", t(41)).await.unwrap().is_none());
}

pub async fn tokens_are_found_by_hash_and_revoked(store: S) {
    let org_token = store.insert_token(token(None, "org-secret-1")).await.unwrap();
    let found = store.find_token_by_hash(b"org-secret-1", t(100)).await.unwrap().unwrap();
    assert_eq!(found.id, org_token.id);
    assert_eq!(found.workspace_id, None);
    assert_eq!(found.prefix, "org-secr");
    let id = create(&*store, "w").await;
    let ws_token = store.insert_token(token(Some(id), "ws-secret")).await.unwrap();
    // The org revocation knows org tokens only: a workspace token's id is
    // not found there, and the token stays live.
    let not_org = store.revoke_token(Some(OrgId::DEFAULT), ws_token.id, t(5)).await;
    assert!(matches!(not_org, Err(StoreError::NotFound("token"))), "{not_org:?}");
    assert!(store.find_token_by_hash(b"ws-secret", t(100)).await.unwrap().is_some(), "still live");
    let listed = store.list_org_tokens(OrgId::DEFAULT).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), [org_token.id], "workspace tokens are not listed");
    store.revoke_token(Some(OrgId::DEFAULT), org_token.id, t(9)).await.unwrap();
    assert!(store.find_token_by_hash(b"org-secret-1", t(100)).await.unwrap().is_none());
    assert_eq!(store.list_org_tokens(OrgId::DEFAULT).await.unwrap()[0].revoked_at, Some(t(9)));
    let wrong_org = store.revoke_token(Some(OrgId::new_random()), org_token.id, t(9)).await;
    assert!(matches!(wrong_org, Err(StoreError::NotFound(_))));
    let duplicate = store.insert_token(token(None, "ws-secret")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict { .. })), "{duplicate:?}");
}

pub async fn live_org_tokens_are_capped_per_org_even_when_created_at_once(store: S) {
    let at = |secret: &str, secs: i64| NewToken { now: t(secs), ..token(None, secret) };
    for secret in ["cap-1", "cap-2", "cap-3"] {
        store.insert_org_token(at(secret, 0), 3).await.unwrap();
    }
    // Workspace tokens are not org tokens: they do not count.
    let id = create(&*store, "w").await;
    store.insert_token(token(Some(id), "ws-cap")).await.unwrap();
    let refused = store.insert_org_token(at("cap-4", 1), 3).await;
    assert!(matches!(refused, Err(StoreError::LimitReached { limit: 3, .. })), "{refused:?}");
    assert!(store.find_token_by_hash(b"cap-4", t(2)).await.unwrap().is_none(), "nothing written");
    // A revoked token frees its place from its revocation on.
    let first = store.list_org_tokens(OrgId::DEFAULT).await.unwrap().into_iter().find(|t| t.prefix == "cap-1");
    store.revoke_token(Some(OrgId::DEFAULT), first.unwrap().id, t(9)).await.unwrap();
    let early = store.insert_org_token(at("cap-5", 8), 3).await;
    assert!(matches!(early, Err(StoreError::LimitReached { .. })), "still live at 8 s: {early:?}");
    store.insert_org_token(at("cap-6", 10), 3).await.unwrap();
    // Eight creates at once with room for two more: exactly two pass.
    let creates = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.insert_org_token(at(&format!("race-{i}"), 20), 5).await })
    });
    let mut created = 0;
    for create in creates.collect::<Vec<_>>() {
        match create.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitReached { limit: 5, .. }) => {}
            Err(other) => panic!("a create failed otherwise: {other:?}"),
        }
    }
    assert_eq!(created, 2, "the cap holds under concurrent creates");
    let live = store.list_org_tokens(OrgId::DEFAULT).await.unwrap().iter().filter(|t| t.revoked_at.is_none()).count();
    assert_eq!(live, 5);
    // An org that does not exist has no tokens to cap.
    let stranger = NewToken { org_id: OrgId::new_random(), ..at("stranger", 30) };
    let missing = store.insert_org_token(stranger, 3).await;
    assert!(matches!(missing, Err(StoreError::NotFound("org"))), "{missing:?}");
}

pub async fn many_tokens_are_found_at_once_with_their_hashes(store: S) {
    assert!(store.find_tokens_by_hashes(&[], t(100)).await.unwrap().is_empty());
    store.insert_token(token(None, "org-many")).await.unwrap();
    let id = create(&*store, "w").await;
    store.insert_token(token(Some(id), "ws-many")).await.unwrap();
    let revoked = store.insert_token(token(Some(id), "ws-revoked")).await.unwrap();
    store.revoke_workspace_token(id, revoked.id, t(9)).await.unwrap();
    let gone = create(&*store, "gone").await;
    store.insert_token(token(Some(gone), "ws-of-removed")).await.unwrap();
    store.delete_workspace(gone, hearth_core::By::ADMIN, t(10)).await.unwrap();
    // Bytes of every value survive the hex encoding, leading zeros too.
    let mut binary = token(Some(id), "binary");
    binary.hash = (0..=255u8).rev().chain([0, 0x0f, 0xf0]).collect();
    store.insert_token(binary.clone()).await.unwrap();

    let live: Vec<Vec<u8>> = [&b"org-many"[..], b"ws-many", b"ws-of-removed", &binary.hash].map(<[u8]>::to_vec).into();
    let mut asked = live.clone();
    asked.extend([b"ws-revoked".to_vec(), b"unknown".to_vec(), Vec::new()]);
    // Many more than one batch's worth of unknown hashes.
    asked.extend((0..2000u32).map(|i| format!("no-such-token-{i}").into_bytes()));
    let mut found = store.find_tokens_by_hashes(&asked, t(100)).await.unwrap();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = live.clone();
    want.sort();
    assert_eq!(found.iter().map(|(hash, _)| hash.clone()).collect::<Vec<_>>(), want, "live tokens only");
    for (hash, token) in &found {
        let one = store.find_token_by_hash(hash, t(100)).await.unwrap();
        assert_eq!(one.as_ref(), Some(token), "as the single lookup finds it");
    }
    let removed = found.iter().find(|(hash, _)| hash == b"ws-of-removed").unwrap();
    assert!(removed.1.workspace_removed, "a removed workspace's token says so");
    // Live at the time asked: a future revocation has not happened yet.
    assert_eq!(store.find_tokens_by_hashes(&[b"ws-revoked".to_vec()], t(8)).await.unwrap().len(), 1);
}

pub async fn secrets_are_replaced_per_key_and_scoped(store: S) {
    let id = create(&*store, "w").await;
    let sealed = |key: &str, v: u8| SealedSecret { key: key.into(), nonce: vec![v; 12], ciphertext: vec![v; 4] };
    store.put_secrets(OrgId::DEFAULT, None, vec![sealed("A", 1), sealed("B", 2)], t(1)).await.unwrap();
    store.put_secrets(OrgId::DEFAULT, None, vec![sealed("A", 3)], t(2)).await.unwrap();
    store.put_secrets(OrgId::DEFAULT, Some(id), vec![sealed("B", 4)], t(3)).await.unwrap();
    let org = store.list_secrets(OrgId::DEFAULT, None).await.unwrap();
    assert_eq!(org, vec![sealed("A", 3), sealed("B", 2)]);
    let ws = store.list_secrets(OrgId::DEFAULT, Some(id)).await.unwrap();
    assert_eq!(ws, vec![sealed("B", 4)]);
}

pub async fn list_hides_removed_unless_asked(store: S) {
    assert_eq!(store.count_workspaces().await.unwrap(), 0);
    let keep = create(&*store, "keep").await;
    let gone = create(&*store, "gone").await;
    store.delete_workspace(gone, hearth_core::By::ADMIN, t(1)).await.unwrap();
    let visible: Vec<_> =
        store.list_workspaces(Some(OrgId::DEFAULT), false).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(visible, vec![keep]);
    let all = store.list_workspaces(None, true).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(store.list_workspaces(Some(OrgId::new_random()), true).await.unwrap().is_empty());
    assert_eq!(store.count_workspaces().await.unwrap(), 1, "the fleet counts the live one");
}

pub async fn unknown_workspace_is_not_found(store: S) {
    let id = WorkspaceId::new_random();
    assert!(matches!(store.get_workspace(id).await, Err(StoreError::NotFound("workspace"))));
    assert!(matches!(store.apply(id, heartbeat(0.0), t(1)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.update_agent_card(id, json!({}), t(1)).await, Err(StoreError::NotFound(_))));
}

pub async fn duplicate_ids_and_bad_parents_are_conflicts(store: S) {
    let new = NewWorkspace::named(OrgId::DEFAULT, "w", t(0));
    store.create_workspace(new.clone(), None).await.unwrap();
    assert!(matches!(store.create_workspace(new, None).await, Err(StoreError::Conflict { .. })));
    let mut orphan = NewWorkspace::named(OrgId::DEFAULT, "orphan", t(0));
    orphan.parent_id = Some(WorkspaceId::new_random());
    assert!(matches!(store.create_workspace(orphan.clone(), None).await, Err(StoreError::Conflict { .. })));
    assert!(matches!(store.get_workspace(orphan.id).await, Err(StoreError::NotFound(_))), "nothing half-written");
}

/// A conflict is described by the operation that met it, in the same words
/// on every engine: never the database's text, which names tables and
/// constraints and differs by engine.
pub async fn conflicts_say_what_conflicted_in_the_same_words_on_every_engine(store: S) {
    let new = NewWorkspace::named(OrgId::DEFAULT, "w", t(0));
    store.create_workspace(new.clone(), None).await.unwrap();
    let taken = store.create_workspace(new.clone(), None).await.unwrap_err();
    assert!(matches!(taken, StoreError::Conflict { what: Conflict::WorkspaceExists }), "{taken:?}");
    assert_eq!(taken.to_string(), "a workspace with this id already exists");
    let mut orphan = NewWorkspace::named(OrgId::DEFAULT, "orphan", t(0));
    orphan.parent_id = Some(WorkspaceId::new_random());
    let orphaned = store.create_workspace(orphan, None).await.unwrap_err();
    assert!(matches!(orphaned, StoreError::Conflict { what: Conflict::ParentMissing }), "{orphaned:?}");
    assert_eq!(orphaned.to_string(), "the parent workspace does not exist");
    let fresh = NewWorkspace::named(OrgId::DEFAULT, "fresh", t(0));
    let batch = store.create_workspaces(vec![(fresh, None), (new.clone(), None)]).await.unwrap_err();
    assert_eq!(batch.to_string(), "a workspace with this id already exists", "in a batch too");

    store.insert_token(token(Some(new.id), "same-secret")).await.unwrap();
    let again = store.insert_token(token(None, "same-secret")).await.unwrap_err();
    assert_eq!(again.to_string(), "a token with this secret already exists");
    let nowhere = store.insert_token(token(Some(WorkspaceId::new_random()), "nowhere")).await.unwrap_err();
    assert_eq!(nowhere.to_string(), "the token's workspace does not exist");
    let created = NewWorkspace::named(OrgId::DEFAULT, "with-token", t(0));
    let reused = store.create_workspace(created.clone(), Some(token(Some(created.id), "same-secret"))).await;
    assert_eq!(reused.unwrap_err().to_string(), "a token with this secret already exists");
    assert!(matches!(store.get_workspace(created.id).await, Err(StoreError::NotFound(_))), "nothing half-written");
}

pub async fn heartbeat_fields_are_stored(store: S) {
    let id = create(&*store, "w").await;
    let hb = heartbeat_with(RawHeartbeat {
        error_rate: Some(0.25),
        sample_error: Some("boom".into()),
        active_tasks: Some(3),
        uptime_seconds: Some(77),
        current_task: Some("task".into()),
        monthly_spend: Some(1234.0),
        runtime_state: Some(String::new()),
        runtime_metadata: Some(json!({"capabilities": {"x": true}, "idle_timeout_seconds": 30})),
        report: Report::default(),
    });
    store.apply(id, hb, t(5)).await.unwrap();
    let ws = store.get_workspace(id).await.unwrap();
    assert_eq!(ws.last_error_rate, 0.25);
    assert_eq!(ws.last_sample_error.as_deref(), Some("boom"));
    assert_eq!(ws.active_tasks, 3);
    assert_eq!(ws.uptime_seconds, 77);
    assert_eq!(ws.current_task.as_deref(), Some("task"));
    assert_eq!(ws.monthly_spend, 1234);
    assert_eq!(ws.runtime_metadata.unwrap()["idle_timeout_seconds"], 30);
    assert_eq!(ws.last_active_at, Some(t(5)));
    // A heartbeat without monthly_spend, active_tasks, uptime_seconds or
    // current_task keeps the stored values: absent means unchanged.
    store.apply(id, heartbeat(0.0), t(6)).await.unwrap();
    let ws = store.get_workspace(id).await.unwrap();
    assert_eq!(ws.monthly_spend, 1234);
    assert_eq!(ws.active_tasks, 3);
    assert_eq!(ws.uptime_seconds, 77);
    assert_eq!(ws.current_task.as_deref(), Some("task"));
    // Reported zeros are written.
    let zeros = RawHeartbeat { active_tasks: Some(0), uptime_seconds: Some(0), ..Default::default() };
    store.apply(id, heartbeat_with(zeros), t(7)).await.unwrap();
    let ws = store.get_workspace(id).await.unwrap();
    assert_eq!((ws.active_tasks, ws.uptime_seconds), (0, 0));
}

fn file(path: &str, content: &[u8]) -> NewFile {
    NewFile { path: path.into(), sha256: hearth_core::digest::sha256_hex(content), content: content.to_vec() }
}

fn template(name: &str, files: Vec<NewFile>, now: DateTime<Utc>) -> NewTemplate {
    NewTemplate {
        org_id: OrgId::DEFAULT,
        name: name.into(),
        runtime: Some("claude".into()),
        model: Some("m".into()),
        plugins: vec!["seo-all".into()],
        assets_digest: format!("sha256:{name}-{}", files.len()),
        files,
        now,
    }
}

pub async fn templates_are_content_addressed_and_replaced_by_name(store: S) {
    let binary: Vec<u8> = (0..=255u8).collect();
    let first = store
        .put_template(template("seo", vec![file("config.yaml", b"name: seo\n"), file("model.bin", &binary)], t(1)))
        .await
        .unwrap();
    assert_eq!(first.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["config.yaml", "model.bin"]);
    assert_eq!(first.plugins, ["seo-all"]);
    let bin = first.files.iter().find(|f| f.path == "model.bin").unwrap();
    assert_eq!(bin.size, 256);
    assert_eq!(store.get_blob(&bin.sha256).await.unwrap(), binary, "binary files round-trip exactly");
    // A second template sharing a file stores it once; re-importing replaces.
    store.put_template(template("other", vec![file("model.bin", &binary)], t(2))).await.unwrap();
    let second = store
        .put_template(template("seo", vec![file("config.yaml", b"name: seo v2\n"), file("prompts/a.md", b"hi")], t(3)))
        .await
        .unwrap();
    assert_eq!(second.id, first.id, "same name keeps its id");
    assert_eq!(second.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["config.yaml", "prompts/a.md"]);
    assert_eq!(second.updated_at, t(3));
    let by_name = store.get_template_by_name(OrgId::DEFAULT, "seo").await.unwrap();
    assert_eq!(by_name, second);
    assert_eq!(store.get_template_by_id(first.id).await.unwrap(), second);
    assert_eq!(store.list_templates(Some(OrgId::DEFAULT), None, 100).await.unwrap().len(), 2);
    assert!(matches!(store.get_template_by_name(OrgId::DEFAULT, "nope").await, Err(StoreError::NotFound("template"))));
    // Desired state in one query: the digest, and declared plugins (not pushed here: nothing stored).
    let desired = store.desired_state(OrgId::DEFAULT, "seo").await.unwrap().unwrap();
    assert_eq!(desired.assets_digest.as_deref(), Some(second.assets_digest.as_str()));
    assert_eq!(desired.plugins.len(), 1);
    assert_eq!(desired.plugins[0].name, "seo-all");
    assert_eq!(desired.plugins[0].stored, None);
    assert_eq!(store.desired_state(OrgId::DEFAULT, "nope").await.unwrap(), None);
    assert!(matches!(store.get_blob("0000").await, Err(StoreError::NotFound(_))));
}

pub async fn plugins_are_stored_and_replaced_by_name(store: S) {
    let new = |version: &str, now| NewPlugin {
        org_id: OrgId::DEFAULT,
        name: "seo-all".into(),
        version: version.into(),
        description: "SEO tools".into(),
        sha256: format!("hash-{version}"),
        files: vec![file("plugin.yaml", b"name: seo-all\n"), file("tools/run.sh", version.as_bytes())],
        now,
    };
    let first = store.put_plugin(new("1.0.0", t(1))).await.unwrap();
    assert_eq!(first.version, "1.0.0");
    assert_eq!(first.files.len(), 2);
    let second = store.put_plugin(new("1.1.0", t(2))).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(store.get_plugin(OrgId::DEFAULT, "seo-all").await.unwrap().sha256, "hash-1.1.0");
    assert_eq!(store.list_plugins(None, None, 100).await.unwrap().len(), 1);
    assert!(matches!(store.get_plugin(OrgId::DEFAULT, "missing").await, Err(StoreError::NotFound("plugin"))));
    let mut uses = template("uses-plugin", vec![file("config.yaml", b"name: x\n")], t(3));
    uses.plugins = vec!["seo-all".into(), "not-pushed".into()];
    store.put_template(uses).await.unwrap();
    let desired = store.desired_state(OrgId::DEFAULT, "uses-plugin").await.unwrap().unwrap();
    assert_eq!(
        desired.plugins,
        [
            DesiredPlugin::stored("seo-all", "1.1.0", "hash-1.1.0"),
            DesiredPlugin { name: "not-pushed".into(), stored: None }
        ],
        "in declaration order; a plugin the registry does not hold has nothing stored"
    );
    let mut bare = template("bare", vec![file("config.yaml", b"name: y\n")], t(4));
    bare.plugins = vec![];
    store.put_template(bare).await.unwrap();
    assert!(store.desired_state(OrgId::DEFAULT, "bare").await.unwrap().unwrap().plugins.is_empty());
}

/// Plugin `seo-all` 1.0 (hash `h-seo`) and template `seo`, which declares it.
async fn seo_template_with_plugin(store: &S) {
    store
        .put_plugin(NewPlugin {
            org_id: OrgId::DEFAULT,
            name: "seo-all".into(),
            version: "1.0".into(),
            description: String::new(),
            sha256: "h-seo".into(),
            files: vec![file("plugin.yaml", b"name: seo-all\nversion: 1.0\n")],
            now: t(0),
        })
        .await
        .unwrap();
    let tpl = template("seo", vec![file("config.yaml", b"name: seo\n")], t(0));
    assert_eq!(tpl.plugins, ["seo-all"]);
    store.put_template(tpl).await.unwrap();
}

pub async fn plugins_page_by_name_each_with_its_own_files(store: S) {
    for name in ["charlie", "alpha", "bravo"] {
        let files = vec![file("plugin.yaml", format!("name: {name}\n").as_bytes()), file(&format!("{name}.md"), b"x")];
        let new = NewPlugin {
            org_id: OrgId::DEFAULT,
            name: name.into(),
            version: "1.0".into(),
            description: String::new(),
            sha256: format!("h-{name}"),
            files,
            now: t(0),
        };
        store.put_plugin(new).await.unwrap();
    }
    let named = |page: &[crate::Plugin]| -> Vec<(String, Vec<String>)> {
        page.iter().map(|p| (p.name.clone(), p.files.iter().map(|f| f.path.clone()).collect())).collect()
    };
    let first = store.list_plugins(Some(OrgId::DEFAULT), None, 2).await.unwrap();
    assert_eq!(
        named(&first),
        [
            ("alpha".to_owned(), vec!["alpha.md".to_owned(), "plugin.yaml".to_owned()]),
            ("bravo".to_owned(), vec!["bravo.md".to_owned(), "plugin.yaml".to_owned()]),
        ]
    );
    let rest = store.list_plugins(Some(OrgId::DEFAULT), Some(first[1].id), 2).await.unwrap();
    assert_eq!(named(&rest), [("charlie".to_owned(), vec!["charlie.md".to_owned(), "plugin.yaml".to_owned()])]);
    assert!(store.list_plugins(Some(OrgId::DEFAULT), Some(rest[0].id), 2).await.unwrap().is_empty());
    assert_eq!(store.list_plugins(None, None, 100).await.unwrap().len(), 3, "every org");
    assert!(store.list_plugins(Some(OrgId::new_random()), None, 100).await.unwrap().is_empty(), "another org's");
}

fn desired() -> DesiredState {
    DesiredState {
        assets_digest: Some("sha256:assets".into()),
        plugins: vec![DesiredPlugin::stored("seo-all", "1.2.0", "h1")],
    }
}

fn reporting(report: Report) -> Input {
    let mut hb = Heartbeat::validate(RawHeartbeat { report, ..Default::default() }).unwrap();
    hb.desired = Some(desired());
    Input::Heartbeat(hb)
}

pub async fn heartbeats_converge_to_the_desired_state_level_triggered(store: S) {
    let id = create(&*store, "w").await;
    let nothing = store.apply(id, reporting(Report::default()), t(1)).await.unwrap();
    let conditions = &nothing.workspace.conditions;
    assert_eq!(conditions.len(), 2);
    assert!(conditions.iter().all(|c| c.status == ConditionStatus::False), "{conditions:?}");
    let holding = Report {
        assets_digest: Some("sha256:assets".into()),
        installed: Some(vec![("seo-all".into(), Some("h1".into()))]),
        failures: vec![],
        program: None,
    };
    let converged = store.apply(id, reporting(holding.clone()), t(2)).await.unwrap();
    assert!(converged.workspace.conditions.iter().all(|c| c.status == ConditionStatus::True));
    let kinds: Vec<EventKind> = converged.events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::AssetsDelivered) && kinds.contains(&EventKind::PluginInstalled), "{kinds:?}");
    let stored = store.get_workspace(id).await.unwrap();
    assert_eq!(stored.installed_plugins.len(), 1);
    assert_eq!(stored.reported_assets_digest.as_deref(), Some("sha256:assets"));
    assert_eq!(stored.conditions, converged.workspace.conditions, "conditions are durable");
    // Steady state: nothing new.
    assert!(store.apply(id, reporting(holding.clone()), t(3)).await.unwrap().events.is_empty());
    // The plugin goes missing on disk, with a failure to reinstall: the condition says why.
    let lost = Report {
        assets_digest: Some("sha256:assets".into()),
        installed: Some(vec![]),
        failures: vec![PluginFailure { name: "seo-all".into(), error: "sha256 mismatch".into() }],
        program: None,
    };
    let failed = store.apply(id, reporting(lost), t(4)).await.unwrap();
    let plugins = failed.workspace.conditions.iter().find(|c| c.kind == ConditionType::PluginsInstalled).unwrap();
    assert_eq!(plugins.reason, ConditionReason::InstallFailed);
    assert!(plugins.message.contains("sha256 mismatch"));
    assert_eq!(failed.workspace.status, WorkspaceStatus::Online, "no status change");
    let back = store.apply(id, reporting(holding.clone()), t(5)).await.unwrap();
    assert!(back.events.iter().any(|e| e.kind == EventKind::PluginInstalled));
    // A runtime that runs the template's program: the program's exit is a
    // stored condition, kept by an install report that says nothing of it.
    let program =
        ProgramReport { state: ProgramState::Exited, exit_code: Some(3), signal: None, restarts: 4, oom_killed: false };
    let crashed = Report { program: Some(Box::new(program)), ..holding };
    store.apply(id, reporting(crashed), t(6)).await.unwrap();
    let input =
        Input::RecordInstall { name: "seo-all".into(), sha256: Some("h1".into()), desired: Some(desired()), by: None };
    store.apply(id, input, t(7)).await.unwrap();
    let stored = store.get_workspace(id).await.unwrap();
    let agent = stored.conditions.iter().find(|c| c.kind == ConditionType::AgentRunning).expect("AgentRunning");
    assert_eq!((agent.reason, agent.message.as_str()), (ConditionReason::Exited, "exit 3, restarted 4 times"));
}

pub async fn install_reports_update_the_observed_plugins(store: S) {
    let id = create(&*store, "w").await;
    let input =
        Input::RecordInstall { name: "seo-all".into(), sha256: Some("h1".into()), desired: Some(desired()), by: None };
    let applied = store.apply(id, input, t(1)).await.unwrap();
    assert_eq!(applied.workspace.installed_plugins[0].name, "seo-all");
    assert_eq!(applied.workspace.status, WorkspaceStatus::Provisioning, "an install report is not a heartbeat");
    assert!(applied.events.iter().any(|e| e.kind == EventKind::PluginInstalled));
    store.delete_workspace(id, hearth_core::By::ADMIN, t(2)).await.unwrap();
    let input = Input::RecordInstall { name: "x".into(), sha256: None, desired: None, by: None };
    assert!(matches!(store.apply(id, input, t(3)).await, Err(StoreError::Rejected(Rejection::Removed))));
}

pub async fn operator_plugins_are_stored_and_survive_heartbeats(store: S) {
    let id = create(&*store, "w").await;
    let set = store.set_operator_plugins(id, vec!["extra".into()], t(1)).await.unwrap();
    assert_eq!(set.operator_plugins, ["extra"]);
    // A heartbeat rewrites the row's other columns and must not lose them.
    store.apply(id, heartbeat(0.0), t(2)).await.unwrap();
    assert_eq!(store.get_workspace(id).await.unwrap().operator_plugins, ["extra"]);
    store.set_operator_plugins(id, vec![], t(3)).await.unwrap();
    assert!(store.get_workspace(id).await.unwrap().operator_plugins.is_empty());
    store.delete_workspace(id, hearth_core::By::ADMIN, t(4)).await.unwrap();
    let gone = store.set_operator_plugins(id, vec!["x".into()], t(5)).await;
    assert!(matches!(gone, Err(StoreError::Rejected(Rejection::Removed))), "{gone:?}");
    let unknown = store.set_operator_plugins(WorkspaceId::new_random(), vec![], t(5)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))));
}

pub async fn desired_state_of_a_workspace_joins_template_and_operator_plugins(store: S) {
    let plugin = |name: &str, version: &str| NewPlugin {
        org_id: OrgId::DEFAULT,
        name: name.into(),
        version: version.into(),
        description: String::new(),
        sha256: format!("h-{name}"),
        files: vec![file("plugin.yaml", format!("name: {name}\n").as_bytes())],
        now: t(0),
    };
    store.put_plugin(plugin("seo-all", "1.0")).await.unwrap();
    store.put_plugin(plugin("extra", "2.0")).await.unwrap();
    let mut tpl = template("seo", vec![file("config.yaml", b"name: seo\n")], t(1));
    tpl.plugins = vec!["seo-all".into(), "ghost".into()];
    let tpl = store.put_template(tpl).await.unwrap();

    let bare = create(&*store, "bare").await;
    let none = store.desired_state_for_workspace(bare).await.unwrap();
    assert_eq!(none, hearth_core::reconcile::DesiredState::default(), "no template, no operator plugins");

    let mut new = NewWorkspace::named(OrgId::DEFAULT, "templated", t(2));
    new.template = Some("seo".into());
    let id = store.create_workspace(new, None).await.unwrap().id;
    store.set_operator_plugins(id, vec!["extra".into(), "seo-all".into()], t(3)).await.unwrap();
    let desired = store.desired_state_for_workspace(id).await.unwrap();
    assert_eq!(desired.assets_digest.as_deref(), Some(tpl.assets_digest.as_str()));
    assert_eq!(
        desired.plugins,
        [
            DesiredPlugin::stored("seo-all", "1.0", "h-seo-all"),
            DesiredPlugin { name: "ghost".into(), stored: None },
            DesiredPlugin::stored("extra", "2.0", "h-extra"),
        ],
        "template plugins in order, then operator plugins, each once"
    );
    // Only operator plugins, no template.
    store.set_operator_plugins(bare, vec!["extra".into()], t(4)).await.unwrap();
    let only = store.desired_state_for_workspace(bare).await.unwrap();
    assert_eq!(only.assets_digest, None);
    assert_eq!(only.plugins.len(), 1);
    assert!(matches!(
        store.desired_state_for_workspace(WorkspaceId::new_random()).await,
        Err(StoreError::NotFound("workspace"))
    ));

    // Many at once: each exactly as read alone; an unknown id is left out.
    let unknown = WorkspaceId::new_random();
    let plain = create(&*store, "plain").await;
    let many = store.desired_states_for_workspaces(&[id, bare, unknown, plain]).await.unwrap();
    assert_eq!(many.len(), 3, "{many:?}");
    for one in [id, bare, plain] {
        assert_eq!(many[&one], store.desired_state_for_workspace(one).await.unwrap());
    }
    assert_eq!(many[&plain], hearth_core::reconcile::DesiredState::default());
    assert!(store.desired_states_for_workspaces(&[]).await.unwrap().is_empty());
}

pub async fn workspaces_page_in_creation_order_with_their_desired_state(store: S) {
    seo_template_with_plugin(&store).await;
    let mut ids = Vec::new();
    for i in 0..7_i64 {
        let mut new = NewWorkspace::named(OrgId::DEFAULT, &format!("w{i}"), t(i));
        new.template = (i % 2 == 0).then(|| "seo".to_owned());
        // Two in the same instant: the id breaks the tie.
        if i == 5 {
            new.now = t(4);
        }
        ids.push(store.create_workspace(new, None).await.unwrap().id);
    }
    store.set_operator_plugins(ids[1], vec!["ghost".into(), "seo-all".into()], t(10)).await.unwrap();
    store.delete_workspace(ids[6], hearth_core::By::ADMIN, t(11)).await.unwrap();

    let walk = |org: Option<OrgId>, include_removed: bool| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_workspaces_page(crate::WorkspacePage { org, include_removed, after, limit: 2 })
                    .await
                    .unwrap();
                assert!(page.len() <= 2);
                let Some((last, _)) = page.last() else { break };
                after = Some(crate::WorkspaceCursor::of(last));
                seen.extend(page);
            }
            seen
        }
    };
    let all = walk(None, true).await;
    let expected = store.list_workspaces(None, true).await.unwrap();
    assert_eq!(all.iter().map(|(w, _)| w.id).collect::<Vec<_>>(), expected.iter().map(|w| w.id).collect::<Vec<_>>());
    assert_eq!(all.len(), 7, "every workspace once, across pages");
    for (workspace, desired) in &all {
        let one = store.desired_state_for_workspace(workspace.id).await.unwrap();
        assert_eq!(desired, &one, "the page's desired state of {} is the single query's", workspace.name);
    }
    let live = walk(Some(OrgId::DEFAULT), false).await;
    let names: Vec<&str> = live.iter().map(|(w, _)| w.name.as_str()).collect();
    let expected_live = store.list_workspaces(Some(OrgId::DEFAULT), false).await.unwrap();
    assert_eq!(
        live.iter().map(|(w, _)| w.id).collect::<Vec<_>>(),
        expected_live.iter().map(|w| w.id).collect::<Vec<_>>(),
        "the same order as the unpaged list"
    );
    assert_eq!(names.len(), 6, "the removed one is not listed: {names:?}");
    assert!(!names.contains(&"w6"), "{names:?}");
    assert!(walk(Some(OrgId::new_random()), true).await.is_empty(), "another org's listing is empty");
    let cursor = crate::WorkspaceCursor::of(&all[2].0);
    assert_eq!(crate::WorkspaceCursor::parse(&cursor.encode().unwrap()), Some(cursor), "cursors survive their text");
    assert_eq!(crate::WorkspaceCursor::parse("nonsense"), None);
}

/// Every write under the row lock moves the version on, so that a liveness
/// write decided before it fails its guard.
pub async fn every_locked_write_bumps_the_row_version(store: S) {
    let id = create(&*store, "versioned").await;
    let created = store.get_workspace(id).await.unwrap();
    let online = store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
    assert!(online.workspace.version > created.version, "a transition bumps");
    assert_eq!(
        store.get_workspace(id).await.unwrap().version,
        online.workspace.version,
        "applied tells the stored version"
    );
    let steady = store.apply(id, heartbeat(0.0), t(2)).await.unwrap();
    assert!(steady.workspace.version > online.workspace.version, "a locked liveness write bumps too");
    let plugins = store.set_operator_plugins(id, vec!["x".into()], t(3)).await.unwrap();
    assert!(plugins.version > steady.workspace.version);
    store.update_agent_card(id, json!({"a": 1}), t(4)).await.unwrap();
    let carded = store.get_workspace(id).await.unwrap();
    assert!(carded.version > plugins.version);
    let paused = store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(5)).await.unwrap();
    assert!(paused.workspace.version > carded.version);
    store.delete_workspace(id, hearth_core::By::ADMIN, t(6)).await.unwrap();
    assert!(store.get_workspace(id).await.unwrap().version > paused.workspace.version);
}

/// The group-commit writer's statement writes exactly the locked path's
/// liveness columns (absent fields kept), only where the version still
/// matches, and leaves the version alone.
pub async fn liveness_batches_write_what_evolve_writes_where_the_guard_holds(store: S) {
    let a = create(&*store, "a").await;
    let b = create(&*store, "b").await;
    let stale = create(&*store, "stale").await;
    let first = RawHeartbeat {
        active_tasks: Some(2),
        current_task: Some("crawl".into()),
        uptime_seconds: Some(10),
        monthly_spend: Some(5.0),
        sample_error: Some("first".into()),
        ..Default::default()
    };
    for id in [a, b, stale] {
        store.apply(id, heartbeat_with(first.clone()), t(1)).await.unwrap();
    }
    let before_a = store.get_workspace(a).await.unwrap();
    let before_b = store.get_workspace(b).await.unwrap();
    let before_stale = store.get_workspace(stale).await.unwrap();
    // The stale one changes under the lock after its write was decided.
    store.apply(stale, Input::Pause(hearth_core::By::ADMIN), t(2)).await.unwrap();

    let full = Heartbeat::validate(RawHeartbeat {
        error_rate: Some(0.1),
        active_tasks: Some(0),
        current_task: Some("crawl".into()),
        uptime_seconds: Some(20),
        monthly_spend: Some(9.0),
        sample_error: Some("second".into()),
        runtime_state: Some("warming".into()),
        ..Default::default()
    })
    .unwrap();
    let sparse = Heartbeat::validate(RawHeartbeat { active_tasks: Some(0), ..Default::default() }).unwrap();
    let write_a = LivenessWrite::from_heartbeat(a, before_a.version, true, &full, t(3)).unwrap();
    let write_b = LivenessWrite::from_heartbeat(b, before_b.version, true, &sparse, t(3)).unwrap();
    let write_stale = LivenessWrite::from_heartbeat(stale, before_stale.version, true, &full, t(3)).unwrap();
    let mut written = store.write_liveness(&[write_a.clone(), write_stale, write_b.clone()]).await.unwrap();
    written.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(written, expected, "the stale row fails its guard");

    for (id, before, write) in [(a, before_a, write_a), (b, before_b, write_b)] {
        let mut want = before.clone();
        write.apply_to(&mut want);
        let got = store.get_workspace(id).await.unwrap();
        assert_eq!(got, want, "the batch writes what LivenessWrite::apply_to says");
        assert_eq!(got.version, before.version, "the batch does not bump the version");
    }
    let sparse_row = store.get_workspace(b).await.unwrap();
    assert_eq!(sparse_row.uptime_seconds, 10, "absent uptime is kept");
    assert_eq!(sparse_row.monthly_spend, 5, "absent spend is kept");
    assert_eq!(sparse_row.last_sample_error.as_deref(), Some("first"), "absent sample error is kept");
    assert_eq!(sparse_row.current_task.as_deref(), Some("crawl"), "absent task is kept");
    assert_eq!(sparse_row.last_active_at, Some(t(3)), "busy by its stored task");
    let paused = store.get_workspace(stale).await.unwrap();
    assert_eq!(paused.status, WorkspaceStatus::Paused);
    assert_eq!(paused.last_heartbeat_at, Some(t(1)), "nothing written past a failed guard");
    assert!(store.write_liveness(&[]).await.unwrap().is_empty());
}

/// A batch larger than any engine's statement (SQLite writes up to 32 rows
/// per statement; 95 rows take every one of its shapes: 32, 32, 16, 8, 4,
/// 2, 1) writes each row whose guard holds, wherever it falls, and nothing
/// else.
pub async fn a_large_liveness_batch_writes_every_row_whose_guard_holds(store: S) {
    let mut ids = Vec::new();
    for i in 0..95 {
        let id = create(&*store, &format!("w{i}")).await;
        store
            .apply(id, heartbeat_with(RawHeartbeat { active_tasks: Some(0), ..Default::default() }), t(1))
            .await
            .unwrap();
        ids.push(id);
    }
    let mut writes = Vec::new();
    let mut expected = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let row = store.get_workspace(id).await.unwrap();
        let hb = Heartbeat::validate(RawHeartbeat {
            active_tasks: Some(i as i64 % 3),
            uptime_seconds: Some(100 + i as i64),
            ..Default::default()
        })
        .unwrap();
        writes.push(LivenessWrite::from_heartbeat(id, row.version, false, &hb, t(5)).unwrap());
        if i % 7 == 3 {
            // Changed under the lock after its write was decided.
            store.apply(id, Input::Pause(hearth_core::By::ADMIN), t(2)).await.unwrap();
        } else {
            expected.push(id);
        }
    }
    let mut written = store.write_liveness(&writes).await.unwrap();
    written.sort();
    expected.sort();
    assert_eq!(written, expected, "every row whose guard holds, and only those");
    for (i, &id) in ids.iter().enumerate() {
        let row = store.get_workspace(id).await.unwrap();
        if i % 7 == 3 {
            assert_eq!((row.status, row.last_heartbeat_at), (WorkspaceStatus::Paused, Some(t(1))), "row {i}");
        } else {
            assert_eq!((row.last_heartbeat_at, row.uptime_seconds), (Some(t(5)), 100 + i as i64), "row {i}");
            assert_eq!(row.active_tasks, i as i64 % 3, "row {i}");
        }
    }
}

/// A sweep batch moves every due workspace, with its event, in one call; a
/// second batch (another replica's) finds nothing left.
pub async fn a_sweep_batch_transitions_every_due_workspace_once(store: S) {
    let mut silent = Vec::new();
    for i in 0..5 {
        let id = create(&*store, &format!("silent-{i}")).await;
        store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
        silent.push(id);
    }
    let fresh = create(&*store, "fresh").await;
    store.apply(fresh, heartbeat(0.0), t(95)).await.unwrap();
    let stuck = create(&*store, "stuck").await;
    let applied =
        store.sweep(Sweep::Liveness, Duration::seconds(90), t(100), 3, SweepContext::default()).await.unwrap();
    assert_eq!(applied.len(), 3, "at most the limit");
    let rest = store.sweep(Sweep::Liveness, Duration::seconds(90), t(100), 100, SweepContext::default()).await.unwrap();
    assert_eq!(rest.len(), 2, "the rest, once");
    assert!(store
        .sweep(Sweep::Liveness, Duration::seconds(90), t(100), 100, SweepContext::default())
        .await
        .unwrap()
        .is_empty());
    for one in applied.iter().chain(&rest) {
        assert_eq!(one.previous, WorkspaceStatus::Online);
        assert_eq!(one.workspace.status, WorkspaceStatus::Offline);
        assert_eq!(one.events.len(), 1);
        assert_eq!(one.events[0].kind, EventKind::WorkspaceOffline);
        assert_eq!(store.get_workspace(one.workspace.id).await.unwrap().status, WorkspaceStatus::Offline);
    }
    assert_eq!(store.get_workspace(fresh).await.unwrap().status, WorkspaceStatus::Online);
    let timed_out = store
        .sweep(Sweep::ProvisionTimeout, Duration::seconds(600), t(1000), 100, SweepContext::default())
        .await
        .unwrap();
    assert_eq!(timed_out.iter().map(|a| a.workspace.id).collect::<Vec<_>>(), vec![stuck]);
    assert_eq!(timed_out[0].workspace.status, WorkspaceStatus::Failed);
}

/// The two-step liveness sweep: the due ids read without locks, oldest
/// first, up to a limit; swept by id, each re-decided on its locked row: one
/// heard since it was read stays online, one already offline is not swept
/// twice (another replica's batch), an unknown id is ignored.
pub async fn the_due_are_read_oldest_first_and_swept_by_id_each_once(store: S) {
    let mut silent = Vec::new();
    for i in 0..4 {
        let id = create(&*store, &format!("silent-{i}")).await;
        store.apply(id, heartbeat(0.0), t(4 - i)).await.unwrap();
        silent.push(id);
    }
    let fresh = create(&*store, "fresh").await;
    store.apply(fresh, heartbeat(0.0), t(95)).await.unwrap();
    create(&*store, "provisioning").await;
    let ttl = Duration::seconds(90);
    let cutoff = t(100) - ttl;
    let oldest_first: Vec<WorkspaceId> = silent.iter().rev().copied().collect();
    assert_eq!(store.liveness_due(cutoff, 100).await.unwrap(), oldest_first);
    assert_eq!(store.liveness_due(cutoff, 2).await.unwrap(), oldest_first[..2]);

    // silent-0 is heard after it was read; silent-1 goes offline in
    // another replica's batch first.
    let due = store.liveness_due(cutoff, 100).await.unwrap();
    store.apply(silent[0], heartbeat(0.0), t(99)).await.unwrap();
    let other = store.sweep_these(Sweep::Liveness, &[silent[1]], ttl, t(100), SweepContext::default()).await.unwrap();
    assert_eq!(other.len(), 1);
    let mut asked = due.clone();
    asked.extend([fresh, WorkspaceId::new_random()]);
    let swept = store.sweep_these(Sweep::Liveness, &asked, ttl, t(100), SweepContext::default()).await.unwrap();
    let mut ids: Vec<WorkspaceId> = swept.iter().map(|a| a.workspace.id).collect();
    ids.sort();
    let mut expected = vec![silent[2], silent[3]];
    expected.sort();
    assert_eq!(ids, expected, "the due ones not heard nor swept since they were read");
    for one in &swept {
        assert_eq!((one.previous, one.workspace.status), (WorkspaceStatus::Online, WorkspaceStatus::Offline));
        assert_eq!(one.events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::WorkspaceOffline]);
    }
    for (id, status) in [(silent[0], WorkspaceStatus::Online), (fresh, WorkspaceStatus::Online)] {
        assert_eq!(store.get_workspace(id).await.unwrap().status, status);
    }
    assert!(store.liveness_due(cutoff, 100).await.unwrap().is_empty());
    assert!(store.sweep_these(Sweep::Liveness, &[], ttl, t(100), SweepContext::default()).await.unwrap().is_empty());
}

pub async fn filtered_pages_keep_only_matches_and_counts_group_by_status(store: S) {
    seo_template_with_plugin(&store).await;
    let mut ids = Vec::new();
    for i in 0..9_i64 {
        let org = OrgId::DEFAULT;
        let name = if i % 3 == 0 { format!("Alpha-{i}") } else { format!("beta-{i}") };
        let mut new = NewWorkspace::named(org, &name, t(i));
        new.template = (i % 2 == 0).then(|| "seo".to_owned());
        ids.push(store.create_workspace(new, None).await.unwrap().id);
    }
    store.apply(ids[1], register(), t(20)).await.unwrap();
    store.apply(ids[1], heartbeat(0.0), t(21)).await.unwrap();
    store.apply(ids[3], register(), t(20)).await.unwrap();
    store.apply(ids[3], heartbeat(0.0), t(21)).await.unwrap();
    store.set_operator_plugins(ids[5], vec!["seo-all".into()], t(22)).await.unwrap();
    store.delete_workspace(ids[7], hearth_core::By::ADMIN, t(23)).await.unwrap();

    let walk = |org: Option<OrgId>, include_removed: bool, filter: crate::WorkspaceFilter| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_workspaces_filtered(crate::WorkspacePage { org, include_removed, after, limit: 2 }, &filter)
                    .await
                    .unwrap();
                assert!(page.len() <= 2);
                let Some((last, _)) = page.last() else { break };
                after = Some(crate::WorkspaceCursor::of(last));
                seen.extend(page);
            }
            seen
        }
    };
    let names =
        |rows: &[(crate::Workspace, DesiredState)]| rows.iter().map(|(w, _)| w.name.clone()).collect::<Vec<_>>();
    let online =
        walk(None, false, crate::WorkspaceFilter { status: Some(WorkspaceStatus::Online), ..Default::default() }).await;
    assert_eq!(names(&online), ["beta-1", "Alpha-3"]);
    let alpha =
        walk(None, false, crate::WorkspaceFilter { name_contains: Some("aLPh".into()), ..Default::default() }).await;
    assert_eq!(names(&alpha), ["Alpha-0", "Alpha-3", "Alpha-6"], "case-insensitive substring, paged");
    let literal =
        walk(None, false, crate::WorkspaceFilter { name_contains: Some("%".into()), ..Default::default() }).await;
    assert!(literal.is_empty(), "a wildcard is a plain character: {:?}", names(&literal));
    let from_seo = walk(
        Some(OrgId::DEFAULT),
        false,
        crate::WorkspaceFilter { template: Some("seo".into()), ..Default::default() },
    )
    .await;
    assert_eq!(names(&from_seo), ["Alpha-0", "beta-2", "beta-4", "Alpha-6", "beta-8"], "org scope, template");
    let elsewhere = walk(
        Some(OrgId::new_random()),
        true,
        crate::WorkspaceFilter { template: Some("seo".into()), ..Default::default() },
    )
    .await;
    assert!(elsewhere.is_empty(), "another org's filtered listing is empty");
    let with_plugin = walk(
        Some(OrgId::DEFAULT),
        true,
        crate::WorkspaceFilter { plugin: Some("seo-all".into()), ..Default::default() },
    )
    .await;
    assert_eq!(
        names(&with_plugin),
        ["Alpha-0", "beta-2", "beta-4", "beta-5", "Alpha-6", "beta-8"],
        "declared or added"
    );
    for (workspace, desired) in &with_plugin {
        let one = store.desired_state_for_workspace(workspace.id).await.unwrap();
        assert_eq!(desired, &one, "the page's desired state of {} is the single query's", workspace.name);
    }
    let both = walk(
        None,
        true,
        crate::WorkspaceFilter {
            status: Some(WorkspaceStatus::Removed),
            name_contains: Some("beta".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&both), ["beta-7"]);
    let none = walk(None, true, crate::WorkspaceFilter::default()).await;
    assert_eq!(none.len(), 9, "no filter: every workspace");

    let mut counts = store.count_workspaces_by_status(Some(OrgId::DEFAULT)).await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(
        counts,
        vec![(WorkspaceStatus::Online, 2), (WorkspaceStatus::Provisioning, 6), (WorkspaceStatus::Removed, 1)]
    );
    let all: i64 = store.count_workspaces_by_status(None).await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(all, 9);
    assert!(store.count_workspaces_by_status(Some(OrgId::new_random())).await.unwrap().is_empty());
}

pub async fn bulk_creation_writes_every_workspace_token_and_event_or_nothing(store: S) {
    let batch: Vec<(NewWorkspace, Option<NewToken>)> = (0..50)
        .map(|n| {
            let new = NewWorkspace::named(OrgId::DEFAULT, &format!("bulk-{n}"), t(n));
            let secret = format!("bulk-secret-{n}");
            let token = (n % 2 == 0).then(|| token(Some(new.id), &secret));
            (new, token)
        })
        .collect();
    let created = store.create_workspaces(batch.clone()).await.unwrap();
    assert_eq!(created.len(), 50);
    for ((new, token), row) in batch.iter().zip(&created) {
        assert_eq!((row.id, row.name.as_str(), row.status), (new.id, new.name.as_str(), WorkspaceStatus::Provisioning));
        assert_eq!(row.created_at, new.now);
        let found = match token {
            Some(token) => store.find_token_by_hash(&token.hash, t(100)).await.unwrap().map(|found| found.workspace_id),
            None => None,
        };
        assert_eq!(found, token.as_ref().map(|_| Some(new.id)));
        let kinds: Vec<EventKind> = store
            .list_events(EventQuery { workspace: Some(new.id), ..EventQuery::after(0) })
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(kinds, vec![EventKind::WorkspaceProvisioning], "{}", new.name);
    }
    let events = store.list_events(EventQuery::after(0)).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<i64>>(), "one event each, gap-free");

    // One bad row (an id already taken) and none of the batch is written.
    let fresh = NewWorkspace::named(OrgId::DEFAULT, "fresh", t(60));
    let mut taken = NewWorkspace::named(OrgId::DEFAULT, "again", t(60));
    taken.id = batch[7].0.id;
    let refused =
        store.create_workspaces(vec![(fresh.clone(), Some(token(Some(fresh.id), "fresh"))), (taken, None)]).await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })), "{refused:?}");
    assert!(matches!(store.get_workspace(fresh.id).await, Err(StoreError::NotFound(_))), "nothing half-written");
    assert_eq!(store.find_token_by_hash(b"fresh", t(100)).await.unwrap().map(|found| found.id), None);
    assert_eq!(store.last_event_seq().await.unwrap(), 50, "no event of the refused batch");
    assert_eq!(store.count_workspaces().await.unwrap(), 50);
}

pub async fn a_batch_of_inputs_does_what_applying_them_one_by_one_does(store: S) {
    // Twins: the same inputs, one by one on the first set, in one batch on
    // the second; both must end the same, input by input.
    let names = ["a", "b", "c"];
    let mut one_by_one = Vec::new();
    let mut batched = Vec::new();
    for name in names {
        one_by_one.push(create(&*store, &format!("{name}-1")).await);
        batched.push(create(&*store, &format!("{name}-2")).await);
    }
    let unknown = WorkspaceId::new_random();
    let script: Vec<(Option<usize>, Input, DateTime<Utc>)> = vec![
        (Some(1), heartbeat(0.0), t(1)),
        (Some(0), heartbeat(0.0), t(1)),
        (Some(1), Input::Pause(hearth_core::By::ADMIN), t(2)),
        (Some(2), Input::Hibernate(hearth_core::By::ADMIN), t(1)), // refused: provisioning
        (None, heartbeat(0.0), t(1)),                              // no such workspace
        (Some(1), Input::Pause(hearth_core::By::ADMIN), t(3)),     // refused: already paused
        (Some(1), heartbeat(0.0), t(4)),                           // stays paused
        (Some(0), heartbeat(0.9), t(5)),                           // degraded
    ];
    let pick = |set: &[WorkspaceId], which: Option<usize>| which.map_or(unknown, |i| set[i]);
    let mut expected = Vec::new();
    for (which, input, now) in &script {
        expected.push(store.apply(pick(&one_by_one, *which), input.clone(), *now).await);
    }
    let seq_before = store.last_event_seq().await.unwrap();
    let batch = script.iter().map(|(which, input, now)| (pick(&batched, *which), input.clone(), *now)).collect();
    let outcomes = store.apply_batch(batch).await.unwrap();
    assert_eq!(outcomes.len(), script.len());
    let mut seqs = Vec::new();
    for (index, (want, got)) in expected.iter().zip(&outcomes).enumerate() {
        match (want, got) {
            (Ok(want), Ok(got)) => {
                assert_eq!(
                    (want.previous, want.workspace.status),
                    (got.previous, got.workspace.status),
                    "input {index}"
                );
                assert_eq!(want.workspace.version, got.workspace.version, "input {index}");
                let kinds = |a: &crate::Applied| -> Vec<(EventKind, serde_json::Value)> {
                    a.events.iter().map(|e| (e.kind, e.payload.clone())).collect()
                };
                assert_eq!(kinds(want), kinds(got), "input {index}");
                assert!(got.events.iter().all(|e| e.workspace_id == Some(got.workspace.id)), "input {index}");
                seqs.extend(got.events.iter().map(|e| e.seq));
            }
            (Err(want), Err(got)) => assert_eq!(want.to_string(), got.to_string(), "input {index}"),
            (want, got) => panic!("input {index}: one by one {want:?}, batched {got:?}"),
        }
    }
    seqs.sort_unstable();
    let last = store.last_event_seq().await.unwrap();
    assert_eq!(seqs, (seq_before + 1..=last).collect::<Vec<_>>(), "the batch's events, gap-free");
    for (twin, id) in one_by_one.iter().zip(&batched) {
        let (want, got) = (store.get_workspace(*twin).await.unwrap(), store.get_workspace(*id).await.unwrap());
        assert_eq!((want.status, want.version, want.last_error_rate), (got.status, got.version, got.last_error_rate));
    }
}

/// The inputs of the test below, each changing other column groups.
fn inputs_by_groups() -> Vec<(Input, &'static str)> {
    let report = RawHeartbeat {
        active_tasks: Some(1),
        current_task: Some("crawl".into()),
        runtime_metadata: Some(json!({"python": "3.12"})),
        ..Default::default()
    };
    vec![
        (register(), "register: lifecycle and runtime"),
        (heartbeat_with(report.clone()), "a report: liveness, runtime and delivery"),
        (heartbeat(0.0), "a plain heartbeat: liveness only"),
        (Input::Pause(hearth_core::By::ADMIN), "pause: lifecycle only"),
        (heartbeat_with(report), "a heartbeat while paused"),
        (Input::Resume(hearth_core::By::ADMIN), "resume"),
        (heartbeat(0.9), "a failing heartbeat: lifecycle and liveness"),
    ]
}

/// A batch writes each changed row once, however many of its inputs
/// changed it (on Postgres all rows in one statement): what is stored is
/// the last outcome of each workspace, JSON groups included, and each
/// outcome has a version of its own.
pub async fn a_batch_stores_what_evolve_decided_whichever_groups_change(store: S) {
    let inputs = inputs_by_groups();
    // Every input for one workspace, in one batch.
    let chained = create(&*store, "chained").await;
    let batch = inputs.iter().enumerate().map(|(n, (input, _))| (chained, input.clone(), t(n as i64 + 1))).collect();
    let outcomes = store.apply_batch(batch).await.unwrap();
    let applied: Vec<&crate::Applied> = outcomes.iter().map(|outcome| outcome.as_ref().unwrap()).collect();
    let stored = store.get_workspace(chained).await.unwrap();
    assert_eq!(&stored, &applied.last().unwrap().workspace, "the row is the last outcome");
    let versions: Vec<i64> = applied.iter().map(|a| a.workspace.version).collect();
    assert!(versions.windows(2).all(|pair| pair[1] == pair[0] + 1), "a version per outcome: {versions:?}");
    // One workspace per input, each brought to that input's turn one by
    // one, then every last input in one batch.
    let mut ids = Vec::new();
    for (n, _) in inputs.iter().enumerate() {
        let id = create(&*store, &format!("groups-{n}")).await;
        for (k, (input, _)) in inputs.iter().take(n).enumerate() {
            store.apply(id, input.clone(), t(k as i64 + 1)).await.unwrap();
        }
        ids.push(id);
    }
    let batch = ids.iter().zip(&inputs).enumerate().map(|(n, (id, (input, _)))| (*id, input.clone(), t(n as i64 + 1)));
    let outcomes = store.apply_batch(batch.collect()).await.unwrap();
    for ((id, (_, what)), outcome) in ids.iter().zip(&inputs).zip(outcomes) {
        let applied = outcome.unwrap();
        assert_eq!(store.get_workspace(*id).await.unwrap(), applied.workspace, "{what}");
    }
    let stored = store.get_workspace(ids[ids.len() - 1]).await.unwrap();
    assert_eq!(stored.agent_card, Some(json!({"name": "agent"})), "the card survives a batch's multi-group writes");
}

/// Inputs change one column group or several at once, all written by one
/// statement with a flag per group: either way the stored row is exactly
/// the row `apply` returns (what `evolve` decided), and groups that did not
/// change keep their values, JSON included.
pub async fn what_is_stored_is_what_evolve_decided_whichever_groups_change(store: S) {
    let id = create(&*store, "groups").await;
    for (n, (input, what)) in inputs_by_groups().into_iter().enumerate() {
        let applied = store.apply(id, input, t(n as i64 + 1)).await.unwrap();
        let stored = store.get_workspace(id).await.unwrap();
        assert_eq!(stored, applied.workspace, "{what}");
    }
    let stored = store.get_workspace(id).await.unwrap();
    assert_eq!(stored.agent_card, Some(json!({"name": "agent"})), "the card survives later multi-group writes");
}

/// The agent card's event carries its digest and the keys that changed,
/// never the card itself; an unchanged card writes nothing at all.
pub async fn agent_card_events_are_small_and_only_for_a_change(store: S) {
    let id = create(&*store, "carded").await;
    let notes = "n".repeat(60_000);
    let card = json!({"name": "seo", "skills": ["audit"], "notes": notes});
    let first = store.update_agent_card(id, card.clone(), t(1)).await.unwrap().expect("a first card is a change");
    assert_eq!(first.kind, EventKind::AgentCardUpdated);
    assert_eq!(
        first.payload,
        json!({
            "sha256": hearth_core::agent_card::sha256(&card),
            "bytes": hearth_core::event::json_len(&card),
            "changed_keys": ["name", "notes", "skills"],
            "actor": {"kind": "runtime"},
        })
    );
    let version = store.get_workspace(id).await.unwrap().version;
    assert_eq!(store.update_agent_card(id, card.clone(), t(2)).await.unwrap(), None, "the same card again");
    assert_eq!(store.get_workspace(id).await.unwrap().version, version, "nothing written");
    let changed = json!({"name": "seo", "skills": ["audit", "crawl"], "notes": notes});
    let second = store.update_agent_card(id, changed.clone(), t(3)).await.unwrap().expect("a changed card");
    assert_eq!(second.payload["changed_keys"], json!(["skills"]));
    assert_eq!(store.get_workspace(id).await.unwrap().agent_card, Some(changed), "the card itself is stored");
    let kinds: Vec<EventKind> = events_of(&*store, id).await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, [EventKind::WorkspaceProvisioning, EventKind::AgentCardUpdated, EventKind::AgentCardUpdated]);
    let log: usize = events_of(&*store, id).await.iter().map(|(_, payload)| payload.to_string().len()).sum();
    assert!(log < 1000, "three events of a 60 KB card take {log} bytes of payload");
}

/// A runtime's longest texts reach the row and the event log cut to their
/// kept length, and no payload is beyond the cap.
pub async fn no_event_payload_is_larger_than_the_cap(store: S) {
    use hearth_core::heartbeat::{MAX_TEXT_BYTES, MAX_TEXT_INPUT_BYTES};
    let id = create(&*store, "loud").await;
    store.apply(id, heartbeat(0.0), t(1)).await.unwrap();
    let degraded = store
        .apply(
            id,
            heartbeat_with(RawHeartbeat {
                error_rate: Some(0.9),
                runtime_state: Some("w".repeat(MAX_TEXT_INPUT_BYTES)),
                sample_error: Some("e".repeat(MAX_TEXT_INPUT_BYTES)),
                current_task: Some("t".repeat(MAX_TEXT_INPUT_BYTES)),
                ..Default::default()
            }),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(degraded.workspace.status, WorkspaceStatus::Degraded);
    let stored = store.get_workspace(id).await.unwrap();
    assert_eq!(stored.runtime_state.as_deref().map(str::len), Some(MAX_TEXT_BYTES));
    let events = events_of(&*store, id).await;
    let (_, payload) = events.iter().find(|(kind, _)| *kind == EventKind::WorkspaceDegraded).unwrap();
    assert_eq!(payload["runtime_state"].as_str().map(str::len), Some(MAX_TEXT_BYTES));
    for (kind, payload) in &events {
        let bytes = hearth_core::event::json_len(payload);
        assert!(bytes <= hearth_core::event::MAX_EVENT_PAYLOAD_BYTES, "{kind}: {bytes} bytes");
    }
}

/// Runs compaction steps at `now` until there is nothing more to do.
async fn compact_all(store: &dyn Store, retention: Retention, now: DateTime<Utc>) -> Compaction {
    let mut total = Compaction::default();
    for _ in 0..1000 {
        let step = store.compact_events(retention, now).await.unwrap();
        assert!(!step.busy, "no one else compacts here");
        total.by_age += step.by_age;
        total.by_count += step.by_count;
        total.superseded += step.superseded;
        total.compacted_through = step.compacted_through;
        if !step.more {
            return total;
        }
    }
    panic!("compaction never finished");
}

fn seqs_of(events: &[crate::Event], id: WorkspaceId) -> Vec<(i64, EventKind)> {
    events.iter().filter(|e| e.workspace_id == Some(id)).map(|e| (e.seq, e.kind)).collect()
}

/// Retention by age removes old events, but never a workspace's latest
/// status event, which goes once a newer one exists; the watermark says how
/// far a reader may have missed events.
pub async fn retention_removes_old_events_but_each_workspaces_latest_status(store: S) {
    let a = create(&*store, "a").await; // seq 1: PROVISIONING at t(0)
    let b = create(&*store, "b").await; // seq 2
    store.apply(a, heartbeat(0.0), t(1)).await.unwrap(); // seq 3: ONLINE
    for i in 0..4 {
        let raw = RawHeartbeat { current_task: Some(format!("task {i}")), ..Default::default() };
        store.apply(a, heartbeat_with(raw), t(2 + i)).await.unwrap(); // seqs 4..=7: TASK_UPDATED
    }
    assert_eq!(store.compacted_through().await.unwrap(), 0, "nothing compacted yet");
    let retention = Retention { max_age: Duration::seconds(100), per_workspace: 1000, batch: 2 };
    // At t(50) nothing is old enough.
    let early = compact_all(&*store, retention, t(50)).await;
    assert_eq!((early.removed(), early.compacted_through), (0, 0));
    // At t(1000) everything is, in steps of two.
    let done = compact_all(&*store, retention, t(1000)).await;
    let events = store.list_events(EventQuery::after(0)).await.unwrap();
    assert_eq!(seqs_of(&events, a), [(3, EventKind::WorkspaceOnline)], "a keeps its latest status event");
    assert_eq!(seqs_of(&events, b), [(2, EventKind::WorkspaceProvisioning)], "b too");
    assert_eq!((done.by_age, done.compacted_through), (5, 7));
    let page = store.read_events(EventQuery::after(3)).await.unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.compacted_through, 7, "a reader at seq 3 may have missed events up to 7");
    // New events stay; a newer status event supersedes the kept one.
    let raw = RawHeartbeat { current_task: Some("fresh".into()), ..Default::default() };
    store.apply(a, heartbeat_with(raw), t(960)).await.unwrap(); // seq 8
    store.apply(a, Input::Pause(hearth_core::By::ADMIN), t(970)).await.unwrap(); // seq 9: PAUSED
    let later = compact_all(&*store, retention, t(1000)).await;
    assert_eq!((later.by_age, later.superseded), (0, 1));
    let events = store.list_events(EventQuery::after(0)).await.unwrap();
    assert_eq!(seqs_of(&events, a), [(8, EventKind::TaskUpdated), (9, EventKind::WorkspacePaused)]);
    assert_eq!(seqs_of(&events, b), [(2, EventKind::WorkspaceProvisioning)]);
    assert_eq!(later.compacted_through, 7, "the superseded event was below the watermark already");
}

/// Retention by count keeps a workspace's newest events (and its latest
/// status event) and leaves other workspaces alone.
pub async fn retention_keeps_a_workspaces_newest_events_beyond_its_share(store: S) {
    let a = create(&*store, "a").await; // seq 1
    let b = create(&*store, "b").await; // seq 2
    store.apply(a, heartbeat(0.0), t(1)).await.unwrap(); // seq 3: ONLINE
    store.apply(b, heartbeat(0.0), t(1)).await.unwrap(); // seq 4
    for i in 0..10 {
        let raw = RawHeartbeat { current_task: Some(format!("task {i}")), ..Default::default() };
        store.apply(a, heartbeat_with(raw), t(2 + i)).await.unwrap(); // seqs 5..=14
    }
    let raw = RawHeartbeat { current_task: Some("b's task".into()), ..Default::default() };
    store.apply(b, heartbeat_with(raw), t(20)).await.unwrap(); // seq 15
    let retention = Retention { max_age: Duration::days(365), per_workspace: 3, batch: 1000 };
    let done = compact_all(&*store, retention, t(100)).await;
    let events = store.list_events(EventQuery::after(0)).await.unwrap();
    let kept: Vec<i64> = seqs_of(&events, a).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(kept, [3, 12, 13, 14], "a: its latest status event and its newest three");
    let b_kept: Vec<i64> = seqs_of(&events, b).into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(b_kept, [2, 4, 15], "b holds three: untouched");
    assert_eq!((done.by_count, done.by_age, done.compacted_through), (8, 0, 11));
    // Compacting again finds nothing new.
    let again = compact_all(&*store, retention, t(100)).await;
    assert_eq!((again.removed(), again.compacted_through), (0, 11));
}

/// Creates `name` under `parent` at `t(at)` with `role`.
async fn create_under(store: &S, name: &str, role: &str, parent: Option<WorkspaceId>, at: i64) -> WorkspaceId {
    let mut new = NewWorkspace::named(OrgId::DEFAULT, name, t(at));
    new.parent_id = parent;
    new.role = Some(role.into());
    store.create_workspace(new, None).await.unwrap().id
}

/// Every page of `workspace`'s peers of at most `limit`, followed by cursor:
/// (group, name) in order.
async fn all_peers(
    store: &S,
    workspace: WorkspaceId,
    contains: Option<&str>,
    limit: i64,
) -> Vec<(crate::PeerGroup, String)> {
    let me = store.get_workspace(workspace).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = crate::PeersPage {
            org: me.org_id,
            workspace,
            parent: me.parent_id,
            after,
            name_or_role_contains: contains.map(str::to_owned),
            limit,
        };
        let rows = store.list_peers(&page).await.unwrap();
        assert!(rows.len() as i64 <= limit, "{} rows in a page of {limit}", rows.len());
        let Some((group, last)) = rows.last() else { break };
        after = Some(crate::PeerCursor::of(*group, last));
        let cursor = after.unwrap();
        assert_eq!(crate::PeerCursor::parse(&cursor.encode().unwrap()), Some(cursor), "cursors survive their text");
        seen.extend(rows.into_iter().map(|(group, w)| (group, w.name)));
    }
    seen
}

pub async fn peers_are_siblings_then_children_then_the_parent_page_by_page(store: S) {
    use crate::PeerGroup::{Children, Parent, Siblings};
    let root = create_under(&store, "root", "Lead", None, 0).await;
    let other_root = create_under(&store, "other-root", "lead", None, 1).await;
    let me = create_under(&store, "me", "worker", Some(root), 2).await;
    // Created out of name order, and two in the same instant (the id breaks the tie).
    let s2 = create_under(&store, "s2", "peer", Some(root), 5).await;
    let s1 = create_under(&store, "s1", "PEER", Some(root), 4).await;
    let s3 = create_under(&store, "s3", "other", Some(root), 5).await;
    create_under(&store, "k1", "kid", Some(me), 6).await;
    create_under(&store, "k2", "kid", Some(me), 7).await;
    create_under(&store, "cousin", "peer", Some(s1), 8).await;
    let gone = create_under(&store, "gone", "peer", Some(root), 9).await;
    store.delete_workspace(gone, hearth_core::By::ADMIN, t(10)).await.unwrap();
    let (first, second) = if s2.0 < s3.0 { ("s2", "s3") } else { ("s3", "s2") };
    let expected = vec![
        (Siblings, "s1".to_owned()),
        (Siblings, first.to_owned()),
        (Siblings, second.to_owned()),
        (Children, "k1".to_owned()),
        (Children, "k2".to_owned()),
        (Parent, "root".to_owned()),
    ];
    for limit in [1, 2, 3, 5, 6, 100] {
        assert_eq!(all_peers(&store, me, None, limit).await, expected, "pages of {limit}");
    }
    // The name or the role, ASCII case ignored, in every group.
    let peers = all_peers(&store, me, Some("pEeR"), 1).await;
    assert_eq!(peers, [(Siblings, "s1".to_owned()), (Siblings, "s2".to_owned())]);
    assert_eq!(all_peers(&store, me, Some("k2"), 1).await, [(Children, "k2".to_owned())]);
    assert_eq!(all_peers(&store, me, Some("LEAD"), 1).await, [(Parent, "root".to_owned())]);
    assert!(all_peers(&store, me, Some("nobody"), 10).await.is_empty());
    // A root's siblings are the other roots of its org; it has no parent.
    let root_peers = all_peers(&store, root, None, 2).await;
    let mut expected = vec![(Siblings, "other-root".to_owned())];
    expected.extend(["me", "s1", first, second].map(|name| (Children, name.to_owned())));
    assert_eq!(root_peers, expected);
    assert_eq!(all_peers(&store, other_root, None, 10).await, [(Siblings, "root".to_owned())]);
    // Another org's pages hold nothing of this one.
    let stranger = crate::PeersPage {
        org: OrgId::new_random(),
        workspace: WorkspaceId::new_random(),
        parent: None,
        after: None,
        name_or_role_contains: None,
        limit: 10,
    };
    assert!(store.list_peers(&stranger).await.unwrap().is_empty());
    assert_eq!(crate::PeerCursor::parse("nonsense"), None);
    assert_eq!(crate::PeerCursor::parse("x.1.00000000-0000-0000-0000-000000000000"), None);
}

pub async fn ancestry_is_found_up_the_parent_links_within_the_bound(store: S) {
    let mut chain = vec![create_under(&store, "g0", "r", None, 0).await];
    for i in 1..6 {
        let parent = chain.last().copied();
        chain.push(create_under(&store, &format!("g{i}"), "r", parent, i).await);
    }
    let aside = create_under(&store, "aside", "r", Some(chain[1]), 10).await;
    let related = |a: WorkspaceId, b: WorkspaceId, generations: i32| {
        let store = store.clone();
        async move { store.is_ancestor_or_descendant(a, b, generations).await.unwrap() }
    };
    for (a, b) in [(chain[0], chain[5]), (chain[5], chain[0]), (chain[2], chain[3]), (chain[1], aside)] {
        assert!(related(a, b, 1000).await, "either way round");
    }
    assert!(related(chain[4], chain[5], 1).await, "a parent is one level up");
    assert!(related(chain[0], chain[5], 5).await);
    assert!(!related(chain[0], chain[5], 4).await, "five levels apart, beyond a bound of 4");
    assert!(!related(chain[5], chain[0], 4).await);
    for (a, b) in [(aside, chain[2]), (chain[3], aside), (chain[2], chain[2]), (chain[0], WorkspaceId::new_random())] {
        assert!(!related(a, b, 1000).await, "not one line: {a} {b}");
    }
}

/// Orgs: the default one is there from the migration; a new one is
/// created by a name no other org has, listed by name, read by id, and
/// holds its own workspaces.
pub async fn orgs_are_created_by_a_unique_name_and_hold_their_own_workspaces(store: S) {
    let default = store.get_org(OrgId::DEFAULT).await.unwrap();
    assert_eq!(default.name, "default");
    let acme = store.create_org(OrgId::new_random(), "acme", t(1)).await.unwrap();
    assert_eq!(store.get_org(acme.id).await.unwrap(), acme);
    let again = store.create_org(OrgId::new_random(), "acme", t(2)).await;
    assert!(matches!(again, Err(StoreError::Conflict { what: Conflict::OrgExists })), "{again:?}");
    store.create_org(OrgId::new_random(), "Zeta", t(3)).await.unwrap();
    let names: Vec<String> = store.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["Zeta", "acme", "default"], "by name, byte order");
    assert!(matches!(store.get_org(OrgId::new_random()).await, Err(StoreError::NotFound("org"))));

    let id = store.create_workspace(NewWorkspace::named(acme.id, "w", t(4)), None).await.unwrap().id;
    assert_eq!(store.get_workspace(id).await.unwrap().org_id, acme.id);
    assert_eq!(store.list_workspaces(Some(acme.id), true).await.unwrap().len(), 1);
    assert!(store.list_workspaces(Some(OrgId::DEFAULT), true).await.unwrap().is_empty());

    // Its org tokens: revoked by their org, or in whatever org (`None`,
    // the admin), never by another org.
    let org_token = |secret: &str| NewToken { org_id: acme.id, ..token(None, secret) };
    let first = store.insert_token(org_token("acme-1")).await.unwrap();
    let wrong = store.revoke_token(Some(OrgId::DEFAULT), first.id, t(5)).await;
    assert!(matches!(wrong, Err(StoreError::NotFound("token"))), "{wrong:?}");
    store.revoke_token(None, first.id, t(5)).await.unwrap();
    assert!(store.find_token_by_hash(b"acme-1", t(6)).await.unwrap().is_none());
    let second = store.insert_token(org_token("acme-2")).await.unwrap();
    store.revoke_token(Some(acme.id), second.id, t(5)).await.unwrap();
    assert_eq!(store.list_org_tokens(acme.id).await.unwrap().len(), 2);
    assert!(store.list_org_tokens(OrgId::DEFAULT).await.unwrap().is_empty());
}

fn new_plugin(org: OrgId, name: &str, content: &[u8]) -> NewPlugin {
    NewPlugin {
        org_id: org,
        name: name.into(),
        version: "1.0".into(),
        description: String::new(),
        sha256: format!("h-{name}"),
        files: vec![file("plugin.yaml", content)],
        now: t(0),
    }
}

pub async fn quotas_are_reached_exactly_at_their_limit_and_a_batch_is_all_or_nothing(store: S) {
    let acme = store.create_org(OrgId::new_random(), "acme", t(0)).await.unwrap();
    assert_eq!(acme.quotas, Quotas::default(), "none by default");
    let quotas = Quotas { workspaces: Some(3), running: Some(2), template_bytes: Some(10), plugin_bytes: Some(8) };
    assert_eq!(store.set_org_quotas(acme.id, quotas, t(1)).await.unwrap().quotas, quotas);
    assert_eq!(store.get_org(acme.id).await.unwrap().quotas, quotas);
    let missing = store.set_org_quotas(OrgId::new_random(), quotas, t(1)).await;
    assert!(matches!(missing, Err(StoreError::NotFound("org"))), "{missing:?}");

    // Running: two at once; the third is refused, and a batch of two that
    // would pass it writes neither.
    let new = |name: &str| NewWorkspace::named(acme.id, name, t(2));
    let first = store.create_workspace(new("a"), None).await.unwrap().id;
    store.create_workspace(new("b"), None).await.unwrap();
    let refused = store.create_workspace(new("c"), None).await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded { quota: Quota::Running, limit: 2, used: 2 })),
        "{refused:?}"
    );
    let batch = store.create_workspaces(vec![(new("d"), None), (new("e"), None)]).await;
    assert!(matches!(batch, Err(StoreError::QuotaExceeded { .. })), "{batch:?}");
    assert_eq!(store.list_workspaces(Some(acme.id), true).await.unwrap().len(), 2, "nothing of the batch");
    assert_eq!(store.org_usage(acme.id).await.unwrap(), Usage { workspaces: 2, running: 2, ..Usage::default() });

    // Workspaces in total: removed ones do not count.
    store.set_org_quotas(acme.id, Quotas { workspaces: Some(3), ..Quotas::default() }, t(4)).await.unwrap();
    store.create_workspace(new("c"), None).await.unwrap();
    let fourth = store.create_workspace(new("d"), None).await;
    assert!(
        matches!(fourth, Err(StoreError::QuotaExceeded { quota: Quota::Workspaces, limit: 3, used: 3 })),
        "{fourth:?}"
    );
    store.delete_workspace(first, hearth_core::By::ADMIN, t(5)).await.unwrap();
    store.create_workspace(new("d"), None).await.unwrap();
    // Other orgs are not counted, nor limited.
    store.create_workspace(NewWorkspace::named(OrgId::DEFAULT, "elsewhere", t(6)), None).await.unwrap();

    // Storage: a replaced template counts once, with its new size.
    store.set_org_quotas(acme.id, quotas, t(7)).await.unwrap();
    let in_acme = |name: &str, content: &[u8]| NewTemplate {
        org_id: acme.id,
        ..template(name, vec![file("config.yaml", content)], t(8))
    };
    store.put_template(in_acme("t1", b"123456")).await.unwrap();
    store.put_template(in_acme("t1", b"1234567890")).await.unwrap(); // replaced: 10 of 10
    let over = store.put_template(in_acme("t2", b"x")).await;
    assert!(
        matches!(over, Err(StoreError::QuotaExceeded { quota: Quota::TemplateBytes, limit: 10, used: 10 })),
        "{over:?}"
    );
    assert!(matches!(store.get_template_by_name(acme.id, "t2").await, Err(StoreError::NotFound(_))), "nothing written");
    store.put_plugin(new_plugin(acme.id, "p1", b"12345678")).await.unwrap();
    let over = store.put_plugin(new_plugin(acme.id, "p2", b"x")).await;
    assert!(
        matches!(over, Err(StoreError::QuotaExceeded { quota: Quota::PluginBytes, limit: 8, used: 8 })),
        "{over:?}"
    );
    let usage = store.org_usage(acme.id).await.unwrap();
    assert_eq!((usage.template_bytes, usage.plugin_bytes), (10, 8));
    // Lifted: no limit.
    store.set_org_quotas(acme.id, Quotas::default(), t(9)).await.unwrap();
    store.put_plugin(new_plugin(acme.id, "p2", b"x")).await.unwrap();

    // A resume starts a runtime: within the running quota, under the lock.
    let beta = store.create_org(OrgId::new_random(), "beta", t(10)).await.unwrap();
    store.set_org_quotas(beta.id, Quotas { running: Some(1), ..Quotas::default() }, t(10)).await.unwrap();
    let paused = store.create_workspace(NewWorkspace::named(beta.id, "p", t(10)), None).await.unwrap().id;
    store.apply(paused, register(), t(11)).await.unwrap();
    store.apply(paused, Input::Pause(hearth_core::By::ADMIN), t(12)).await.unwrap();
    let other = store.create_workspace(NewWorkspace::named(beta.id, "o", t(13)), None).await.unwrap().id;
    let refused = store.apply_starting(paused, Input::Resume(hearth_core::By::ADMIN), t(14)).await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded { quota: Quota::Running, limit: 1, used: 1 })),
        "{refused:?}"
    );
    assert_eq!(store.get_workspace(paused).await.unwrap().status, WorkspaceStatus::Paused, "nothing written");
    // A restart of a workspace that keeps a runtime starts none: not
    // refused, though the quota is full.
    store.apply_starting(other, Input::Restart(hearth_core::By::ADMIN), t(15)).await.unwrap();
    store.delete_workspace(other, hearth_core::By::ADMIN, t(16)).await.unwrap();
    let resumed = store.apply_starting(paused, Input::Resume(hearth_core::By::ADMIN), t(17)).await.unwrap();
    assert_eq!(resumed.workspace.status, WorkspaceStatus::Provisioning);
}

pub async fn an_org_is_deleted_only_empty_its_tokens_revoked_and_its_name_freed(store: S) {
    let acme = store.create_org(OrgId::new_random(), "acme", t(0)).await.unwrap();
    let ws = store.create_workspace(NewWorkspace::named(acme.id, "w", t(1)), None).await.unwrap().id;
    let org_token = store.insert_token(NewToken { org_id: acme.id, ..token(None, "acme-owner") }).await.unwrap();
    store
        .put_template(NewTemplate { org_id: acme.id, ..template("t", vec![file("config.yaml", b"x")], t(1)) })
        .await
        .unwrap();
    store.put_plugin(new_plugin(acme.id, "p", b"y")).await.unwrap();

    let refused = store.delete_org(acme.id, t(2)).await;
    assert!(matches!(refused, Err(StoreError::OrgNotEmpty { live: 1 })), "{refused:?}");
    assert!(store.find_token_by_hash(b"acme-owner", t(2)).await.unwrap().is_some(), "nothing written");

    store.delete_workspace(ws, hearth_core::By::ADMIN, t(3)).await.unwrap();
    let revoked = store.delete_org(acme.id, t(4)).await.unwrap();
    assert_eq!(revoked, [org_token.id]);
    assert!(store.find_token_by_hash(b"acme-owner", t(5)).await.unwrap().is_none(), "its token stopped");
    assert!(matches!(store.get_org(acme.id).await, Err(StoreError::NotFound("org"))));
    assert!(!store.list_orgs().await.unwrap().iter().any(|org| org.id == acme.id));
    assert!(matches!(store.get_template_by_name(acme.id, "t").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_plugin(acme.id, "p").await, Err(StoreError::NotFound(_))));
    // Its removed workspace and its events stay, as history.
    assert_eq!(store.get_workspace(ws).await.unwrap().status, WorkspaceStatus::Removed);
    assert_eq!(events_of(&*store, ws).await.last().map(|(kind, _)| *kind), Some(EventKind::WorkspaceRemoved));
    // Nothing more goes into it; its name is free.
    let into = store.insert_org_token(NewToken { org_id: acme.id, ..token(None, "late") }, 10).await;
    assert!(matches!(into, Err(StoreError::NotFound("org"))), "{into:?}");
    let late = store.create_workspace(NewWorkspace::named(acme.id, "late", t(6)), None).await;
    assert!(matches!(late, Err(StoreError::NotFound("org"))), "{late:?}");
    assert!(matches!(store.delete_org(acme.id, t(6)).await, Err(StoreError::NotFound("org"))));
    let again = store.create_org(OrgId::new_random(), "acme", t(7)).await.unwrap();
    assert_ne!(again.id, acme.id);
}
