use chrono::{Duration, TimeZone};

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
}

fn desired() -> DesiredState {
    DesiredState {
        assets_digest: Some("sha256:aaa".into()),
        plugins: vec![DesiredPlugin::stored("seo-all", "1.2.0", "h1"), DesiredPlugin::stored("search", "0.1", "h2")],
    }
}

fn installed(items: &[(&str, Option<&str>)]) -> Vec<InstalledPlugin> {
    items
        .iter()
        .map(|(n, h)| InstalledPlugin { name: (*n).into(), sha256: h.map(str::to_owned), installed_at: t(0) })
        .collect()
}

/// What a runtime that runs no program reports.
fn observed<'a>(
    reported_digest: Option<&'a str>,
    previous_installed: &'a [InstalledPlugin],
    installed: &'a [InstalledPlugin],
    failures: &'a [PluginFailure],
) -> Observed<'a> {
    Observed { reported_digest, previous_installed, installed, failures, program: ProgramInput::NotReported }
}

fn kinds(events: &[EventDraft]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind()).collect()
}

fn get(conditions: &[ConditionRecord], kind: ConditionType) -> &ConditionRecord {
    conditions.iter().find(|c| c.kind == kind).unwrap()
}

#[test]
fn nothing_reported_yet_is_pending_on_both_conditions() {
    let (c, events) = evaluate(&desired(), &observed(None, &[], &[], &[]), &[], t(1));
    assert_eq!(get(&c, ConditionType::AssetsDelivered).status, ConditionStatus::False);
    assert_eq!(get(&c, ConditionType::AssetsDelivered).reason, ConditionReason::NotReported);
    let plugins = get(&c, ConditionType::PluginsInstalled);
    assert_eq!((plugins.status, plugins.reason), (ConditionStatus::False, ConditionReason::Pending));
    assert!(plugins.message.contains("seo-all") && plugins.message.contains("search"));
    assert!(events.is_empty(), "a first evaluation is recorded, not announced: {events:?}");
}

#[test]
fn converging_emits_delivered_and_installed_once() {
    let (c1, _) = evaluate(&desired(), &observed(None, &[], &[], &[]), &[], t(1));
    let all = installed(&[("search", Some("h2")), ("seo-all", Some("h1"))]);
    let (c2, events) = evaluate(&desired(), &observed(Some("sha256:aaa"), &[], &all, &[]), &c1, t(2));
    assert_eq!(get(&c2, ConditionType::AssetsDelivered).status, ConditionStatus::True);
    assert_eq!(get(&c2, ConditionType::PluginsInstalled).status, ConditionStatus::True);
    assert_eq!(get(&c2, ConditionType::PluginsInstalled).last_transition_time, t(2));
    let k = kinds(&events);
    assert_eq!(k.iter().filter(|k| **k == EventKind::AssetsDelivered).count(), 1);
    assert_eq!(k.iter().filter(|k| **k == EventKind::PluginInstalled).count(), 2);
    assert_eq!(k.iter().filter(|k| **k == EventKind::ConditionChanged).count(), 2);
    // The same report again: level-triggered, nothing new to say.
    let (c3, events) = evaluate(&desired(), &observed(Some("sha256:aaa"), &all, &all, &[]), &c2, t(3));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(c3, c2, "transition times kept");
}

#[test]
fn a_lost_plugin_is_pending_again_and_comes_back() {
    let all = installed(&[("search", Some("h2")), ("seo-all", Some("h1"))]);
    let (c1, _) = evaluate(&desired(), &observed(Some("sha256:aaa"), &[], &all, &[]), &[], t(1));
    let lost = installed(&[("search", Some("h2"))]);
    let (c2, events) = evaluate(&desired(), &observed(Some("sha256:aaa"), &all, &lost, &[]), &c1, t(2));
    let plugins = get(&c2, ConditionType::PluginsInstalled);
    assert_eq!((plugins.status, plugins.reason), (ConditionStatus::False, ConditionReason::Pending));
    assert!(plugins.message.contains("seo-all"));
    assert_eq!(kinds(&events), [EventKind::ConditionChanged]);
    let (c3, events) = evaluate(&desired(), &observed(Some("sha256:aaa"), &lost, &all, &[]), &c2, t(3));
    assert_eq!(get(&c3, ConditionType::PluginsInstalled).status, ConditionStatus::True);
    assert_eq!(kinds(&events), [EventKind::PluginInstalled, EventKind::ConditionChanged]);
}

#[test]
fn wrong_hash_does_not_count_and_a_failure_says_why() {
    let wrong = installed(&[("search", Some("h2")), ("seo-all", Some("bad"))]);
    let (c, _) = evaluate(&desired(), &observed(Some("sha256:aaa"), &[], &wrong, &[]), &[], t(1));
    assert_eq!(get(&c, ConditionType::PluginsInstalled).reason, ConditionReason::Pending);
    let failure = PluginFailure { name: "seo-all".into(), error: "sha256 mismatch: got x, want h1".into() };
    let (c2, events) =
        evaluate(&desired(), &observed(Some("sha256:aaa"), &wrong, &wrong, std::slice::from_ref(&failure)), &c, t(2));
    let plugins = get(&c2, ConditionType::PluginsInstalled);
    assert_eq!(plugins.reason, ConditionReason::InstallFailed);
    assert!(plugins.message.contains("sha256 mismatch"), "{}", plugins.message);
    assert_eq!(kinds(&events), [EventKind::PluginInstallFailed, EventKind::ConditionChanged]);
    // Reported again: no duplicate failure event.
    let (_, events) = evaluate(&desired(), &observed(Some("sha256:aaa"), &wrong, &wrong, &[failure]), &c2, t(3));
    assert!(events.is_empty());
}

#[test]
fn a_digest_mismatch_names_both_digests() {
    let (c, _) = evaluate(&desired(), &observed(Some("sha256:old"), &[], &[], &[]), &[], t(1));
    let assets = get(&c, ConditionType::AssetsDelivered);
    assert_eq!(assets.reason, ConditionReason::DigestMismatch);
    assert!(assets.message.contains("sha256:old") && assets.message.contains("sha256:aaa"));
}

#[test]
fn no_template_means_nothing_to_deliver() {
    let (c, events) = evaluate(&DesiredState::default(), &observed(None, &[], &[], &[]), &[], t(1));
    assert_eq!(get(&c, ConditionType::AssetsDelivered).reason, ConditionReason::NoTemplate);
    assert_eq!(get(&c, ConditionType::PluginsInstalled).reason, ConditionReason::NoPlugins);
    assert!(!kinds(&events).contains(&EventKind::AssetsDelivered));
}

#[test]
fn an_old_sdk_that_reports_no_hash_still_counts() {
    let plain = installed(&[("search", None), ("seo-all", None)]);
    let (c, _) = evaluate(&desired(), &observed(Some("sha256:aaa"), &[], &plain, &[]), &[], t(1));
    assert_eq!(get(&c, ConditionType::PluginsInstalled).status, ConditionStatus::True);
}

#[test]
fn merge_keeps_install_times_of_unchanged_plugins() {
    let before = installed(&[("a", Some("1")), ("b", Some("2"))]);
    let merged = merge_installed(&before, &[("b".into(), Some("2".into())), ("c".into(), None)], t(9));
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].name, "b");
    assert_eq!(merged[0].installed_at, t(0));
    assert_eq!(merged[1].installed_at, t(9));
    let recorded = record_install(&merged, "b", Some("3".into()), t(10));
    assert_eq!(recorded.iter().find(|p| p.name == "b").unwrap().installed_at, t(10), "a new hash is a new install");
}

#[test]
fn a_plugin_the_registry_does_not_hold_is_never_satisfied_and_says_so() {
    let mut want = desired();
    want.plugins.push(DesiredPlugin { name: "ghost".into(), stored: None });
    // Even a runtime that claims it (without a hash) does not satisfy it.
    let have = installed(&[("seo-all", Some("h1")), ("search", Some("h2")), ("ghost", None)]);
    let (c, events) = evaluate(&want, &observed(Some("sha256:aaa"), &[], &have, &[]), &[], t(1));
    let plugins = get(&c, ConditionType::PluginsInstalled);
    assert_eq!((plugins.status, plugins.reason), (ConditionStatus::False, ConditionReason::NotInRegistry));
    assert!(plugins.message.contains("ghost"), "{}", plugins.message);
    assert!(
        !events.iter().any(|e| e.kind() == EventKind::PluginInstalled && e.payload()["name"] == "ghost"),
        "no install event for a plugin that is not stored"
    );
}

#[test]
fn each_reason_stands_for_the_status_evaluate_gives_it() {
    let expected = [
        (ConditionReason::NoTemplate, ConditionStatus::True),
        (ConditionReason::Delivered, ConditionStatus::True),
        (ConditionReason::DigestMismatch, ConditionStatus::False),
        (ConditionReason::NotReported, ConditionStatus::False),
        (ConditionReason::InstallFailed, ConditionStatus::False),
        (ConditionReason::NotInRegistry, ConditionStatus::False),
        (ConditionReason::Pending, ConditionStatus::False),
        (ConditionReason::NoPlugins, ConditionStatus::True),
        (ConditionReason::AllInstalled, ConditionStatus::True),
        (ConditionReason::Running, ConditionStatus::True),
        (ConditionReason::Exited, ConditionStatus::False),
        (ConditionReason::WaitingForDelivery, ConditionStatus::False),
        (ConditionReason::Stopped, ConditionStatus::False),
        (ConditionReason::OOMKilled, ConditionStatus::False),
        (ConditionReason::ImageMissing, ConditionStatus::False),
        (ConditionReason::BackendUnavailable, ConditionStatus::Unknown),
    ];
    assert_eq!(expected.map(|(reason, _)| reason).as_slice(), ConditionReason::ALL, "every reason, in order");
    for (reason, status) in expected {
        assert_eq!(reason.status(), status, "{reason}");
    }
}

/// The names that were stored and sent as plain strings before the enums:
/// the stored `conditions` JSON and the wire keep them byte for byte.
#[test]
fn every_value_is_spelled_as_the_strings_were() {
    let types: Vec<&str> = ConditionType::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(types, ["AssetsDelivered", "PluginsInstalled", "AgentRunning", "RuntimeRunning"]);
    let statuses: Vec<&str> = ConditionStatus::ALL.iter().map(|status| status.as_str()).collect();
    assert_eq!(statuses, ["True", "False", "Unknown"]);
    let reasons: Vec<&str> = ConditionReason::ALL.iter().map(|reason| reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "NoTemplate",
            "Delivered",
            "DigestMismatch",
            "NotReported",
            "InstallFailed",
            "NotInRegistry",
            "Pending",
            "NoPlugins",
            "AllInstalled",
            "Running",
            "Exited",
            "WaitingForDelivery",
            "Stopped",
            "OOMKilled",
            "ImageMissing",
            "BackendUnavailable"
        ]
    );
    for kind in ConditionType::ALL {
        assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{kind}\""));
        assert_eq!(kind.as_str().parse::<ConditionType>(), Ok(*kind));
    }
    for status in ConditionStatus::ALL {
        assert_eq!(serde_json::to_string(status).unwrap(), format!("\"{status}\""));
        assert_eq!(status.as_str().parse::<ConditionStatus>(), Ok(*status));
    }
    for reason in ConditionReason::ALL {
        assert_eq!(serde_json::to_string(reason).unwrap(), format!("\"{reason}\""));
        assert_eq!(reason.as_str().parse::<ConditionReason>(), Ok(*reason));
    }
    assert!("true".parse::<ConditionStatus>().is_err(), "no case folding: the stored text is exact");
}

#[test]
fn the_stored_json_of_every_reason_round_trips_byte_for_byte() {
    for reason in ConditionReason::ALL {
        let kind = match reason {
            ConditionReason::NoTemplate
            | ConditionReason::Delivered
            | ConditionReason::DigestMismatch
            | ConditionReason::NotReported => "AssetsDelivered",
            _ => "PluginsInstalled",
        };
        let status = reason.status();
        // The text `serde_json` wrote for the string fields before.
        let stored = format!(
            r#"[{{"type":"{kind}","status":"{status}","reason":"{reason}","message":"m","last_transition_time":"2026-01-01T00:00:05Z"}}]"#
        );
        let read: Vec<ConditionRecord> = serde_json::from_str(&stored).unwrap();
        assert_eq!(read[0].kind.as_str(), kind);
        assert_eq!((read[0].status, read[0].reason), (status, *reason));
        assert_eq!(serde_json::to_string(&read).unwrap(), stored, "{reason}");
    }
}

#[test]
fn a_condition_record_serializes_to_exactly_the_text_it_always_had() {
    let (conditions, _) = evaluate(&desired(), &observed(None, &[], &[], &[]), &[], t(5));
    assert_eq!(
        serde_json::to_string(&conditions).unwrap(),
        concat!(
            r#"[{"type":"AssetsDelivered","status":"False","reason":"NotReported","#,
            r#""message":"waiting for the runtime to report assets sha256:aaa","#,
            r#""last_transition_time":"2026-01-01T00:00:05Z"},"#,
            r#"{"type":"PluginsInstalled","status":"False","reason":"Pending","#,
            r#""message":"waiting for the runtime to install: seo-all, search","#,
            r#""last_transition_time":"2026-01-01T00:00:05Z"}]"#
        )
    );
}

#[test]
fn a_stored_value_that_names_no_variant_is_an_error_not_a_default() {
    let stored = r#"{"type":"AssetsDelivered","status":"True","reason":"Arrived","message":"m","last_transition_time":"2026-01-01T00:00:05Z"}"#;
    assert!(serde_json::from_str::<ConditionRecord>(stored).is_err());
    let stored = r#"{"type":"Live","status":"True","reason":"Delivered","message":"m","last_transition_time":"2026-01-01T00:00:05Z"}"#;
    assert!(serde_json::from_str::<ConditionRecord>(stored).is_err(), "Live is derived, never stored");
}

#[test]
fn the_condition_changed_event_names_type_status_and_reason_as_before() {
    let (c1, _) = evaluate(&desired(), &observed(None, &[], &[], &[]), &[], t(1));
    let (_, events) = evaluate(&desired(), &observed(Some("sha256:old"), &[], &[], &[]), &c1, t(2));
    let changed: Vec<&EventDraft> = events.iter().filter(|e| e.kind() == EventKind::ConditionChanged).collect();
    assert_eq!(changed.len(), 1, "{events:?}");
    assert_eq!(
        changed[0].payload().to_string(),
        r#"{"message":"the runtime holds assets sha256:old, the template's are sha256:aaa","reason":"DigestMismatch","status":"False","type":"AssetsDelivered"}"#
    );
}

/// `AgentRunning` follows what the runtime reports of its program: its
/// message says the exit and the restarts, a change of reason is an event,
/// and an input that does not speak of the program keeps the condition.
#[test]
fn agent_running_follows_the_reported_program() {
    let report =
        |state, exit_code, signal, restarts| ProgramReport { state, exit_code, signal, restarts, oom_killed: false };
    let eval = |program, previous: &[ConditionRecord], at| {
        evaluate(
            &desired(),
            &Observed {
                reported_digest: Some("sha256:aaa"),
                previous_installed: &[],
                installed: &[],
                failures: &[],
                program,
            },
            previous,
            t(at),
        )
    };
    let (none, _) = eval(ProgramInput::NotReported, &[], 1);
    assert!(none.iter().all(|c| c.kind != ConditionType::AgentRunning), "no program, no condition");

    let waiting = report(ProgramState::Waiting, None, None, 0);
    let (c1, _) = eval(ProgramInput::Reported(&waiting), &[], 1);
    let agent = get(&c1, ConditionType::AgentRunning);
    assert_eq!((agent.status, agent.reason), (ConditionStatus::False, ConditionReason::WaitingForDelivery));

    let running = report(ProgramState::Running, None, None, 0);
    let (c2, events) = eval(ProgramInput::Reported(&running), &c1, 2);
    let agent = get(&c2, ConditionType::AgentRunning);
    assert_eq!(
        (agent.status, agent.reason, agent.last_transition_time),
        (ConditionStatus::True, ConditionReason::Running, t(2))
    );
    assert_eq!(kinds(&events), [EventKind::ConditionChanged]);

    let crashed = report(ProgramState::Exited, Some(3), None, 4);
    let (c3, events) = eval(ProgramInput::Reported(&crashed), &c2, 3);
    let agent = get(&c3, ConditionType::AgentRunning);
    assert_eq!((agent.status, agent.reason), (ConditionStatus::False, ConditionReason::Exited));
    assert_eq!(agent.message, "exit 3, restarted 4 times");
    assert_eq!(kinds(&events), [EventKind::ConditionChanged]);

    let killed = report(ProgramState::Exited, None, Some(9), 1);
    let (c4, events) = eval(ProgramInput::Reported(&killed), &c3, 4);
    assert_eq!(get(&c4, ConditionType::AgentRunning).message, "killed by signal 9, restarted once");
    assert!(events.is_empty(), "the same reason again is no event: {events:?}");

    let (c5, _) = eval(ProgramInput::Unchanged, &c4, 5);
    assert_eq!(get(&c5, ConditionType::AgentRunning), get(&c4, ConditionType::AgentRunning), "kept as it was");

    let oom = ProgramReport { oom_killed: true, ..report(ProgramState::Exited, None, Some(9), 2) };
    let (c6, events) = eval(ProgramInput::Reported(&oom), &c5, 6);
    let agent = get(&c6, ConditionType::AgentRunning);
    assert_eq!((agent.status, agent.reason), (ConditionStatus::False, ConditionReason::OOMKilled));
    assert_eq!(agent.message, "killed by the kernel for using more memory than its limit allows, restarted 2 times");
    assert_eq!(kinds(&events), [EventKind::ConditionChanged], "a new reason is an event");
}

/// `RuntimeRunning` is the provisioner's word: set from its observation,
/// announced when its reason changes, and kept by the runtime's heartbeats.
#[test]
fn runtime_running_follows_the_provisioner_and_survives_heartbeats() {
    let (c1, events) = runtime_condition(&RuntimeObservation::Running, &[], t(1));
    assert!(events.is_empty(), "a first observation is recorded silently");
    let running = get(&c1, ConditionType::RuntimeRunning);
    assert_eq!((running.status, running.reason), (ConditionStatus::True, ConditionReason::Running));

    let oom = RuntimeObservation::Exited { exit_code: Some(137), oom_killed: true, restarts: 1 };
    let (c2, events) = runtime_condition(&oom, &c1, t(2));
    let killed = get(&c2, ConditionType::RuntimeRunning);
    assert_eq!((killed.status, killed.reason), (ConditionStatus::False, ConditionReason::OOMKilled));
    assert!(killed.message.contains("exit 137") && killed.message.contains("restarted once"), "{}", killed.message);
    assert_eq!(kinds(&events), [EventKind::ConditionChanged]);

    let (c3, _) = runtime_condition(&RuntimeObservation::BackendUnavailable, &c2, t(3));
    assert_eq!(get(&c3, ConditionType::RuntimeRunning).status, ConditionStatus::Unknown, "neither dead nor running");

    let (after_heartbeat, _) = evaluate(&desired(), &observed(None, &[], &[], &[]), &c3, t(4));
    assert_eq!(get(&after_heartbeat, ConditionType::RuntimeRunning), get(&c3, ConditionType::RuntimeRunning));
}
