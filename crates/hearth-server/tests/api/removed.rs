//! A removed workspace: its own token is refused (410) on every route but
//! `/state`, its secrets are gone for everyone, and nothing can be written to
//! it. The route list comes from `/openapi.json`, so a new route is covered
//! without touching this file.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(removed_workspace_token_is_refused_on_every_route, removed_workspace_secrets_are_gone,);

/// Every operation of the OpenAPI document as (method, path template).
async fn operations(app: &TestApp) -> Vec<(Method, String)> {
    let doc: Value = app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
            all.push((method, path.clone()));
        }
    }
    assert!(all.len() > 30, "the document lists the routes: {}", all.len());
    all
}

/// A request for an operation, aimed at workspace `id` wherever the route
/// names a workspace, with a body that would be valid for it.
fn request_for(app: &TestApp, method: &Method, template: &str, id: &str, token: &str) -> reqwest::RequestBuilder {
    let path = template
        .replace("{id}", id)
        .replace("{target}", id)
        .replace("{name}", "x")
        .replace("{*path}", "config.yaml")
        .replace("{path}", "config.yaml");
    let body = match template {
        "/registry/register" => json!({"id": id, "url": "http://localhost:1"}),
        "/registry/heartbeat" => json!({"workspace_id": id}),
        "/registry/update-card" => json!({"workspace_id": id, "agent_card": {}}),
        "/workspaces/{id}/plugins" => json!({"source": "local://x"}),
        _ => json!({"name": "x"}),
    };
    let mut request = app.raw().request(method.clone(), format!("{}{path}", app.url)).bearer_auth(token);
    if template.starts_with("/registry/discover") {
        request = request.header("X-Workspace-ID", id);
    }
    if *method != Method::GET && *method != Method::DELETE {
        request = request.json(&body);
    }
    request
}

async fn removed_workspace_token_is_refused_on_every_route(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, _runtime, token) = app.create_registered("gone").await;
    app.admin.delete_workspace(id).await.unwrap();
    let id = id.to_string();
    let mut checked = 0;
    for (method, template) in operations(&app).await {
        let names_workspace = template.contains("{id}") || template.starts_with("/registry/");
        if !names_workspace {
            continue;
        }
        let response = request_for(&app, &method, &template, &id, &token).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let what = format!("{method} {template} with the removed workspace's own token: {status} {body}");
        if template == "/workspaces/{id}/state" {
            assert_eq!(status, 404, "{what}");
            assert_eq!(body["deleted"], true, "{what}");
            continue;
        }
        match status {
            410 => assert_eq!(body["error"], "workspace removed", "{what}"),
            // Operator-only routes never accept a workspace token at all.
            401 => assert_eq!(body["error"], "admin auth required", "{what}"),
            _ => panic!("{what}: expected 410 (or 401 on an operator route)"),
        }
        checked += 1;
    }
    assert!(checked >= 15, "every route that names a workspace was tried ({checked})");
}

async fn removed_workspace_secrets_are_gone(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, _runtime, token) = app.create_registered("gone").await;
    let secrets = format!("{}/workspaces/{id}/secrets", app.url);
    let values = format!("{secrets}/values");
    let put = app.raw().put(&secrets).bearer_auth(&app.admin_token).json(&json!({"API_KEY": "s3cret"}));
    assert_eq!(put.send().await.unwrap().status(), 200);
    let before: Value = app.raw().get(&values).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(before["API_KEY"], "s3cret", "readable while the workspace lives");

    app.admin.delete_workspace(id).await.unwrap();

    for (who, bearer) in [("its own token", token.as_str()), ("the admin token", app.admin_token.as_str())] {
        let response = app.raw().get(&values).bearer_auth(bearer).send().await.unwrap();
        assert_eq!(response.status(), 410, "secret values with {who}");
        let body: Value = response.json().await.unwrap();
        assert!(body.get("API_KEY").is_none(), "{who}: {body}");
    }
    let put = app.raw().put(&secrets).bearer_auth(&app.admin_token).json(&json!({"OTHER": "x"}));
    let response = put.send().await.unwrap();
    assert_eq!(response.status(), 410, "no secret is written to a removed workspace");
    let org = app.admin.get_workspace(id).await.unwrap().org_id;
    let stored = app.state.store.list_secrets(hearth_core::OrgId(org), Some(id)).await.unwrap();
    assert!(stored.is_empty(), "the sealed values are deleted, not only hidden: {stored:?}");
    // The workspace itself stays visible to operators, as removed.
    assert_eq!(app.admin.get_workspace(id).await.unwrap().status, hearth_core::WorkspaceStatus::Removed);
}
