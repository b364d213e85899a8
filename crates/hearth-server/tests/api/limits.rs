//! Caps that keep one client from holding the server: concurrent large
//! uploads, waits per token, long polls per server, live org tokens per org;
//! a declared body over the limit is refused at once; every answer says
//! `nosniff`; a client-decided 5xx is not logged as an error.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Engine, TestApp};

crate::on_both_engines!(
    concurrent_large_uploads_are_capped_and_small_ones_pass,
    a_token_holds_a_bounded_number_of_waits,
    the_server_holds_a_bounded_number_of_streams_and_waits,
    an_org_holds_a_bounded_number_of_live_org_tokens,
    a_declared_length_over_the_limit_is_refused_before_the_body,
    answers_say_nosniff,
    a_discover_of_a_target_that_is_not_online_is_not_logged_as_an_error,
);

/// A template import body of exactly `size` bytes (a text file pads it).
fn template_body(name: &str, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"name": "{name}", "files": {{"config.yaml": "name: {name}\n", "data.txt": ""#);
    let tail = "\"}}";
    let pad = size - head.len() - tail.len();
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend(tail.as_bytes());
    body
}

/// Sends a request head and the first `sent` bytes of `body`, holding the rest.
async fn start_upload(app: &TestApp, path: &str, body: &[u8], sent: usize) -> TcpStream {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.admin_token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..sent]).await.unwrap();
    stream
}

/// The status and the whole answer read from a raw connection.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// With the cap at N, N+1 large uploads whose bodies are still arriving
/// get exactly one 429 (with `Retry-After`, before its body is sent); a
/// small upload meanwhile passes; the N complete once their bodies do.
async fn concurrent_large_uploads_are_capped_and_small_ones_pass(engine: Engine) {
    const CAP: usize = 2;
    let app = TestApp::spawn_with(engine, |s| s.max_concurrent_uploads = CAP).await;
    let size = 2 << 20; // over the 1 MiB threshold, under the 32 MiB limit
    let bodies: Vec<Vec<u8>> = (0..=CAP).map(|i| template_body(&format!("big-{i}"), size)).collect();
    let mut streams = Vec::new();
    for body in &bodies {
        streams.push(start_upload(&app, "/templates/import", body, 64 << 10).await);
    }
    // Exactly one answers before its body is complete: the 429.
    let mut refused = None;
    for _ in 0..100 {
        for (i, stream) in streams.iter_mut().enumerate() {
            let mut peek = [0u8; 1];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut peek)).await {
                if n > 0 {
                    refused = Some(i);
                }
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let refused = refused.expect("one upload over the cap is answered before its body arrives");
    let (status, answer) = read_answer(&mut streams[refused]).await;
    assert_eq!(status, 429, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
    assert!(answer.contains("too_many_requests"), "{answer}");
    // A small upload does not wait on the large ones.
    let small = app.raw().post(format!("{}/templates/import", app.url)).bearer_auth(&app.admin_token);
    let small = small.body(template_body("small", 4 << 10)).send().await.unwrap();
    assert_eq!(small.status(), 201, "a small upload passes while the large ones hold every place");
    // The others finish their bodies and are stored.
    let mut statuses = vec![429];
    for (i, mut stream) in streams.into_iter().enumerate() {
        if i == refused {
            continue;
        }
        stream.write_all(&bodies[i][64 << 10..]).await.unwrap();
        let (status, answer) = read_answer(&mut stream).await;
        assert_eq!(status, 201, "{}", answer.lines().last().unwrap_or_default());
        statuses.push(status);
    }
    assert_eq!(statuses.len(), CAP + 1);
    let stored = app.admin.list_templates().await.unwrap();
    assert_eq!(stored.len(), CAP + 1, "the small one and the N large ones");
    let big = stored.iter().find(|t| t.name != "small" && t.name != format!("big-{refused}")).unwrap();
    let data = big.files.iter().find(|f| f.path == "data.txt").unwrap();
    assert!(data.size > (1 << 20), "the whole large file is stored: {}", data.size);
    // Every place is given back.
    assert_eq!(app.state.uploads.available(), CAP);
}

async fn open_wait(app: &TestApp, token: &str, id: hearth_core::WorkspaceId) -> reqwest::Response {
    let url = format!("{}/workspaces/{id}/wait?for=status%3Dpaused&timeout=20", app.url);
    app.raw().get(url).bearer_auth(token).send().await.unwrap()
}

/// Waits are long polls like streams: a token holds a bounded number.
async fn a_token_holds_a_bounded_number_of_waits(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_waits_per_token = 2).await;
    let org = app.admin.create_org_token(&hearth_api::CreateTokenRequest { name: None, role: None }).await.unwrap();
    let org_token = org.auth_token.unwrap();
    let (id, _runtime, _) = app.create_registered("w").await;
    let waits: Vec<_> = (0..2)
        .map(|_| {
            let (app_url, token) = (app.url.clone(), org_token.clone());
            tokio::spawn(async move {
                let url = format!("{app_url}/workspaces/{id}/wait?for=status%3Dpaused&timeout=20");
                reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let held = crate::harness::eventually(Duration::from_secs(10), || async { app.state.long_polls.open() == 2 }).await;
    assert!(held, "two waits are open");
    let refused = open_wait(&app, &org_token, id).await;
    assert_eq!(refused.status(), 429, "a third wait of the same token");
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests", "{body}");
    // Another token has its own allowance; an answered wait frees its place.
    let admin = app.raw().get(format!("{}/workspaces/{id}/wait?for=status%3Donline&timeout=5", app.url));
    assert_eq!(admin.bearer_auth(&app.admin_token).send().await.unwrap().status(), 200);
    app.admin.pause(id).await.unwrap();
    for wait in waits {
        assert_eq!(wait.await.unwrap(), 200, "the held waits are answered");
    }
    let freed = open_wait(&app, &org_token, id).await;
    assert_eq!(freed.status(), 200, "the places are given back");
}

/// Streams and waits of every token together are capped: 503 (the server
/// is full), not 429.
async fn the_server_holds_a_bounded_number_of_streams_and_waits(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_long_polls = 3).await;
    let (id, _runtime, token) = app.create_registered("w").await;
    let stream = |bearer: &str, path: String| app.raw().get(format!("{}{path}", app.url)).bearer_auth(bearer).send();
    let first = stream(&app.admin_token, "/events/stream".into()).await.unwrap();
    let second = stream(&token, format!("/workspaces/{id}/events/stream")).await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let (url, admin) = (app.url.clone(), app.admin_token.clone());
    let wait = tokio::spawn(async move {
        let url = format!("{url}/workspaces/{id}/wait?for=status%3Dpaused&timeout=20");
        reqwest::Client::new().get(url).bearer_auth(admin).send().await.unwrap().status().as_u16()
    });
    let full = crate::harness::eventually(Duration::from_secs(10), || async { app.state.long_polls.open() == 3 }).await;
    assert!(full, "two streams and a wait are open");
    let org = app.admin.create_org_token(&hearth_api::CreateTokenRequest { name: None, role: None }).await.unwrap();
    let fresh = org.auth_token.unwrap();
    for refused in [stream(&fresh, "/events/stream".into()).await.unwrap(), open_wait(&app, &fresh, id).await] {
        assert_eq!(refused.status(), 503, "a token with its own allowance left, on a full server");
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "server_busy", "{body}");
    }
    drop(first);
    let freed = crate::harness::eventually(Duration::from_secs(10), || async {
        stream(&fresh, "/events/stream".into()).await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(freed, "a closed stream gives its place back");
    app.admin.pause(id).await.unwrap();
    assert_eq!(wait.await.unwrap(), 200);
    drop(second);
}

/// Revoked tokens do not count; the refusal names the cap.
async fn an_org_holds_a_bounded_number_of_live_org_tokens(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_org_tokens = 3).await;
    let request = hearth_api::CreateTokenRequest { name: None, role: None };
    let first = app.admin.create_org_token(&request).await.unwrap();
    // An org token mints org tokens too: the cap is the org's, whoever asks.
    let org = app.client(first.auth_token.as_deref());
    org.create_org_token(&request).await.unwrap();
    org.create_org_token(&request).await.unwrap();
    let refused = app.raw().post(format!("{}/org/tokens", app.url)).bearer_auth(first.auth_token.as_deref().unwrap());
    let refused = refused.send().await.unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "limit_reached", "{body}");
    assert!(body["error"].as_str().unwrap().contains("3 live org tokens"), "{body}");
    assert_eq!(app.admin.list_org_tokens().await.unwrap().len(), 3, "nothing written");
    // Workspace tokens are not org tokens.
    app.create_registered("w").await;
    app.admin.revoke_org_token(first.id).await.unwrap();
    app.admin.create_org_token(&request).await.unwrap();
}

/// A head declaring a huge body is answered 413 before any of it is sent;
/// the upload routes judge by their own, larger limit.
async fn a_declared_length_over_the_limit_is_refused_before_the_body(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.max_body_bytes = 64 << 10;
        s.max_upload_bytes = 4 << 20;
    })
    .await;
    for (path, length) in
        [("/workspaces", 1u64 << 30), ("/templates/import", 5 << 20), ("/plugins", 5 << 20), ("/workspaces", 65 << 10)]
    {
        let addr = app.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {length}\r\n\r\n",
            app.admin_token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // No body is sent: the answer must come without it.
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
            .await
            .expect("an answer before any body is sent")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{path} declaring {length}: {text}");
        assert!(text.contains("body_too_large"), "{text}");
    }
    // Between the two limits, an upload is not refused for its size.
    let body = template_body("mid", 1 << 20);
    let response = app.raw().post(format!("{}/templates/import", app.url)).bearer_auth(&app.admin_token);
    assert_eq!(response.body(body).send().await.unwrap().status(), 201);
}

async fn answers_say_nosniff(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let files = hearth_api::FileContent::files([("plugin.yaml", "name: p\nversion: 1.0.0\n")]);
    app.admin.push_plugin_json(&hearth_api::UploadPluginRequest { name: None, files }).await.unwrap();
    let (id, _runtime, _token) = app.create_registered("w").await;
    let get = |path: String, bearer: String| app.raw().get(format!("{}{path}", app.url)).bearer_auth(bearer).send();
    let json = get(format!("/workspaces/{id}"), app.admin_token.clone()).await.unwrap();
    let error = get("/workspaces/not-an-id".into(), app.admin_token.clone()).await.unwrap();
    let missing = get("/no/such/route".into(), app.admin_token.clone()).await.unwrap();
    // An operator reads any plugin of its org (a runtime only those it wants).
    let tarball = get(format!("/workspaces/{id}/plugins/p/download"), app.admin_token.clone()).await.unwrap();
    assert_eq!(tarball.headers()["content-type"], "application/gzip");
    for (what, response) in [("json", json), ("error", error), ("no route", missing), ("tarball", tarball)] {
        assert_eq!(
            response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}: {}",
            response.status()
        );
    }
}

/// Captured log lines (a global subscriber: nextest runs each test in a
/// process of its own; under `cargo test` others' lines are told apart by
/// the route).
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
    .clone()
}

struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Any workspace token can ask to discover a sibling that is not online:
/// its 503 is documented and the client's doing, so it is no ERROR line.
async fn a_discover_of_a_target_that_is_not_online_is_not_logged_as_an_error(engine: Engine) {
    let logs = captured_logs();
    let app = TestApp::spawn(engine).await;
    let create = |name: &str, parent| hearth_api::CreateWorkspaceRequest {
        name: name.into(),
        parent_id: parent,
        issue_token: Some(true),
        ..Default::default()
    };
    let root = app.admin.create_workspace(&create("root", None)).await.unwrap();
    let me = app.admin.create_workspace(&create("me", Some(root.id))).await.unwrap();
    let sibling = app.admin.create_workspace(&create("sibling", Some(root.id))).await.unwrap();
    let err = app.client(me.auth_token.as_deref()).discover(me.id, sibling.id).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "the sibling is still provisioning");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let discover: Vec<&str> = text.lines().filter(|line| line.contains("/registry/discover/")).collect();
    assert!(discover.iter().any(|line| line.contains("INFO") && line.contains("503")), "logged below error: {text}");
    let errors: Vec<&&str> = discover.iter().filter(|line| line.contains("ERROR") || line.contains("WARN")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
