#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `hearth bench propagation`, run for real with a few events on a fresh
//! Postgres database: every event reaches both subscribers (replica B's
//! stream and replica A's own), none is lost, and the temp dir is gone
//! afterwards. Nothing here looks at how fast anything was. Without
//! Postgres the command refuses to start.

mod support;

use support::{hearth_command, Run};

const EVENTS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_written_through_one_replica_reaches_the_other() {
    let database = hearth_store_pg::testing::create_database().await;
    let dir = support::TestDir::new();
    let mut command = hearth_command(dir.path());
    command
        .args(["bench", "propagation", "--events", &EVENTS.to_string(), "--rate", "100", "--json"])
        .args(["--database-url", &database.url])
        // The bench's own temp dir goes in here, so its removal can be seen.
        .env("TMPDIR", dir.path());
    let run = Run::of(command).await;
    run.expect_code(0);
    let report = run.json();

    assert_eq!(report["benchmark"], "propagation", "{report:#}");
    assert_eq!(report["engine"], "postgres", "{report:#}");
    assert_eq!(report["events"], EVENTS, "{report:#}");
    assert_eq!(report["lost"], 0, "{report:#}");
    for subscriber in ["cross_replica", "same_replica"] {
        let delivery = &report[subscriber];
        assert_eq!(delivery["received"], EVENTS, "{subscriber}: {report:#}");
        assert_eq!(delivery["lost"], 0, "{subscriber}: {report:#}");
        let latency = &delivery["latency_ms"];
        let (p50, p99, max) =
            (latency["p50"].as_f64().unwrap(), latency["p99"].as_f64().unwrap(), latency["max"].as_f64().unwrap());
        assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{subscriber}: {report:#}");
    }
    // Replica B heard of A's commits through NOTIFY, not only by polling.
    assert!(report["notify_wakes_on_b"].as_u64().unwrap() > 0, "no NOTIFY woke replica B: {report:#}");

    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("hearth-propagation-"))
        .collect();
    assert!(left.is_empty(), "the bench left its temp dir behind: {left:?}");
}

#[tokio::test]
async fn without_postgres_the_bench_refuses_to_start() {
    let dir = support::TestDir::new();
    let url = format!("sqlite://{}/hearth.db", dir.path().display());
    let mut command = hearth_command(dir.path());
    command.args(["bench", "propagation", "--events", "1", "--database-url", &url]);
    let run = Run::of(command).await;
    run.expect_code(1);
    assert!(run.stderr.contains("needs PostgreSQL"), "{}", run.stderr);
    assert!(!dir.path().join("hearth.db").exists(), "no server was started on SQLite");

    let mut command = hearth_command(dir.path());
    command.args(["bench", "propagation"]);
    let run = Run::of(command).await;
    run.expect_code(2);
    assert!(run.stderr.contains("--database-url"), "clap names the missing flag: {}", run.stderr);
}
