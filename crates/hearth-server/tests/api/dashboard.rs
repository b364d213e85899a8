//! What the dashboard and `hearth workspace wait` rely on: the embedded page
//! and its headers, counts by status, list filters with keyset paging, the
//! plugin detail, and the long-poll wait (met when an event arrives, timed
//! out, impossible once removed), each scoped to the caller's org.

use hearth_api::{WaitFor, WaitOutcome};
use hearth_core::{OrgId, WorkspaceStatus};
use serde_json::Value;

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    the_page_is_served_with_a_strict_policy_and_revalidates,
    counts_group_by_status_within_the_callers_org,
    list_filters_keep_keyset_paging_and_refuse_bad_values,
    wait_is_met_when_the_workspace_gets_there,
    wait_times_out_or_is_impossible_and_stays_in_the_org,
    plugin_detail_lists_files_with_digests,
);

/// An org token of a second org. Orgs have no API yet (there is one, the
/// default), so the org row is inserted under the store, and the token is
/// minted straight into it (`POST /org/tokens` mints for the caller's org).
pub(crate) async fn other_org_token(app: &TestApp) -> String {
    use secrecy::ExposeSecret;
    let org = OrgId::new_random();
    let url = app.state.settings.database_url.as_ref().expect("tests name their database").expose_secret().to_owned();
    let insert = "insert into orgs (org_id, name) values ($1, $2)";
    if url.starts_with("postgres") {
        use hearth_store_pg::testing::sqlx::{self, Connection};
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(insert).bind(org.0).bind("other").execute(&mut conn).await.unwrap();
    } else {
        use hearth_store_sqlite::testing::sqlx::{self, Connection};
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(insert).bind(org.0).bind("other").execute(&mut conn).await.unwrap();
    }
    let minted = hearth_server::auth::mint_org(org, hearth_core::Role::Owner, Some("other".into()));
    app.state.store.insert_token(minted.record).await.unwrap();
    minted.secret
}

async fn the_page_is_served_with_a_strict_policy_and_revalidates(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/api.js", "text/javascript"),
        ("/ui/feed.js", "text/javascript"),
        ("/ui/dom.js", "text/javascript"),
        ("/ui/links.js", "text/javascript"),
        ("/ui/views/fleet.js", "text/javascript"),
        ("/ui/views/workspace.js", "text/javascript"),
        ("/ui/views/bundles.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let response = app.raw().get(format!("{}{path}", app.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} needs no token: it holds no data");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(header("content-type").starts_with(kind), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-cache");
        let etag = header("etag");
        assert!(etag.starts_with("\"sha256-"), "{path}: {etag}");
        let again = app.raw().get(format!("{}{path}", app.url)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}: an unchanged asset is not sent again");
        let stale = app.raw().get(format!("{}{path}", app.url)).header("if-none-match", "\"x\"").send().await.unwrap();
        assert_eq!(stale.status(), 200);
    }
    let page = app.raw().get(format!("{}/", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
    // Routes the page does not have are still the API's JSON 404.
    let missing = app.raw().get(format!("{}/ui/nope.js", app.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not_found");
}

async fn counts_group_by_status_within_the_callers_org(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (online, runtime, _) = app.create_registered("a").await;
    runtime.heartbeat(&heartbeat(online)).await.unwrap();
    app.create("b").await;
    let gone = app.create("c").await;
    app.admin.delete_workspace(gone.id).await.unwrap();

    let counts = app.admin.workspace_counts().await.unwrap();
    assert_eq!(counts.total, 2, "removed ones are not in the total");
    assert_eq!(counts.by_status["online"], 1);
    assert_eq!(counts.by_status["provisioning"], 1);
    assert_eq!(counts.by_status["removed"], 1);
    assert_eq!(counts.by_status["paused"], 0, "every status is listed");
    assert_eq!(counts.by_status.len(), WorkspaceStatus::ALL.len());

    let other = app.client(Some(&other_org_token(&app).await));
    let theirs = other.workspace_counts().await.unwrap();
    assert_eq!(theirs.total, 0, "an org token counts its own org only");
    assert!(theirs.by_status.values().all(|n| *n == 0));
}

async fn list_filters_keep_keyset_paging_and_refuse_bad_values(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for i in 0..5 {
        app.create(&format!("Alpha {i}")).await;
        app.create(&format!("beta-{i}")).await;
    }
    let (online, runtime, _) = app.create_registered("alpha-online").await;
    runtime.heartbeat(&heartbeat(online)).await.unwrap();

    // Search, page by page: every match once, in creation order.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) =
            app.admin.list_workspaces_filtered(&[("q", "ALPHA")], Some(2), cursor.as_deref()).await.unwrap();
        assert!(page.len() <= 2);
        names.extend(page.into_iter().map(|w| w.name));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["Alpha 0", "Alpha 1", "Alpha 2", "Alpha 3", "Alpha 4", "alpha-online"]);

    // The Link of a filtered page keeps its filters (encoded).
    let response = app
        .raw()
        .get(format!("{}/workspaces?q=Alpha%20&status=provisioning&limit=2", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("status=provisioning") && link.contains("q=Alpha+"), "{link}");
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 2);
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let rest: Vec<Value> = app
        .raw()
        .get(format!("{}{next}", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest.len(), 2, "following Link gives the next matches");
    assert!(rest.iter().all(|w| w["name"].as_str().unwrap().starts_with("Alpha ")));

    let (only_online, _) = app.admin.list_workspaces_filtered(&[("status", "online")], None, None).await.unwrap();
    assert_eq!(only_online.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["alpha-online"]);
    let (any_status, _) =
        app.admin.list_workspaces_filtered(&[("status", ""), ("q", "ALPHA")], None, None).await.unwrap();
    assert_eq!(any_status.len(), 6, "an empty status is any status (as the document says)");

    for (query, field) in [("status=sleeping", "status"), ("q=%01", "q"), ("limit=0", "limit")] {
        let response = app
            .raw()
            .get(format!("{}/workspaces?{query}", app.url))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }

    let other = app.client(Some(&other_org_token(&app).await));
    let (theirs, _) = other.list_workspaces_filtered(&[("q", "alpha")], None, None).await.unwrap();
    assert!(theirs.is_empty(), "an org token never finds another org's workspaces");
}

async fn wait_is_met_when_the_workspace_gets_there(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ws = app.create("waited").await;
    // The wait starts first; a long timeout shows it was the event that
    // answered it, not the clock.
    let waiter = {
        let admin = app.admin.clone();
        tokio::spawn(async move { admin.wait_for(ws.id, &WaitFor::Status(WorkspaceStatus::Online), 50).await })
    };
    let runtime = {
        let registered = app
            .client(None)
            .register(&hearth_api::RegisterRequest { id: ws.id, url: "http://localhost:9000".into(), agent_card: None })
            .await
            .unwrap();
        app.client(registered.auth_token.as_deref())
    };
    runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    let answer = waiter.await.unwrap().unwrap();
    assert_eq!(answer.outcome, WaitOutcome::Met, "{}", answer.message);
    assert_eq!(answer.workspace.status, WorkspaceStatus::Online);
    assert_eq!(answer.waited_for, "status=online");

    // A condition: the first heartbeat without a template already holds
    // every (zero) plugin.
    let condition = WaitFor::Condition("PluginsInstalled".into());
    let answer = app.admin.wait_for(ws.id, &condition, 50).await.unwrap();
    assert_eq!(answer.outcome, WaitOutcome::Met, "{}", answer.message);

    // Met already: answered at once, whatever the timeout.
    let paused = app.admin.pause(ws.id).await.unwrap();
    assert_eq!(paused.status, "paused");
    let answer = app.admin.wait_for(ws.id, &WaitFor::Status(WorkspaceStatus::Paused), 50).await.unwrap();
    assert_eq!(answer.outcome, WaitOutcome::Met);
}

async fn wait_times_out_or_is_impossible_and_stays_in_the_org(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ws = app.create("never-online").await;
    let online = WaitFor::Status(WorkspaceStatus::Online);
    let answer = app.admin.wait_for(ws.id, &online, 0).await.unwrap();
    assert_eq!(answer.outcome, WaitOutcome::TimedOut);
    assert_eq!(answer.workspace.status, WorkspaceStatus::Provisioning);

    // Removed while someone waits: impossible, at once.
    let waiter = {
        let admin = app.admin.clone();
        let online = online.clone();
        tokio::spawn(async move { admin.wait_for(ws.id, &online, 50).await })
    };
    app.admin.delete_workspace(ws.id).await.unwrap();
    let answer = waiter.await.unwrap().unwrap();
    assert_eq!(answer.outcome, WaitOutcome::Impossible, "{}", answer.message);
    assert!(answer.message.contains("removed"), "{}", answer.message);
    let removed = app.admin.wait_for(ws.id, &WaitFor::Status(WorkspaceStatus::Removed), 0).await.unwrap();
    assert_eq!(removed.outcome, WaitOutcome::Met, "waiting for removal of a removed workspace is met");

    let other = app.client(Some(&other_org_token(&app).await));
    let err = other.wait_for(ws.id, &online, 0).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "another org's workspace is not found");

    for (query, field) in [
        ("for=status%3Dsleeping", "for"),
        ("for=condition%3DNope", "for"),
        ("for=online", "for"),
        ("for=status%3Donline&timeout=301", "timeout"),
    ] {
        let response = app
            .raw()
            .get(format!("{}/workspaces/{}/wait?{query}", app.url, ws.id))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let unknown = app.admin.wait_for(hearth_core::WorkspaceId::new_random(), &online, 0).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404));
}

async fn plugin_detail_lists_files_with_digests(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let files = hearth_api::FileContent::files([
        ("plugin.yaml", b"name: tools\nversion: 2.1.0\ndescription: handy\n".to_vec()),
        ("bin/run.sh", b"#!/bin/sh\necho hi\n".to_vec()),
    ]);
    app.admin.push_plugin_json(&hearth_api::UploadPluginRequest { name: None, files }).await.unwrap();
    let detail = app.admin.get_plugin("tools").await.unwrap();
    assert_eq!((detail.version.as_str(), detail.description.as_str()), ("2.1.0", "handy"));
    let paths: Vec<&str> = detail.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["bin/run.sh", "plugin.yaml"]);
    let run = &detail.files[0];
    assert_eq!(run.size, 18);
    assert_eq!(run.sha256, hearth_core::digest::sha256_hex(b"#!/bin/sh\necho hi\n"));
    let missing = app.admin.get_plugin("nope").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    let bad = app.admin.get_plugin("Not A Name").await.unwrap_err();
    assert_eq!(bad.status(), Some(400));
    let other = app.client(Some(&other_org_token(&app).await));
    assert_eq!(other.get_plugin("tools").await.unwrap_err().status(), Some(404), "another org's plugin");
}
