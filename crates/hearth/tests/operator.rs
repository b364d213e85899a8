//! Operator commands as a person or a script runs them: one JSON document
//! per command with `--json`, exit 1 and one sentence on stderr when the
//! server refuses, on both engines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use hearth_api::RegisterRequest;
use hearth_core::WorkspaceId;
use support::{examples_dir, Engine, Server};

async fn a_template_with_invalid_yaml_is_refused_naming_the_line(engine: Engine) {
    let server = Server::start(engine, &[], &[]).await;
    let dir = server.dir.path().join("broken");
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::write(dir.join("config.yaml"), "name: broken\nruntime: claude-code\nplugins: [seo-all\nmodel: x\n")
        .unwrap();
    std::fs::write(dir.join("prompts/system.md"), "hello").unwrap();
    let run = server.hearth(&["template", "push", dir.to_str().unwrap()]).await;
    run.expect_code(1);
    assert_eq!(run.stdout, "");
    let stderr = run.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    assert!(stderr.starts_with("error: cannot push template \"broken\""), "{stderr}");
    assert!(stderr.contains("config.yaml: invalid YAML at line 4 column"), "{stderr}");
    // Nothing was stored.
    let list = server.hearth(&["template", "list", "--json"]).await;
    list.expect_code(0);
    assert_eq!(list.json(), serde_json::json!([]));
}

#[tokio::test]
async fn a_template_with_invalid_yaml_is_refused_naming_the_line_on_sqlite() {
    a_template_with_invalid_yaml_is_refused_naming_the_line(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_template_with_invalid_yaml_is_refused_naming_the_line_on_postgres() {
    a_template_with_invalid_yaml_is_refused_naming_the_line(Engine::Postgres).await;
}

async fn operator_commands_print_one_json_document_and_refusals_exit_1(engine: Engine) {
    let server = Server::start(engine, &[], &[]).await;

    // Templates and plugins.
    let plugin_dir = examples_dir().join("plugins/seo-all");
    let plugin = server.hearth(&["plugin", "push", plugin_dir.to_str().unwrap(), "--json"]).await;
    plugin.expect_code(0);
    assert_eq!(plugin.json()["name"], "seo-all");
    let template_dir = examples_dir().join("templates/seo-agent");
    let template =
        server.hearth(&["template", "push", template_dir.to_str().unwrap(), "--name", "seo", "--json"]).await;
    template.expect_code(0);
    assert_eq!(template.json()["status"], "imported");
    assert_eq!(template.json()["name"], "seo");
    let got = server.hearth(&["template", "get", "seo", "--json"]).await;
    got.expect_code(0);
    let got = got.json();
    let files: Vec<&str> = got["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files, ["config.yaml", "model/tokenizer.bin", "prompts/system.md", "prompts/tasks/audit.md"]);
    assert_eq!(server.hearth(&["template", "list", "--json"]).await.json().as_array().unwrap().len(), 1);
    assert_eq!(server.hearth(&["plugin", "list", "--json"]).await.json().as_array().unwrap().len(), 1);
    let table = server.hearth(&["plugin", "list"]).await;
    table.expect_code(0);
    assert!(table.stdout.starts_with("NAME") && table.stdout.contains("seo-all  1.0.0"), "{}", table.stdout);

    // Workspaces.
    let created =
        server.hearth(&["workspace", "create", "smoke", "--template", "seo", "--issue-token", "--json"]).await;
    created.expect_code(0);
    let created = created.json();
    assert_eq!(created["status"], "provisioning");
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["auth_token"].as_str().unwrap().to_owned();

    let list = server.hearth(&["workspace", "list", "--json"]).await;
    list.expect_code(0);
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let get = server.hearth(&["workspace", "get", &id, "--json"]).await;
    get.expect_code(0);
    assert_eq!(get.json()["name"], "smoke");

    // A provisioning workspace cannot be paused: 409, said in one sentence.
    let refused = server.hearth(&["workspace", "pause", &id, "--json"]).await;
    refused.expect_code(1);
    assert_eq!(refused.stdout, "");
    let stderr = refused.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot pause workspace {id}: server answered 409 Conflict: ")),
        "{stderr}"
    );
    assert!(stderr.contains("provisioning"), "the sentence names the current status: {stderr}");

    // Its runtime registers: online, and now pause and resume work.
    let runtime = hearth_client::Client::new(&server.url, Some(token)).unwrap();
    let workspace: WorkspaceId = id.parse().unwrap();
    let request = RegisterRequest { id: workspace, url: "remote://no-inbound".into(), agent_card: None };
    runtime.register(&request).await.unwrap();
    // Rotating its token: the secret alone on stdout; the old one stops at once.
    let rotated = server.hearth(&["token", "create", "--workspace", &id, "--revoke-previous-after", "0"]).await;
    rotated.expect_code(0);
    let secret = rotated.stdout.trim().to_owned();
    assert_eq!(secret.len(), 43, "{:?}", rotated.stdout);
    let heartbeat = hearth_api::HeartbeatRequest { workspace_id: workspace, ..Default::default() };
    assert_eq!(runtime.heartbeat(&heartbeat).await.unwrap_err().status(), Some(401), "the old token stopped");
    let runtime = runtime.with_token(Some(secret));
    runtime.heartbeat(&heartbeat).await.expect("the new token works");
    let listed = server.hearth(&["token", "list", "--workspace", &id, "--json"]).await;
    listed.expect_code(0);
    assert_eq!(listed.json().as_array().map(Vec::len), Some(2), "{}", listed.stdout);
    let paused = server.hearth(&["workspace", "pause", &id, "--json"]).await;
    paused.expect_code(0);
    assert_eq!(paused.json()["status"], "paused");
    let resumed = server.hearth(&["workspace", "resume", &id, "--json"]).await;
    resumed.expect_code(0);
    assert_eq!(resumed.json()["status"], "provisioning");
    let deleted = server.hearth(&["workspace", "delete", &id, "--json"]).await;
    deleted.expect_code(0);
    assert_eq!(deleted.json()["status"], "removed");
    assert_eq!(server.hearth(&["workspace", "list", "--json"]).await.json(), serde_json::json!([]));
}

#[tokio::test]
async fn operator_commands_print_one_json_document_and_refusals_exit_1_on_sqlite() {
    operator_commands_print_one_json_document_and_refusals_exit_1(Engine::Sqlite).await;
}

#[tokio::test]
async fn operator_commands_print_one_json_document_and_refusals_exit_1_on_postgres() {
    operator_commands_print_one_json_document_and_refusals_exit_1(Engine::Postgres).await;
}

/// `hearth org` and `hearth token … --org`: an org is created, listed and
/// read by id or by name; a token made in it with `--org` sees only it; a
/// taken name and an unknown org are refusals that exit 1.
async fn orgs_are_created_and_their_tokens_made_by_name(engine: Engine) {
    let server = Server::start(engine, &[], &[]).await;
    let created = server.hearth(&["org", "create", "team-a"]).await;
    created.expect_code(0);
    let id = created.stdout.trim().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "the id alone on stdout: {:?}", created.stdout);
    let listed = server.hearth(&["org", "list", "--json"]).await;
    listed.expect_code(0);
    let orgs = listed.json();
    let names: Vec<&str> = orgs.as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "team-a"]);
    let by_name = server.hearth(&["org", "get", "team-a", "--json"]).await;
    by_name.expect_code(0);
    assert_eq!(by_name.json()["id"], id.as_str());
    assert_eq!(by_name.json()["workspaces"]["total"], 0);
    let taken = server.hearth(&["org", "create", "team-a"]).await;
    taken.expect_code(1);
    assert!(taken.stderr.contains("an org with this name already exists"), "{}", taken.stderr);
    let unknown = server.hearth(&["org", "get", "nobody"]).await;
    unknown.expect_code(1);
    assert!(unknown.stderr.contains("no org named \"nobody\""), "{}", unknown.stderr);

    let token = server.hearth(&["token", "create", "--org", "team-a", "--name", "team-a-ops"]).await;
    token.expect_code(0);
    let secret = token.stdout.trim().to_owned();
    let in_org = server.hearth(&["token", "list", "--org", &id, "--json"]).await;
    in_org.expect_code(0);
    assert_eq!(in_org.json()[0]["name"], "team-a-ops");
    assert_eq!(server.hearth(&["token", "list", "--json"]).await.json(), serde_json::json!([]), "not in default");
    let team = hearth_client::Client::new(&server.url, Some(secret.clone())).unwrap();
    let request = hearth_api::CreateWorkspaceRequest { name: "w".into(), ..Default::default() };
    let workspace = team.create_workspace(&request).await.unwrap();
    assert_eq!(workspace.org_id.to_string(), id, "created in team-a");
    let counted = server.hearth(&["org", "get", &id, "--json"]).await;
    assert_eq!(counted.json()["workspaces"]["total"], 1);
    // The request's log line names the token by its id, never the token.
    let token_id = in_org.json()[0]["id"].as_str().unwrap().to_owned();
    let log = server.log();
    assert!(
        log.lines().any(|line| line.contains("workspace created") && line.contains(&format!("token_id={token_id}"))),
        "{log}"
    );
    assert!(!log.contains(&secret), "the secret is never logged");

    // The admin pushes to team-a and creates in it, by name.
    let plugin_dir = examples_dir().join("plugins/seo-all");
    server.hearth(&["plugin", "push", plugin_dir.to_str().unwrap(), "--org", "team-a"]).await.expect_code(0);
    let template_dir = examples_dir().join("templates/seo-agent");
    let dir = template_dir.to_str().unwrap();
    server.hearth(&["template", "push", dir, "--name", "seo", "--org", "team-a"]).await.expect_code(0);
    let made = server.hearth(&["workspace", "create", "t", "--template", "seo", "--org", "team-a", "--json"]).await;
    made.expect_code(0);
    assert_eq!(made.json()["org_id"], id.as_str());
    assert_eq!(made.json()["desired_plugins"][0]["name"], "seo-all");
    let templates = team.list_templates().await.unwrap();
    assert_eq!(templates.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["seo"], "in team-a");
    let elsewhere = server.hearth(&["workspace", "create", "x", "--template", "seo"]).await;
    elsewhere.expect_code(1); // the default org has no template seo
    let listed = server.hearth(&["workspace", "list", "--org", "team-a", "--json"]).await;
    listed.expect_code(0);
    let listed = listed.json();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["w", "t"], "team-a's only");
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap()).collect();
    let events = server.hearth(&["events", "--org", "team-a", "--json"]).await;
    events.expect_code(0);
    let events = events.json();
    assert!(!events.as_array().unwrap().is_empty());
    for event in events.as_array().unwrap() {
        assert!(ids.contains(&event["workspace_id"].as_str().unwrap()), "team-a's events only: {event}");
    }
    for (what, name) in [("template", "seo"), ("plugin", "seo-all")] {
        let in_team = server.hearth(&[what, "list", "--org", "team-a", "--json"]).await;
        in_team.expect_code(0);
        assert_eq!(in_team.json()[0]["name"], name, "{what}s of team-a");
        let in_default = server.hearth(&[what, "list", "--org", "default", "--json"]).await;
        assert_eq!(in_default.json(), serde_json::json!([]), "none in default");
    }
    let nowhere = server.hearth(&["workspace", "create", "x", "--org", "nobody"]).await;
    nowhere.expect_code(1);
    assert!(nowhere.stderr.contains("no org named"), "{}", nowhere.stderr);

    // A viewer's token, by role: it reads team-a, and is told what it may not do.
    let viewer = server.hearth(&["token", "create", "--org", "team-a", "--name", "eyes", "--role", "viewer"]).await;
    viewer.expect_code(0);
    assert!(viewer.stderr.contains("role viewer"), "{}", viewer.stderr);
    let table = server.hearth(&["token", "list", "--org", "team-a"]).await;
    table.expect_code(0);
    assert!(table.stdout.lines().any(|line| line.contains("eyes") && line.contains("viewer")), "{}", table.stdout);
    assert!(table.stdout.lines().any(|line| line.contains("team-a-ops") && line.contains("owner")), "{}", table.stdout);
    let eyes = viewer.stdout.trim();
    let read = server.hearth(&["--token", eyes, "workspace", "list", "--json"]).await;
    read.expect_code(0);
    assert_eq!(read.json().as_array().map(Vec::len), Some(2), "team-a's two workspaces");
    let refused = server.hearth(&["--token", eyes, "workspace", "create", "nope"]).await;
    refused.expect_code(1);
    assert!(refused.stderr.contains("needs the `operator` role"), "{}", refused.stderr);
    let bad_role = server.hearth(&["token", "create", "--role", "admin"]).await;
    bad_role.expect_code(2); // clap: not one of owner, operator, viewer

    // Quotas, by name: one more workspace than the quota is refused.
    let quota = server.hearth(&["org", "quota", "team-a", "--workspaces", "2"]).await;
    quota.expect_code(0);
    assert!(quota.stdout.contains("quota workspaces: 2"), "{}", quota.stdout);
    let full = server.hearth(&["workspace", "create", "third", "--org", "team-a"]).await;
    full.expect_code(1);
    assert!(full.stderr.contains("workspaces quota: the limit is 2 and 2 are used"), "{}", full.stderr);
    let got = server.hearth(&["org", "get", "team-a"]).await;
    assert!(got.stdout.contains("quota workspaces: 2 of 2"), "{}", got.stdout);

    // Deleted only with --cascade while it has workspaces; then gone.
    let refused = server.hearth(&["org", "delete", "team-a"]).await;
    refused.expect_code(1);
    assert!(refused.stderr.contains("cascade"), "{}", refused.stderr);
    let deleted = server.hearth(&["org", "delete", "team-a", "--cascade"]).await;
    deleted.expect_code(0);
    assert!(deleted.stdout.contains("2 workspaces removed"), "{}", deleted.stdout);
    server.hearth(&["org", "get", &id]).await.expect_code(1);
    let gone = server.hearth(&["--token", eyes, "workspace", "list"]).await;
    gone.expect_code(1); // its tokens were revoked
}

#[tokio::test]
async fn orgs_are_created_and_their_tokens_made_by_name_on_sqlite() {
    orgs_are_created_and_their_tokens_made_by_name(Engine::Sqlite).await;
}

#[tokio::test]
async fn orgs_are_created_and_their_tokens_made_by_name_on_postgres() {
    orgs_are_created_and_their_tokens_made_by_name(Engine::Postgres).await;
}

#[tokio::test]
async fn pushing_a_directory_with_a_symbolic_link_is_refused_before_anything_is_sent() {
    let dir = support::TestDir::new();
    std::fs::write(dir.path().join("config.yaml"), "name: x\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("hostname")).unwrap();
    // No server at all: the refusal happens before any request.
    let mut command = support::hearth_command(dir.path());
    command.args(["--server", "http://127.0.0.1:9", "--token", "t", "template", "push", "."]);
    let run = support::Run::of(command).await;
    run.expect_code(1);
    assert!(run.stderr.contains("hostname is a symbolic link"), "{}", run.stderr);
}
