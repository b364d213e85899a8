//! Auth: every registry and workspace route refuses missing, invalid and
//! other workspaces' tokens; tokens are stored hashed; the generated admin
//! token file is 0600 and survives restarts.

use std::os::unix::fs::PermissionsExt;

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    runtime_routes_refuse_missing_invalid_and_foreign_tokens,
    operator_routes_require_an_operator_token,
    tokens_are_stored_as_sha256_only,
    org_tokens_work_until_revoked,
    workspace_with_a_live_token_cannot_be_bootstrapped_again,
    workspace_tokens_rotate_with_an_overlap_and_can_be_revoked,
    a_token_over_its_rate_gets_429_and_others_do_not,
    a_workspace_rotating_tokens_shares_one_rate,
);

async fn runtime_routes_refuse_missing_invalid_and_foreign_tokens(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, _runtime, _) = app.create_registered("mine").await;
    let (_other_id, _other_runtime, other_token) = app.create_registered("other").await;
    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::POST, "/registry/heartbeat".into(), Some(json!({"workspace_id": id}))),
        (Method::POST, "/registry/update-card".into(), Some(json!({"workspace_id": id, "agent_card": {}}))),
        (Method::GET, format!("/registry/{id}/peers"), None),
        (Method::GET, format!("/workspaces/{id}/state"), None),
        (Method::GET, format!("/workspaces/{id}/secrets/values"), None),
        (Method::GET, format!("/workspaces/{id}/events/stream"), None),
        (Method::GET, format!("/workspaces/{id}/assets"), None),
        (Method::GET, format!("/workspaces/{id}/assets/config.yaml"), None),
        (Method::GET, format!("/workspaces/{id}/plugins"), None),
        (Method::POST, format!("/workspaces/{id}/plugins"), Some(json!({"source": "local://x"}))),
        (Method::GET, format!("/workspaces/{id}/plugins/x/download"), None),
        (Method::POST, "/registry/register".into(), Some(json!({"id": id, "url": "http://localhost:1"}))),
    ];
    for (method, path, body) in routes {
        for (label, token, expected) in [
            ("missing", None, "missing workspace auth token"),
            ("invalid", Some("not-a-real-token"), "invalid workspace auth token"),
            ("other workspace's", Some(other_token.as_str()), "invalid workspace auth token"),
        ] {
            if path == "/registry/register" && token.is_none() {
                continue; // no token on register is the bootstrap; covered below
            }
            let mut request = app.raw().request(method.clone(), format!("{}{path}", app.url));
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with a {label} token");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], expected, "{method} {path} with a {label} token");
        }
    }
    let discover = app
        .raw()
        .get(format!("{}/registry/discover/{id}", app.url))
        .header("X-Workspace-ID", id.to_string())
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(discover.status(), 401);
}

async fn operator_routes_require_an_operator_token(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, _runtime, workspace_token) = app.create_registered("w").await;
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/workspaces".into()),
        (Method::POST, "/workspaces".into()),
        (Method::GET, format!("/workspaces/{id}")),
        (Method::DELETE, format!("/workspaces/{id}")),
        (Method::POST, format!("/workspaces/{id}/pause")),
        (Method::POST, format!("/workspaces/{id}/resume")),
        (Method::POST, format!("/workspaces/{id}/restart")),
        (Method::POST, format!("/workspaces/{id}/hibernate")),
        (Method::POST, format!("/workspaces/{id}/tokens")),
        (Method::PUT, format!("/workspaces/{id}/secrets")),
        (Method::PUT, "/org/secrets".into()),
        (Method::GET, "/org/tokens".into()),
        (Method::POST, "/org/tokens".into()),
        (Method::GET, "/events".into()),
        (Method::GET, "/events/stream".into()),
        (Method::POST, "/templates/import".into()),
        (Method::GET, "/templates".into()),
        (Method::GET, "/templates/seo".into()),
        (Method::POST, "/plugins".into()),
        (Method::GET, "/plugins".into()),
        (Method::PUT, format!("/workspaces/{id}/plugins/x")),
        (Method::DELETE, format!("/workspaces/{id}/plugins/x")),
        (Method::GET, "/workspaces/counts".into()),
        (Method::GET, format!("/workspaces/{id}/wait?for=status%3Donline&timeout=0")),
        (Method::GET, "/plugins/x".into()),
    ];
    for (method, path) in routes {
        for token in [None, Some("garbage"), Some(workspace_token.as_str())] {
            let mut request =
                app.raw().request(method.clone(), format!("{}{path}", app.url)).json(&json!({"name": "x"}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "admin auth required");
        }
    }
    assert_eq!(
        app.admin.get_workspace(id).await.unwrap().status,
        hearth_core::WorkspaceStatus::Online,
        "nothing changed"
    );
}

async fn tokens_are_stored_as_sha256_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_id, _runtime, secret) = app.create_registered("w").await;
    let store = &app.state.store;
    assert!(
        store.find_token_by_hash(secret.as_bytes(), chrono::Utc::now()).await.unwrap().is_none(),
        "the plaintext is not stored"
    );
    let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    let token = store.find_token_by_hash(&hash, chrono::Utc::now()).await.unwrap().expect("found by its sha256");
    assert_eq!(token.prefix, &secret[..8]);
}

async fn org_tokens_work_until_revoked(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app
        .admin
        .create_org_token(&hearth_api::CreateTokenRequest { name: Some("ci".into()), role: None })
        .await
        .unwrap();
    let secret = created.auth_token.clone().expect("secret shown once");
    let org_client = app.client(Some(&secret));
    let ws = org_client
        .create_workspace(&hearth_api::CreateWorkspaceRequest { name: "by-org-token".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(org_client.get_workspace(ws.id).await.unwrap().name, "by-org-token");
    let listed = app.admin.list_org_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].auth_token.is_none(), "the secret is never listed");
    app.admin.revoke_org_token(created.id).await.unwrap();
    let err = org_client.list_workspaces(false).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let err = app.admin.revoke_org_token(uuid::Uuid::new_v4()).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

async fn workspace_with_a_live_token_cannot_be_bootstrapped_again(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    let err = app
        .client(None)
        .register(&hearth_api::RegisterRequest { id, url: "http://localhost:1".into(), agent_card: None })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("missing workspace auth token"));
    // Its own token re-registers fine and mints nothing new.
    let again = runtime
        .register(&hearth_api::RegisterRequest { id, url: "http://localhost:2".into(), agent_card: None })
        .await
        .unwrap();
    assert!(again.auth_token.is_none());
    assert_eq!(app.admin.get_workspace(id).await.unwrap().url.as_deref(), Some("http://localhost:2"));
    runtime.heartbeat(&heartbeat(id)).await.unwrap();
}

#[tokio::test]
async fn generated_admin_token_file_is_0600_and_survives_restarts() {
    let mut app = TestApp::spawn(Engine::Sqlite).await;
    let path = app.data_dir.join("admin-token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = app.admin_token.clone();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), first);
    let settings = (*app.state.settings).clone();
    app.stop().await;
    let (_tmp, _db) = app.into_parts();
    let again = TestApp::start(settings).await;
    assert_eq!(again.admin_token, first, "the same token after a restart");
    again.admin.list_workspaces(false).await.expect("and it still works");
}

#[tokio::test]
async fn require_issued_tokens_turns_bootstrap_off() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.require_issued_tokens = true).await;
    let ws = app.create("w").await;
    let err = app
        .client(None)
        .register(&hearth_api::RegisterRequest { id: ws.id, url: "http://localhost:1".into(), agent_card: None })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_read() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for path in ["/registry/heartbeat", "/registry/update-card", "/workspaces", "/templates/import", "/plugins"] {
        let response = app
            .raw()
            .post(format!("{}{path}", app.url))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}: an unauthenticated request learns nothing about its body");
    }
}

async fn workspace_tokens_rotate_with_an_overlap_and_can_be_revoked(engine: Engine) {
    use hearth_api::CreateWorkspaceTokenRequest;
    let app = TestApp::spawn(engine).await;
    let (id, old_runtime, old_secret) = app.create_registered("w").await;
    // Issuing without rotation adds a token; both work.
    let added = app.admin.create_workspace_token(id, &CreateWorkspaceTokenRequest::default()).await.unwrap();
    let added_secret = added.auth_token.clone().expect("shown once");
    app.client(Some(&added_secret)).heartbeat(&heartbeat(id)).await.unwrap();
    old_runtime.heartbeat(&heartbeat(id)).await.unwrap();
    // A rotation with an hour of overlap: the old tokens still work meanwhile.
    let overlap =
        CreateWorkspaceTokenRequest { name: Some("rotated".into()), revoke_previous_after_seconds: Some(3600) };
    let rotated = app.admin.create_workspace_token(id, &overlap).await.unwrap();
    old_runtime.heartbeat(&heartbeat(id)).await.expect("the old token works during the overlap");
    let listed = app.admin.list_workspace_tokens(id).await.unwrap();
    let old_end = listed.iter().filter(|t| t.id != rotated.id).map(|t| t.revoked_at).collect::<Vec<_>>();
    assert!(old_end.iter().all(|end| end.is_some_and(|at| at > chrono::Utc::now())), "{listed:?}");
    assert!(listed.iter().all(|t| t.auth_token.is_none()), "secrets are never listed");
    // A rotation with no overlap ends every other token at once.
    let now = CreateWorkspaceTokenRequest { name: None, revoke_previous_after_seconds: Some(0) };
    let newest = app.admin.create_workspace_token(id, &now).await.unwrap();
    for (label, secret) in
        [("old", &old_secret), ("added", &added_secret), ("rotated", rotated.auth_token.as_ref().unwrap())]
    {
        let err = app.client(Some(secret)).heartbeat(&heartbeat(id)).await.unwrap_err();
        assert_eq!(err.status(), Some(401), "the {label} token stopped");
    }
    let newest_client = app.client(newest.auth_token.as_deref());
    newest_client.heartbeat(&heartbeat(id)).await.expect("the new token works");
    // An explicit revoke stops it at once.
    app.admin.revoke_workspace_token(id, newest.id).await.unwrap();
    assert_eq!(newest_client.heartbeat(&heartbeat(id)).await.unwrap_err().status(), Some(401));
    let other = app.create("other").await;
    let err = app.admin.revoke_workspace_token(other.id, newest.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "only that workspace's tokens");
    // Bad input names the field; a removed workspace gets no token.
    for (body, needle) in [
        (serde_json::json!({"revoke_previous_after_seconds": -1}), "revoke_previous_after_seconds"),
        (serde_json::json!({"revoke_previous_after_seconds": 99_999_999}), "revoke_previous_after_seconds"),
    ] {
        let response = app
            .raw()
            .post(format!("{}/workspaces/{id}/tokens", app.url))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["error"].as_str().unwrap().contains(needle), "{json}");
    }
    app.admin.delete_workspace(id).await.unwrap();
    let err = app.admin.create_workspace_token(id, &CreateWorkspaceTokenRequest::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(410));
}

async fn a_token_over_its_rate_gets_429_and_others_do_not(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.rate_limit_per_token = 5).await;
    let (id, _runtime, token) = app.create_registered("busy").await;
    let (other, other_runtime, _) = app.create_registered("calm").await;
    let mut refused = None;
    for _ in 0..40 {
        let response = app
            .raw()
            .post(format!("{}/registry/heartbeat", app.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"workspace_id": id}))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let refused = refused.expect("a burst past twice the rate is refused");
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After says when to come back");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests", "{body}");
    // A refusal before the route is still counted by its route and status.
    let metrics = app.raw().get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let counted = r#"hearth_http_requests_total{method="POST",route="/registry/heartbeat",status="429"}"#;
    assert!(metrics.contains(counted), "{metrics}");
    // Another workspace's token and the admin token are not slowed down.
    other_runtime.heartbeat(&heartbeat(other)).await.expect("another token has its own rate");
    for _ in 0..40 {
        app.admin.list_workspaces(false).await.expect("the admin token is not limited");
    }
}

/// Many tokens of one workspace share its rate: minting more does not buy
/// more requests, and another workspace is not slowed down.
async fn a_workspace_rotating_tokens_shares_one_rate(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.rate_limit_per_token = 1000;
        s.rate_limit_per_workspace = 5;
    })
    .await;
    let (id, _runtime, first) = app.create_registered("rotating").await;
    let (other, other_runtime, _) = app.create_registered("calm").await;
    let mut tokens = vec![first];
    for _ in 0..8 {
        let request = hearth_api::CreateWorkspaceTokenRequest::default();
        let issued = app.admin.create_workspace_token(id, &request).await.unwrap();
        tokens.push(issued.auth_token.expect("a new token is shown once"));
    }
    let mut refused = None;
    'send: for _ in 0..10 {
        for token in &tokens {
            let response = app
                .raw()
                .post(format!("{}/registry/heartbeat", app.url))
                .bearer_auth(token)
                .json(&serde_json::json!({"workspace_id": id}))
                .send()
                .await
                .unwrap();
            if response.status() == 429 {
                refused = Some(response);
                break 'send;
            }
            assert_eq!(response.status(), 200);
        }
    }
    let refused = refused.expect("a workspace past twice its rate is refused, whichever token it uses");
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests", "{body}");
    assert!(body["error"].as_str().unwrap().contains("this workspace"), "{body}");
    other_runtime.heartbeat(&heartbeat(other)).await.expect("another workspace has its own rate");
}
