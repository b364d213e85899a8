//! A workspace token downloads only the plugins its desired state names (its
//! template's and those an operator added); operators read any plugin of
//! their org. An install report never answers with a plugin's real hash.

use std::collections::BTreeMap;

use hearth_api::{CreateTokenRequest, CreateWorkspaceRequest, FileContent, ImportTemplateRequest, UploadPluginRequest};
use hearth_core::WorkspaceId;
use serde_json::{json, Value};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    a_workspace_token_downloads_only_the_plugins_its_workspace_wants,
    install_reports_never_reveal_the_real_hash_nor_an_unwanted_plugin,
);

/// Pushes plugin `name` (version 1.0.0) and returns its content hash.
async fn push(app: &TestApp, name: &str) -> String {
    let files: BTreeMap<String, FileContent> = [
        ("plugin.yaml".to_owned(), FileContent::Text(format!("name: {name}\nversion: 1.0.0\n"))),
        ("skills/a.md".to_owned(), FileContent::Text(format!("# {name}\n"))),
    ]
    .into();
    app.admin.push_plugin_json(&UploadPluginRequest { name: None, files }).await.unwrap().sha256
}

/// A workspace from a template that declares `seo-all`, with `extra` added
/// by an operator; `secret-sauce` is in the org but nobody's. Returns the
/// workspace, its token and the plugins' hashes by name.
async fn setup(app: &TestApp) -> (WorkspaceId, String, BTreeMap<&'static str, String>) {
    let mut hashes = BTreeMap::new();
    for name in ["seo-all", "extra", "secret-sauce"] {
        hashes.insert(name, push(app, name).await);
    }
    let config = "name: seo\nplugins:\n  - seo-all\n";
    let template = ImportTemplateRequest {
        name: "seo".into(),
        files: [("config.yaml".into(), FileContent::Text(config.into()))].into(),
    };
    app.admin.import_template(&template).await.unwrap();
    let ws = app
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "w".into(),
            template: Some("seo".into()),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let added = app
        .raw()
        .put(format!("{}/workspaces/{}/plugins/extra", app.url, ws.id))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    (ws.id, ws.auth_token.unwrap(), hashes)
}

async fn download(app: &TestApp, token: &str, id: WorkspaceId, name: &str) -> (u16, Option<Value>) {
    let url = format!("{}/workspaces/{id}/plugins/{name}/download", app.url);
    let response = app.raw().get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let body = if status == 200 { None } else { Some(response.json().await.unwrap()) };
    (status, body)
}

async fn report(app: &TestApp, token: &str, id: WorkspaceId, source: &str, sha256: &str) -> (u16, String) {
    let url = format!("{}/workspaces/{id}/plugins", app.url);
    let body = json!({"source": source, "sha256": sha256});
    let response = app.raw().post(url).bearer_auth(token).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn a_workspace_token_downloads_only_the_plugins_its_workspace_wants(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, token, _) = setup(&app).await;
    assert_eq!(download(&app, &token, id, "seo-all").await.0, 200, "declared by its template");
    assert_eq!(download(&app, &token, id, "extra").await.0, 200, "added by an operator");
    // Another plugin of the org answers exactly as an unknown one does.
    let (status, unwanted) = download(&app, &token, id, "secret-sauce").await;
    let (_, unknown) = download(&app, &token, id, "no-such-plugin").await;
    assert_eq!(status, 404, "{unwanted:?}");
    assert_eq!(unwanted, unknown, "no existence leak");
    assert_eq!(unknown.unwrap()["code"], "not_found");

    // Operators (admin, org token) read any plugin of their org there.
    let org = app.admin.create_org_token(&CreateTokenRequest { name: Some("ops".into()), role: None }).await.unwrap();
    for operator in [app.admin_token.as_str(), org.auth_token.as_deref().unwrap()] {
        for name in ["seo-all", "extra", "secret-sauce"] {
            assert_eq!(download(&app, operator, id, name).await.0, 200, "{name}");
        }
    }

    // The desired state is read as it is now: an operator's removal and a
    // later addition take effect on the next download.
    let removed = app
        .raw()
        .delete(format!("{}/workspaces/{id}/plugins/extra", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(download(&app, &token, id, "extra").await.0, 404);
    let added = app
        .raw()
        .put(format!("{}/workspaces/{id}/plugins/secret-sauce", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    assert_eq!(download(&app, &token, id, "secret-sauce").await.0, 200);

    // A workspace without a template wants nothing until an operator adds it.
    let (bare, _, bare_token) = app.create_registered("bare").await;
    assert_eq!(download(&app, &bare_token, bare, "seo-all").await.0, 404);
}

async fn install_reports_never_reveal_the_real_hash_nor_an_unwanted_plugin(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, token, hashes) = setup(&app).await;
    let wrong = "00".repeat(32);
    // A wrong hash stays a 422, for the runtime and for an operator, and
    // the answer does not say what the right one is.
    for caller in [token.as_str(), app.admin_token.as_str()] {
        let (status, body) = report(&app, caller, id, "local://seo-all", &wrong).await;
        assert_eq!(status, 422, "{body}");
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["code"], "sha256_mismatch");
        for hash in hashes.values() {
            assert!(!body.contains(hash.as_str()), "the real hash leaked: {body}");
        }
    }
    // A plugin the workspace does not want: 404 as for an unknown plugin,
    // whatever hash is sent (a 422 would say it exists).
    let (status, unwanted) = report(&app, &token, id, "local://secret-sauce", &wrong).await;
    let (_, unknown) = report(&app, &token, id, "local://no-such-plugin", &wrong).await;
    assert_eq!(status, 404, "{unwanted}");
    assert_eq!(unwanted, unknown, "no existence leak");
    let (status, body) = report(&app, &token, id, "secret-sauce", &hashes["secret-sauce"]).await;
    assert_eq!((status, body), (404, unknown.clone()), "the right hash does not help either");
    // What it wants is recorded.
    let (status, body) = report(&app, &token, id, "local://extra", &hashes["extra"]).await;
    assert_eq!(status, 200, "{body}");
    let installed = app.admin.workspace_plugins(id).await.unwrap().installed;
    assert_eq!(installed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["extra"]);
}
