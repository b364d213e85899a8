//! `hearth serve` as a process: the address line scripts wait for, and a
//! clean exit on SIGTERM after draining.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Engine, Server};

async fn serve_prints_its_address_once_ready_and_exits_0_on_sigterm(engine: Engine) {
    let mut server = Server::start(engine, &[], &[]).await;
    let port = server
        .first_line
        .strip_prefix("hearth listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {:?}", server.first_line));
    assert!(port.parse::<u16>().is_ok_and(|port| port > 0), "{:?}", server.first_line);

    // Ready means ready: the API answers right after the line.
    let health = server.hearth(&["workspace", "list", "--json"]).await;
    health.expect_code(0);
    assert_eq!(health.json(), serde_json::json!([]));

    let status = server.terminate().await;
    assert!(status.success(), "exit status {status}; log:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("draining in-flight requests"), "{log}");
}

#[tokio::test]
async fn serve_prints_its_address_once_ready_and_exits_0_on_sigterm_on_sqlite() {
    serve_prints_its_address_once_ready_and_exits_0_on_sigterm(Engine::Sqlite).await;
}

#[tokio::test]
async fn serve_prints_its_address_once_ready_and_exits_0_on_sigterm_on_postgres() {
    serve_prints_its_address_once_ready_and_exits_0_on_sigterm(Engine::Postgres).await;
}

/// The newest migration's version in `crates/<engine crate>/migrations`.
fn newest_migration(engine_crate: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(engine_crate).join("migrations");
    let versions = std::fs::read_dir(&dir).unwrap().map(|entry| {
        let name = entry.unwrap().file_name().into_string().unwrap();
        name.split('_').next().unwrap().parse::<i64>().unwrap_or_else(|_| panic!("migration {name}"))
    });
    versions.max().unwrap_or_else(|| panic!("no migration in {}", dir.display()))
}

/// `hearth migrate` says, on one stdout line, which engine it migrated and
/// the schema version it left (scripts read it).
async fn migrate_prints_the_engine_and_the_schema_version(engine: Engine) {
    let dir = support::TestDir::new();
    let mut command = support::hearth_command(dir.path());
    command.args(["migrate", "--data-dir"]).arg(dir.path().join("data"));
    let database = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(hearth_store_pg::testing::create_database().await),
    };
    if let Some(database) = &database {
        command.arg("--database-url").arg(&database.url);
    }
    let (name, engine_crate) = match engine {
        Engine::Sqlite => ("sqlite", "hearth-store-sqlite"),
        Engine::Postgres => ("postgres", "hearth-store-pg"),
    };
    let run = support::Run::of(command).await;
    run.expect_code(0);
    let expected = format!("database migrated ({name}, schema version {})\n", newest_migration(engine_crate));
    assert_eq!(run.stdout, expected, "stderr: {}", run.stderr);
}

#[tokio::test]
async fn migrate_prints_the_engine_and_the_schema_version_on_sqlite() {
    migrate_prints_the_engine_and_the_schema_version(Engine::Sqlite).await;
}

#[tokio::test]
async fn migrate_prints_the_engine_and_the_schema_version_on_postgres() {
    migrate_prints_the_engine_and_the_schema_version(Engine::Postgres).await;
}

/// The process provisioner adopts an agent that already holds a
/// directory's lock, and it knows that case by exit code 75 alone.
#[tokio::test]
async fn a_second_agent_on_a_locked_directory_exits_75_naming_the_lock() {
    let server = Server::start(Engine::Sqlite, &[], &[]).await;
    let created = server.hearth(&["workspace", "create", "locked", "--issue-token", "--json"]).await;
    created.expect_code(0);
    let created = created.json();
    let id = created["id"].as_str().unwrap();
    let token = created["auth_token"].as_str().unwrap();
    let dir = server.dir.path().join("agent");
    let agent = |log: &str| {
        let mut command = support::hearth_command(server.dir.path());
        command
            .args([
                "agent",
                "--server",
                &server.url,
                "--workspace",
                id,
                "--token",
                token,
                "--heartbeat-interval",
                "0.5",
            ])
            .arg("--dir")
            .arg(&dir)
            .stderr(std::fs::File::create(server.dir.path().join(log)).unwrap());
        command
    };
    let mut first = agent("first.log").spawn().unwrap();
    // Wait until the first one is online, so it surely holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = server.hearth(&["workspace", "get", id, "--json"]).await;
        if got.json()["status"] == "online" {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(server.dir.path().join("first.log")).unwrap_or_default();
            panic!("the first agent did not come online; its log:\n{log}\nthe workspace: {}", got.stdout);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let second = support::Run::of(agent("unused.log")).await;
    assert_eq!(second.code, Some(75), "stderr: {}", second.stderr);
    assert!(second.stderr.contains("agent.lock"), "{}", second.stderr);
    assert!(first.try_wait().unwrap().is_none(), "the first agent is unaffected");

    // Deleting the workspace ends the first agent with 0.
    server.hearth(&["workspace", "delete", id]).await.expect_code(0);
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), first.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

/// `hearth up`, the README's first command: narrates until the example
/// workspace has converged, then keeps serving until SIGTERM.
#[tokio::test]
async fn up_loads_the_example_and_narrates_the_workspace_until_it_has_converged() {
    let dir = support::TestDir::new();
    let mut command = support::hearth_command(dir.path());
    command
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .env("HEARTH_AGENT_HEARTBEAT_INTERVAL", "1")
        // As a new user who built it: no `hearth` on PATH, not under cargo.
        .env("PATH", "/usr/bin:/bin")
        .env_remove("CARGO")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap());
    let mut child = command.spawn().unwrap();
    let (text, finished) = support::up_walkthrough(&mut child, std::time::Duration::from_secs(60)).await;
    assert!(finished, "up did not finish its walkthrough; it said:\n{text}");
    for expected in [
        "Hearth is running at http://127.0.0.1:",
        "Loaded the example plugin seo-all 1.0.0",
        "Loaded the example template seo-agent",
        "Created workspace seo-agent",
        "Workspace seo-agent is online",
        "Assets delivered (digest sha256:",
        "Plugin seo-all 1.0.0 installed",
        "Workspace seo-agent has converged",
        "admin token:  data/admin-token",
        "dashboard:    http://127.0.0.1:",
        "install:      cargo install --path crates/hearth",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // This very binary, by its path: commands that work as printed.
    for expected in [format!("{} workspace list", support::HEARTH), format!("{} events --follow", support::HEARTH)] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    let pid = child.id().unwrap();
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    // The runtime Hearth started is gone with it (it held the lock).
    let lock = std::fs::read_dir(dir.path().join("data/workspaces")).unwrap().next().unwrap().unwrap().path();
    let file = std::fs::OpenOptions::new().write(true).open(lock.join("agent.lock")).unwrap();
    assert!(file.try_lock().is_ok(), "the runtime still holds its lock after up exited");
}
