//! Following the SSE event stream: connect, parse frames, decode events,
//! reconnect with `Last-Event-ID` when the connection breaks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use chrono::DateTime;
use futures_util::{Stream, StreamExt};
use hearth_api::EventResponse;
use hearth_core::WorkspaceId;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::sse::{SseFrame, SseParser};
use crate::{Client, ClientError};

/// Events as they arrive. Items are errors only for a frame that does not
/// decode (the stream goes on), for events the server no longer holds (410
/// `events_compacted`, see [`ClientError::compacted_until`]: the stream goes
/// on from where the log is complete again), or for a connection that
/// cannot be restored (the stream ends after it).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<EventResponse, ClientError>> + Send>>;

/// The server sends a keep-alive comment every 15 s; this much silence means
/// the connection is dead even if TCP has not noticed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// First reconnect delay when the server sent no `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// Longest delay between reconnect attempts.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// Failed reconnects in a row before the stream gives up.
const MAX_RECONNECT_ATTEMPTS: u32 = 6;

/// Response body chunks. (`Vec<u8>` because reqwest does not re-export
/// `Bytes`; converting a uniquely owned `Bytes` does not copy.)
type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

struct Follow {
    client: Client,
    path: String,
    /// `?org=` of every connection (the admin's filter on `/events/stream`).
    org: Option<uuid::Uuid>,
    /// `?since=` of the first connection; reconnects use `Last-Event-ID`.
    since: Option<i64>,
    body: Option<ByteStream>,
    parser: SseParser,
    ready: VecDeque<SseFrame>,
    /// Failed reconnects in a row.
    failures: u32,
    /// Why the last connection ended, kept for the error if reconnecting
    /// fails ("connection reset", "no data for 45 s", …).
    broke: Option<String>,
    /// The server's 410 `events_compacted` on the last (re)connection, to be
    /// yielded before the events after it.
    gap: Option<ClientError>,
    finished: bool,
}

pub(crate) async fn follow(
    client: Client,
    org: Option<uuid::Uuid>,
    since: Option<i64>,
    workspace: Option<WorkspaceId>,
) -> Result<EventStream, ClientError> {
    let path = match workspace {
        Some(id) => format!("/workspaces/{id}/events/stream"),
        None => "/events/stream".to_owned(),
    };
    let mut follow = Follow {
        client,
        path,
        org,
        since,
        body: None,
        parser: SseParser::resuming_after(since.map(|seq| seq.to_string())),
        ready: VecDeque::new(),
        failures: 0,
        broke: None,
        gap: None,
        finished: false,
    };
    follow.connect().await?;
    Ok(Box::pin(futures_util::stream::unfold(follow, |mut follow| async move {
        let item = follow.next_event().await?;
        Some((item, follow))
    })))
}

impl Follow {
    /// Opens the stream ([`Follow::open`]); when the server no longer holds
    /// the events after our position (410 `events_compacted`), resumes where
    /// its log is complete again and keeps the 410 to yield as a gap.
    async fn connect(&mut self) -> Result<(), ClientError> {
        match self.open().await {
            Err(err) => match err.compacted_until() {
                Some(earliest) if self.gap.is_none() => {
                    self.since = None;
                    self.parser.resume_after((earliest - 1).max(0).to_string());
                    self.gap = Some(err);
                    self.open().await
                }
                _ => Err(err),
            },
            ok => ok,
        }
    }

    /// Opens the stream: `?since=` on the first connection, and on every
    /// connection the last event id received as `Last-Event-ID`.
    async fn open(&mut self) -> Result<(), ClientError> {
        let since = self.since.take();
        let org = self.org;
        let last_event_id = self.parser.last_event_id().map(str::to_owned);
        let response = self
            .client
            .open(Method::GET, &self.path, None, |mut request| {
                request = request.header(reqwest::header::ACCEPT, "text/event-stream");
                if let Some(since) = since {
                    request = request.query(&[("since", since)]);
                }
                if let Some(org) = org {
                    request = request.query(&[("org", org)]);
                }
                if let Some(id) = last_event_id {
                    request = request.header("Last-Event-ID", id);
                }
                request
            })
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::from_body(status, &body));
        }
        if status != StatusCode::OK || !is_event_stream(&response) {
            return Err(ClientError::Decode(format!(
                "GET {} did not answer with an event stream (status {status})",
                self.path
            )));
        }
        self.parser.reset_connection();
        self.body = Some(Box::pin(response.bytes_stream().map(|chunk| chunk.map(Vec::from))));
        Ok(())
    }

    /// The next item, or `None` once the stream has ended.
    async fn next_event(&mut self) -> Option<Result<EventResponse, ClientError>> {
        loop {
            if let Some(gap) = self.gap.take() {
                return Some(Err(gap));
            }
            if let Some(frame) = self.ready.pop_front() {
                return Some(decode_event(&frame));
            }
            if self.finished {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                if let Err(err) = self.reconnect().await {
                    self.finished = true;
                    return Some(Err(err));
                }
                continue;
            };
            let broke = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.ready.extend(self.parser.push(&chunk));
                    continue;
                }
                Ok(Some(Err(error))) => format!("the connection broke: {}", crate::error::root_cause(&error)),
                Ok(None) => "the server closed it".to_owned(),
                Err(_) => format!("no data for {} s", IDLE_TIMEOUT.as_secs()),
            };
            // Closed, broken or silent: reconnect from the last event.
            self.broke = Some(broke);
            self.body = None;
        }
    }

    /// Reconnects with backoff. Gives up on an answer that retrying cannot
    /// change (401, 404, …) or after too many unreachable attempts.
    async fn reconnect(&mut self) -> Result<(), ClientError> {
        loop {
            let base = self.parser.retry_ms().map_or(DEFAULT_RETRY, Duration::from_millis);
            let delay = base.saturating_mul(1 << self.failures.min(16)).min(MAX_RETRY.max(base));
            tokio::time::sleep(delay).await;
            match self.connect().await {
                Ok(()) => {
                    self.failures = 0;
                    self.broke = None;
                    return Ok(());
                }
                Err(err) if retryable(&err) && self.failures + 1 < MAX_RECONNECT_ATTEMPTS => self.failures += 1,
                Err(ClientError::Transport(why)) => {
                    // No recorded break (the first connection failed): nothing to add.
                    let broke = self.broke.as_deref().map(|b| format!(" ({b})")).unwrap_or_default();
                    return Err(ClientError::Transport(format!("lost the event stream{broke}: {why}")));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

fn retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Transport(_) => true,
        // A restarting server or its proxy.
        ClientError::Api { status, .. } => matches!(status, 502..=504),
        ClientError::Decode(_) | ClientError::InvalidUrl(_) | ClientError::Config(_) => false,
    }
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// Decodes one frame's `data:` into an event. Tolerates the old platform's
/// keys that the per-workspace stream also carries (PROTOCOL.md): `type` for
/// `event`, `data` for `payload`, a unix-millisecond `timestamp`; and takes
/// `seq` and `event` from the frame's `id:` and `event:` lines when the JSON
/// lacks them.
pub(crate) fn decode_event(frame: &SseFrame) -> Result<EventResponse, ClientError> {
    let undecodable =
        |why: String| ClientError::Decode(format!("the event stream sent an event that does not decode: {why}"));
    let mut value: Value = serde_json::from_str(&frame.data).map_err(|err| undecodable(err.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(undecodable("its data is not a JSON object".into()));
    };
    if !object.contains_key("seq") {
        if let Some(seq) = frame.id.as_deref().and_then(|id| id.parse::<i64>().ok()) {
            object.insert("seq".into(), seq.into());
        }
    }
    if !object.contains_key("event") {
        let name = object.get("type").cloned().or_else(|| frame.event.clone().map(Value::String));
        if let Some(name) = name {
            object.insert("event".into(), name);
        }
    }
    if !object.contains_key("payload") {
        if let Some(data) = object.get("data").cloned() {
            object.insert("payload".into(), data);
        }
    }
    if let Some(millis) = object.get("timestamp").and_then(Value::as_i64) {
        let Some(time) = DateTime::from_timestamp_millis(millis) else {
            return Err(undecodable(format!("timestamp {millis} is out of range")));
        };
        object.insert("timestamp".into(), time.to_rfc3339().into());
    }
    serde_json::from_value(value).map_err(|err| undecodable(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: Option<&str>, event: Option<&str>, data: &str) -> SseFrame {
        SseFrame { id: id.map(str::to_owned), event: event.map(str::to_owned), data: data.to_owned() }
    }

    const EVENT_ID: &str = "6f1c1f8e-8a0e-4c7e-9a43-0d3c2b3f9e11";
    const WORKSPACE_ID: &str = "0b6a4d3e-2f1c-4e5d-8a7b-9c0d1e2f3a4b";

    #[test]
    fn a_hearth_event_decodes_as_is() {
        let data = format!(
            r#"{{"seq": 7, "id": "{EVENT_ID}", "event": "WORKSPACE_ONLINE", "workspace_id": "{WORKSPACE_ID}",
                "timestamp": "2026-11-24T11:20:00Z", "payload": {{"recovered_from": "provisioning"}}}}"#
        );
        let event = decode_event(&frame(Some("7"), Some("WORKSPACE_ONLINE"), &data)).unwrap();
        assert_eq!(event.seq, 7);
        assert_eq!(event.event, "WORKSPACE_ONLINE");
        assert_eq!(event.workspace_id.unwrap().to_string(), WORKSPACE_ID);
        assert_eq!(event.payload["recovered_from"], "provisioning");
    }

    #[test]
    fn the_old_platform_keys_fill_in_for_missing_hearth_keys() {
        let data = format!(
            r#"{{"id": "{EVENT_ID}", "type": "TASK_UPDATED", "workspace_id": "{WORKSPACE_ID}",
                "timestamp": 1795000000123, "data": {{"current_task": "x"}}}}"#
        );
        let event = decode_event(&frame(Some("42"), None, &data)).unwrap();
        assert_eq!(event.seq, 42);
        assert_eq!(event.event, "TASK_UPDATED");
        assert_eq!(event.timestamp.timestamp_millis(), 1_795_000_000_123);
        assert_eq!(event.payload["current_task"], "x");
    }

    #[test]
    fn a_frame_that_is_not_an_event_is_a_decode_error() {
        let err = decode_event(&frame(None, None, "not json")).unwrap_err();
        assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
        let err = decode_event(&frame(None, None, "[1]")).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
    }
}
