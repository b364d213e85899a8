//! Bad input gets a 4xx with a JSON error that names the problem, and
//! nothing is written.

use serde_json::{json, Value};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    bad_heartbeats_are_400_naming_the_field_and_write_nothing,
    bad_operator_input_is_rejected_cleanly,
    nul_characters_are_400_naming_the_field_and_write_nothing,
    a_body_sent_too_slowly_is_a_408_and_writes_nothing,
);

async fn send(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = app.raw().request(method, format!("{}{path}", app.url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: body is not JSON: {text:?}"));
    (status, body)
}

async fn bad_heartbeats_are_400_naming_the_field_and_write_nothing(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_body_bytes = 64 * 1024).await;
    let (id, runtime, token) = app.create_registered("w").await;
    runtime
        .heartbeat(&hearth_api::HeartbeatRequest {
            active_tasks: Some(2),
            current_task: Some("t".into()),
            ..crate::harness::heartbeat(id)
        })
        .await
        .unwrap();
    let before = app.admin.get_workspace(id).await.unwrap();
    let events_before = app.events_of(id).await.len();
    let huge = format!("{{\"workspace_id\": \"{id}\", \"sample_error\": \"{}\"}}", "x".repeat(100 * 1024));
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid JSON"),
        ("".into(), 400, "empty"),
        ("[1, 2]".into(), 400, "JSON object"),
        (json!({"workspace_id": id, "error_rate": "high"}).to_string(), 400, "error_rate"),
        (json!({"workspace_id": id, "error_rate": 1.5}).to_string(), 400, "error_rate"),
        (json!({"workspace_id": id, "error_rate": -0.1}).to_string(), 400, "error_rate"),
        (json!({"workspace_id": id, "active_tasks": -1}).to_string(), 400, "active_tasks"),
        (json!({"workspace_id": id, "uptime_seconds": -5}).to_string(), 400, "uptime_seconds"),
        (json!({"workspace_id": id, "active_tasks": 1.5}).to_string(), 400, "active_tasks"),
        (json!({"workspace_id": id, "runtime_metadata": [1]}).to_string(), 400, "runtime_metadata"),
        (json!({"workspace_id": "not-a-uuid"}).to_string(), 400, "workspace_id"),
        (json!({"error_rate": 0.1}).to_string(), 400, "workspace_id"),
        (huge, 413, "too large"),
        // Nesting is bounded everywhere, known fields and unknown ones alike.
        (
            format!(
                "{{\"workspace_id\": \"{id}\", \"runtime_metadata\": {{\"a\": {}1{}}}}}",
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            400,
            "nesting is deeper than 64",
        ),
        (
            format!("{{\"workspace_id\": \"{id}\", \"unknown\": {}1{}}}", "[".repeat(5000), "]".repeat(5000)),
            400,
            "nesting is deeper than 64",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, json) = send(&app, reqwest::Method::POST, "/registry/heartbeat", &token, Some(&body)).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(got, status, "body {shown:?} -> {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "body {shown:?}: error {error:?} should mention {needle:?}");
        assert!(json["code"].is_string());
    }
    let after = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(after.updated_at, before.updated_at, "nothing written");
    assert_eq!(after.active_tasks, 2);
    assert_eq!(app.events_of(id).await.len(), events_before);
}

async fn bad_operator_input_is_rejected_cleanly(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let token = app.admin_token.clone();
    let (id, _runtime, ws_token) = app.create_registered("w").await;
    let count_before = app.admin.list_workspaces(true).await.unwrap().len();
    use reqwest::Method as M;
    let unknown = uuid::Uuid::new_v4();
    let cases: Vec<(M, String, Option<String>, u16, &str)> = vec![
        (M::GET, "/workspaces/not-a-uuid".into(), None, 400, "malformed workspace id"),
        (M::POST, "/workspaces/123/pause".into(), None, 400, "malformed workspace id"),
        (M::GET, format!("/workspaces/{unknown}"), None, 404, "not found"),
        (M::POST, "/workspaces".into(), Some(json!({"name": ""}).to_string()), 400, "name"),
        (M::POST, "/workspaces".into(), Some(json!({"name": "a\u{7}b"}).to_string()), 400, "control"),
        (M::POST, "/workspaces".into(), Some(json!({"name": "x".repeat(256)}).to_string()), 400, "255"),
        (M::POST, "/workspaces".into(), Some(json!({"name": 5}).to_string()), 400, "name"),
        (M::POST, "/workspaces".into(), Some(json!({"tier": 1}).to_string()), 400, "name"),
        (M::POST, "/workspaces".into(), Some(json!({"name": "x", "tier": -1}).to_string()), 400, "tier"),
        (M::POST, "/workspaces".into(), Some(json!({"name": "x", "parent_id": unknown}).to_string()), 422, "parent_id"),
        (M::POST, "/workspaces".into(), Some(json!({"name": "x", "parent_id": "nope"}).to_string()), 400, "parent_id"),
        (M::PUT, format!("/workspaces/{id}/secrets"), Some(json!({"BAD-KEY": "v"}).to_string()), 400, "BAD-KEY"),
        (M::PUT, format!("/workspaces/{id}/secrets"), Some(json!({"K": 1}).to_string()), 400, "K"),
        (M::GET, "/events?limit=0".into(), None, 400, "limit"),
        (M::GET, "/events?since=-1".into(), None, 400, "since"),
        (M::GET, "/events?since=abc".into(), None, 400, "since"),
        (M::GET, "/events?workspace_id=zzz".into(), None, 400, "workspace_id"),
        (M::DELETE, "/org/tokens/nope".into(), None, 400, "token id"),
        (M::GET, "/no/such/route".into(), None, 404, "no such route"),
        (M::PATCH, "/workspaces".into(), None, 405, "method not allowed"),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, json) = send(&app, method.clone(), &path, &token, body.as_deref()).await;
        assert_eq!(got, status, "{method} {path} {body:?} -> {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{method} {path}: {error:?} should mention {needle:?}");
    }
    // Registration URLs that point inside the control plane's network.
    for url in ["http://169.254.169.254/latest", "http://127.0.0.1:9000", "http://10.1.2.3", "ftp://x"] {
        let (got, json) =
            send(&app, M::POST, "/registry/register", &ws_token, Some(&json!({"id": id, "url": url}).to_string()))
                .await;
        assert_eq!(got, 400, "{url} -> {json}");
        assert_eq!(json["field"], "url");
    }
    let discover =
        app.raw().get(format!("{}/registry/discover/{id}", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(discover.status(), 400, "X-Workspace-ID is required");
    assert_eq!(app.admin.list_workspaces(true).await.unwrap().len(), count_before, "no workspace half-created");
}

/// Postgres text and jsonb cannot hold a NUL character; SQLite can. Both
/// engines answer the same 400 naming the field, and store nothing.
async fn nul_characters_are_400_naming_the_field_and_write_nothing(engine: Engine) {
    use base64::Engine as _;
    use reqwest::Method as M;
    let app = TestApp::spawn(engine).await;
    let admin = app.admin_token.clone();
    let (id, _runtime, token) = app.create_registered("w").await;
    let before = app.admin.get_workspace(id).await.unwrap();
    let events_before = app.events_of(id).await.len();
    let nul = "a\u{0}b";
    let config = base64::engine::general_purpose::STANDARD.encode("name: t\nmodel: \"m\\0\"\n");
    type Case<'a> = (M, String, &'a str, Option<Value>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "current_task": nul})),
            400,
            "current_task",
        ),
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "sample_error": nul})),
            400,
            "sample_error",
        ),
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "runtime_state": nul})),
            400,
            "runtime_state",
        ),
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "runtime_metadata": {"capabilities": {nul: true}}})),
            400,
            "runtime_metadata.capabilities",
        ),
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "assets_digest": nul})),
            400,
            "assets_digest",
        ),
        (
            M::POST,
            "/registry/heartbeat".into(),
            &token,
            Some(json!({"workspace_id": id, "installed_plugins": [{"name": nul, "sha256": "x"}]})),
            400,
            "installed_plugins[0].name",
        ),
        (
            M::POST,
            "/registry/register".into(),
            &token,
            Some(json!({"id": id, "url": "http://localhost:1", "agent_card": {"n": nul}})),
            400,
            "agent_card.n",
        ),
        (
            M::POST,
            "/registry/register".into(),
            &token,
            Some(json!({"id": id, "url": format!("http://localhost:1/{nul}")})),
            400,
            "url",
        ),
        (
            M::POST,
            "/registry/update-card".into(),
            &token,
            Some(json!({"workspace_id": id, "agent_card": {nul: 1}})),
            400,
            "agent_card",
        ),
        (
            M::POST,
            "/registry/update-card".into(),
            &token,
            Some(json!({"workspace_id": id, "agent_card": {"k": [nul]}})),
            400,
            "agent_card.k[0]",
        ),
        (M::POST, "/workspaces".into(), &admin, Some(json!({"name": "x", "model": nul})), 400, "model"),
        (M::POST, "/workspaces".into(), &admin, Some(json!({"name": "x", "runtime": nul})), 400, "runtime"),
        (M::POST, "/workspaces".into(), &admin, Some(json!({"name": "x", "template": nul})), 400, "template"),
        (M::PUT, format!("/workspaces/{id}/secrets"), &admin, Some(json!({"K": nul})), 400, "K"),
        (
            M::POST,
            "/templates/import".into(),
            &admin,
            Some(json!({"name": "t", "files": {"config.yaml": format!("name: t\nmodel: {nul}\n")}})),
            400,
            "files.config.yaml",
        ),
        (
            M::POST,
            "/templates/import".into(),
            &admin,
            Some(json!({"name": "t", "files": {"config.yaml": {"base64": config}}})),
            422,
            "`model` holds a NUL character",
        ),
        (M::GET, "/templates/a%00".into(), &admin, None, 400, "NUL"),
        (M::GET, format!("/workspaces/{id}/plugins/a%00/download"), &token, None, 400, "NUL"),
        (M::GET, format!("/registry/{id}/peers?q=a%00"), &token, None, 400, "q"),
        (M::GET, "/events?workspace_id=%00".into(), &admin, None, 400, "workspace_id"),
    ];
    for (method, path, bearer, body, status, needle) in cases {
        let body = body.map(|b| b.to_string());
        let (got, json) = send(&app, method.clone(), &path, bearer, body.as_deref()).await;
        assert_eq!(got, status, "{method} {path} {body:?} -> {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{method} {path} {body:?}: {error:?} should mention {needle:?}");
    }
    assert_eq!(app.events_of(id).await.len(), events_before, "no event from a refused request");
    // An escaped backslash followed by "u0000" is text, not a NUL.
    let literal = r#"{"workspace_id": "ID", "current_task": "a\\u0000b"}"#.replace("ID", &id.to_string());
    let (got, json) = send(&app, M::POST, "/registry/heartbeat", &token, Some(&literal)).await;
    assert_eq!(got, 200, "{json}");
    let after = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(after.current_task.as_deref(), Some("a\\u0000b"));
    assert_eq!(after.model, before.model);
    assert_eq!(after.agent_card, before.agent_card, "no rejected card was stored");
    assert!(app.admin.list_templates().await.unwrap().is_empty(), "no template stored");
    assert_eq!(app.admin.list_workspaces(true).await.unwrap().len(), 1, "no workspace created");
}

/// A client that trickles its body holds no handler past the deadline.
async fn a_body_sent_too_slowly_is_a_408_and_writes_nothing(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.request_timeout = std::time::Duration::from_secs(1)).await;
    let (id, _runtime, token) = app.create_registered("w").await;
    let before = app.admin.get_workspace(id).await.unwrap();
    let body = format!("{{\"workspace_id\": \"{id}\", \"current_task\": \"slow\"}}");
    let chunks: Vec<Vec<u8>> = body.as_bytes().chunks(8).map(<[u8]>::to_vec).collect();
    let slow = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
        let chunk = rest.next()?;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        Some((Ok::<_, std::io::Error>(chunk), rest))
    });
    let response = app
        .raw()
        .post(format!("{}/registry/heartbeat", app.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 408);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["code"], "request_timeout", "{json}");
    let after = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(after.current_task, before.current_task, "nothing written");
}
