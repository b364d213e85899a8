//! `hearth e2e template-delivery` against a real `hearth serve`, on both
//! engines: with the process provisioner (the server runs the agent), with
//! none (the harness runs it), and with delivery broken on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use hearth_store_sqlite::testing::sqlx;
use support::{examples_dir, Engine, Server};

/// What every passing run prints, step by step.
fn assert_all_steps_passed(run: &support::Run) {
    for step in ["A ok", "B ok", "C ok", "D ok", "E ok"] {
        run.line(step);
    }
    run.line("template delivery OK");
}

/// The workspaces left on the server (the harness deletes its own).
async fn workspace_names(server: &Server) -> Vec<String> {
    let list = server.hearth(&["workspace", "list", "--json"]).await;
    list.expect_code(0);
    list.json().as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_owned()).collect()
}

async fn delivery_passes_with_the_process_provisioner(engine: Engine) {
    let server = Server::start(
        engine,
        &["--provisioner", "process", "--sweep-interval", "1"],
        &[("HEARTH_AGENT_HEARTBEAT_INTERVAL", "1")],
    )
    .await;
    let run = server.hearth(&["e2e", "template-delivery", "--timeout", "60"]).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}\nserver log:\n{}", run.stdout, run.stderr, server.log());
    assert_all_steps_passed(&run);
    assert!(run.line("A ok").contains("started by the server (provisioner process)"), "{}", run.stdout);
    assert!(run.line("E ok").contains("seo-all 1.0.0"), "{}", run.stdout);
    assert_eq!(workspace_names(&server).await, Vec::<String>::new(), "the harness leaves no workspace behind");
}

#[tokio::test]
async fn delivery_passes_with_the_process_provisioner_on_sqlite() {
    delivery_passes_with_the_process_provisioner(Engine::Sqlite).await;
}

#[tokio::test]
async fn delivery_passes_with_the_process_provisioner_on_postgres() {
    delivery_passes_with_the_process_provisioner(Engine::Postgres).await;
}

async fn delivery_passes_with_the_harness_running_the_agent(engine: Engine) {
    let server = Server::start(engine, &[], &[]).await;
    let run = server.hearth(&["e2e", "template-delivery", "--timeout", "60", "--json"]).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}\nserver log:\n{}", run.stdout, run.stderr, server.log());
    let report = run.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["runtime"], "harness", "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|step| step["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["A", "B", "C", "D", "E"]);
    for step in steps {
        assert_eq!(step["ok"], true, "{step:#}");
        assert!(step["seconds"].as_f64().is_some() && step["name"].is_string() && step["message"].is_string());
    }
    // With the agent local, the files on its disk were compared too.
    assert!(steps[2]["message"].as_str().unwrap().contains("matches byte for byte"), "{report:#}");
    assert!(steps[3]["message"].as_str().unwrap().contains("model/tokenizer.bin"), "{report:#}");
    assert_eq!(workspace_names(&server).await, Vec::<String>::new(), "the harness leaves no workspace behind");
}

#[tokio::test]
async fn delivery_passes_with_the_harness_running_the_agent_on_sqlite() {
    delivery_passes_with_the_harness_running_the_agent(Engine::Sqlite).await;
}

#[tokio::test]
async fn delivery_passes_with_the_harness_running_the_agent_on_postgres() {
    delivery_passes_with_the_harness_running_the_agent(Engine::Postgres).await;
}

/// Opens the server's SQLite file beside it (WAL mode allows a second writer
/// with a busy timeout).
async fn open_database(database: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(database)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

/// Overwrites a stored blob the way disk corruption (or a buggy replica)
/// would: the server then serves bytes that do not match their hash.
async fn corrupt_blob(database: &std::path::Path, sha256: &str) {
    let mut conn = open_database(database).await;
    let done =
        sqlx::query("update blobs set content = x'00' where sha256 = ?").bind(sha256).execute(&mut conn).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "no blob {sha256}");
}

/// Pushes the example plugin and template with the CLI, as an operator would.
async fn push_examples(server: &Server) {
    let plugin_dir = examples_dir().join("plugins/seo-all");
    let template_dir = examples_dir().join("templates/seo-agent");
    server.hearth(&["plugin", "push", plugin_dir.to_str().unwrap()]).await.expect_code(0);
    server.hearth(&["template", "push", template_dir.to_str().unwrap()]).await.expect_code(0);
}

#[tokio::test]
async fn a_corrupted_asset_fails_step_c_naming_the_condition() {
    let server = Server::start(Engine::Sqlite, &[], &[]).await;
    push_examples(&server).await;
    let config = std::fs::read(examples_dir().join("templates/seo-agent/config.yaml")).unwrap();
    corrupt_blob(&server.data_dir.join("hearth.db"), &hearth_core::digest::sha256_hex(&config)).await;

    let run = server.hearth(&["e2e", "template-delivery", "--template", "seo-agent", "--timeout", "8"]).await;
    run.expect_code(1);
    run.line("A ok");
    run.line("B ok");
    let c = run.line("C FAIL");
    assert!(c.contains("config.yaml") && c.contains("sha256"), "names the file and the hash that disagree: {c}");
    assert!(run.stderr.contains("error: template delivery failed at step C"), "{}", run.stderr);
    assert_eq!(workspace_names(&server).await, Vec::<String>::new(), "cleanup still happened");
}

/// Breaks recording, not delivery: the database refuses to store what a
/// runtime reports holding (as a broken write path would). The runtime gets
/// everything, but Hearth cannot prove it, and the e2e must say so.
#[tokio::test]
async fn a_server_that_cannot_record_what_the_runtime_holds_fails_the_e2e() {
    let server = Server::start(Engine::Sqlite, &[], &[]).await;
    let mut conn = open_database(&server.data_dir.join("hearth.db")).await;
    sqlx::query(
        "create trigger refuse_reports before update of installed_plugins, reported_assets_digest on workspaces \
         when new.installed_plugins is not old.installed_plugins \
           or new.reported_assets_digest is not old.reported_assets_digest \
         begin select raise(abort, 'recording disabled by the test'); end",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let run = server.hearth(&["e2e", "template-delivery", "--timeout", "8"]).await;
    run.expect_code(1);
    run.line("A ok");
    let failed = run.stdout.lines().find(|l| l.contains(" FAIL ")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(failed.contains("AssetsDelivered=False") || failed.contains("PluginsInstalled=False"), "{failed}");
    assert!(!run.stdout.contains("template delivery OK"), "{}", run.stdout);
}

#[tokio::test]
async fn a_corrupted_plugin_fails_step_e_naming_the_plugin_and_the_hash_mismatch() {
    let server = Server::start(Engine::Sqlite, &[], &[]).await;
    push_examples(&server).await;
    let skill = std::fs::read(examples_dir().join("plugins/seo-all/skills/page-audit.md")).unwrap();
    corrupt_blob(&server.data_dir.join("hearth.db"), &hearth_core::digest::sha256_hex(&skill)).await;

    let run = server.hearth(&["e2e", "template-delivery", "--template", "seo-agent", "--timeout", "8"]).await;
    run.expect_code(1);
    for step in ["A ok", "B ok", "C ok", "D ok"] {
        run.line(step);
    }
    let e = run.line("E FAIL");
    assert!(e.starts_with("E FAIL plugins not installed within 8s: PluginsInstalled=False InstallFailed:"), "{e}");
    assert!(e.contains("seo-all") && e.contains("does not match"), "{e}");
    assert!(e.contains("seo-all is not recorded as installed"), "{e}");
    assert!(run.stderr.contains("error: template delivery failed at step E"), "{}", run.stderr);
    // Cleanup still happened.
    assert!(run.stderr.contains("cleanup: deleted workspace e2e-"), "{}", run.stderr);
    assert_eq!(workspace_names(&server).await, Vec::<String>::new());
}
