//! Templates, plugins, assets and the level-triggered reconcile, over HTTP.

use std::collections::BTreeMap;

use base64::Engine as _;
use hearth_api::{FileContent, HeartbeatRequest, ImportTemplateRequest, InstalledPlugin, UploadPluginRequest};
use hearth_archive::{BundlePath, Limits};
use serde_json::{json, Value};

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    an_operator_can_add_a_plugin_to_one_workspace,
    a_template_with_a_plugin_is_delivered_and_converges,
    template_and_plugin_bad_input_is_refused_and_nothing_is_stored,
    template_lists_are_paged_by_name_with_their_files,
    the_workspace_shows_the_assets_digest_its_runtime_reported,
    plugin_lists_are_paged_by_name,
);

fn text(s: &str) -> FileContent {
    FileContent::Text(s.into())
}

pub const CONFIG: &str =
    "name: seo-agent\nruntime: claude-code\nmodel: sonnet\nplugins:\n  - seo-all\ntemperature: 0.2\n";

fn plugin_files() -> BTreeMap<String, FileContent> {
    [
        ("plugin.yaml".to_owned(), text("name: seo-all\nversion: 1.2.0\ndescription: SEO tools\n")),
        ("skills/audit.md".to_owned(), text("# Audit\n")),
    ]
    .into()
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response =
        app.raw().post(format!("{}{path}", app.url)).bearer_auth(&app.admin_token).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn a_template_with_a_plugin_is_delivered_and_converges(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let model: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let template = ImportTemplateRequest {
        name: "seo".into(),
        files: [
            ("config.yaml".to_owned(), text(CONFIG)),
            ("prompts/system.md".to_owned(), text("You are an SEO agent.\n")),
            (
                "model/weights.bin".to_owned(),
                FileContent::Binary { base64: base64::engine::general_purpose::STANDARD.encode(&model) },
            ),
        ]
        .into(),
    };
    // The plugin must be pushed first.
    let (status, body) = post_json(&app, "/templates/import", &serde_json::to_value(&template).unwrap()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("seo-all"));
    let (status, plugin) = post_json(
        &app,
        "/plugins",
        &serde_json::to_value(UploadPluginRequest { name: None, files: plugin_files() }).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{plugin}");
    let plugin_sha = plugin["sha256"].as_str().unwrap().to_owned();
    assert_eq!(plugin["version"], "1.2.0");
    let (status, imported) = post_json(&app, "/templates/import", &serde_json::to_value(&template).unwrap()).await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["status"], "imported");
    let digest = imported["assets_digest"].as_str().unwrap().to_owned();

    let ws = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "seo-agent".into(),
            template: Some("seo".into()),
            issue_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ws.desired_plugins.len(), 1);
    let token = ws.auth_token.clone().unwrap();
    let runtime = app.client(Some(&token));
    let first = runtime.heartbeat(&heartbeat(ws.id)).await.unwrap();
    assert_eq!(first.desired.assets_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(first.desired.plugins[0].sha256.as_deref(), Some(plugin_sha.as_str()));
    let got = app.admin.get_workspace(ws.id).await.unwrap();
    let cond = |w: &hearth_api::WorkspaceResponse, kind: &str| {
        w.conditions.iter().find(|c| c.kind == kind).map(|c| (c.status.clone(), c.reason.clone())).unwrap()
    };
    assert_eq!(cond(&got, "AssetsDelivered").0, "False");
    assert_eq!(cond(&got, "PluginsInstalled"), ("False".into(), "Pending".into()));

    // Assets: manifest, bytes with ETag, conditional GET, traversal refused.
    let get = |path: String| app.raw().get(format!("{}{path}", app.url)).bearer_auth(&token).send();
    let manifest: Value = get(format!("/workspaces/{}/assets", ws.id)).await.unwrap().json().await.unwrap();
    assert_eq!(manifest["digest"], digest.as_str());
    assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
    let response = get(format!("/workspaces/{}/assets/model/weights.bin", ws.id)).await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", hearth_core::digest::sha256_hex(&model)));
    assert_eq!(response.bytes().await.unwrap().to_vec(), model, "binary assets round-trip exactly");
    let config = get(format!("/workspaces/{}/assets/config.yaml", ws.id)).await.unwrap().text().await.unwrap();
    assert_eq!(config, CONFIG, "config.yaml byte-identical");
    let cached = app
        .raw()
        .get(format!("{}/workspaces/{}/assets/model/weights.bin", app.url, ws.id))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    // Sent over a raw socket: HTTP clients normalize `..` away before sending.
    for evil in ["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "prompts/..%2f..%2fx", "a%5cb", "/etc/passwd"] {
        let status = raw_get_status(&app, &format!("/workspaces/{}/assets/{evil}", ws.id), &token).await;
        assert_eq!(status, 400, "{evil}");
    }
    assert_eq!(get(format!("/workspaces/{}/assets/nope.txt", ws.id)).await.unwrap().status(), 404);

    // Plugin download: SDK-compatible tarball whose plugin.yaml carries the hash.
    let response = get(format!("/workspaces/{}/plugins/seo-all/download?source=local://seo-all", ws.id)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    assert_eq!(response.headers()["x-plugin-sha256"], plugin_sha.as_str());
    assert_eq!(response.headers()["x-plugin-source"], "local://seo-all");
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"seo-all.tar.gz\"");
    let files = hearth_archive::read_files(&response.bytes().await.unwrap(), &Limits::default()).unwrap();
    let manifest = files.iter().find(|(p, _)| p.as_str() == "plugin.yaml").unwrap();
    let manifest_text = std::str::from_utf8(&manifest.1).unwrap();
    assert!(manifest_text.contains(&format!("sha256: {plugin_sha}")), "{manifest_text}");
    let hash_input: Vec<(&str, &[u8])> =
        files.iter().map(|(p, b): &(BundlePath, Vec<u8>)| (p.as_str(), b.as_slice())).collect();
    assert_eq!(hearth_core::digest::plugin_content_hash(&hash_input), plugin_sha, "the SDK's verification passes");
    assert_eq!(get(format!("/workspaces/{}/plugins/Bad%20Name/download", ws.id)).await.unwrap().status(), 400);
    assert_eq!(get(format!("/workspaces/{}/plugins/missing/download", ws.id)).await.unwrap().status(), 404);

    // Install report from the SDK path: a wrong hash is 422, the right one records it.
    let report = |sha: &str| json!({"source": "local://seo-all", "sha256": sha});
    let url = format!("{}/workspaces/{}/plugins", app.url, ws.id);
    let wrong = app.raw().post(&url).bearer_auth(&token).json(&report("00ff")).send().await.unwrap();
    assert_eq!(wrong.status(), 422);
    let right = app.raw().post(&url).bearer_auth(&token).json(&report(&plugin_sha)).send().await.unwrap();
    assert_eq!(right.status(), 200);
    let right: Value = right.json().await.unwrap();
    assert_eq!(right, json!({"status": "installed", "plugin": "seo-all", "source": "local://seo-all"}));
    let plugins: Value = get(format!("/workspaces/{}/plugins", ws.id)).await.unwrap().json().await.unwrap();
    assert_eq!(plugins["installed"][0]["name"], "seo-all");
    assert_eq!(plugins["desired"][0]["sha256"], plugin_sha.as_str());

    // Heartbeat reporting what it holds: both conditions true, events recorded.
    let holding = HeartbeatRequest {
        assets_digest: Some(digest.clone()),
        installed_plugins: Some(vec![InstalledPlugin { name: "seo-all".into(), sha256: Some(plugin_sha.clone()) }]),
        ..heartbeat(ws.id)
    };
    runtime.heartbeat(&holding).await.unwrap();
    let got = app.admin.get_workspace(ws.id).await.unwrap();
    assert_eq!(cond(&got, "AssetsDelivered"), ("True".into(), "Delivered".into()));
    assert_eq!(cond(&got, "PluginsInstalled"), ("True".into(), "AllInstalled".into()));
    let names: Vec<String> = app.events_of(ws.id).await.into_iter().map(|e| e.event).collect();
    for name in ["ASSETS_DELIVERED", "PLUGIN_INSTALLED", "CONDITION_CHANGED"] {
        assert!(names.contains(&name.to_owned()), "{name} in {names:?}");
    }
    let metrics = app.raw().get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hearth_reconcile_outcomes_total"), "reconcile outcomes are counted");
    assert!(metrics.contains("event=\"PLUGIN_INSTALLED\""), "events are counted by name");
    // Lost on disk: the next heartbeat says so, with no status change.
    let lost = HeartbeatRequest { installed_plugins: Some(vec![]), ..holding.clone() };
    let response = runtime.heartbeat(&lost).await.unwrap();
    assert_eq!(response.workspace_status, hearth_core::WorkspaceStatus::Online);
    assert_eq!(cond(&app.admin.get_workspace(ws.id).await.unwrap(), "PluginsInstalled").1, "Pending");

    let templates = app.raw().get(format!("{}/templates", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    let templates: Value = templates.json().await.unwrap();
    assert_eq!(templates[0]["plugins"], json!(["seo-all"]));
    let by_name =
        app.raw().get(format!("{}/templates/seo", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(by_name.status(), 200);
    let plugins = app.raw().get(format!("{}/plugins", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    let plugins: Value = plugins.json().await.unwrap();
    assert_eq!(
        plugins,
        json!([{"name": "seo-all", "version": "1.2.0", "description": "SEO tools", "sha256": plugin_sha}])
    );
}

async fn template_and_plugin_bad_input_is_refused_and_nothing_is_stored(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_upload_bytes = 64 * 1024).await;
    let template = |files: Value| json!({"name": "t", "files": files});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/templates/import", template(json!({"config.yaml": "name: [unclosed\n"})), 422, "line"),
        ("/templates/import", template(json!({"prompts/a.md": "hi"})), 422, "config.yaml"),
        ("/templates/import", template(json!({"config.yaml": "runtime: x\n"})), 422, "name"),
        ("/templates/import", template(json!({"config.yaml": "name: a\nplugins: [ghost]\n"})), 422, "ghost"),
        ("/templates/import", template(json!({"config.yaml": "name: a\n", "../escape": "x"})), 400, "escape"),
        ("/templates/import", template(json!({"config.yaml": "name: a\n", "/etc/passwd": "x"})), 400, "passwd"),
        ("/templates/import", template(json!({"config.yaml": "name: a\n", "bin": {"base64": "!!"}})), 400, "base64"),
        ("/templates/import", template(json!({})), 400, "files"),
        ("/templates/import", json!({"name": "", "files": {"config.yaml": "name: a\n"}}), 400, "name"),
        ("/templates/import", template(json!({"config.yaml": "x".repeat(100 * 1024)})), 413, "too large"),
        ("/plugins", json!({"files": {"README.md": "x"}}), 422, "plugin.yaml"),
        ("/plugins", json!({"files": {"plugin.yaml": "name: Bad Name\nversion: 1\n"}}), 422, "name"),
        ("/plugins", json!({"files": {"plugin.yaml": "name: ok\n"}}), 422, "version"),
        ("/plugins", json!({"name": "other", "files": {"plugin.yaml": "name: ok\nversion: 1\n"}}), 422, "other"),
        ("/plugins", json!({"files": {"plugin.yaml": "name: ok\nversion: 1\n", "a/../../b": "x"}}), 400, "a/../../b"),
    ];
    for (path, body, status, needle) in cases {
        let (got, json) = post_json(&app, path, &body).await;
        let shown: String = body.to_string().chars().take(80).collect();
        assert_eq!(got, status, "{path} {shown} -> {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{path} {shown}: {error:?} should mention {needle:?}");
    }
    // An evil tarball (tar-slip) is refused too.
    let header = tar_header("../../evil.sh", 4);
    let mut raw = Vec::new();
    {
        let mut builder = tar_builder(&mut raw);
        builder.append(&header, &b"boom"[..]).unwrap();
        builder.finish().unwrap();
    }
    let gz = gzip(&raw);
    let response = app
        .raw()
        .post(format!("{}/plugins", app.url))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains(".."), "{body}");
    let listed = app.raw().get(format!("{}/templates", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([]), "no template stored");
    let listed = app.raw().get(format!("{}/plugins", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(listed.json::<Value>().await.unwrap(), json!([]), "no plugin stored");
    let err = app
        .admin
        .create_workspace(&hearth_api::CreateWorkspaceRequest {
            name: "w".into(),
            template: Some("nope".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
}

fn tar_header(path: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    // Write the name bytes directly: the tar crate's set_path refuses "..".
    let name = &mut header.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

fn tar_builder(out: &mut Vec<u8>) -> tar::Builder<&mut Vec<u8>> {
    tar::Builder::new(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// GET over a plain TCP socket, so the path reaches the server unnormalized.
async fn raw_get_status(app: &TestApp, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn an_operator_can_add_a_plugin_to_one_workspace(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (status, plugin) = post_json(
        &app,
        "/plugins",
        &serde_json::to_value(UploadPluginRequest { name: None, files: plugin_files() }).unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let (id, runtime, _) = app.create_registered("no-template").await;
    let put = |name: &str| {
        app.raw().put(format!("{}/workspaces/{id}/plugins/{name}", app.url)).bearer_auth(&app.admin_token).send()
    };
    assert_eq!(put("ghost").await.unwrap().status(), 422, "unknown plugins are refused");
    assert_eq!(put("Bad Name").await.unwrap().status(), 400);
    let added: Value = put("seo-all").await.unwrap().json().await.unwrap();
    assert_eq!(added["desired"][0]["name"], "seo-all");
    assert_eq!(put("seo-all").await.unwrap().status(), 200, "idempotent");
    // The runtime is told on its next heartbeat, and the condition waits for it.
    let hb = runtime.heartbeat(&heartbeat(id)).await.unwrap();
    assert_eq!(hb.desired.plugins.len(), 1);
    assert_eq!(hb.desired.plugins[0].sha256.as_deref(), plugin["sha256"].as_str());
    let ws = app.admin.get_workspace(id).await.unwrap();
    let cond = ws.conditions.iter().find(|c| c.kind == "PluginsInstalled").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "Pending"));
    // A runtime token cannot change desired state.
    let (_, _, token) = app.create_registered("other").await;
    let refused =
        app.raw().put(format!("{}/workspaces/{id}/plugins/seo-all", app.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let removed = app
        .raw()
        .delete(format!("{}/workspaces/{id}/plugins/seo-all", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert!(runtime.heartbeat(&heartbeat(id)).await.unwrap().desired.plugins.is_empty());
}

async fn template_lists_are_paged_by_name_with_their_files(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for name in ["charlie", "alpha", "bravo"] {
        let template = ImportTemplateRequest {
            name: name.into(),
            files: [
                ("config.yaml".to_owned(), text(&format!("name: {name}\n"))),
                ("prompts/system.md".to_owned(), text(name)),
            ]
            .into(),
        };
        app.admin.import_template(&template).await.unwrap();
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/templates?limit=1", app.url);
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = app.raw().get(url).bearer_auth(&app.admin_token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let next = response.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<hearth_api::TemplateResponse> = response.json().await.unwrap();
        assert_eq!(page.len(), 1);
        let paths: Vec<&str> = page[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["config.yaml", "prompts/system.md"], "each template with its own files");
        names.push(page[0].name.clone());
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["alpha", "bravo", "charlie"], "by name, each once");
    assert_eq!(app.admin.list_templates().await.unwrap().len(), 3, "the client follows the pages");
    let response =
        app.raw().get(format!("{}/templates?cursor=zzz", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

/// The digest a runtime reported is a field of the workspace, so no program
/// reads it out of the `AssetsDelivered` message.
async fn the_workspace_shows_the_assets_digest_its_runtime_reported(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("w").await;
    let read = |path: String| {
        let request = app.raw().get(format!("{}{path}", app.url)).bearer_auth(&app.admin_token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(read(format!("/workspaces/{id}")).await["reported_assets_digest"], Value::Null, "nothing reported");
    let digest = format!("sha256:{}", "ab".repeat(32));
    runtime.heartbeat(&HeartbeatRequest { assets_digest: Some(digest.clone()), ..heartbeat(id) }).await.unwrap();
    assert_eq!(read(format!("/workspaces/{id}")).await["reported_assets_digest"], digest.as_str());
    assert_eq!(read("/workspaces".into()).await[0]["reported_assets_digest"], digest.as_str(), "lists show it too");
    let typed = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(typed.reported_assets_digest.as_deref(), Some(digest.as_str()));
    // No template: delivered trivially, whatever the runtime holds.
    let assets = typed.condition(hearth_core::reconcile::ConditionType::AssetsDelivered).unwrap();
    assert_eq!(assets.typed_reason(), Some(hearth_core::reconcile::ConditionReason::NoTemplate));
}

/// `GET /plugins` is keyset-paged like `GET /templates`: the answer stays a
/// JSON array, the next page is in `X-Next-Cursor` and `Link`.
async fn plugin_lists_are_paged_by_name(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for name in ["charlie", "alpha", "bravo"] {
        let files = [
            ("plugin.yaml".to_owned(), text(&format!("name: {name}\nversion: 1.0.0\n"))),
            ("skills/a.md".to_owned(), text(name)),
        ]
        .into();
        app.admin.push_plugin_json(&UploadPluginRequest { name: None, files }).await.unwrap();
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/plugins?limit=1", app.url);
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = app.raw().get(url).bearer_auth(&app.admin_token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (next, link) = (header("x-next-cursor"), header("link"));
        assert_eq!(next.is_some(), link.is_some(), "X-Next-Cursor and Link come together");
        if let (Some(next), Some(link)) = (&next, &link) {
            assert!(link.contains(&format!("/plugins?limit=1&cursor={next}")), "{link}");
        }
        let page: Vec<hearth_api::PluginResponse> = response.json().await.unwrap();
        assert_eq!(page.len(), 1, "{page:?}");
        names.push(page[0].name.clone());
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["alpha", "bravo", "charlie"], "by name, each once");
    let listed: Vec<String> = app.admin.list_plugins().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(listed, ["alpha", "bravo", "charlie"], "the client reads every page");
    for bad in ["cursor=zzz", "limit=0"] {
        let response =
            app.raw().get(format!("{}/plugins?{bad}", app.url)).bearer_auth(&app.admin_token).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
}
