//! `follow_events` against a scripted in-process HTTP peer (not a Hearth
//! server): the first connection is cut after two events, and the reconnect
//! must carry `Last-Event-ID` so the stream continues without a gap.

// The helpers below are test code too, though not `#[test]` functions.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use hearth_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn event(seq: i64) -> String {
    format!(
        "id: {seq}\nevent: TASK_UPDATED\ndata: {{\"seq\": {seq}, \"id\": \"6f1c1f8e-8a0e-4c7e-9a43-0d3c2b3f9e1{seq}\", \
         \"event\": \"TASK_UPDATED\", \"workspace_id\": null, \"timestamp\": \"2026-11-24T11:20:0{seq}Z\", \
         \"payload\": {{}}}}\n\n"
    )
}

/// Reads one request head and returns it.
async fn read_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn a_broken_stream_resumes_after_the_last_event_received() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let peer = tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        let head = read_head(&mut first).await;
        // Event 2 is split across writes, and a partial event 3 is cut off.
        let body = format!(": keep-alive\n\n{}{}", event(1), event(2));
        let (a, b) = body.split_at(body.len() - 20);
        first.write_all(format!("{SSE_HEAD}{a}").as_bytes()).await.unwrap();
        first.flush().await.unwrap();
        first.write_all(b.as_bytes()).await.unwrap();
        first.write_all(b"id: 3\ndata: {\"seq\"").await.unwrap();
        drop(first);

        let (mut second, _) = listener.accept().await.unwrap();
        let resumed = read_head(&mut second).await;
        second.write_all(format!("{SSE_HEAD}{}", event(3)).as_bytes()).await.unwrap();
        // Keep the connection open until the client has read event 3.
        let mut rest = Vec::new();
        let _ = second.read_to_end(&mut rest).await;
        (head, resumed)
    });

    let client = Client::new(&base, Some("t0k3n".into())).unwrap();
    let stream = client.follow_events(Some(0), None).await.unwrap();
    let seqs: Vec<i64> = stream.take(3).map(|event| event.unwrap().seq).collect().await;
    assert_eq!(seqs, vec![1, 2, 3]);

    let (head, resumed) = peer.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("get /events/stream?since=0 "), "{head}");
    assert!(head.contains("authorization: bearer t0k3n"), "{head}");
    let resumed = resumed.to_ascii_lowercase();
    assert!(resumed.starts_with("get /events/stream "), "{resumed}");
    assert!(resumed.contains("last-event-id: 2\r\n"), "{resumed}");
}

#[tokio::test]
async fn a_refused_stream_is_an_api_error_from_follow_events_itself() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let head = read_head(&mut socket).await;
        let body = r#"{"error": "admin auth required", "code": "unauthorized"}"#;
        let answer = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        head
    });
    let workspace = "0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b".parse().unwrap();
    let err = Client::new(&base, None).unwrap().follow_events(None, Some(workspace)).await.err().unwrap();
    assert_eq!(err.to_string(), "server answered 401 Unauthorized: admin auth required");
    let head = peer.await.unwrap();
    assert!(head.starts_with("GET /workspaces/0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b/events/stream "), "{head}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_naming_the_url() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let client = Client::new(format!("http://127.0.0.1:{port}"), None).unwrap();
    let err = client.list_workspaces(true).await.unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("http://127.0.0.1:{port}/workspaces?include_removed=true")), "{text}");
    assert!(text.contains("connection refused"), "{text}");
}
