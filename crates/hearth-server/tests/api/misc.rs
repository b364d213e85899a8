//! Service endpoints, peers/discover, secrets.

use std::collections::BTreeMap;

use hearth_api::CreateWorkspaceRequest;

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    service_endpoints_describe_the_running_server,
    peers_and_discover_follow_the_workspace_tree,
    secrets_are_encrypted_at_rest_and_overlaid,
    workspace_lists_are_paged_with_a_cursor,
    runtimes_name_their_protocol_version_and_unknown_ones_are_refused,
    batches_create_every_workspace_with_its_token_or_none,
    runtime_logs_need_a_provisioner_and_a_sane_tail,
);

/// `GET /workspaces/{id}/logs` on a server that starts no runtimes: a 409
/// that says so, after the usual checks (auth, a sane `tail`). The logs of
/// provisioned runtimes are tested with the process provisioner
/// (`crates/hearth/tests/provisioner.rs`).
async fn runtime_logs_need_a_provisioner_and_a_sane_tail(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    let logs = |tail: &str| {
        app.raw().get(format!("{}/workspaces/{id}/logs?tail={tail}", app.url)).bearer_auth(&app.admin_token).send()
    };
    let answer = logs("50").await.unwrap();
    assert_eq!(answer.status(), 409);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "no_provisioner", "{body}");
    assert!(body["error"].as_str().unwrap().contains("--provisioner none"), "{body}");
    for bad in ["0", "10001"] {
        let answer = logs(bad).await.unwrap();
        assert_eq!(answer.status(), 400, "tail={bad}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["field"], "tail", "{body}");
    }
    let refused = runtime.workspace_logs(hearth_core::WorkspaceId::new_random(), None, false).await.err().unwrap();
    assert_eq!(refused.status(), Some(401), "another workspace's log is not this token's: {refused}");
    let own = runtime.workspace_logs(id, Some(10), false).await.err().unwrap();
    assert_eq!(own.status(), Some(409), "its own: the same 409 as an operator's");
}

async fn service_endpoints_describe_the_running_server(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    runtime.heartbeat(&heartbeat(id)).await.unwrap();
    let get = |path: &str| app.raw().get(format!("{}{path}", app.url)).send();
    for path in ["/health", "/healthz", "/readyz"] {
        assert_eq!(get(path).await.unwrap().status(), 200, "{path}");
    }
    let info = app.admin.buildinfo().await.unwrap();
    assert_eq!(info.database, if engine == Engine::Sqlite { "sqlite" } else { "postgres" });
    assert!(info.schema_version > 0);
    assert_eq!(info.git_sha.len(), 40, "{info:?}");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in ["hearth_http_requests_total", "hearth_heartbeat_duration_seconds", "hearth_transitions_total"] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("route=\"/registry/heartbeat\""), "routes are recorded by matched path");
    let openapi: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = openapi["paths"].as_object().unwrap();
    for path in [
        "/registry/register",
        "/registry/heartbeat",
        "/registry/update-card",
        "/registry/{id}/peers",
        "/registry/discover/{target}",
        "/workspaces",
        "/workspaces/{id}",
        "/workspaces/{id}/state",
        "/workspaces/{id}/pause",
        "/workspaces/{id}/secrets/values",
        "/org/tokens",
        "/orgs",
        "/orgs/{id}",
        "/events",
        "/events/stream",
        "/buildinfo",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from /openapi.json");
    }
    // Query parameters are declared in the query, credentials as bearer.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let place = parameter["in"].as_str().unwrap();
                let expected = if path.contains(&format!("{{{name}}}")) {
                    "path"
                } else if name.starts_with("X-") {
                    "header"
                } else {
                    "query"
                };
                assert_eq!(place, expected, "{method} {path}: parameter {name}");
            }
        }
    }
    // The refusals a route really gives are documented: 401 without a
    // token, 400 for a malformed id and 404 for an unknown one.
    let public = ["/health", "/healthz", "/readyz", "/buildinfo", "/metrics", "/openapi.json"];
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let documented = |status: &str| operation["responses"].get(status).is_some();
            if !public.contains(&path.as_str()) {
                assert!(documented("401"), "{method} {path} documents 401");
            }
            if path.contains("{id}") || path.contains("{target}") || path.contains("{token_id}") {
                assert!(documented("400") && documented("404"), "{method} {path} documents 400 and 404");
            }
        }
    }
    assert_eq!(openapi["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (path, method) in [("/org/tokens", "post"), ("/workspaces/{id}/tokens", "post")] {
        let body = &paths[path][method]["requestBody"];
        assert_ne!(body["required"], true, "{method} {path} accepts no body: {body}");
    }
    let id = &paths["/workspaces/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!((id["type"].as_str(), id["format"].as_str()), (Some("string"), Some("uuid")), "ids are uuids: {id}");
    assert_eq!(paths["/health"]["get"]["security"], serde_json::json!([{}]), "public routes need no token");
    // The error body and its codes are documented, so clients branch on codes.
    let schemas = &openapi["components"]["schemas"];
    let codes: Vec<&str> =
        schemas["ErrorCode"]["enum"].as_array().expect("ErrorCode enum").iter().filter_map(|c| c.as_str()).collect();
    for code in hearth_api::ErrorCode::ALL {
        assert!(codes.contains(&code.as_str()), "{code} missing from the ErrorCode schema");
    }
    // Constraints the server enforces are in the schemas.
    let heartbeat = &schemas["HeartbeatRequest"]["properties"];
    assert_eq!(
        (heartbeat["error_rate"]["minimum"].as_f64(), heartbeat["error_rate"]["maximum"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(heartbeat["active_tasks"]["minimum"].as_f64(), Some(0.0));
    assert_eq!(schemas["CreateWorkspaceRequest"]["properties"]["name"]["maxLength"], 255);
    let body = &schemas["ApiErrorBody"]["properties"];
    for key in ["error", "code", "status", "field", "keys"] {
        assert!(body.get(key).is_some(), "ApiErrorBody.{key} is documented");
    }
}

async fn peers_and_discover_follow_the_workspace_tree(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let create = |name: &'static str, parent: Option<hearth_core::WorkspaceId>| {
        let admin = app.admin.clone();
        async move {
            admin
                .create_workspace(&CreateWorkspaceRequest {
                    name: name.into(),
                    role: Some(format!("{name}-role")),
                    parent_id: parent,
                    issue_token: Some(true),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let root = create("root", None).await;
    let me = create("me", Some(root.id)).await;
    let sibling = create("sibling", Some(root.id)).await;
    let child = create("child", Some(me.id)).await;
    let cousin = create("cousin", Some(sibling.id)).await;
    let my_client = app.client(me.auth_token.as_deref());
    let peers = my_client.peers(me.id, None).await.unwrap();
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sibling", "child", "root"]);
    assert_eq!(peers[0].role, "sibling-role");
    let filtered = my_client.peers(me.id, Some("chi")).await.unwrap();
    assert_eq!(filtered.len(), 1);
    // Discover: the target must be online to be reachable.
    let sibling_client = app.client(sibling.auth_token.as_deref());
    sibling_client
        .register(&hearth_api::RegisterRequest {
            id: sibling.id,
            url: "http://localhost:7001".into(),
            agent_card: None,
        })
        .await
        .unwrap();
    let found = my_client.discover(me.id, sibling.id).await.unwrap();
    assert_eq!(found.url.as_deref(), Some("http://localhost:7001"));
    let err = my_client.discover(me.id, child.id).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "child is still provisioning");
    let err = my_client.discover(me.id, cousin.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "cousins are not reachable");
    let err = my_client.discover(me.id, hearth_core::WorkspaceId::new_random()).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "unknown and forbidden look the same");
}

async fn secrets_are_encrypted_at_rest_and_overlaid(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    let org: BTreeMap<String, String> = [("API_KEY".into(), "org-key".into()), ("REGION".into(), "eu".into())].into();
    app.admin.put_org_secrets(&org).await.unwrap();
    let own: BTreeMap<String, String> = [("API_KEY".into(), "ws-key".into())].into();
    app.admin.put_workspace_secrets(id, &own).await.unwrap();
    let values = runtime.secret_values(id).await.unwrap();
    assert_eq!(values.get("API_KEY").map(String::as_str), Some("ws-key"));
    assert_eq!(values.get("REGION").map(String::as_str), Some("eu"));
    let stored = app.state.store.list_secrets(hearth_core::OrgId::DEFAULT, Some(id)).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].ciphertext.windows(6).any(|w| w == b"ws-key"), "not stored in plaintext");
}

async fn workspace_lists_are_paged_with_a_cursor(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.create(&format!("w{i}")).await.id);
    }
    // Raw: the body stays an array (compatible); the next page is in headers.
    let first =
        app.raw().get(format!("{}/workspaces?limit=2", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let cursor = first.headers()["x-next-cursor"].to_str().unwrap().to_owned();
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\""), "{link}");
    let page: Vec<serde_json::Value> = first.json().await.unwrap();
    assert_eq!(page.len(), 2);
    // Walking the pages gives every workspace once, in creation order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = app.admin.list_workspaces_page(false, Some(2), cursor.as_deref()).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|w| w.id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, created);
    assert_eq!(app.admin.list_workspaces(false).await.unwrap().len(), 5, "the client follows the pages");
    // The last page says nothing more follows.
    let last =
        app.raw().get(format!("{}/workspaces?limit=5", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert!(last.headers().get("x-next-cursor").is_none());
    for (query, field) in [("limit=0", "limit"), ("limit=1001", "limit"), ("cursor=nonsense", "cursor")] {
        let response = app
            .raw()
            .get(format!("{}/workspaces?{query}", app.url))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

async fn runtimes_name_their_protocol_version_and_unknown_ones_are_refused(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, token) = app.create_registered("w").await;
    // hearth-client sends the current version; the old SDK sends none (v1).
    runtime.heartbeat(&heartbeat(id)).await.expect("the current version is accepted");
    let send = |version: Option<&str>| {
        let mut request = app
            .raw()
            .post(format!("{}/registry/heartbeat", app.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"workspace_id": id}));
        if let Some(version) = version {
            request = request.header("X-Hearth-Protocol", version);
        }
        request.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 200, "no header is protocol 1, the old SDK");
    assert_eq!(send(Some("1")).await.unwrap().status(), 200);
    for (version, status, code) in
        [("0", 426, "protocol_too_old"), ("99", 400, "protocol_too_new"), ("two", 400, "invalid_header")]
    {
        let response = send(Some(version)).await.unwrap();
        assert_eq!(response.status(), status, "version {version}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "version {version}: {body}");
        assert!(body["error"].as_str().unwrap().contains("accepts protocol versions 1 to 2"), "{body}");
        assert_eq!(body["field"], "x-hearth-protocol");
    }
    let build = app.admin.buildinfo().await.unwrap();
    assert_eq!(build.protocol_versions, [1, 2], "/buildinfo lists the accepted versions");
}

/// A client that sends its request head too slowly is disconnected after
/// `header_timeout` (hyper's header-read timeout in the accept loop) instead
/// of holding the connection; a prompt one on the same server is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_too_slowly_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::harness::TestApp::spawn_with(crate::harness::Engine::Sqlite, |s| {
        s.header_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buffer = Vec::new();
    // Bounded: the server must close well before this; a read of 0 bytes
    // (or a reset) is the close.
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), slow.read_to_end(&mut buffer)).await;
    let closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
    assert!(closed, "the slow connection was closed by the server");
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"), "it was not served");
    assert_eq!(app.admin.health().await.unwrap().status, "ok");
}

/// `POST /workspaces/batch`: every workspace is created, each with its
/// token and its PROVISIONING event, and usable at once; a bad item refuses
/// the whole batch, names the item and writes nothing.
async fn batches_create_every_workspace_with_its_token_or_none(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let requests: Vec<CreateWorkspaceRequest> = (0..25)
        .map(|n| CreateWorkspaceRequest { name: format!("b-{n}"), issue_token: Some(n != 3), ..Default::default() })
        .collect();
    let created = app.admin.create_workspaces(requests).await.unwrap();
    let names: Vec<String> = created.iter().map(|w| w.name.clone()).collect();
    assert_eq!(names, (0..25).map(|n| format!("b-{n}")).collect::<Vec<_>>(), "in the order asked");
    assert!(created[3].auth_token.is_none());
    for workspace in created.iter().filter(|w| w.name != "b-3") {
        assert_eq!(workspace.status, hearth_core::WorkspaceStatus::Provisioning);
        let token = workspace.auth_token.clone().expect("a token was asked for");
        let runtime = hearth_client::Client::new(&app.url, Some(token)).unwrap();
        runtime.heartbeat(&heartbeat(workspace.id)).await.unwrap();
        let now = app.admin.get_workspace(workspace.id).await.unwrap();
        assert_eq!(now.status, hearth_core::WorkspaceStatus::Online, "{}", workspace.name);
        let kinds: Vec<String> = app.events_of(workspace.id).await.into_iter().map(|e| e.event).collect();
        assert_eq!(kinds, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"], "{}", workspace.name);
    }
    let listed = app.admin.list_workspaces(false).await.unwrap().len();
    assert_eq!(listed, 25);

    let send = |body: serde_json::Value| {
        app.raw().post(format!("{}/workspaces/batch", app.url)).bearer_auth(&app.admin_token).json(&body).send()
    };
    let cases = [
        (
            serde_json::json!({"workspaces": [{"name": "ok"}, {"name": "x", "tier": 101}]}),
            400,
            "workspaces[1]: tier",
            "workspaces[1].tier",
        ),
        (
            serde_json::json!({"workspaces": [{"name": "ok"}, {"name": "z", "parent_id": uuid::Uuid::new_v4()}]}),
            422,
            "workspaces[1]: parent_id",
            "workspaces[1].parent_id",
        ),
        (
            serde_json::json!({"workspaces": [{"name": "ok"}, {"name": ""}]}),
            400,
            "workspaces[1]: name",
            "workspaces[1].name",
        ),
        (
            serde_json::json!({"workspaces": [{"name": "ok"}, {"name": "y", "template": "nope"}]}),
            422,
            "workspaces[1]: template",
            "workspaces[1].template",
        ),
        (serde_json::json!({"workspaces": []}), 400, "1 to 1000", "workspaces"),
        (
            serde_json::json!({"workspaces": (0..1001).map(|n| serde_json::json!({"name": format!("m{n}")})).collect::<Vec<_>>()}),
            400,
            "got 1001",
            "workspaces",
        ),
    ];
    for (body, status, needle, field) in cases {
        let shown: String = body.to_string().chars().take(80).collect();
        let response = send(body).await.unwrap();
        assert_eq!(response.status(), status, "{shown}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["error"].as_str().unwrap().contains(needle), "{shown}: {json}");
        assert_eq!(json["field"], field, "{shown}: {json}");
    }
    assert_eq!(app.admin.list_workspaces(false).await.unwrap().len(), 25, "no refused batch wrote anything");
    let unauthenticated = app
        .raw()
        .post(format!("{}/workspaces/batch", app.url))
        .json(&serde_json::json!({"workspaces": [{"name": "z"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
