#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `hearth bench heartbeat`, run for real on a tiny load: both runs answer,
//! nothing fails, the audit passes and the temp dir is gone afterwards.
//! Nothing here looks at how fast anything was.

mod support;

use support::{hearth_command, Run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_heartbeat_bench_reports_both_runs_and_passes_its_audit() {
    let report = tiny_bench(&[]).await;
    assert_eq!(report["heartbeat_ack"], "committed", "the server's default: {report:#}");
}

/// Answered before their batch commits, every acknowledged heartbeat is
/// still in the database when the audit looks, 1 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_bench_with_queued_acknowledgements_passes_its_audit() {
    let report = tiny_bench(&["--heartbeat-ack", "queued"]).await;
    assert_eq!(report["heartbeat_ack"], "queued", "{report:#}");
}

/// Runs the bench on 5 workspaces for 1 s per run with `extra` flags,
/// checks what every run must show, and returns the JSON report.
async fn tiny_bench(extra: &[&str]) -> serde_json::Value {
    let dir = support::TestDir::new();
    let mut command = hearth_command(dir.path());
    command
        .args(["bench", "heartbeat", "--workspaces", "5", "--concurrency", "2", "--seconds", "1", "--json"])
        .args(extra)
        // The bench's own temp dir goes in here, so its removal can be seen.
        .env("TMPDIR", dir.path());
    let run = Run::of(command).await;
    run.expect_code(0);
    let report = run.json();

    assert_eq!(report["engine"], "sqlite", "{report:#}");
    assert_eq!(report["workspaces"], 5);
    assert_eq!(report["concurrency"], 2);
    assert_eq!(report["first_heartbeats"]["requests"], 5, "each workspace's first heartbeat, once: {report:#}");
    assert_eq!(report["second_heartbeats"]["requests"], 5, "and its second, once: {report:#}");
    for name in ["first_heartbeats", "second_heartbeats", "baseline", "heartbeat"] {
        let requests = report[name]["requests"].as_u64().unwrap_or_else(|| panic!("no {name}.requests: {report:#}"));
        assert!(requests > 0, "{name} answered no request: {report:#}");
        assert_eq!(report[name]["errors"], 0, "{report:#}");
        let latency = &report[name]["latency_ms"];
        let (p99, p999) = (latency["p99"].as_f64().unwrap(), latency["p999"].as_f64().unwrap());
        assert!(p99 <= p999 && p999 <= latency["max"].as_f64().unwrap(), "{report:#}");
    }
    assert!(report["rss_growth_per_workspace_bytes"].is_number(), "measured on Linux: {report:#}");
    assert!(report["ratio"].is_number(), "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["audit_ok"], true, "{report:#}");
    assert_eq!(report["audit_problems"], serde_json::json!([]), "{report:#}");

    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("hearth-bench-"))
        .collect();
    assert!(left.is_empty(), "the bench left its temp dir behind: {left:?}");
    report
}
