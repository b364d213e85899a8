//! Assets and plugins: delivered, verified, recorded, re-delivered when lost.

use std::fs;

use hearth_agent::{Agent, StepOutcome, ASSETS_STATE};
use hearth_core::WorkspaceStatus;
use hearth_store_sqlite::testing::sqlx;

use crate::harness::{config, entries, model, step_ok, Server, AUDIT, CONFIG, NOTES, PLUGIN, PROMPT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_workspace_gets_its_assets_and_plugins_and_hearth_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    let plugin_sha = server.push_fixture().await;
    let ws = server.create("seo-agent", Some("seo"), true).await;
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();

    assert!(step_ok(&mut agent).await, "the first step delivers and installs");
    assert_eq!(fs::read_to_string(dir.join("assets/config.yaml")).unwrap(), CONFIG, "config.yaml byte-identical");
    assert_eq!(fs::read_to_string(dir.join("assets/prompts/system.md")).unwrap(), PROMPT);
    assert_eq!(fs::read(dir.join("assets/model/weights.bin")).unwrap(), model(), "the binary model is exact");
    assert_eq!(fs::read_to_string(dir.join("assets/prompts/café notes #1.md")).unwrap(), NOTES);
    assert_eq!(fs::read_to_string(dir.join(format!("plugins/{PLUGIN}/skills/audit.md"))).unwrap(), AUDIT);
    let manifest = fs::read_to_string(dir.join(format!("plugins/{PLUGIN}/plugin.yaml"))).unwrap();
    assert!(manifest.contains(&format!("sha256: {plugin_sha}")), "{manifest}");

    assert!(!step_ok(&mut agent).await, "the second step reports and has nothing to do");
    let got = server.workspace(ws.id).await;
    assert_eq!(got.status, WorkspaceStatus::Online);
    assert_eq!(got.url.as_deref(), Some(hearth_agent::NO_INBOUND_URL));
    assert_eq!(server.condition(ws.id, "AssetsDelivered").await.0, "True");
    assert_eq!(server.condition(ws.id, "PluginsInstalled").await.0, "True");
    assert_eq!(got.installed_plugins.len(), 1);
    assert_eq!(got.installed_plugins[0].sha256.as_deref(), Some(plugin_sha.as_str()));
    let events = server.events(ws.id).await;
    for name in ["WORKSPACE_ONLINE", "ASSETS_DELIVERED", "PLUGIN_INSTALLED"] {
        assert!(events.contains(&name.to_owned()), "{name} in {events:?}");
    }
    assert_eq!(entries(&dir), ["agent.lock", "assets", ASSETS_STATE, "plugins"], "no staging left behind");

    // A restarted agent trusts the verified delivery: nothing to download.
    drop(agent);
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    assert!(!step_ok(&mut agent).await, "a restart redelivers nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_goes_missing_on_disk_comes_back_without_any_status_change() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    server.push_fixture().await;
    let ws = server.create("seo-agent", Some("seo"), true).await;
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    step_ok(&mut agent).await;
    step_ok(&mut agent).await;
    let lifecycle = |events: Vec<String>| events.into_iter().filter(|e| e.starts_with("WORKSPACE_")).count();
    let before = lifecycle(server.events(ws.id).await);

    fs::remove_dir_all(dir.join(format!("plugins/{PLUGIN}"))).unwrap();
    fs::remove_file(dir.join("assets/prompts/system.md")).unwrap();
    let mut steps = 0;
    while !(dir.join(format!("plugins/{PLUGIN}/skills/audit.md")).exists()
        && dir.join("assets/prompts/system.md").exists())
    {
        steps += 1;
        assert!(steps <= 2, "back within two heartbeats");
        step_ok(&mut agent).await;
    }
    assert_eq!(fs::read_to_string(dir.join("assets/prompts/system.md")).unwrap(), PROMPT);
    step_ok(&mut agent).await;
    assert_eq!(server.workspace(ws.id).await.status, WorkspaceStatus::Online);
    assert_eq!(lifecycle(server.events(ws.id).await), before, "no status change along the way");
    assert_eq!(server.condition(ws.id, "PluginsInstalled").await.0, "True");
    assert_eq!(server.condition(ws.id, "AssetsDelivered").await.0, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_whose_bytes_do_not_match_its_hash_is_refused_and_nothing_is_half_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("server");
    let server = Server::start(&data_dir).await;
    let script = "#!/bin/sh\necho broken-plugin-ok\n";
    let sha = server.push_plugin(&[("plugin.yaml", "name: broken\nversion: 0.1.0\n"), ("run.sh", script)]).await;
    server.import_template("broken-tpl", "name: broken-agent\nplugins:\n  - broken\n").await;
    // Corrupt the stored bytes behind the server's back, as disk rot or a
    // bad replica would.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", data_dir.join("hearth.db").display())).await.unwrap();
    let blob = hearth_core::digest::sha256_hex(script.as_bytes());
    let updated = sqlx::query("update blobs set content = ?1 where sha256 = ?2")
        .bind(b"#!/bin/sh\nrm -rf ~\n".to_vec())
        .bind(&blob)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    db.close().await;

    let ws = server.create("broken-agent", Some("broken-tpl"), true).await;
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    for _ in 0..2 {
        let StepOutcome::Running { converge, .. } = agent.step().await.unwrap() else { panic!("not running") };
        assert_eq!(converge.errors.len(), 1, "{:?}", converge.errors);
        let error = &converge.errors[0];
        assert!(error.starts_with("plugin broken: content hash "), "{error}");
        assert!(error.ends_with(&format!("does not match the expected {sha}")), "{error}");
    }
    let (status, reason, message) = server.condition(ws.id, "PluginsInstalled").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InstallFailed"), "{message}");
    assert!(message.contains("broken"), "{message}");
    assert!(message.contains("does not match the expected"), "{message}");
    assert!(server.events(ws.id).await.contains(&"PLUGIN_INSTALL_FAILED".to_owned()));
    // The assets were still delivered; the plugin left no trace at all.
    assert_eq!(server.condition(ws.id, "AssetsDelivered").await.0, "True");
    assert_eq!(entries(&dir), ["agent.lock", "assets", ASSETS_STATE], "no plugins/broken, no staging");
    assert!(server.workspace(ws.id).await.installed_plugins.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stops_while_paused_and_resumes_after() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server")).await;
    server.push_fixture().await;
    let ws = server.create("seo-agent", Some("seo"), true).await;
    let dir = tmp.path().join("agent");
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    step_ok(&mut agent).await;

    server.admin.pause(ws.id).await.unwrap();
    let plugin_dir = dir.join(format!("plugins/{PLUGIN}"));
    fs::remove_dir_all(&plugin_dir).unwrap();
    for _ in 0..2 {
        assert_eq!(agent.step().await.unwrap(), StepOutcome::Stopped { status: WorkspaceStatus::Paused });
    }
    assert!(!plugin_dir.exists(), "no work while paused");
    assert_eq!(server.workspace(ws.id).await.status, WorkspaceStatus::Paused, "heartbeats do not revive it");

    // A restarted agent cannot register while paused, and still heartbeats.
    drop(agent);
    let mut agent = Agent::new(config(&server.url, ws.id, &dir, ws.auth_token.as_deref())).unwrap();
    assert_eq!(agent.step().await.unwrap(), StepOutcome::Stopped { status: WorkspaceStatus::Paused });

    server.admin.resume(ws.id).await.unwrap();
    assert!(step_ok(&mut agent).await, "reinstalled once resumed");
    assert!(plugin_dir.exists());
    assert_eq!(server.workspace(ws.id).await.status, WorkspaceStatus::Online);
}
