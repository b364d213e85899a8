//! The bootstrap is a one-time join: a register without a token mints one
//! only for a workspace that never had a token, is still `provisioning` and
//! was created less than `--bootstrap-window` ago. Revocation ends a token
//! at once, through either route, and the org route revokes org tokens only.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_api::{CreateTokenRequest, CreateWorkspaceRequest, CreateWorkspaceTokenRequest, RegisterRequest};
use hearth_core::WorkspaceId;
use serde_json::json;

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    a_revoked_token_is_replaced_by_the_operator_and_nothing_else_can_mint,
    a_workspace_token_cannot_claim_a_sibling_or_read_its_secrets,
    bootstrap_closes_when_the_window_has_passed,
    the_org_route_revokes_only_org_tokens_and_every_revocation_ends_an_overlap,
);

fn register(id: WorkspaceId) -> RegisterRequest {
    RegisterRequest { id, url: "http://localhost:9000".into(), agent_card: None }
}

/// A register without a token, as the old SDK sends it (no protocol header).
async fn anonymous_register(app: &TestApp, id: WorkspaceId) -> reqwest::Response {
    app.raw()
        .post(format!("{}/registry/register", app.url))
        .json(&json!({"id": id, "url": "http://localhost:9000", "agent_card": {}}))
        .send()
        .await
        .unwrap()
}

/// The ids of the workspace's tokens that are live now.
async fn live_tokens(app: &TestApp, id: WorkspaceId) -> Vec<uuid::Uuid> {
    let now = chrono::Utc::now();
    let tokens = app.admin.list_workspace_tokens(id).await.unwrap();
    tokens.iter().filter(|t| t.revoked_at.is_none_or(|at| at > now)).map(|t| t.id).collect()
}

async fn metrics(app: &TestApp) -> String {
    app.raw().get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap()
}

/// Finding 1: the operator revokes a leaked token; whoever knows the
/// workspace id cannot mint a new one, and the token the operator issues is
/// the only live one.
async fn a_revoked_token_is_replaced_by_the_operator_and_nothing_else_can_mint(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ws = app.create("w").await;
    // The runtime's first start, as the old SDK does it: no token, no header.
    let first = anonymous_register(&app, ws.id).await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    let leaked = first["auth_token"].as_str().expect("the bootstrap mints a token").to_owned();
    let runtime = app.client(Some(&leaked));
    runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    // The token leaks; the operator revokes it.
    let listed = app.admin.list_workspace_tokens(ws.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    app.admin.revoke_workspace_token(ws.id, listed[0].id).await.unwrap();
    assert_eq!(runtime.heartbeat(&heartbeat(ws.id)).await.unwrap_err().status(), Some(401), "revoked at once");
    // The thief, who knows the id, asks for a new token: refused, nothing written.
    let before = app.admin.get_workspace(ws.id).await.unwrap();
    let events_before = app.events_of(ws.id).await.len();
    let thief = anonymous_register(&app, ws.id).await;
    assert_eq!(thief.status(), 401);
    let body: serde_json::Value = thief.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized", "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("hearth token create --workspace"), "says what an honest runtime needs: {message}");
    assert!(body.get("auth_token").is_none(), "{body}");
    assert!(live_tokens(&app, ws.id).await.is_empty(), "nothing was minted");
    assert_eq!(app.admin.list_workspace_tokens(ws.id).await.unwrap().len(), 1, "no row was added");
    assert_eq!(app.admin.get_workspace(ws.id).await.unwrap().url, before.url);
    assert_eq!(app.events_of(ws.id).await.len(), events_before, "no event");
    // The same through hearth-client (protocol 2).
    let err = app.client(None).register(&register(ws.id)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    // The operator issues a token for the real runtime: it works, and it is
    // the workspace's only live token.
    let issued = app.admin.create_workspace_token(ws.id, &CreateWorkspaceTokenRequest::default()).await.unwrap();
    let real = app.client(issued.auth_token.as_deref());
    real.register(&register(ws.id)).await.expect("the issued token registers");
    real.heartbeat(&heartbeat(ws.id)).await.expect("and heartbeats");
    assert_eq!(live_tokens(&app, ws.id).await, [issued.id], "no other token of the workspace is live");
    // And nothing else can mint one now either.
    assert_eq!(anonymous_register(&app, ws.id).await.status(), 401);
    assert_eq!(live_tokens(&app, ws.id).await, [issued.id]);
    // Counted: one bootstrap minted, the thief's three refused.
    let metrics = metrics(&app).await;
    assert!(metrics.contains(r#"hearth_bootstraps_total{outcome="minted"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"hearth_bootstraps_total{outcome="refused"} 3"#), "{metrics}");
}

/// Finding 2: a workspace token lists its siblings with `peers`; a sibling
/// whose tokens were revoked, or that was created with a token it never
/// used, cannot be claimed by registering without a token, and its secrets
/// stay out of reach.
async fn a_workspace_token_cannot_claim_a_sibling_or_read_its_secrets(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (me, my_runtime, my_token) = app.create_registered("me").await;
    // A sibling (every root is one) created without issue_token, whose
    // runtime bootstrapped, and whose token was then revoked.
    let (revoked, _, _) = app.create_registered("revoked").await;
    let token = app.admin.list_workspace_tokens(revoked).await.unwrap()[0].id;
    app.admin.revoke_workspace_token(revoked, token).await.unwrap();
    // A sibling created with a token its runtime has not used yet.
    let request = CreateWorkspaceRequest { name: "issued".into(), issue_token: Some(true), ..Default::default() };
    let issued = app.admin.create_workspace(&request).await.unwrap();
    let secrets = BTreeMap::from([("API_KEY".to_owned(), "s3cret".to_owned())]);
    for id in [revoked, issued.id] {
        app.admin.put_workspace_secrets(id, &secrets).await.unwrap();
    }
    let issued_token = live_tokens(&app, issued.id).await;
    assert_eq!(issued_token.len(), 1);
    let peers = my_runtime.peers(me, None).await.unwrap();
    let ids: Vec<WorkspaceId> = peers.iter().map(|p| p.id).collect();
    assert!(ids.contains(&revoked) && ids.contains(&issued.id), "the siblings are listed: {peers:?}");
    for sibling in [revoked, issued.id] {
        let claim = anonymous_register(&app, sibling).await;
        assert_eq!(claim.status(), 401, "an unauthenticated register cannot claim {sibling}");
        let with_mine = app.client(Some(&my_token)).register(&register(sibling)).await.unwrap_err();
        assert_eq!(with_mine.status(), Some(401), "nor with my token");
        let read = my_runtime.secret_values(sibling).await.unwrap_err();
        assert_eq!(read.status(), Some(401), "my token reads no sibling's secrets");
    }
    assert!(live_tokens(&app, revoked).await.is_empty(), "nothing was minted for the revoked sibling");
    assert_eq!(live_tokens(&app, issued.id).await, issued_token, "only the issued token");
    assert_eq!(
        app.client(issued.auth_token.as_deref()).secret_values(issued.id).await.unwrap()["API_KEY"],
        "s3cret",
        "its own runtime still reads them"
    );
}

/// Only a workspace created less than `--bootstrap-window` ago bootstraps.
async fn bootstrap_closes_when_the_window_has_passed(engine: Engine) {
    let window = Duration::from_secs(2);
    let app = TestApp::spawn_with(engine, |s| s.bootstrap_window = window).await;
    let late = app.create("late").await;
    let on_time = app.create("on-time").await;
    let minted = app.client(None).register(&register(on_time.id)).await.expect("inside the window");
    assert!(minted.auth_token.is_some());
    let created = app.admin.get_workspace(late.id).await.unwrap().created_at;
    let past = created + chrono::Duration::from_std(window).unwrap() + chrono::Duration::milliseconds(200);
    if let Ok(wait) = (past - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let err = app.client(None).register(&register(late.id)).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "past the window");
    assert!(app.admin.list_workspace_tokens(late.id).await.unwrap().is_empty(), "nothing was minted");
    assert_eq!(app.admin.get_workspace(late.id).await.unwrap().status, hearth_core::WorkspaceStatus::Provisioning);
    // An issued token is how it joins now.
    let issued = app.admin.create_workspace_token(late.id, &CreateWorkspaceTokenRequest::default()).await.unwrap();
    app.client(issued.auth_token.as_deref()).register(&register(late.id)).await.unwrap();
    // A window of 0 turns bootstrap off, as --require-issued-tokens does.
    for tweak in [
        (|s: &mut hearth_server::Settings| s.bootstrap_window = Duration::ZERO) as fn(&mut hearth_server::Settings),
        |s| s.require_issued_tokens = true,
    ] {
        let app = TestApp::spawn_with(engine, tweak).await;
        let fresh = app.create("fresh").await;
        let err = app.client(None).register(&register(fresh.id)).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(app.admin.list_workspace_tokens(fresh.id).await.unwrap().is_empty());
    }
}

/// Finding 4: `DELETE /org/tokens/{id}` knows only org tokens; a revocation
/// through either route ends a token at once, even inside a rotation's
/// overlap.
async fn the_org_route_revokes_only_org_tokens_and_every_revocation_ends_an_overlap(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, old_runtime, _) = app.create_registered("w").await;
    let old_id = app.admin.list_workspace_tokens(id).await.unwrap()[0].id;
    // A rotation with the longest overlap: the old token has 30 days left.
    let rotation =
        CreateWorkspaceTokenRequest { name: Some("rotated".into()), revoke_previous_after_seconds: Some(2_592_000) };
    let rotated = app.admin.create_workspace_token(id, &rotation).await.unwrap();
    old_runtime.heartbeat(&heartbeat(id)).await.expect("inside the overlap");
    // The org route does not know a workspace token: 404, as for any unknown id.
    let response = app
        .raw()
        .delete(format!("{}/org/tokens/{old_id}", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
    let unknown = app.admin.revoke_org_token(uuid::Uuid::new_v4()).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404));
    old_runtime.heartbeat(&heartbeat(id)).await.expect("the org route changed nothing");
    let listed = app.admin.list_workspace_tokens(id).await.unwrap();
    let end = listed.iter().find(|t| t.id == old_id).unwrap().revoked_at.unwrap();
    assert!(end > chrono::Utc::now() + chrono::Duration::days(29), "its overlap is as the rotation set it");
    // The workspace route ends it at once, overlap or not.
    app.admin.revoke_workspace_token(id, old_id).await.unwrap();
    assert_eq!(old_runtime.heartbeat(&heartbeat(id)).await.unwrap_err().status(), Some(401), "stopped at once");
    let listed = app.admin.list_workspace_tokens(id).await.unwrap();
    let end = listed.iter().find(|t| t.id == old_id).unwrap().revoked_at.unwrap();
    assert!(end <= chrono::Utc::now(), "revoked_at is the revocation's time, not the overlap's end");
    app.client(rotated.auth_token.as_deref()).heartbeat(&heartbeat(id)).await.expect("the new token works");
    // An org token revoked through the org route stops at once too.
    let org = app.admin.create_org_token(&CreateTokenRequest { name: Some("ci".into()), role: None }).await.unwrap();
    let org_client = app.client(org.auth_token.as_deref());
    org_client.list_workspaces(false).await.expect("the org token works");
    app.admin.revoke_org_token(org.id).await.unwrap();
    assert_eq!(org_client.list_workspaces(false).await.unwrap_err().status(), Some(401));
}
