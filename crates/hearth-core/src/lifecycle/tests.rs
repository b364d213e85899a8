use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::heartbeat::RawHeartbeat;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn snapshot(status: WorkspaceStatus) -> Snapshot {
    Snapshot {
        status,
        status_changed_at: t0(),
        last_heartbeat_at: Some(t0()),
        current_task: None,
        active_tasks: 0,
        last_active_at: None,
    }
}

fn hb(error_rate: f64, runtime_state: Option<&str>) -> Input {
    Input::Heartbeat(
        Heartbeat::validate(RawHeartbeat {
            error_rate: Some(error_rate),
            runtime_state: runtime_state.map(str::to_owned),
            ..RawHeartbeat::default()
        })
        .unwrap(),
    )
}

fn register() -> Input {
    Input::Register { url: "http://localhost:9000".into(), agent_card: serde_json::json!({}) }
}

fn later(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

/// Expected outcome, written out for every status x every input.
#[derive(Debug, PartialEq)]
enum Expect {
    To(WorkspaceStatus, &'static [EventKind]),
    Stay,
    Gone,
    Stopped,
    Refused,
}

fn check(status: WorkspaceStatus, input: &Input, now: DateTime<Utc>, expect: Expect) {
    let got = decide(&snapshot(status), input, now);
    let actual = match &got {
        Ok(d) if d.next == status && d.events.is_empty() => Expect::Stay,
        Ok(d) => {
            let kinds: Vec<EventKind> = d.events.iter().map(|e| e.kind()).collect();
            let leaked: &'static [EventKind] = Box::leak(kinds.into_boxed_slice());
            Expect::To(d.next, leaked)
        }
        Err(Rejection::Removed) => Expect::Gone,
        Err(Rejection::Stopped(s)) => {
            assert_eq!(*s, status);
            Expect::Stopped
        }
        Err(Rejection::NotAllowed { current, .. }) => {
            assert_eq!(*current, status, "a refusal names the current status");
            Expect::Refused
        }
    };
    assert_eq!(actual, expect, "{status} + {} -> {got:?}", input.name());
}

use EventKind as E;

#[test]
fn healthy_heartbeat_from_every_status() {
    let input = hb(0.0, None);
    let online = Expect::To(Online, &[E::WorkspaceOnline]);
    for (status, expect) in [
        (Provisioning, online),
        (Online, Expect::Stay),
        (Offline, Expect::To(Online, &[E::WorkspaceOnline])),
        (Degraded, Expect::To(Online, &[E::WorkspaceOnline])),
        (Failed, Expect::To(Online, &[E::WorkspaceOnline])),
        (Removed, Expect::Gone),
        (Paused, Expect::Stay),
        (Hibernated, Expect::Stay),
    ] {
        check(status, &input, later(1), expect);
    }
}

#[test]
fn degrading_heartbeat_from_every_status() {
    for input in [hb(0.5, None), hb(1.0, None), hb(0.0, Some("wedged"))] {
        for (status, expect) in [
            (Provisioning, Expect::To(Degraded, &[E::WorkspaceOnline, E::WorkspaceDegraded])),
            (Online, Expect::To(Degraded, &[E::WorkspaceDegraded])),
            (Offline, Expect::To(Degraded, &[E::WorkspaceOnline, E::WorkspaceDegraded])),
            (Degraded, Expect::Stay),
            (Failed, Expect::To(Degraded, &[E::WorkspaceOnline, E::WorkspaceDegraded])),
            (Removed, Expect::Gone),
            (Paused, Expect::Stay),
            (Hibernated, Expect::Stay),
        ] {
            check(status, &input, later(1), expect);
        }
    }
}

#[test]
fn heartbeat_in_the_hysteresis_band_changes_nothing_for_online_or_degraded() {
    for rate in [0.1, 0.3, 0.49] {
        check(Online, &hb(rate, None), later(1), Expect::Stay);
        check(Degraded, &hb(rate, None), later(1), Expect::Stay);
    }
    // A non-wedged but non-empty runtime state does not recover a degraded workspace.
    check(Degraded, &hb(0.0, Some("busy")), later(1), Expect::Stay);
}

#[test]
fn register_from_every_status() {
    for (status, expect) in [
        (Provisioning, Expect::To(Online, &[E::WorkspaceOnline])),
        (Online, Expect::Stay),
        (Offline, Expect::To(Online, &[E::WorkspaceOnline])),
        (Degraded, Expect::Stay),
        (Failed, Expect::To(Online, &[E::WorkspaceOnline])),
        (Removed, Expect::Gone),
        (Paused, Expect::Stopped),
        (Hibernated, Expect::Stopped),
    ] {
        check(status, &register(), later(1), expect);
    }
}

#[test]
fn operator_actions_from_every_status() {
    use Expect::{Refused, Stay};
    let paused = || Expect::To(Paused, &[E::WorkspacePaused]);
    let hibernated = || Expect::To(Hibernated, &[E::WorkspaceHibernated]);
    let resumed = || Expect::To(Provisioning, &[E::WorkspaceResumed]);
    let restarted = || Expect::To(Provisioning, &[E::WorkspaceProvisioning]);
    let removed = || Expect::To(Removed, &[E::WorkspaceRemoved]);
    #[rustfmt::skip]
    let table = [
        //  status        pause      hibernate      resume     restart      delete
        (Provisioning, [Refused,  Refused,      Refused,   restarted(), removed()]),
        (Online,       [paused(), hibernated(), Refused,   restarted(), removed()]),
        (Offline,      [paused(), hibernated(), Refused,   restarted(), removed()]),
        (Degraded,     [paused(), hibernated(), Refused,   restarted(), removed()]),
        (Failed,       [Refused,  Refused,      Refused,   restarted(), removed()]),
        (Removed,      [Refused,  Refused,      Refused,   Refused,     Stay]),
        (Paused,       [Refused,  Refused,      resumed(), Refused,     removed()]),
        (Hibernated,   [Refused,  Refused,      resumed(), Refused,     removed()]),
    ];
    for (status, expects) in table {
        let inputs = [
            Input::Pause(By::ADMIN),
            Input::Hibernate(By::ADMIN),
            Input::Resume(By::ADMIN),
            Input::Restart(By::ADMIN),
            Input::Delete(By::ADMIN),
        ];
        for (input, expect) in inputs.iter().zip(expects) {
            check(status, input, later(1), expect);
        }
    }
}

#[test]
fn liveness_check_takes_online_and_degraded_offline_only_after_the_ttl() {
    let ttl = Duration::seconds(90);
    let input = Input::LivenessCheck { ttl, outage: None, mass_silence: None };
    for status in WorkspaceStatus::ALL {
        check(status, &input, later(89), Expect::Stay);
        let expect = match status {
            Online | Degraded => Expect::To(Offline, &[E::WorkspaceOffline]),
            _ => Expect::Stay,
        };
        check(status, &input, later(90), expect);
    }
}

#[test]
fn liveness_check_uses_the_status_change_when_there_was_never_a_heartbeat() {
    let mut snap = snapshot(Online);
    snap.last_heartbeat_at = None;
    let input = Input::LivenessCheck { ttl: Duration::seconds(90), outage: None, mass_silence: None };
    assert_eq!(decide(&snap, &input, later(10)).unwrap().next, Online);
    assert_eq!(decide(&snap, &input, later(100)).unwrap().next, Offline);
}

/// The control plane's downtime does not count: a runtime last heard before
/// an outage ended gets a full TTL from its end, and an offline decided
/// then says so; one heard after it is measured as ever.
#[test]
fn liveness_check_does_not_count_the_control_planes_outage() {
    let ttl = Duration::seconds(90);
    let outage = Outage { started_at: later(10), ended_at: later(300) };
    let input = Input::LivenessCheck { ttl, outage: Some(outage), mass_silence: None };
    for status in [Online, Degraded] {
        let snap = snapshot(status); // last heard at 0, before the outage
        assert_eq!(decide(&snap, &input, later(389)).unwrap().next, status, "within a TTL of the outage's end");
        let decision = decide(&snap, &input, later(390)).unwrap();
        assert_eq!(decision.next, Offline, "a TTL after the outage's end");
        let payload = &decision.events[0].payload();
        assert_eq!(payload["after_outage"]["started_at"], serde_json::json!(later(10)));
        assert_eq!(payload["after_outage"]["ended_at"], serde_json::json!(later(300)));
    }
    // Heard after the outage ended: the outage plays no part.
    let mut heard = snapshot(Online);
    heard.last_heartbeat_at = Some(later(320));
    assert_eq!(decide(&heard, &input, later(409)).unwrap().next, Online);
    let decision = decide(&heard, &input, later(410)).unwrap();
    assert_eq!(decision.next, Offline);
    assert!(decision.events[0].payload().get("after_outage").is_none(), "{:?}", decision.events[0].payload());
    // Without an outage the payload has no such field either.
    let plain =
        decide(&snapshot(Online), &Input::LivenessCheck { ttl, outage: None, mass_silence: None }, later(90)).unwrap();
    assert!(plain.events[0].payload().get("after_outage").is_none());
}

#[test]
fn provision_check_fails_only_provisioning_workspaces_after_the_timeout() {
    let input = Input::ProvisionCheck { timeout: Duration::seconds(600), outage: None };
    for status in WorkspaceStatus::ALL {
        check(status, &input, later(599), Expect::Stay);
        let expect = match status {
            Provisioning => Expect::To(Failed, &[E::WorkspaceProvisionFailed]),
            _ => Expect::Stay,
        };
        check(status, &input, later(600), expect);
    }
}

/// An outage does not count against the provision timeout either: a
/// workspace provisioning when it ended gets its whole timeout from its end.
#[test]
fn provision_check_does_not_count_the_control_planes_outage() {
    let outage = Outage { started_at: later(100), ended_at: later(900) };
    let input = Input::ProvisionCheck { timeout: Duration::seconds(600), outage: Some(outage) };
    let snap = snapshot(Provisioning); // provisioning since 0
    assert_eq!(decide(&snap, &input, later(1499)).unwrap().next, Provisioning, "within the timeout of the end");
    let decision = decide(&snap, &input, later(1500)).unwrap();
    assert_eq!(decision.next, Failed);
    assert_eq!(decision.events[0].payload()["after_outage"]["ended_at"], serde_json::json!(later(900)));
    // Provisioning since after the outage: the outage plays no part.
    let mut since = snapshot(Provisioning);
    since.status_changed_at = later(1000);
    assert_eq!(decide(&since, &input, later(1600)).unwrap().next, Failed);
    assert!(decide(&since, &input, later(1600)).unwrap().events[0].payload().get("after_outage").is_none());
}

#[test]
fn idle_check_hibernates_only_idle_online_workspaces() {
    let input = Input::IdleCheck { threshold: Duration::seconds(300) };
    for status in WorkspaceStatus::ALL {
        check(status, &input, later(299), Expect::Stay);
        let expect = match status {
            Online => Expect::To(Hibernated, &[E::WorkspaceHibernated]),
            _ => Expect::Stay,
        };
        check(status, &input, later(300), expect);
    }
    let mut busy = snapshot(Online);
    busy.active_tasks = 1;
    assert_eq!(decide(&busy, &input, later(1000)).unwrap().next, Online);
    let mut recently_active = snapshot(Online);
    recently_active.last_active_at = Some(later(900));
    assert_eq!(decide(&recently_active, &input, later(1000)).unwrap().next, Online);
}

#[test]
fn online_event_says_where_the_workspace_recovered_from() {
    let d = decide(&snapshot(Provisioning), &hb(0.0, None), later(1)).unwrap();
    assert_eq!(d.events[0].payload()["recovered_from"], "provisioning");
    let d = decide(&snapshot(Degraded), &hb(0.0, None), later(1)).unwrap();
    assert_eq!(d.events[0].payload()["recovered_from"], "degraded");
}

#[test]
fn task_updated_is_emitted_only_when_the_task_changes() {
    let with_task = |task: &str| {
        Input::Heartbeat(
            Heartbeat::validate(RawHeartbeat { current_task: Some(task.into()), ..RawHeartbeat::default() }).unwrap(),
        )
    };
    let mut snap = snapshot(Online);
    let d = decide(&snap, &with_task("write report"), later(1)).unwrap();
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].kind(), E::TaskUpdated);
    assert_eq!(d.events[0].payload()["current_task"], "write report");
    snap.current_task = Some("write report".into());
    assert!(decide(&snap, &with_task("write report"), later(2)).unwrap().events.is_empty());
    // Not reporting a task is not a change; reporting "" clears it.
    assert!(decide(&snap, &hb(0.0, None), later(3)).unwrap().events.is_empty());
    assert_eq!(decide(&snap, &with_task(""), later(3)).unwrap().events[0].kind(), E::TaskUpdated);
}

fn any_status() -> impl Strategy<Value = WorkspaceStatus> {
    prop::sample::select(WorkspaceStatus::ALL.to_vec())
}

fn any_input() -> impl Strategy<Value = Input> {
    let heartbeat = (
        0.0f64..=1.0,
        prop::option::of(prop::sample::select(vec!["", "wedged", "busy"])),
        prop::option::of("[a-c]{0,2}"),
    )
        .prop_map(|(error_rate, state, task)| {
            Input::Heartbeat(
                Heartbeat::validate(RawHeartbeat {
                    error_rate: Some(error_rate),
                    runtime_state: state.map(str::to_owned),
                    current_task: task,
                    ..RawHeartbeat::default()
                })
                .unwrap(),
            )
        });
    let secs = 0i64..2000;
    prop_oneof![
        heartbeat,
        Just(register()),
        Just(Input::Pause(By::ADMIN)),
        Just(Input::Pause(By {
            token_id: Some(crate::TokenId(uuid::Uuid::from_u128(9))),
            role: crate::Role::Operator
        })),
        Just(Input::Resume(By::ADMIN)),
        Just(Input::Restart(By::ADMIN)),
        Just(Input::Hibernate(By::ADMIN)),
        Just(Input::Delete(By::ADMIN)),
        secs.clone().prop_map(|s| Input::LivenessCheck { ttl: Duration::seconds(s), outage: None, mass_silence: None }),
        secs.clone().prop_map(|s| Input::ProvisionCheck { timeout: Duration::seconds(s), outage: None }),
        secs.prop_map(|s| Input::IdleCheck { threshold: Duration::seconds(s) }),
        Just(Input::RuntimeObserved(crate::reconcile::RuntimeObservation::Running)),
    ]
}

proptest! {
    #[test]
    fn removed_is_never_left(input in any_input(), secs in 0i64..5000) {
        if let Ok(d) = decide(&snapshot(Removed), &input, later(secs)) {
            prop_assert_eq!(d.next, Removed);
            prop_assert!(d.events.is_empty());
        }
    }

    #[test]
    fn every_status_change_is_announced_by_an_event(status in any_status(), input in any_input(), secs in 0i64..5000) {
        if let Ok(d) = decide(&snapshot(status), &input, later(secs)) {
            if d.next != status {
                prop_assert!(!d.events.is_empty());
            }
        }
    }

    #[test]
    fn every_event_says_who_caused_it(status in any_status(), input in any_input(), secs in 0i64..5000) {
        if let Ok(d) = decide(&snapshot(status), &input, later(secs)) {
            for event in &d.events {
                prop_assert_eq!(&event.payload()["actor"], &input.actor().to_json(), "{:?}", event);
            }
        }
    }

    #[test]
    fn runtimes_never_move_paused_or_hibernated_workspaces(status in prop::sample::select(vec![Paused, Hibernated]), input in any_input()) {
        if matches!(input, Input::Heartbeat(_) | Input::Register { .. }) {
            match decide(&snapshot(status), &input, later(1)) {
                Ok(d) => prop_assert_eq!(d.next, status),
                Err(e) => prop_assert_eq!(e, Rejection::Stopped(status)),
            }
        }
    }

    #[test]
    fn deciding_twice_on_the_result_is_stable_for_operator_actions(status in any_status(), input in any_input()) {
        // Applying an accepted operator action a second time never emits the same transition again.
        if matches!(input, Input::Pause(_) | Input::Hibernate(_) | Input::Resume(_) | Input::Delete(_)) {
            if let Ok(first) = decide(&snapshot(status), &input, later(1)) {
                if first.next != status {
                    if let Ok(second) = decide(&snapshot(first.next), &input, later(2)) {
                        prop_assert!(second.events.is_empty() || second.next != first.next);
                    }
                }
            }
        }
    }
}

#[test]
fn runtime_observations_never_move_a_workspace_not_even_a_removed_one() {
    use crate::reconcile::RuntimeObservation;
    let observations = [
        RuntimeObservation::Running,
        RuntimeObservation::Exited { exit_code: Some(137), oom_killed: true, restarts: 2 },
        RuntimeObservation::BackendUnavailable,
    ];
    for status in WorkspaceStatus::ALL {
        for observation in &observations {
            let input = Input::RuntimeObserved(observation.clone());
            check(status, &input, later(1), Expect::Stay);
        }
    }
}

#[test]
fn install_reports_never_move_a_workspace_and_are_refused_once_removed() {
    let input = Input::RecordInstall { name: "p".into(), sha256: None, desired: None, by: None };
    for status in WorkspaceStatus::ALL {
        let expect = if status == Removed { Expect::Gone } else { Expect::Stay };
        check(status, &input, later(1), expect);
    }
}

/// Who caused each kind of input, as its events say.
#[test]
fn each_input_names_its_actor() {
    let owner = By { token_id: Some(crate::TokenId(uuid::Uuid::from_u128(1))), role: crate::Role::Owner };
    let install = |by| Input::RecordInstall { name: "p".into(), sha256: None, desired: None, by };
    let cases = [
        (register(), Actor::Runtime),
        (install(None), Actor::Runtime),
        (install(Some(owner)), Actor::Operator(owner)),
        (Input::Pause(owner), Actor::Operator(owner)),
        (Input::Delete(By::ADMIN), Actor::Operator(By::ADMIN)),
        (
            Input::LivenessCheck { ttl: Duration::seconds(1), outage: None, mass_silence: None },
            Actor::System(Reason::Sweep),
        ),
        (
            Input::ProvisionCheck { timeout: Duration::seconds(1), outage: None },
            Actor::System(Reason::ProvisionTimeout),
        ),
        (Input::IdleCheck { threshold: Duration::seconds(1) }, Actor::System(Reason::Idle)),
        (Input::RuntimeObserved(crate::reconcile::RuntimeObservation::Running), Actor::System(Reason::Provisioner)),
    ];
    for (input, actor) in cases {
        assert_eq!(input.actor(), actor, "{}", input.name());
    }
    // An operator's pause says which token paused it.
    let paused = decide(&snapshot(Online), &Input::Pause(owner), later(1)).unwrap();
    assert_eq!(
        paused.events[0].payload()["actor"],
        serde_json::json!({"kind": "operator", "token_id": owner.token_id.unwrap().0, "role": "owner"})
    );
}
