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

fn kinds(events: &[EventDraft]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind()).collect()
}

fn get<'a>(conditions: &'a [ConditionRecord], kind: &str) -> &'a ConditionRecord {
    conditions.iter().find(|c| c.kind == kind).unwrap()
}

#[test]
fn nothing_reported_yet_is_pending_on_both_conditions() {
    let (c, events) = evaluate(&desired(), None, &[], &[], &[], &[], t(1));
    assert_eq!(get(&c, ASSETS_DELIVERED).status, "False");
    assert_eq!(get(&c, ASSETS_DELIVERED).reason, "NotReported");
    let plugins = get(&c, PLUGINS_INSTALLED);
    assert_eq!((plugins.status.as_str(), plugins.reason.as_str()), ("False", "Pending"));
    assert!(plugins.message.contains("seo-all") && plugins.message.contains("search"));
    assert!(events.is_empty(), "a first evaluation is recorded, not announced: {events:?}");
}

#[test]
fn converging_emits_delivered_and_installed_once() {
    let (c1, _) = evaluate(&desired(), None, &[], &[], &[], &[], t(1));
    let all = installed(&[("search", Some("h2")), ("seo-all", Some("h1"))]);
    let (c2, events) = evaluate(&desired(), Some("sha256:aaa"), &[], &all, &[], &c1, t(2));
    assert_eq!(get(&c2, ASSETS_DELIVERED).status, "True");
    assert_eq!(get(&c2, PLUGINS_INSTALLED).status, "True");
    assert_eq!(get(&c2, PLUGINS_INSTALLED).last_transition_time, t(2));
    let k = kinds(&events);
    assert_eq!(k.iter().filter(|k| **k == EventKind::AssetsDelivered).count(), 1);
    assert_eq!(k.iter().filter(|k| **k == EventKind::PluginInstalled).count(), 2);
    assert_eq!(k.iter().filter(|k| **k == EventKind::ConditionChanged).count(), 2);
    // The same report again: level-triggered, nothing new to say.
    let (c3, events) = evaluate(&desired(), Some("sha256:aaa"), &all, &all, &[], &c2, t(3));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(c3, c2, "transition times kept");
}

#[test]
fn a_lost_plugin_is_pending_again_and_comes_back() {
    let all = installed(&[("search", Some("h2")), ("seo-all", Some("h1"))]);
    let (c1, _) = evaluate(&desired(), Some("sha256:aaa"), &[], &all, &[], &[], t(1));
    let lost = installed(&[("search", Some("h2"))]);
    let (c2, events) = evaluate(&desired(), Some("sha256:aaa"), &all, &lost, &[], &c1, t(2));
    let plugins = get(&c2, PLUGINS_INSTALLED);
    assert_eq!((plugins.status.as_str(), plugins.reason.as_str()), ("False", "Pending"));
    assert!(plugins.message.contains("seo-all"));
    assert_eq!(kinds(&events), [EventKind::ConditionChanged]);
    let (c3, events) = evaluate(&desired(), Some("sha256:aaa"), &lost, &all, &[], &c2, t(3));
    assert_eq!(get(&c3, PLUGINS_INSTALLED).status, "True");
    assert_eq!(kinds(&events), [EventKind::PluginInstalled, EventKind::ConditionChanged]);
}

#[test]
fn wrong_hash_does_not_count_and_a_failure_says_why() {
    let wrong = installed(&[("search", Some("h2")), ("seo-all", Some("bad"))]);
    let (c, _) = evaluate(&desired(), Some("sha256:aaa"), &[], &wrong, &[], &[], t(1));
    assert_eq!(get(&c, PLUGINS_INSTALLED).reason, "Pending");
    let failure = PluginFailure { name: "seo-all".into(), error: "sha256 mismatch: got x, want h1".into() };
    let (c2, events) =
        evaluate(&desired(), Some("sha256:aaa"), &wrong, &wrong, std::slice::from_ref(&failure), &c, t(2));
    let plugins = get(&c2, PLUGINS_INSTALLED);
    assert_eq!(plugins.reason, "InstallFailed");
    assert!(plugins.message.contains("sha256 mismatch"), "{}", plugins.message);
    assert_eq!(kinds(&events), [EventKind::PluginInstallFailed, EventKind::ConditionChanged]);
    // Reported again: no duplicate failure event.
    let (_, events) = evaluate(&desired(), Some("sha256:aaa"), &wrong, &wrong, &[failure], &c2, t(3));
    assert!(events.is_empty());
}

#[test]
fn a_digest_mismatch_names_both_digests() {
    let (c, _) = evaluate(&desired(), Some("sha256:old"), &[], &[], &[], &[], t(1));
    let assets = get(&c, ASSETS_DELIVERED);
    assert_eq!(assets.reason, "DigestMismatch");
    assert!(assets.message.contains("sha256:old") && assets.message.contains("sha256:aaa"));
}

#[test]
fn no_template_means_nothing_to_deliver() {
    let (c, events) = evaluate(&DesiredState::default(), None, &[], &[], &[], &[], t(1));
    assert_eq!(get(&c, ASSETS_DELIVERED).reason, "NoTemplate");
    assert_eq!(get(&c, PLUGINS_INSTALLED).reason, "NoPlugins");
    assert!(!kinds(&events).contains(&EventKind::AssetsDelivered));
}

#[test]
fn an_old_sdk_that_reports_no_hash_still_counts() {
    let plain = installed(&[("search", None), ("seo-all", None)]);
    let (c, _) = evaluate(&desired(), Some("sha256:aaa"), &[], &plain, &[], &[], t(1));
    assert_eq!(get(&c, PLUGINS_INSTALLED).status, "True");
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
    let (c, events) = evaluate(&want, Some("sha256:aaa"), &[], &have, &[], &[], t(1));
    let plugins = get(&c, PLUGINS_INSTALLED);
    assert_eq!((plugins.status.as_str(), plugins.reason.as_str()), ("False", "NotInRegistry"));
    assert!(plugins.message.contains("ghost"), "{}", plugins.message);
    assert!(
        !events.iter().any(|e| e.kind() == EventKind::PluginInstalled && e.payload()["name"] == "ghost"),
        "no install event for a plugin that is not stored"
    );
}
