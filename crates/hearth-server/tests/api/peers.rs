//! `GET /registry/{id}/peers` is keyset-paged (the answer stays the old
//! SDK's JSON array, in its order), and `GET /registry/discover/{target}`
//! keeps its answers; both stay inside the caller's org.

use hearth_api::{CreateWorkspaceRequest, WorkspaceResponse};
use hearth_core::WorkspaceId;
use serde_json::Value;

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    peers_are_paged_in_their_order_and_filtered_across_pages,
    a_roots_peers_are_the_other_roots_of_its_org_then_its_children,
    discover_reaches_relatives_only_and_stays_in_the_org,
);

fn request(name: &str, role: &str, parent: Option<WorkspaceId>) -> CreateWorkspaceRequest {
    CreateWorkspaceRequest {
        name: name.into(),
        role: Some(role.into()),
        parent_id: parent,
        issue_token: Some(true),
        ..Default::default()
    }
}

/// Paging order: creation time, then id (what the store orders by).
fn in_creation_order(mut workspaces: Vec<WorkspaceResponse>) -> Vec<String> {
    workspaces.sort_by_key(|w| (w.created_at, w.id.0));
    workspaces.into_iter().map(|w| w.name).collect()
}

/// One raw page: (status, body, next cursor, Link).
async fn get_page(app: &TestApp, token: &str, path_and_query: &str) -> (u16, Value, Option<String>, Option<String>) {
    let response = app.raw().get(format!("{}{path_and_query}", app.url)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (cursor, link) = (header("x-next-cursor"), header("link"));
    (status, response.json().await.unwrap(), cursor, link)
}

/// Follows `Link: <…>; rel="next"` from `first` to the end; the names of
/// every row and the size of each page.
async fn walk(app: &TestApp, token: &str, first: &str) -> (Vec<String>, Vec<usize>) {
    let (mut names, mut sizes) = (Vec::new(), Vec::new());
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let (status, body, cursor, link) = get_page(app, token, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let rows = body.as_array().expect("the answer is a JSON array");
        sizes.push(rows.len());
        names.extend(rows.iter().map(|row| row["name"].as_str().unwrap().to_owned()));
        assert_eq!(cursor.is_some(), link.is_some(), "{path}: X-Next-Cursor and Link come together");
        if let (Some(cursor), Some(link)) = (cursor, link) {
            let url = link.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next\"")).expect("a next link");
            assert!(url.contains(&format!("cursor={cursor}")), "{link}");
            next = Some(url.to_owned());
        }
        assert!(sizes.len() < 100, "the pages end");
    }
    (names, sizes)
}

async fn peers_are_paged_in_their_order_and_filtered_across_pages(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let root = app.admin.create_workspace(&request("root", "lead", None)).await.unwrap();
    let me = app.admin.create_workspace(&request("me", "worker", Some(root.id))).await.unwrap();
    // More siblings than the default page holds (100), created in one batch.
    let siblings = app
        .admin
        .create_workspaces(
            (0..103)
                .map(|i| {
                    let role = if i % 2 == 0 { "peer-even" } else { "peer-odd" };
                    request(&format!("sib-{i:03}"), role, Some(root.id))
                })
                .collect(),
        )
        .await
        .unwrap();
    let mut children = Vec::new();
    for name in ["kid-0", "kid-1"] {
        children.push(app.admin.create_workspace(&request(name, "child", Some(me.id))).await.unwrap());
    }
    // Not peers of `me`: a cousin, another root, a removed sibling.
    app.admin.create_workspace(&request("cousin", "peer-odd", Some(siblings[0].id))).await.unwrap();
    app.admin.create_workspace(&request("other-root", "lead", None)).await.unwrap();
    let gone = app.admin.create_workspace(&request("gone", "peer-odd", Some(root.id))).await.unwrap();
    app.admin.delete_workspace(gone.id).await.unwrap();

    let odd: Vec<WorkspaceResponse> =
        siblings.iter().filter(|s| s.role.as_deref() == Some("peer-odd")).cloned().collect();
    let siblings = in_creation_order(siblings);
    let mut expected = siblings.clone();
    expected.extend(in_creation_order(children));
    expected.push("root".into());
    assert_eq!(expected.len(), 106);

    let token = me.auth_token.clone().unwrap();
    let path = format!("/registry/{}/peers", me.id);
    // The first answer holds `limit` rows and names the next page.
    let (status, body, cursor, link) = get_page(&app, &token, &format!("{path}?limit=40")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 40, "one page of 40, not every peer");
    let cursor = cursor.expect("X-Next-Cursor names the next page");
    let link = link.expect("and Link does");
    assert!(link.starts_with(&format!("<{path}?")) && link.contains("limit=40"), "{link}");
    assert!(link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\""), "{link}");
    // The rows are the old SDK's peer rows.
    let first = &body[0];
    for key in ["id", "name", "role", "tier", "status", "agent_card", "url", "parent_id", "active_tasks"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(first["name"], siblings[0].as_str());
    assert_eq!(first["parent_id"], root.id.to_string());

    // Following the cursors yields every peer exactly once, in order:
    // siblings, then children, then the parent.
    let (names, sizes) = walk(&app, &token, &format!("{path}?limit=40")).await;
    assert_eq!(sizes, [40, 40, 26]);
    assert_eq!(names, expected);
    // A page boundary inside the children and right before the parent.
    let (names, sizes) = walk(&app, &token, &format!("{path}?limit=104")).await;
    assert_eq!((names.clone(), sizes), (expected.clone(), vec![104, 2]));
    let (names, sizes) = walk(&app, &token, &format!("{path}?limit=105")).await;
    assert_eq!((names, sizes), (expected.clone(), vec![105, 1]));
    let (names, sizes) = walk(&app, &token, &format!("{path}?limit=106")).await;
    assert_eq!((names, sizes), (expected.clone(), vec![106]), "no next page when everything fit");

    // Without `limit`: the default page of 100. The client follows pages.
    let (_, body, cursor, _) = get_page(&app, &token, &path).await;
    assert_eq!((body.as_array().unwrap().len(), cursor.is_some()), (100, true));
    let runtime = app.client(Some(&token));
    let all: Vec<String> = runtime.peers(me.id, None).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(all, expected);

    // `q` matches name or role, ASCII case ignored, across pages.
    let (names, sizes) = walk(&app, &token, &format!("{path}?q=ODD&limit=10")).await;
    assert_eq!(names, in_creation_order(odd), "every odd sibling, no cousin, no removed one");
    assert_eq!(sizes, [10, 10, 10, 10, 10, 1]);
    let (names, _) = walk(&app, &token, &format!("{path}?q=Kid-&limit=1")).await;
    assert_eq!(names, ["kid-0", "kid-1"]);
    let (names, _) = walk(&app, &token, &format!("{path}?q=LEAD&limit=1")).await;
    assert_eq!(names, ["root"], "the parent is matched by its role");
    let filtered: Vec<String> =
        runtime.peers(me.id, Some("child")).await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(filtered, ["kid-0", "kid-1"]);
    let (names, _) = walk(&app, &token, &format!("{path}?q=")).await;
    assert_eq!(names, expected, "an empty q filters nothing");

    // A bad cursor or limit is a 400 naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("cursor=nonsense", "cursor"),
        ("cursor=1767225600000000000.0a3e0f3c-7c1d-4a4e-9d3c-2f1e5e7f8a9b", "cursor"),
        ("cursor=x.1.0a3e0f3c-7c1d-4a4e-9d3c-2f1e5e7f8a9b", "cursor"),
    ] {
        let (status, body, _, _) = get_page(&app, &token, &format!("{path}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!((body["code"].as_str(), body["field"].as_str()), (Some("invalid_query"), Some(field)), "{query}");
    }
    // The document says all of it: the parameters, their bounds, the headers.
    let document: Value =
        app.raw().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let operation = &document["paths"]["/registry/{id}/peers"]["get"];
    let parameter = |name: &str| {
        let parameters = operation["parameters"].as_array().unwrap();
        parameters.iter().find(|p| p["name"] == name).cloned().unwrap_or_else(|| panic!("{name} is documented"))
    };
    assert_eq!(
        (parameter("limit")["schema"]["minimum"].as_i64(), parameter("limit")["schema"]["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
    let pattern = parameter("cursor")["schema"]["pattern"].as_str().unwrap().to_owned();
    assert!(pattern.starts_with("^[scp]\\."), "{pattern}");
    assert_eq!(parameter("q")["in"], "query");
    for header in ["x-next-cursor", "link"] {
        assert!(operation["responses"]["200"]["headers"][header].is_object(), "{header} is documented");
    }
    // Only the workspace's own token reads its peers.
    let (_, _, other_token) = app.create_registered("stranger").await;
    let (status, _, _, _) = get_page(&app, &other_token, &format!("{path}?limit=1")).await;
    assert_eq!(status, 401);
}

async fn a_roots_peers_are_the_other_roots_of_its_org_then_its_children(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first = app.admin.create_workspace(&request("first-root", "lead", None)).await.unwrap();
    let mut roots = Vec::new();
    for i in 0..5 {
        roots.push(app.admin.create_workspace(&request(&format!("root-{i}"), "lead", None)).await.unwrap());
    }
    let kid = app.admin.create_workspace(&request("kid", "child", Some(first.id))).await.unwrap();
    app.admin.create_workspace(&request("grandkid", "child", Some(kid.id))).await.unwrap();
    // Roots of another org are no one's siblings here.
    let other = app.client(Some(&crate::dashboard::other_org_token(&app).await));
    other.create_workspace(&request("foreign-root", "lead", None)).await.unwrap();

    let token = first.auth_token.clone().unwrap();
    let (names, sizes) = walk(&app, &token, &format!("/registry/{}/peers?limit=2", first.id)).await;
    let mut expected = in_creation_order(roots);
    expected.push("kid".into());
    assert_eq!(names, expected, "the other roots, then the children; no parent, no grandchild");
    assert_eq!(sizes, [2, 2, 2]);
}

async fn discover_reaches_relatives_only_and_stays_in_the_org(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let create = |name: &'static str, parent: Option<WorkspaceId>| {
        let admin = app.admin.clone();
        async move { admin.create_workspace(&request(name, "r", parent)).await.unwrap() }
    };
    let root = create("root", None).await;
    let other_root = create("other-root", None).await;
    let me = create("me", Some(root.id)).await;
    let sibling = create("sibling", Some(root.id)).await;
    let mut chain = vec![me.clone()];
    for name in ["d1", "d2", "d3", "d4", "d5", "d6"] {
        let parent = chain.last().map(|w| w.id);
        chain.push(create(name, parent).await);
    }
    let deepest = chain.last().cloned().unwrap();
    let cousin = create("cousin", Some(sibling.id)).await;
    let gone = create("gone", Some(root.id)).await;
    let foreign = app.client(Some(&crate::dashboard::other_org_token(&app).await));
    let foreign_root = foreign.create_workspace(&request("foreign-root", "r", None)).await.unwrap();

    // Every one of them online, with its own address.
    let all = [&root, &other_root, &me, &sibling, &cousin, &gone, &foreign_root];
    for (port, workspace) in (7001..).zip(all.into_iter().chain(chain.iter().skip(1))) {
        let runtime = app.client(workspace.auth_token.as_deref());
        let url = format!("http://localhost:{port}");
        runtime.register(&hearth_api::RegisterRequest { id: workspace.id, url, agent_card: None }).await.unwrap();
        runtime.heartbeat(&crate::harness::heartbeat(workspace.id)).await.unwrap();
    }
    app.admin.delete_workspace(gone.id).await.unwrap();

    let reach = |caller: &WorkspaceResponse, target: WorkspaceId| {
        let client = app.client(caller.auth_token.as_deref());
        let caller = caller.id;
        async move {
            match client.discover(caller, target).await {
                Ok(found) => {
                    assert_eq!(found.id, target);
                    200
                }
                Err(error) => {
                    let status = error.status().unwrap();
                    if status == 404 {
                        assert_eq!(error.api_message(), Some("workspace not found"), "one answer for both");
                    }
                    status
                }
            }
        }
    };
    for (caller, target, expected, why) in [
        (&me, me.id, 200, "itself"),
        (&me, sibling.id, 200, "a sibling"),
        (&root, other_root.id, 200, "both roots"),
        (&me, root.id, 200, "its parent"),
        (&root, me.id, 200, "its child"),
        (&me, deepest.id, 200, "a descendant six levels down"),
        (&deepest, root.id, 200, "an ancestor seven levels up"),
        (&deepest, me.id, 200, "an ancestor six levels up"),
        (&me, cousin.id, 404, "a cousin"),
        (&cousin, me.id, 404, "a cousin"),
        (&chain[1], sibling.id, 404, "an uncle"),
        (&me, other_root.id, 404, "its parent's sibling"),
        (&me, gone.id, 404, "a removed sibling"),
        (&root, foreign_root.id, 404, "another org's root"),
        (&foreign_root, root.id, 404, "another org's root"),
        (&me, WorkspaceId::new_random(), 404, "unknown"),
    ] {
        assert_eq!(reach(caller, target).await, expected, "{} → {why}", caller.name);
    }
    // A relative that is not online or degraded: 503 with its status.
    app.admin.pause(sibling.id).await.unwrap();
    let client = app.client(me.auth_token.as_deref());
    let error = client.discover(me.id, sibling.id).await.unwrap_err();
    assert_eq!(error.status(), Some(503));
    let response = app
        .raw()
        .get(format!("{}/registry/discover/{}", app.url, sibling.id))
        .bearer_auth(me.auth_token.as_deref().unwrap())
        .header("X-Workspace-ID", me.id.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["status"].as_str()), (Some("workspace not available"), Some("paused")));
}
