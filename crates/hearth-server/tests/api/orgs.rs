//! Organisations (issue 23, first step): the admin creates, lists and reads
//! them; an org token may not (403); the admin acts in a named org on the
//! org-token routes (`?org=`) and revokes any org's token by its id, while
//! an org token stays in its own org (another org's is 404).

use hearth_api::{CreateTokenRequest, CreateWorkspaceRequest, ErrorCode};
use serde_json::{json, Value};

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    the_admin_creates_lists_and_reads_orgs_and_an_org_token_may_not,
    the_admin_manages_another_orgs_tokens_and_an_org_token_only_its_own,
    the_admin_creates_and_reads_in_a_named_org_and_an_org_token_stays_in_its_own,
    the_admins_lists_read_one_org_when_named_and_their_pages_keep_it,
);

async fn the_admin_creates_lists_and_reads_orgs_and_an_org_token_may_not(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.admin.create_org("acme").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.workspaces, None, "counts only on GET /orgs/{{id}}");
    let names: Vec<String> = app.admin.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["acme", "default"]);

    let taken = app.admin.create_org("acme").await.unwrap_err();
    assert_eq!((taken.status(), taken.code()), (Some(409), Some(ErrorCode::Conflict)), "{taken}");
    assert!(taken.to_string().contains("an org with this name already exists"), "{taken}");
    for name in ["  ", "bell\u{7}", &"x".repeat(256)] {
        let bad = app.admin.create_org(name).await.unwrap_err();
        assert_eq!((bad.status(), bad.code()), (Some(400), Some(ErrorCode::InvalidField)), "{name:?}: {bad}");
    }
    assert_eq!(app.admin.list_orgs().await.unwrap().len(), 2, "nothing written for a refused name");
    let unknown = app.admin.get_org(uuid::Uuid::new_v4()).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404), "{unknown}");
    let raw = app.raw().get(format!("{}/orgs/not-an-id", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(raw.status().as_u16(), 400);

    // Its workspaces, counted by status: one created by its own org token.
    let secret = app
        .admin
        .create_org_token_in(Some(acme.id), &CreateTokenRequest { name: Some("acme-ops".into()), role: None })
        .await
        .unwrap()
        .auth_token
        .unwrap();
    let acme_ops = app.client(Some(&secret));
    let ws = acme_ops
        .create_workspace(&CreateWorkspaceRequest { name: "acme-w".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(app.admin.get_workspace(ws.id).await.unwrap().org_id, acme.id);
    let read = app.admin.get_org(acme.id).await.unwrap();
    let counts = read.workspaces.expect("counted");
    assert_eq!((counts.total, counts.by_status["provisioning"]), (1, 1));
    let default = app.admin.list_orgs().await.unwrap().into_iter().find(|o| o.name == "default").unwrap();
    assert_eq!(app.admin.get_org(default.id).await.unwrap().workspaces.unwrap().total, 0);

    // An org token is valid, but these routes are the admin's.
    for refused in [
        acme_ops.create_org("mine").await.unwrap_err(),
        acme_ops.list_orgs().await.unwrap_err(),
        acme_ops.get_org(acme.id).await.unwrap_err(),
    ] {
        assert_eq!((refused.status(), refused.code()), (Some(403), Some(ErrorCode::Forbidden)), "{refused}");
        assert!(refused.to_string().contains("admin token"), "{refused}");
    }
    let anonymous = app.client(None).list_orgs().await.unwrap_err();
    assert_eq!(anonymous.status(), Some(401));
}

async fn the_admin_manages_another_orgs_tokens_and_an_org_token_only_its_own(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.admin.create_org("acme").await.unwrap();
    let named = |name: &str| CreateTokenRequest { name: Some(name.into()), role: None };
    let in_acme = app.admin.create_org_token_in(Some(acme.id), &named("acme-ops")).await.unwrap();
    let in_default = app.admin.create_org_token(&named("default-ops")).await.unwrap();

    // The admin lists each org's own tokens; without ?org=, the default org's.
    let listed = |tokens: Vec<hearth_api::TokenResponse>| tokens.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(listed(app.admin.list_org_tokens_in(Some(acme.id)).await.unwrap()), [in_acme.id]);
    assert_eq!(listed(app.admin.list_org_tokens().await.unwrap()), [in_default.id]);
    let nowhere = app.admin.list_org_tokens_in(Some(uuid::Uuid::new_v4())).await.unwrap_err();
    assert_eq!(nowhere.status(), Some(404), "an org that does not exist: {nowhere}");
    let nowhere = app.admin.create_org_token_in(Some(uuid::Uuid::new_v4()), &named("x")).await.unwrap_err();
    assert_eq!(nowhere.status(), Some(404), "{nowhere}");
    let raw = app.raw().get(format!("{}/org/tokens?org=nope", app.url)).bearer_auth(&app.admin_token).send().await;
    assert_eq!(raw.unwrap().status().as_u16(), 400);

    // An org token: its own org, named or not; another org is 404, for
    // listing, creating and revoking alike.
    let acme_ops = app.client(in_acme.auth_token.as_deref());
    assert_eq!(listed(acme_ops.list_org_tokens().await.unwrap()), [in_acme.id]);
    assert_eq!(listed(acme_ops.list_org_tokens_in(Some(acme.id)).await.unwrap()), [in_acme.id]);
    let default_org = app.admin.list_orgs().await.unwrap().into_iter().find(|o| o.name == "default").unwrap();
    for refused in [
        acme_ops.list_org_tokens_in(Some(default_org.id)).await.map(|_| ()).unwrap_err(),
        acme_ops.create_org_token_in(Some(default_org.id), &named("sneaky")).await.map(|_| ()).unwrap_err(),
        acme_ops.revoke_org_token(in_default.id).await.unwrap_err(),
    ] {
        assert_eq!(refused.status(), Some(404), "{refused}");
    }
    assert_eq!(app.admin.list_org_tokens().await.unwrap().len(), 1, "nothing created in the default org");

    // A leaked token of another org: the admin revokes it by its id alone.
    app.admin.revoke_org_token(in_acme.id).await.unwrap();
    let after = acme_ops.list_org_tokens().await.unwrap_err();
    assert_eq!(after.status(), Some(401), "revoked at once: {after}");
    let default_ops = app.client(in_default.auth_token.as_deref());
    assert_eq!(default_ops.list_org_tokens().await.unwrap().len(), 1, "the default org's token still works");
}

/// A request of the admin's (or of `token`'s) with `?org=` when `org` is
/// given; the status and the JSON body.
async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    org: Option<uuid::Uuid>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = match org {
        Some(org) => format!("{}{path}?org={org}", app.url),
        None => format!("{}{path}", app.url),
    };
    let mut request = app.raw().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The admin pushes a plugin and a template, sets org secrets and creates
/// workspaces in a named org (`?org=`), and reads that org's plugin and
/// template by name, where the default org has its own of the same names.
/// An org token reads and creates in its own org, and naming another is a
/// 404 that creates nothing.
async fn the_admin_creates_and_reads_in_a_named_org_and_an_org_token_stays_in_its_own(engine: Engine) {
    use reqwest::Method;
    let app = TestApp::spawn(engine).await;
    let admin = app.admin_token.clone();
    let acme = app.admin.create_org("acme").await.unwrap();
    let default = app.admin.list_orgs().await.unwrap().into_iter().find(|o| o.name == "default").unwrap();
    let plugin = |version: &str| json!({"files": {"plugin.yaml": format!("name: seo-all\nversion: {version}\n"), "skills/a.md": "# a\n"}});
    let template = |prompt: &str| json!({"name": "seo", "files": {"config.yaml": "name: seo\nplugins:\n  - seo-all\n", "prompts/system.md": prompt}});
    for (org, version, prompt) in [(Some(acme.id), "2.0.0", "acme's"), (None, "1.0.0", "default's")] {
        let (status, body) = send(&app, &admin, Method::POST, "/plugins", org, Some(plugin(version))).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = send(&app, &admin, Method::POST, "/templates/import", org, Some(template(prompt))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, in_acme) = send(&app, &admin, Method::GET, "/plugins/seo-all", Some(acme.id), None).await;
    let (_, in_default) = send(&app, &admin, Method::GET, "/plugins/seo-all", None, None).await;
    assert_eq!((in_acme["version"].as_str(), in_default["version"].as_str()), (Some("2.0.0"), Some("1.0.0")));
    let (_, acme_seo) = send(&app, &admin, Method::GET, "/templates/seo", Some(acme.id), None).await;
    let (_, default_seo) = send(&app, &admin, Method::GET, "/templates/seo", None, None).await;
    assert_ne!(acme_seo["assets_digest"], default_seo["assets_digest"], "each org's own template");
    assert_eq!(acme_seo["id"], send(&app, &admin, Method::GET, "/templates/seo", Some(acme.id), None).await.1["id"]);

    // A workspace in acme, on acme's template: acme's plugin version, and
    // acme's org secrets.
    let spec = json!({"name": "w", "template": "seo"});
    let (status, created) = send(&app, &admin, Method::POST, "/workspaces", Some(acme.id), Some(spec.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["org_id"], json!(acme.id));
    assert_eq!(created["desired_plugins"][0]["version"], "2.0.0", "{created}");
    let secrets = json!({"API_KEY": "acme-key"});
    let (status, body) = send(&app, &admin, Method::PUT, "/org/secrets", Some(acme.id), Some(secrets)).await;
    assert_eq!(status, 200, "{body}");
    let id: hearth_core::WorkspaceId = serde_json::from_value(created["id"].clone()).unwrap();
    assert_eq!(app.admin.secret_values(id).await.unwrap()["API_KEY"], "acme-key");
    let here = app.admin.create_workspace(&CreateWorkspaceRequest { name: "d".into(), ..Default::default() }).await;
    assert!(!app.admin.secret_values(here.unwrap().id).await.unwrap().contains_key("API_KEY"), "not in default");
    let batch = json!({"workspaces": [{"name": "b1"}, {"name": "b2"}]});
    let (status, body) = send(&app, &admin, Method::POST, "/workspaces/batch", Some(acme.id), Some(batch)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.admin.get_org(acme.id).await.unwrap().workspaces.unwrap().total, 3);

    // An org that does not exist: 404, nothing created anywhere.
    let nowhere = Some(uuid::Uuid::new_v4());
    let (status, _) = send(&app, &admin, Method::POST, "/workspaces", nowhere, Some(spec.clone())).await;
    assert_eq!(status, 404);
    let (status, _) = send(&app, &admin, Method::POST, "/plugins", nowhere, Some(plugin("3.0.0"))).await;
    assert_eq!(status, 404);

    // acme's own token: its org without naming it, or naming it; never the
    // default org, for reads and writes alike.
    let secret = app
        .admin
        .create_org_token_in(Some(acme.id), &CreateTokenRequest { name: None, role: None })
        .await
        .unwrap()
        .auth_token
        .unwrap();
    let (_, own) = send(&app, &secret, Method::GET, "/plugins/seo-all", None, None).await;
    assert_eq!(own["version"], "2.0.0");
    let (status, _) = send(&app, &secret, Method::GET, "/plugins/seo-all", Some(acme.id), None).await;
    assert_eq!(status, 200);
    let before = app.admin.get_org(default.id).await.unwrap().workspaces.unwrap().total;
    for (method, path, body) in [
        (Method::GET, "/plugins/seo-all", None),
        (Method::GET, "/templates/seo", None),
        (Method::POST, "/workspaces", Some(spec.clone())),
        (Method::POST, "/plugins", Some(plugin("9.0.0"))),
        (Method::PUT, "/org/secrets", Some(json!({"API_KEY": "stolen"}))),
    ] {
        let (status, body) = send(&app, &secret, method.clone(), path, Some(default.id), body).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    assert_eq!(app.admin.get_org(default.id).await.unwrap().workspaces.unwrap().total, before, "nothing created");
    let (_, still) = send(&app, &admin, Method::GET, "/plugins/seo-all", None, None).await;
    assert_eq!(still["version"], "1.0.0", "the default org's plugin is untouched");
}

/// `?org=` on a list is the admin's filter: only that org's workspaces,
/// counts, templates, plugins and events, and the next page's `Link`
/// keeps it; without it the admin reads every org. An unknown org is 404.
async fn the_admins_lists_read_one_org_when_named_and_their_pages_keep_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let acme = app.admin.create_org("acme").await.unwrap();
    for name in ["a1", "a2", "a3"] {
        let request = CreateWorkspaceRequest { name: name.into(), ..Default::default() };
        app.admin.create_workspace_in(Some(acme.id), &request).await.unwrap();
    }
    app.admin.create_workspace(&CreateWorkspaceRequest { name: "d".into(), ..Default::default() }).await.unwrap();
    let get = |path: String| {
        let request = app.raw().get(format!("{}{path}", app.url)).bearer_auth(&app.admin_token);
        async move {
            let response = request.send().await.unwrap();
            let (status, link) = (response.status().as_u16(), response.headers().get("link").cloned());
            (status, link.map(|l| l.to_str().unwrap().to_owned()), response.json::<Value>().await.unwrap())
        }
    };
    let names = |body: &Value| {
        body.as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };

    let (status, link, page) = get(format!("/workspaces?org={}&limit=2", acme.id)).await;
    assert_eq!(status, 200);
    assert_eq!(names(&page), ["a1", "a2"]);
    let link = link.expect("a next page");
    assert!(link.contains(&format!("org={}", acme.id)), "the next page keeps the org: {link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap().to_owned();
    let (_, _, rest) = get(next).await;
    assert_eq!(names(&rest), ["a3"], "the next page is acme's too");
    let (_, _, all) = get("/workspaces".into()).await;
    assert_eq!(all.as_array().unwrap().len(), 4, "without ?org= the admin reads every org");
    let (_, _, counts) = get(format!("/workspaces/counts?org={}", acme.id)).await;
    assert_eq!(counts["total"], 3);
    let (_, _, events) = get(format!("/events?org={}", acme.id)).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3, "acme's three PROVISIONING events");
    assert!(events.iter().all(|e| e["event"] == "WORKSPACE_PROVISIONING"));
    // The stream of one org: from the start, acme's three events and not
    // the default org's, which came after them.
    let d = app.admin.create_workspace(&CreateWorkspaceRequest { name: "d2".into(), ..Default::default() }).await;
    let d = d.unwrap().id;
    let mut stream = app.admin.follow_events_in(Some(acme.id), Some(0)).await.unwrap();
    let mut streamed = Vec::new();
    while streamed.len() < 3 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), futures_util::StreamExt::next(&mut stream));
        streamed.push(next.await.expect("an event within 10 s").expect("the stream goes on").unwrap());
    }
    assert!(streamed.iter().all(|e| e.workspace_id != Some(d)), "only acme's: {streamed:?}");
    let acme_ids: Vec<_> =
        app.admin.list_workspaces_in(Some(acme.id), false).await.unwrap().into_iter().map(|w| w.id).collect();
    assert!(streamed.iter().all(|e| e.workspace_id.is_some_and(|id| acme_ids.contains(&id))), "{streamed:?}");
    for path in ["/templates", "/plugins"] {
        let (status, _, body) = get(format!("{path}?org={}", acme.id)).await;
        assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(0)), "{path}");
    }
    for path in ["/workspaces", "/workspaces/counts", "/events", "/templates", "/plugins"] {
        let (status, _, body) = get(format!("{path}?org={}", uuid::Uuid::new_v4())).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
}
