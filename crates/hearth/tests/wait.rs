//! `hearth workspace wait` and `workspace create --wait` as scripts use
//! them: exit 0 when met, 1 when the time runs out, 3 when it can no longer
//! happen (removed), 2 for a malformed `--for`; no progress line when stderr
//! is not a terminal. And `hearth events` names workspaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{examples_dir, Engine, Server};

async fn wait_exits_by_outcome(engine: Engine) {
    let server = Server::start(engine, &["--provisioner", "process", "--agent-heartbeat-interval", "0.5"], &[]).await;
    let plugin = examples_dir().join("plugins/seo-all");
    server.hearth(&["plugin", "push", plugin.to_str().unwrap()]).await.expect_code(0);
    let template = examples_dir().join("templates/seo-agent");
    server.hearth(&["template", "push", template.to_str().unwrap(), "--name", "seo"]).await.expect_code(0);

    // create --wait returns once the provisioned runtime is online.
    let created = server
        .hearth(&["workspace", "create", "waiter", "--template", "seo", "--wait", "--timeout", "90", "--json"])
        .await;
    created.expect_code(0);
    let created = created.json();
    assert_eq!(created["status"], "online", "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let plugins =
        server.hearth(&["workspace", "wait", &id, "--for", "condition=PluginsInstalled", "--timeout", "90"]).await;
    plugins.expect_code(0);
    assert!(
        plugins.stdout.starts_with(&format!("workspace {id} has condition=PluginsInstalled (after ")),
        "{}",
        plugins.stdout
    );
    assert_eq!(plugins.stderr, "", "no progress line when stderr is not a terminal");

    let json = server.hearth(&["workspace", "wait", &id, "--for", "status=online", "--json"]).await;
    json.expect_code(0);
    assert_eq!(json.json()["outcome"], "met");
    assert_eq!(json.json()["workspace"]["id"], id.as_str());

    server.hearth(&["workspace", "pause", &id]).await.expect_code(0);
    let late = server.hearth(&["workspace", "wait", &id, "--for", "status=online", "--timeout", "1"]).await;
    late.expect_code(1);
    assert_eq!(
        late.stderr.trim_end(),
        format!("error: workspace {id} did not have status=online within 1s (it is paused)")
    );

    server.hearth(&["workspace", "delete", &id]).await.expect_code(0);
    let gone = server.hearth(&["workspace", "wait", &id, "--for", "status=online", "--timeout", "60"]).await;
    gone.expect_code(3);
    assert_eq!(gone.stderr.trim_end(), format!("error: workspace {id} is removed; status=online can no longer happen"));

    let malformed = server.hearth(&["workspace", "wait", &id, "--for", "online"]).await;
    malformed.expect_code(2);
    assert!(malformed.stderr.contains("expected status=STATUS or condition=TYPE"), "{}", malformed.stderr);
    let help = server.hearth(&["workspace", "wait", "--help"]).await;
    help.expect_code(0);
    assert!(help.stdout.contains("Exit codes: 0 met; 1 timed out"), "{}", help.stdout);

    // The event log names the workspace.
    let events = server.hearth(&["events", "--workspace", &id]).await;
    events.expect_code(0);
    let short = &id[..8];
    assert!(events.stdout.contains(&format!("waiter ({short})")), "{}", events.stdout);
}

#[tokio::test]
async fn wait_exits_by_outcome_on_sqlite() {
    wait_exits_by_outcome(Engine::Sqlite).await;
}

#[tokio::test]
async fn wait_exits_by_outcome_on_postgres() {
    wait_exits_by_outcome(Engine::Postgres).await;
}
