//! The server agrees with its OpenAPI document where schemathesis found it
//! did not (`scripts/schemathesis`): what the document allows is accepted,
//! what it forbids is refused with a 400 naming the field.

use serde_json::{json, Value};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    whole_number_floats_are_integers_in_every_integer_field,
    a_struct_written_as_a_json_array_is_refused,
    a_download_source_is_checked_as_documented,
    a_role_is_text_without_control_characters_as_documented,
    both_cursor_patterns_describe_the_workspace_cursor_alike,
);

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
    let response = app
        .raw()
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: body is not JSON: {text:?}")))
}

/// A 400 whose `field` is `field` and whose sentence mentions it.
fn assert_refused(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 400, "{field}: {body}");
    assert_eq!(body["field"], field, "{body}");
    assert!(body["error"].as_str().unwrap().contains(field), "{body}");
}

/// JSON Schema counts `25.0` as the integer 25: every integer field of a
/// request body takes it, and still refuses a fraction or a value out of range.
async fn whole_number_floats_are_integers_in_every_integer_field(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let body = json!({"name": "floats", "tier": 2.0, "max_concurrent_tasks": 3.0, "budget_limit": 25.0});
    let (status, created) = send(&app, reqwest::Method::POST, "/workspaces", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["tier"], &created["max_concurrent_tasks"], &created["budget_limit"]),
        (&json!(2), &json!(3), &json!(25))
    );
    for (field, value) in [("tier", json!(2.5)), ("max_concurrent_tasks", json!(1e10)), ("budget_limit", json!(25.5))] {
        let mut body = json!({"name": "refused"});
        body[field] = value;
        let (status, error) = send(&app, reqwest::Method::POST, "/workspaces", &body.to_string()).await;
        assert_refused(status, &error, field);
    }

    let (id, runtime, token) = app.create_registered("beats").await;
    let beat = json!({"workspace_id": id, "active_tasks": 3.0, "uptime_seconds": 60.0});
    let response =
        app.raw().post(format!("{}/registry/heartbeat", app.url)).bearer_auth(&token).json(&beat).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let workspace = app.admin.get_workspace(id).await.unwrap();
    assert_eq!((workspace.active_tasks, workspace.uptime_seconds), (3, 60));
    for (field, value) in [("active_tasks", json!(0.5)), ("uptime_seconds", json!(1e300))] {
        let mut beat = json!({"workspace_id": id});
        beat[field] = value;
        let response = app
            .raw()
            .post(format!("{}/registry/heartbeat", app.url))
            .bearer_auth(&token)
            .json(&beat)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_refused(status, &response.json().await.unwrap(), field);
    }

    // A rotation with `0.0` seconds of overlap ends the old token at once.
    let tokens = format!("/workspaces/{id}/tokens");
    let (status, error) = send(&app, reqwest::Method::POST, &tokens, r#"{"revoke_previous_after_seconds": 1.5}"#).await;
    assert_refused(status, &error, "revoke_previous_after_seconds");
    let (status, rotated) =
        send(&app, reqwest::Method::POST, &tokens, r#"{"name": "next", "revoke_previous_after_seconds": 0.0}"#).await;
    assert_eq!(status, 201, "{rotated}");
    let old = runtime.heartbeat(&crate::harness::heartbeat(id)).await.unwrap_err();
    assert_eq!(old.status(), Some(401), "{old}");
}

/// serde's derived structs also read their fields from a JSON array
/// (`[null, null]` was a token request, answered 201); the document says
/// object, so an array is refused, at the top and inside.
async fn a_struct_written_as_a_json_array_is_refused(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, _runtime, token) = app.create_registered("arrays").await;
    let tokens = format!("/workspaces/{id}/tokens");
    for (path, body) in [
        (tokens.as_str(), "[null, null]"),
        (tokens.as_str(), "[]"),
        ("/org/tokens", r#"["ci"]"#),
        ("/workspaces", r#"["w"]"#),
        ("/workspaces", r#"[{"name": "w"}]"#),
    ] {
        let (status, error) = send(&app, reqwest::Method::POST, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert_eq!(error["code"], "invalid_body", "{path} {body}: {error}");
    }
    assert_eq!(app.admin.list_workspace_tokens(id).await.unwrap().len(), 1, "no token was issued");

    let beat = |extra: Value| {
        let mut beat = json!({"workspace_id": id});
        beat.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        beat
    };
    for (body, field) in [
        (beat(json!({"installed_plugins": [["seo", null]]})), "installed_plugins[0]"),
        (beat(json!({"installed_plugins": [{"name": "a"}, ["b"]]})), "installed_plugins[1]"),
        (beat(json!({"plugin_errors": [["seo", "failed"]]})), "plugin_errors[0]"),
    ] {
        let response = app
            .raw()
            .post(format!("{}/registry/heartbeat", app.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_refused(status, &response.json().await.unwrap(), field);
    }
    // `{"base64": …}` written as an array was read as binary content.
    let upload = json!({"files": {"plugin.yaml": "name: p\nversion: 1\n", "data.bin": ["AAAA"]}});
    let (status, error) = send(&app, reqwest::Method::POST, "/plugins", &upload.to_string()).await;
    assert_refused(status, &error, "files.data.bin");

    // Arrays the document allows still pass: lists of objects, free-form JSON.
    let fine = beat(json!({
        "installed_plugins": [], "plugin_errors": [{"name": "seo", "error": "x"}],
        "runtime_metadata": {"list": [1, [2, "3"], null]}, "unknown": [[1], "x"]
    }));
    let response =
        app.raw().post(format!("{}/registry/heartbeat", app.url)).bearer_auth(&token).json(&fine).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `source` is `local://<name>` or `<name>` (the document's pattern): a
/// malformed one is a 400, one that names another plugin than the path a
/// documented 422, and the path's own plugin is served.
async fn a_download_source_is_checked_as_documented(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let upload = json!({"files": {"plugin.yaml": "name: seo\nversion: 1.0.0\n"}});
    let (status, plugin) = send(&app, reqwest::Method::POST, "/plugins", &upload.to_string()).await;
    assert_eq!(status, 201, "{plugin}");
    let ws = app.create("w").await;
    let download = |source: &str| {
        let url = format!("{}/workspaces/{}/plugins/seo/download?source={source}", app.url, ws.id);
        let request = app.raw().get(url).bearer_auth(&app.admin_token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = if status == 200 { Value::Null } else { response.json().await.unwrap() };
            (status, body)
        }
    };
    for source in ["local://seo", "seo"] {
        assert_eq!(download(source).await.0, 200, "{source}");
    }
    for source in ["", "https://example.com/seo", "local://Bad%20Name"] {
        let (status, error) = download(source).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("invalid_source")), "{source:?}: {error}");
    }
    let (status, error) = download("local://other").await;
    assert_eq!((status, error["code"].as_str()), (422, Some("name_mismatch")), "{error}");
    assert_eq!(error["field"], "source");

    let document: Value =
        app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let operation = &document["paths"]["/workspaces/{id}/plugins/{name}/download"]["get"];
    let source = operation["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "source").unwrap();
    assert_eq!(source["in"], "query");
    assert_eq!(source["schema"]["pattern"], "^(local://)?[a-z0-9][a-z0-9._-]{0,127}$");
    assert!(operation["responses"]["422"].is_object(), "the 422 is documented");
}

/// A role refuses control characters (`char::is_control`), and the document
/// says so; other text is a valid role.
async fn a_role_is_text_without_control_characters_as_documented(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for role in ["a\u{c}b", "\u{84}", "x\u{7f}"] {
        let body = json!({"name": "w", "role": role});
        let (status, error) = send(&app, reqwest::Method::POST, "/workspaces", &body.to_string()).await;
        assert_refused(status, &error, "role");
    }
    let body = json!({"name": "w", "role": "\u{fe}OIw \u{a0}\u{1f600}"});
    let (status, created) = send(&app, reqwest::Method::POST, "/workspaces", &body.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let document: Value =
        app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let role = &document["components"]["schemas"]["CreateWorkspaceRequest"]["properties"]["role"];
    assert_eq!(role["pattern"], "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", "{role}");
}

/// A peers cursor is a group and then a workspace cursor
/// (`<unix nanoseconds>.<uuid>`, 19 digits since 2001): the document
/// describes the workspace cursor the same way on both routes.
async fn both_cursor_patterns_describe_the_workspace_cursor_alike(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let document: Value =
        app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let cursor_pattern = |path: &str| {
        let parameters = document["paths"][path]["get"]["parameters"].as_array().unwrap();
        let cursor = parameters.iter().find(|p| p["name"] == "cursor").unwrap();
        cursor["schema"]["pattern"].as_str().unwrap().to_owned()
    };
    let workspaces = cursor_pattern("/workspaces");
    let peers = cursor_pattern("/registry/{id}/peers");
    assert_eq!(peers.strip_prefix("^[scp]\\."), workspaces.strip_prefix('^'), "{workspaces} vs {peers}");
    assert!(workspaces.contains("[1-8][0-9]{18}"), "19 digits of nanoseconds: {workspaces}");
}
