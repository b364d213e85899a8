//! Roles (issue 23): every route of `/openapi.json` × every caller,
//! checked against the one access table (`hearth_server::access`). A route
//! the table does not know fails here, as does a role that reaches further
//! (or less far) than its rule says, and any route that answers a
//! non-admin caller about another org's object with anything but 404.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_api::{CreateTokenRequest, CreateWorkspaceRequest, FileContent, ImportTemplateRequest, UploadPluginRequest};
use hearth_core::Role;
use hearth_server::access::{rule_of_documented, Access};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    every_route_answers_every_role_as_the_access_table_says,
    no_role_but_the_admin_reaches_another_orgs_objects,
    roles_are_given_at_creation_listed_and_told_by_whoami,
    every_event_says_who_caused_it,
);

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Nobody,
    BadToken,
    Org(Role),
    Admin,
    /// The target workspace's own token.
    Runtime,
}

/// One org's objects that the routes' paths name: a workspace (fresh for
/// each request, so a delete or a pause does not change the next one's
/// answer), a template, a plugin.
struct Org {
    id: Uuid,
    tokens: BTreeMap<Role, String>,
    token_ids: BTreeMap<Role, Uuid>,
}

const TEMPLATE: &str = "tpl";
const PLUGIN: &str = "plug";
const ASSET: &str = "config.yaml";

async fn org(app: &TestApp, name: &str) -> Org {
    let id = app.admin.create_org(name).await.unwrap().id;
    let (mut tokens, mut token_ids) = (BTreeMap::new(), BTreeMap::new());
    for role in Role::ORG {
        let request = CreateTokenRequest { name: Some(format!("{name}-{role}")), role: Some(role) };
        let created = app.admin.create_org_token_in(Some(id), &request).await.unwrap();
        assert_eq!(created.role, Some(role));
        tokens.insert(role, created.auth_token.unwrap());
        token_ids.insert(role, created.id);
    }
    let files = [("plugin.yaml".to_owned(), FileContent::Text(format!("name: {PLUGIN}\nversion: 1.0.0\n")))].into();
    app.admin.push_plugin_json_in(Some(id), &UploadPluginRequest { name: None, files }).await.unwrap();
    let config = format!("name: {TEMPLATE}\nplugins:\n  - {PLUGIN}\n");
    let template =
        ImportTemplateRequest { name: TEMPLATE.into(), files: [(ASSET.into(), FileContent::Text(config))].into() };
    app.admin.import_template_in(Some(id), &template).await.unwrap();
    Org { id, tokens, token_ids }
}

/// A fresh workspace of `org` from the template, with its token and the
/// token's id.
async fn workspace(app: &TestApp, org: &Org) -> (Uuid, String, Uuid) {
    let request = CreateWorkspaceRequest {
        name: format!("w-{}", unique()),
        template: Some(TEMPLATE.into()),
        issue_token: Some(true),
        ..Default::default()
    };
    let created = app.admin.create_workspace_in(Some(org.id), &request).await.unwrap();
    let token_id = app.admin.list_workspace_tokens(created.id).await.unwrap()[0].id;
    (created.id.0, created.auth_token.unwrap(), token_id)
}

fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Every documented operation: method, path (OpenAPI syntax), and whether
/// it takes `?org=`.
async fn operations(app: &TestApp) -> Vec<(Method, String, bool)> {
    let document: Value =
        app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            if !operation.is_object() || operation.get("responses").is_none() {
                continue;
            }
            let takes_org = operation["parameters"]
                .as_array()
                .is_some_and(|params| params.iter().any(|p| p["name"] == "org" && p["in"] == "query"));
            // The document says the table's rule.
            let rule = rule_of_documented(&method, path)
                .unwrap_or_else(|| panic!("{method} {path} is documented but has no access rule"));
            assert!(operation["x-hearth-access"].is_string(), "{method} {path}: its rule is documented");
            assert!(
                operation["description"].as_str().is_some_and(|d| d.contains("Who may call")),
                "{method} {path} ({rule:?}): its description says who may call it"
            );
            all.push((method, path.clone(), takes_org));
        }
    }
    assert!(all.len() >= 50, "every route is documented ({} found)", all.len());
    all
}

/// The request of `method path` on the objects of `org` (a fresh
/// workspace), with a body that the route accepts from a caller it admits.
/// A route that takes `?org=` is asked in `org` (the admin acts in the
/// default org otherwise; an org token may name its own).
async fn request(
    app: &TestApp,
    org: &Org,
    (method, path, takes_org): &(Method, String, bool),
) -> (String, Option<Value>, (String, Uuid)) {
    let path = path.as_str();
    let (workspace, runtime_token, workspace_token) = workspace(app, org).await;
    let n = unique();
    // An org to delete is one of its own (acme holds workspaces: 409).
    let org_id = if *method == Method::DELETE && path == "/orgs/{id}" {
        app.admin.create_org(&format!("throwaway-{}", unique())).await.unwrap().id
    } else {
        org.id
    };
    let mut filled = path.replace("/orgs/{id}", &format!("/orgs/{org_id}"));
    if filled.contains("/org/tokens/{id}") {
        filled = filled.replace("/org/tokens/{id}", &format!("/org/tokens/{}", throwaway_token(app, org).await));
    }
    let mut filled = filled
        .replace("{token_id}", &workspace_token.to_string())
        .replace("/templates/{id}", &format!("/templates/{TEMPLATE}"))
        .replace("{name}", PLUGIN)
        .replace("{path}", ASSET)
        .replace("{target}", &workspace.to_string())
        .replace("{id}", &workspace.to_string());
    if *takes_org {
        filled.push_str(&format!("?org={}", org.id));
    }
    let body = match (method.as_str(), path) {
        ("POST", "/orgs") => Some(json!({"name": format!("org-{n}")})),
        ("POST", "/org/tokens") => Some(json!({"role": "viewer"})),
        ("PUT", "/org/secrets" | "/workspaces/{id}/secrets") => Some(json!({"KEY": "value"})),
        ("PUT", "/orgs/{id}/quotas") => Some(json!({})),
        ("POST", "/workspaces") => Some(json!({"name": format!("new-{n}")})),
        ("POST", "/workspaces/batch") => Some(json!({"workspaces": [{"name": format!("batch-{n}")}]})),
        ("POST", "/workspaces/{id}/tokens") => Some(json!({})),
        ("POST", "/templates/import") => {
            Some(json!({"name": format!("t-{n}"), "files": {"config.yaml": format!("name: t-{n}\n")}}))
        }
        ("POST", "/plugins") => Some(json!({"files": {"plugin.yaml": format!("name: p-{n}\nversion: 1.0.0\n")}})),
        ("POST", "/workspaces/{id}/plugins") => Some(json!({"source": format!("local://{PLUGIN}")})),
        ("POST", "/registry/register") => {
            Some(json!({"id": workspace, "url": "http://localhost:9/", "agent_card": {"name": "w"}}))
        }
        ("POST", "/registry/heartbeat") => Some(json!({"workspace_id": workspace})),
        ("POST", "/registry/update-card") => Some(json!({"workspace_id": workspace, "agent_card": {"name": "w"}})),
        _ => None,
    };
    // A plugin to remove was added first.
    if method == Method::DELETE && path == "/workspaces/{id}/plugins/{name}" {
        let added = app.raw().put(format!("{}{filled}", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
        assert_eq!(added.status(), 200);
    }
    // A long poll that answers at once; the streams answer their headers.
    if path == "/workspaces/{id}/wait" {
        filled.push_str("?for=status=provisioning&timeout=0");
    }
    (filled, body, (runtime_token, workspace))
}

/// An org token of `org` made to be revoked by the request.
async fn throwaway_token(app: &TestApp, org: &Org) -> Uuid {
    let request = CreateTokenRequest { name: Some(format!("throwaway-{}", unique())), role: Some(Role::Viewer) };
    app.admin.create_org_token_in(Some(org.id), &request).await.unwrap().id
}

/// Sends the request as `caller` and returns its status and body (the
/// body only when it is short: a stream's headers are enough).
async fn send(
    app: &TestApp,
    org: &Org,
    caller: Caller,
    method: &Method,
    url: &str,
    body: Option<&Value>,
    (runtime, workspace): (&str, Uuid),
) -> (u16, String) {
    // `discover` names its caller in a header (PROTOCOL.md).
    let mut builder =
        app.raw().request(method.clone(), format!("{}{url}", app.url)).header("X-Workspace-ID", workspace.to_string());
    let token = match caller {
        Caller::Nobody => None,
        Caller::BadToken => Some("not-a-token-of-this-deployment".to_owned()),
        Caller::Org(role) => Some(org.tokens[&role].clone()),
        Caller::Admin => Some(app.admin_token.clone()),
        Caller::Runtime => Some(runtime.to_owned()),
    };
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let streaming =
        response.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    // A body that cannot be read is an empty one: the refusals' checks then
    // fail on it, naming the request.
    let text = if streaming { String::new() } else { response.text().await.unwrap_or_default() };
    (status, text)
}

/// Whether `caller` is admitted by `rule`, and if not, the status it gets.
fn admitted(rule: Access, caller: Caller) -> Result<(), u16> {
    match (rule, caller) {
        (Access::Public, _) => Ok(()),
        (_, Caller::Nobody | Caller::BadToken) => Err(401),
        (Access::Runtime, Caller::Runtime) | (Access::RuntimeOr(_), Caller::Runtime) => Ok(()),
        (Access::Runtime, _) | (Access::Operators(_), Caller::Runtime) => Err(401),
        (Access::Operators(_) | Access::RuntimeOr(_), Caller::Admin) => Ok(()),
        (Access::Operators(needed) | Access::RuntimeOr(needed), Caller::Org(role)) => {
            if role.includes(needed) {
                Ok(())
            } else {
                Err(403)
            }
        }
    }
}

async fn every_route_answers_every_role_as_the_access_table_says(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = org(&app, "acme").await;
    let callers = [
        Caller::Nobody,
        Caller::BadToken,
        Caller::Org(Role::Viewer),
        Caller::Org(Role::Operator),
        Caller::Org(Role::Owner),
        Caller::Admin,
        Caller::Runtime,
    ];
    let mut checked = 0;
    for operation in operations(&app).await {
        let (method, path, _) = &operation;
        let rule = rule_of_documented(method, path).unwrap();
        for caller in callers {
            let (url, body, runtime) = request(&app, &acme, &operation).await;
            let (status, text) = send(&app, &acme, caller, method, &url, body.as_ref(), (&runtime.0, runtime.1)).await;
            let what = format!("{method} {url} as {caller:?} (rule {rule:?}): {status} {text}");
            match admitted(rule, caller) {
                Ok(()) => {
                    // A fresh workspace is provisioning: an action it cannot
                    // take now (hibernate, resume) or a `discover` of it is
                    // refused by its state, and logs by the server's lack of
                    // a provisioner: each past the access check.
                    let by_state = ["\"transition_refused\"", "\"workspace_unavailable\"", "\"no_provisioner\""]
                        .iter()
                        .any(|code| text.contains(code));
                    assert!(status < 400 || (by_state && status != 401 && status != 403), "admitted: {what}");
                }
                Err(expected) => {
                    assert_eq!(status, expected, "{what}");
                    let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON error: {what}"));
                    if expected == 403 {
                        assert_eq!(error["code"], "forbidden", "{what}");
                        let needed = rule.operator_role().unwrap();
                        assert!(
                            error["error"].as_str().unwrap().contains(&format!("`{needed}`")),
                            "names {needed}: {what}"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 50 * callers.len(), "{checked} requests");
}

async fn no_role_but_the_admin_reaches_another_orgs_objects(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = org(&app, "acme").await;
    let other = org(&app, "other").await;
    let mut checked = 0;
    for operation in operations(&app).await {
        let (method, path, takes_org) = &operation;
        let rule = rule_of_documented(method, path).unwrap();
        let names_an_object = path.contains('{');
        if !(names_an_object || *takes_org) || matches!(rule, Access::Public) {
            continue;
        }
        for role in Role::ORG {
            // `other`'s objects, or `?org=` naming it, with `acme`'s tokens.
            let (url, body, (_, theirs)) = request(&app, &other, &operation).await;
            let (status, text) = send(&app, &acme, Caller::Org(role), method, &url, body.as_ref(), ("", theirs)).await;
            let what = format!("{method} {url} as acme's {role} (rule {rule:?}): {status} {text}");
            let expected = match admitted(rule, Caller::Org(role)) {
                Ok(()) => 404,
                Err(refused) => refused,
            };
            assert_eq!(status, expected, "{what}");
            checked += 1;
        }
        // A runtime's token reaches no other workspace, in any org.
        if rule.admits_runtime() && path.contains("{id}") {
            let (mine, acme_runtime, _) = workspace(&app, &acme).await;
            let (url, body, _) = request(&app, &other, &operation).await;
            let (status, text) =
                send(&app, &acme, Caller::Runtime, method, &url, body.as_ref(), (&acme_runtime, mine)).await;
            assert_eq!(status, 401, "{method} {url} with another workspace's token: {status} {text}");
        }
    }
    assert!(checked >= 30 * 3, "{checked} requests");

    // The lists hold only the caller's org.
    let viewer = app.client(Some(&acme.tokens[&Role::Viewer]));
    let (theirs, _, _) = workspace(&app, &other).await;
    let listed = viewer.list_workspaces(true).await.unwrap();
    assert!(listed.iter().all(|w| w.org_id == acme.id) && !listed.iter().any(|w| w.id.0 == theirs), "{listed:?}");
    let events = viewer.list_events(Some(0), None, None).await.unwrap();
    assert!(events.iter().all(|e| e.workspace_id.is_none_or(|id| id.0 != theirs)), "no event of another org");
}

async fn roles_are_given_at_creation_listed_and_told_by_whoami(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let me = app.admin.whoami().await.unwrap();
    assert_eq!((me.role, me.org_id, me.token_id), (Role::Admin, None, None));

    // Without a role, an org token is its org's owner (as every org token
    // was before roles).
    let plain = app.admin.create_org_token(&CreateTokenRequest { name: None, role: None }).await.unwrap();
    assert_eq!(plain.role, Some(Role::Owner));
    let viewer = app
        .admin
        .create_org_token(&CreateTokenRequest { name: Some("eyes".into()), role: Some(Role::Viewer) })
        .await
        .unwrap();
    let as_viewer = app.client(viewer.auth_token.as_deref());
    let me = as_viewer.whoami().await.unwrap();
    assert_eq!((me.role, me.token_id), (Role::Viewer, Some(viewer.id)));
    assert!(me.org_id.is_some());
    let listed = app.admin.list_org_tokens().await.unwrap();
    let roles: BTreeMap<Uuid, Option<Role>> = listed.iter().map(|t| (t.id, t.role)).collect();
    assert_eq!((roles[&plain.id], roles[&viewer.id]), (Some(Role::Owner), Some(Role::Viewer)));

    // No org token is the admin; an unknown role is a clear 400; nothing is
    // written for either.
    for role in ["admin", "root"] {
        let refused = app
            .raw()
            .post(format!("{}/org/tokens", app.url))
            .bearer_auth(&app.admin_token)
            .json(&json!({"role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{role}");
        let error: Value = refused.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains("role"), "{role}: {error}");
    }
    assert_eq!(app.admin.list_org_tokens().await.unwrap().len(), 2, "nothing written");

    // A viewer reads but never acts, and is told which role it would need.
    let ws =
        app.admin.create_workspace(&CreateWorkspaceRequest { name: "w".into(), ..Default::default() }).await.unwrap();
    assert_eq!(as_viewer.get_workspace(ws.id).await.unwrap().id, ws.id);
    let refused = as_viewer.pause(ws.id).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert!(refused.to_string().contains("`operator`"), "{refused}");
    let whoami_anonymous = app.client(None).whoami().await.unwrap_err();
    assert_eq!(whoami_anonymous.status(), Some(401));
}

/// Each event's payload says who caused it: the operator's token and role
/// for its actions, the runtime for what it reports, Hearth itself (and
/// why) for a sweep.
async fn every_event_says_who_caused_it(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.liveness_ttl = std::time::Duration::ZERO).await;
    let acme = org(&app, "acme").await;
    let as_role = |role: Role| app.client(Some(&acme.tokens[&role]));
    let (operator_id, owner_id) = (acme.token_ids[&Role::Operator], acme.token_ids[&Role::Owner]);

    let request = CreateWorkspaceRequest { name: "w".into(), issue_token: Some(true), ..Default::default() };
    let ws = as_role(Role::Operator).create_workspace(&request).await.unwrap();
    let runtime = app.client(ws.auth_token.as_deref());
    runtime
        .register(&hearth_api::RegisterRequest { id: ws.id, url: "http://localhost:9/".into(), agent_card: None })
        .await
        .unwrap();
    runtime.heartbeat(&crate::harness::heartbeat(ws.id)).await.unwrap();
    as_role(Role::Owner).pause(ws.id).await.unwrap();
    as_role(Role::Owner).resume(ws.id).await.unwrap();
    runtime.heartbeat(&crate::harness::heartbeat(ws.id)).await.unwrap();
    let report = hearth_server::sweeper::Sweeper::new(app.state.clone()).run_once().await;
    assert_eq!(report.offline, 1);
    app.admin.delete_workspace(ws.id).await.unwrap();

    let operator = |id: Uuid, role: &str| json!({"kind": "operator", "token_id": id, "role": role});
    let said: Vec<(String, Value)> =
        app.events_of(ws.id).await.into_iter().map(|e| (e.event, e.payload["actor"].clone())).collect();
    let expected = [
        ("WORKSPACE_PROVISIONING", operator(operator_id, "operator")),
        ("WORKSPACE_ONLINE", json!({"kind": "runtime"})),
        ("WORKSPACE_PAUSED", operator(owner_id, "owner")),
        ("WORKSPACE_RESUMED", operator(owner_id, "owner")),
        ("WORKSPACE_ONLINE", json!({"kind": "runtime"})),
        ("WORKSPACE_OFFLINE", json!({"kind": "system", "reason": "sweep"})),
        ("WORKSPACE_REMOVED", json!({"kind": "operator", "token_id": null, "role": "admin"})),
    ];
    let statuses: Vec<(String, Value)> = said
        .iter()
        .filter(|(kind, _)| kind.starts_with("WORKSPACE_") && kind != "WORKSPACE_HEARTBEAT")
        .cloned()
        .collect();
    let expected: Vec<(String, Value)> = expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(statuses, expected);
    assert!(said.iter().all(|(_, actor)| actor.is_object()), "every event names its actor: {said:?}");
}
