//! Quotas and org deletion (issue 23): each quota is reached exactly at its
//! limit and refused past it with `quota_exceeded` (its name, limit and
//! use), concurrent creates never pass it, and an org is deleted only
//! empty or with `?cascade=true`, through the workspaces' lifecycle.

use hearth_api::UploadPluginRequest;
use hearth_api::{
    CreateTokenRequest, CreateWorkspaceRequest, ErrorCode, FileContent, ImportTemplateRequest, OrgQuotas,
};
use hearth_client::{Client, ClientError};
use hearth_core::Role;
use serde_json::Value;
use uuid::Uuid;

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    each_quota_is_reached_exactly_at_its_limit_and_refused_past_it,
    an_org_is_deleted_only_empty_or_with_its_workspaces_through_their_lifecycle,
);

/// An org named `name` and a client holding an owner token of it.
async fn org_with_owner(app: &TestApp, name: &str) -> (Uuid, Client) {
    let org = app.admin.create_org(name).await.unwrap().id;
    let request = CreateTokenRequest { name: Some("owner".into()), role: Some(Role::Owner) };
    let token = app.admin.create_org_token_in(Some(org), &request).await.unwrap().auth_token.unwrap();
    (org, app.client(Some(&token)))
}

fn named(name: &str) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest { name: name.into(), ..Default::default() }
}

/// The refusal of a request past `quota`.
fn assert_exceeded(error: &ClientError, quota: &str, limit: i64, used: i64) {
    assert_eq!((error.status(), error.code()), (Some(409), Some(ErrorCode::QuotaExceeded)), "{error}");
    let ClientError::Api { body, .. } = error else { panic!("an API refusal: {error}") };
    assert_eq!((body.quota.as_deref(), body.limit, body.used), (Some(quota), Some(limit), Some(used)), "{error}");
    assert!(body.error.contains(quota) && body.error.contains(&limit.to_string()), "says which and how much: {error}");
}

async fn each_quota_is_reached_exactly_at_its_limit_and_refused_past_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acme, owner) = org_with_owner(&app, "acme").await;
    let quotas = OrgQuotas { workspaces: Some(3), running: Some(2), template_bytes: Some(20), plugin_bytes: Some(40) };
    let set = app.admin.set_org_quotas(acme, &quotas).await.unwrap();
    assert_eq!(set.quotas, quotas);
    // Only the admin sets quotas.
    let refused = owner.set_org_quotas(acme, &OrgQuotas::default()).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    let negative = app.raw().put(format!("{}/orgs/{acme}/quotas", app.url)).bearer_auth(&app.admin_token);
    let negative = negative.json(&serde_json::json!({"workspaces": -1})).send().await.unwrap();
    assert_eq!(negative.status(), 400);

    // Running: two at once (a create starts one).
    let request = CreateWorkspaceRequest { name: "a".into(), issue_token: Some(true), ..Default::default() };
    let first = owner.create_workspace(&request).await.unwrap();
    let runtime = app.client(first.auth_token.as_deref());
    let register = hearth_api::RegisterRequest { id: first.id, url: "http://localhost:9/".into(), agent_card: None };
    runtime.register(&register).await.unwrap();
    owner.create_workspace(&named("b")).await.unwrap();
    assert_exceeded(&owner.create_workspace(&named("c")).await.unwrap_err(), "running", 2, 2);
    // A batch past two quotas names the first (in the order of OrgQuotas).
    let batch = vec![named("c"), named("d")];
    assert_exceeded(&owner.create_workspaces(batch).await.unwrap_err(), "workspaces", 3, 2);
    assert_eq!(owner.list_workspaces(false).await.unwrap().len(), 2, "nothing of a refused batch");
    // Paused, a workspace stops running; resuming it starts one again.
    owner.pause(first.id).await.unwrap();
    owner.create_workspace(&named("c")).await.unwrap();
    assert_exceeded(&owner.resume(first.id).await.unwrap_err(), "running", 2, 2);
    assert_eq!(app.admin.get_workspace(first.id).await.unwrap().status, hearth_core::WorkspaceStatus::Paused);
    // Another org is neither counted nor limited.
    app.admin.create_workspace(&named("elsewhere")).await.unwrap();

    // Workspaces in total: three, removed ones not counted.
    app.admin.set_org_quotas(acme, &OrgQuotas { running: None, ..quotas }).await.unwrap();
    assert_exceeded(&owner.create_workspace(&named("d")).await.unwrap_err(), "workspaces", 3, 3);
    owner.delete_workspace(first.id).await.unwrap();
    owner.create_workspace(&named("d")).await.unwrap();

    // Storage: templates and plugins, in bytes of their files.
    let template = |name: &str, config: String| ImportTemplateRequest {
        name: name.into(),
        files: [("config.yaml".into(), FileContent::Text(config))].into(),
    };
    owner.import_template(&template("t1", "name: t1\n".into())).await.unwrap(); // 9 bytes
    let big = template("t2", format!("name: t2\n{}\n", "#".repeat(10))); // 20 bytes
    assert_exceeded(&owner.import_template(&big).await.unwrap_err(), "template_bytes", 20, 9);
    owner.import_template(&template("t2", "name: t2\n#\n".into())).await.unwrap(); // 11: 20 of 20
    let plugin = |name: &str| UploadPluginRequest {
        name: None,
        files: [("plugin.yaml".to_owned(), FileContent::Text(format!("name: {name}\nversion: 1.0.0\n")))].into(),
    };
    owner.push_plugin_json(&plugin("p1")).await.unwrap(); // 24 bytes
    assert_exceeded(&owner.push_plugin_json(&plugin("p2")).await.unwrap_err(), "plugin_bytes", 40, 24);

    // The admin reads the org's quotas and use; the metrics say them too.
    let read = app.admin.get_org(acme).await.unwrap();
    let usage = read.usage.expect("GET /orgs/{id} says its use");
    assert_eq!((usage.workspaces, usage.running, usage.template_bytes, usage.plugin_bytes), (3, 3, 20, 24));
    let metrics = app.raw().get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"hearth_org_quota_used{org="acme",quota="template_bytes"} 20"#), "{metrics}");
    assert!(metrics.contains(r#"hearth_org_quota_limit{org="acme",quota="plugin_bytes"} 40"#), "{metrics}");
}

async fn an_org_is_deleted_only_empty_or_with_its_workspaces_through_their_lifecycle(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (acme, owner) = org_with_owner(&app, "acme").await;
    let ws = owner
        .create_workspace(&CreateWorkspaceRequest { name: "w".into(), issue_token: Some(true), ..Default::default() })
        .await
        .unwrap();
    let runtime = app.client(ws.auth_token.as_deref());

    let refused = app.admin.delete_org(acme, false).await.unwrap_err();
    assert_eq!((refused.status(), refused.code()), (Some(409), Some(ErrorCode::Conflict)), "{refused}");
    assert!(refused.to_string().contains("cascade=true"), "says how: {refused}");
    assert_eq!(owner.list_workspaces(false).await.unwrap().len(), 1, "nothing removed");
    let default = app.admin.delete_org(hearth_core::OrgId::DEFAULT.0, true).await.unwrap_err();
    assert_eq!(default.status(), Some(409), "the default org stays: {default}");
    assert_eq!(owner.delete_org(acme, true).await.unwrap_err().status(), Some(403), "the admin's alone");

    let deleted = app.admin.delete_org(acme, true).await.unwrap();
    // Its org tokens (the workspace's own token is refused as its
    // workspace is removed: 410, so its runtime learns it must exit).
    assert_eq!((deleted.removed_workspaces, deleted.revoked_tokens), (1, 1));
    // The workspace went through its lifecycle: removed, with its event
    // (by the admin), and its runtime told (410).
    let removed = app.admin.get_workspace(ws.id).await.unwrap();
    assert_eq!(removed.status, hearth_core::WorkspaceStatus::Removed);
    let events = app.events_of(ws.id).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "WORKSPACE_REMOVED");
    assert_eq!(last.payload["actor"]["role"], Value::from("admin"));
    let told = runtime.heartbeat(&crate::harness::heartbeat(ws.id)).await.unwrap_err();
    assert_eq!(told.status(), Some(410), "{told}");
    // Its tokens stop; it is gone; its name is free.
    assert_eq!(owner.list_workspaces(false).await.unwrap_err().status(), Some(401));
    assert_eq!(app.admin.get_org(acme).await.unwrap_err().status(), Some(404));
    assert!(!app.admin.list_orgs().await.unwrap().iter().any(|org| org.id == acme));
    assert_eq!(app.admin.delete_org(acme, true).await.unwrap_err().status(), Some(404));
    app.admin.create_org("acme").await.unwrap();
}

/// Many creates at once, each its own request, on Postgres (where they run
/// in parallel): exactly the quota's number is created, every other one is
/// refused with `quota_exceeded`, never one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_pass_the_workspaces_quota() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let (acme, owner) = org_with_owner(&app, "acme").await;
    let quotas = OrgQuotas { workspaces: Some(5), ..OrgQuotas::default() };
    app.admin.set_org_quotas(acme, &quotas).await.unwrap();
    let attempts = (0..24).map(|i| {
        let owner = owner.clone();
        tokio::spawn(async move { owner.create_workspace(&named(&format!("w{i}"))).await })
    });
    let mut created = 0;
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt.unwrap() {
            Ok(_) => created += 1,
            Err(error) => assert_eq!(error.code(), Some(ErrorCode::QuotaExceeded), "{error}"),
        }
    }
    assert_eq!(created, 5, "exactly the quota");
    assert_eq!(owner.list_workspaces(false).await.unwrap().len(), 5);
    let batch = vec![named("x"), named("y")];
    assert_exceeded(&owner.create_workspaces(batch).await.unwrap_err(), "workspaces", 5, 5);
}
