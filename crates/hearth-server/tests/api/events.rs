//! The event log: seq strictly increasing and gap-free across restarts; the
//! SSE stream resumed with Last-Event-ID misses nothing and repeats nothing.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    seq_is_gap_free_across_a_restart,
    sse_resumes_from_last_event_id_without_gap_or_repeat,
    workspace_stream_carries_the_old_keys_and_only_its_events,
    a_token_holds_a_bounded_number_of_event_streams,
);

async fn seq_is_gap_free_across_a_restart(engine: Engine) {
    let mut app = TestApp::spawn(engine).await;
    let (id, runtime, token) = app.create_registered("w").await;
    runtime.heartbeat(&hearth_api::HeartbeatRequest { error_rate: Some(0.9), ..heartbeat(id) }).await.unwrap();
    let settings = (*app.state.settings).clone();
    app.stop().await;
    let (_tmp, _db) = app.into_parts();
    let app = TestApp::start(settings).await;
    let runtime = app.client(Some(&token));
    runtime.heartbeat(&hearth_api::HeartbeatRequest { error_rate: Some(0.0), ..heartbeat(id) }).await.unwrap();
    app.admin.pause(id).await.unwrap();
    let all = app.admin.list_events(Some(0), None, Some(1000)).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=all.len() as i64).collect();
    assert_eq!(seqs, expected, "1, 2, 3, … with no gap, before and after the restart");
    assert_eq!(all.len(), 5, "PROVISIONING, ONLINE, DEGRADED, ONLINE, PAUSED");
}

/// Opens an SSE stream, reads `n` frames `(seq, name, data)`, hangs up.
async fn read_frames(url: String, token: String, last_event_id: Option<i64>, n: usize) -> Vec<(i64, String, Value)> {
    let mut request = reqwest::Client::new().get(url).bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("frames arrive")
            .expect("stream open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                frame.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.strip_prefix(' ').unwrap_or(v).to_owned())
            };
            if let (Some(id), Some(name), Some(data)) = (field("id:"), field("event:"), field("data:")) {
                frames.push((id.parse().unwrap(), name, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    frames
}

async fn sse_resumes_from_last_event_id_without_gap_or_repeat(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let stream_url = format!("{}/events/stream?since=0", app.url);
    // seq 1: WORKSPACE_PROVISIONING; seq 2: WORKSPACE_ONLINE (register).
    let (id, runtime, _) = app.create_registered("w").await;
    let first = read_frames(stream_url.clone(), app.admin_token.clone(), None, 2).await;
    assert_eq!(first.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(first[1].1, "WORKSPACE_ONLINE");
    assert_eq!(first[1].2["event"], "WORKSPACE_ONLINE");
    assert_eq!(first[1].2["seq"], 2);
    assert_eq!(first[1].2["workspace_id"], id.to_string());
    // While the reader is away, more happens: seq 3 and 4.
    runtime.heartbeat(&hearth_api::HeartbeatRequest { error_rate: Some(0.8), ..heartbeat(id) }).await.unwrap();
    runtime.heartbeat(&hearth_api::HeartbeatRequest { current_task: Some("t".into()), ..heartbeat(id) }).await.unwrap();
    // (The second heartbeat reports no error rate, so it also recovers: seq 4
    // ONLINE, seq 5 TASK_UPDATED.) Resuming after seq 2 yields exactly 3, 4
    // and 5, then the live seq 6.
    let resumed = tokio::spawn(read_frames(stream_url, app.admin_token.clone(), Some(2), 4));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.admin.pause(id).await.unwrap();
    let resumed: Vec<(i64, String)> = resumed.await.unwrap().into_iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        resumed,
        [
            (3, "WORKSPACE_DEGRADED".to_owned()),
            (4, "WORKSPACE_ONLINE".into()),
            (5, "TASK_UPDATED".into()),
            (6, "WORKSPACE_PAUSED".into())
        ]
    );
    // The client library follows the same stream from a given seq.
    let mut stream = app.admin.follow_events(Some(3), None).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.seq, 4);
}

async fn workspace_stream_carries_the_old_keys_and_only_its_events(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, token) = app.create_registered("mine").await;
    let (other, other_runtime, _) = app.create_registered("other").await;
    other_runtime.heartbeat(&hearth_api::HeartbeatRequest { error_rate: Some(0.9), ..heartbeat(other) }).await.unwrap();
    runtime.heartbeat(&hearth_api::HeartbeatRequest { error_rate: Some(0.9), ..heartbeat(id) }).await.unwrap();
    let url = format!("{}/workspaces/{id}/events/stream?since=0", app.url);
    let frames = read_frames(url, token, None, 3).await;
    let names: Vec<&str> = frames.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(names, ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE", "WORKSPACE_DEGRADED"]);
    for (_, name, data) in &frames {
        assert_eq!(data["workspace_id"], id.to_string());
        assert_eq!(data["type"], name.as_str());
        assert!(data["timestamp"].is_i64(), "unix milliseconds: {data}");
        assert!(data["data"].is_object());
    }
}

async fn a_token_holds_a_bounded_number_of_event_streams(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.max_streams_per_token = 2).await;
    let (id, _runtime, token) = app.create_registered("w").await;
    let open = |bearer: String, path: &'static str| {
        let request =
            app.raw().get(format!("{}{}", app.url, path.replace("{id}", &id.to_string()))).bearer_auth(bearer);
        request.send()
    };
    let first = open(app.admin_token.clone(), "/events/stream").await.unwrap();
    let second = open(app.admin_token.clone(), "/workspaces/{id}/events/stream").await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let refused = open(app.admin_token.clone(), "/events/stream").await.unwrap();
    assert_eq!(refused.status(), 429, "a third stream of the same token");
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests", "{body}");
    // Another token has its own allowance.
    let own = open(token.clone(), "/workspaces/{id}/events/stream").await.unwrap();
    assert_eq!(own.status(), 200, "the workspace's own token is counted apart");
    // Closing a stream frees its slot.
    drop(first);
    let freed = crate::harness::eventually(std::time::Duration::from_secs(10), || async {
        open(app.admin_token.clone(), "/events/stream").await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(freed, "a closed stream's slot is given back");
    drop((second, own));
}
