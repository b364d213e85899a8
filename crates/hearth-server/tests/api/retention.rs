//! A runtime cannot bloat the event log or exhaust memory by reading it:
//! bounded inputs (agent card, heartbeat texts), small events (a card event
//! is a digest and the changed keys), pages bounded by bytes, and
//! retention, whose compaction a reader behind it learns with 410
//! `events_compacted` and resumes from.

use std::time::Duration;

use futures_util::StreamExt;
use hearth_api::{HeartbeatRequest, RegisterRequest, UpdateCardRequest};
use hearth_server::retention;
use serde_json::{json, Value};

use crate::harness::{heartbeat, Engine, TestApp};

crate::on_both_engines!(
    agent_cards_are_bounded_and_an_unchanged_card_writes_no_event,
    heartbeat_texts_past_the_hard_limit_are_refused_and_runtime_state_is_cut,
    an_event_page_is_bounded_by_bytes_and_reading_on_misses_nothing,
    a_reader_behind_the_compaction_is_told_where_to_resume,
    an_event_stream_behind_the_compaction_resumes_where_the_log_is_complete,
);

/// The raw answer of `method path` with `token`, as (status, JSON body).
async fn call(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.raw().request(method, format!("{}{path}", app.url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn agent_cards_are_bounded_and_an_unchanged_card_writes_no_event(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, token) = app.create_registered("carded").await;
    let events_before = app.events_of(id).await.len();
    // 150 updates of a 0.9 MB card grew the log by 144–287 MB: now refused.
    let huge = json!({"name": "agent", "blob": "x".repeat(900_000)});
    let (status, body) = call(
        &app,
        &token,
        reqwest::Method::POST,
        "/registry/update-card",
        Some(json!({"workspace_id": id, "agent_card": huge})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!((body["code"].as_str(), body["field"].as_str()), (Some("invalid_field"), Some("agent_card")));
    assert!(body["error"].as_str().unwrap().contains("at most 65536"), "{body}");
    // Registering with one is refused the same way (nothing written).
    let register = RegisterRequest { id, url: "http://localhost:9000".into(), agent_card: Some(huge) };
    let err = runtime.register(&register).await.unwrap_err();
    assert_eq!((err.status(), err.field()), (Some(400), Some("agent_card")), "{err}");
    // A card within the limit is stored whole, evented small, once.
    let card = json!({"name": "agent", "skills": ["audit"], "notes": "n".repeat(60_000)});
    for _ in 0..3 {
        runtime.update_card(&UpdateCardRequest { workspace_id: id, agent_card: card.clone() }).await.unwrap();
    }
    let events = app.events_of(id).await;
    let cards: Vec<&hearth_api::EventResponse> = events.iter().filter(|e| e.event == "AGENT_CARD_UPDATED").collect();
    assert_eq!(cards.len(), 1, "three updates to the same card are one event");
    assert_eq!(events.len(), events_before + 1);
    assert_eq!(cards[0].payload["changed_keys"], json!(["name", "notes", "skills"]));
    assert_eq!(cards[0].payload["sha256"].as_str().map(str::len), Some(64));
    assert!(cards[0].payload.to_string().len() < 300, "the card is not in its event: {}", cards[0].payload);
    assert_eq!(app.admin.get_workspace(id).await.unwrap().agent_card, Some(card));
}

async fn heartbeat_texts_past_the_hard_limit_are_refused_and_runtime_state_is_cut(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (id, runtime, _) = app.create_registered("loud").await;
    let events_before = app.events_of(id).await.len();
    // 900 KB of runtime_state was stored and evented whole: now a 400.
    let huge = HeartbeatRequest { runtime_state: Some("w".repeat(900_000)), ..heartbeat(id) };
    let err = runtime.heartbeat(&huge).await.unwrap_err();
    assert_eq!((err.status(), err.field()), (Some(400), Some("runtime_state")), "{err}");
    assert_eq!(app.events_of(id).await.len(), events_before, "nothing written");
    // Within the hard limit it is cut to what every text keeps (4 KiB).
    let long = HeartbeatRequest { error_rate: Some(0.9), runtime_state: Some("stuck ".repeat(2000)), ..heartbeat(id) };
    runtime.heartbeat(&long).await.unwrap();
    let workspace = app.admin.get_workspace(id).await.unwrap();
    assert_eq!(workspace.status, hearth_core::WorkspaceStatus::Degraded);
    let events = app.events_of(id).await;
    let degraded = events.iter().find(|e| e.event == "WORKSPACE_DEGRADED").unwrap();
    assert_eq!(degraded.payload["runtime_state"].as_str().map(str::len), Some(4096));
}

/// Fills the log with `n` TASK_UPDATED events of about 4 KiB each.
async fn fill_with_tasks(runtime: &hearth_client::Client, id: hearth_core::WorkspaceId, n: usize) {
    for i in 0..n {
        let task = format!("{i:05} {}", "t".repeat(4000));
        runtime.heartbeat(&HeartbeatRequest { current_task: Some(task), ..heartbeat(id) }).await.unwrap();
    }
}

async fn an_event_page_is_bounded_by_bytes_and_reading_on_misses_nothing(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.rate_limit_per_token = 0;
        s.rate_limit_per_workspace = 0;
    })
    .await;
    let (id, runtime, _) = app.create_registered("busy").await;
    fill_with_tasks(&runtime, id, 300).await;
    let total = 2 + 300; // PROVISIONING, ONLINE, 300 TASK_UPDATED
    let response = app.raw().get(format!("{}/events?limit=1000", app.url)).bearer_auth(&app.admin_token).send().await;
    let body = response.unwrap().bytes().await.unwrap();
    let first: Vec<hearth_api::EventResponse> = serde_json::from_slice(&body).unwrap();
    assert!(first.len() < total, "a page of 1000 over 1.2 MB of events stops early: {} events", first.len());
    let cap = hearth_server::routes::events::MAX_PAGE_BYTES + hearth_core::event::MAX_EVENT_PAYLOAD_BYTES + 1024;
    assert!(body.len() <= cap, "{} bytes", body.len());
    assert!(body.len() >= hearth_server::routes::events::MAX_PAGE_BYTES, "it is full by bytes, not short for nothing");
    // Reading on from the last seq, until an empty page, yields every event once.
    let mut seqs: Vec<i64> = first.iter().map(|e| e.seq).collect();
    loop {
        let page = app.admin.list_events(seqs.last().copied(), None, Some(1000)).await.unwrap();
        if page.is_empty() {
            break;
        }
        seqs.extend(page.iter().map(|e| e.seq));
    }
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
}

/// A server that keeps three events per workspace (and a runtime may send
/// as fast as it likes).
async fn spawn_keeping_three(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, |s| {
        s.event_retention_per_workspace = 3;
        s.rate_limit_per_token = 0;
        s.rate_limit_per_workspace = 0;
    })
    .await
}

async fn a_reader_behind_the_compaction_is_told_where_to_resume(engine: Engine) {
    let app = spawn_keeping_three(engine).await;
    let (id, runtime, _) = app.create_registered("chatty").await; // seqs 1, 2
    let (quiet, _, _) = app.create_registered("quiet").await; // seqs 3, 4
    fill_with_tasks(&runtime, id, 10).await; // seqs 5..=14
    let done = retention::compact(&*app.state.store, retention::retention(&app.state.settings)).await.unwrap();
    // chatty keeps its ONLINE (2) and its newest three (12, 13, 14): 1 and 5..=11 go.
    assert_eq!((done.by_count, done.compacted_through), (8, 11));
    // A reader that had read up to seq 4 may have missed events: 410.
    let (status, body) = call(&app, &app.admin_token, reqwest::Method::GET, "/events?since=4", None).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!((body["code"].as_str(), body["earliest_seq"].as_i64()), (Some("events_compacted"), Some(12)));
    let err = app.admin.list_events(Some(4), None, None).await.unwrap_err();
    assert_eq!(err.compacted_until(), Some(12));
    // Resuming where the log is complete works, and so does reading from the start.
    let rest = app.admin.list_events(Some(11), None, None).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [12, 13, 14]);
    let from_start = app.admin.list_events(None, None, None).await.unwrap();
    assert_eq!(from_start.iter().map(|e| e.seq).collect::<Vec<_>>(), [12, 13, 14], "the log from where it is complete");
    // One workspace's log from its start: its kept status event, then the rest.
    let chatty = app.admin.list_events(None, Some(id), None).await.unwrap();
    assert_eq!(
        chatty.iter().map(|e| (e.seq, e.event.as_str())).collect::<Vec<_>>()[..2],
        [(2, "WORKSPACE_ONLINE"), (12, "TASK_UPDATED")]
    );
    let quiet_log = app.admin.list_events(Some(0), Some(quiet), None).await.unwrap();
    assert_eq!(quiet_log.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4], "another workspace's events stay");
    // The CLI's loop (resume on 410) reads everything that is kept after 4.
    let since_four = app.admin.list_events(Some(4), Some(quiet), None).await.unwrap_err();
    assert_eq!(since_four.compacted_until(), Some(12), "a workspace's page behind the watermark is refused too");
}

async fn an_event_stream_behind_the_compaction_resumes_where_the_log_is_complete(engine: Engine) {
    let app = spawn_keeping_three(engine).await;
    let (id, runtime, token) = app.create_registered("chatty").await;
    fill_with_tasks(&runtime, id, 10).await; // seqs 3..=12
    retention::compact(&*app.state.store, retention::retention(&app.state.settings)).await.unwrap();
    // The raw stream: 410 with where to resume, for both stream routes.
    for (path, bearer) in
        [("/events/stream".to_owned(), &app.admin_token), (format!("/workspaces/{id}/events/stream"), &token)]
    {
        let response =
            app.raw().get(format!("{}{path}", app.url)).bearer_auth(bearer).header("Last-Event-ID", "2").send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), 410, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["earliest_seq"], 10, "{path}: {body}");
    }
    // The client follows on: first the gap, then the events after it.
    let mut stream = app.admin.follow_events(Some(2), None).await.unwrap();
    let mut items = Vec::new();
    for _ in 0..4 {
        items.push(tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap());
    }
    let gap = items.remove(0).unwrap_err();
    assert_eq!(gap.compacted_until(), Some(10), "{gap}");
    let seqs: Vec<i64> = items.into_iter().map(|item| item.unwrap().seq).collect();
    assert_eq!(seqs, [10, 11, 12]);
}
