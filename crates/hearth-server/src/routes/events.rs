//! The event log: a page API and live SSE streams that resume without gaps.
//!
//! Both read the log through [`LogReader`], a chunk of [`CHUNK`] events at
//! a time, so what a reader holds is bounded by the chunk and the payload
//! cap (`hearth_core::event::MAX_EVENT_PAYLOAD_BYTES`), never by the log.
//! A reader resuming after a seq that retention has compacted past gets
//! 410 `events_compacted` with the seq to resume from.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use hearth_api::{ApiErrorBody, ErrorCode, EventResponse};
use hearth_core::{OrgId, WorkspaceId};
use hearth_store::{Event, EventQuery, Store};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Bearer, IfRemoved, Operator};
use crate::bus::{LongPollKind, LongPollSlot, POLL_INTERVAL};
use crate::caller::OperatorToken;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiPath, ApiQuery};
use crate::routes::workspaces::workspace_for_runtime_or_operator;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
        .routes(routes!(stream_workspace_events))
}

/// Events read from the log per query: a page is written as it is read,
/// this many at a time, and a stream buffers at most this many.
const CHUNK: i64 = 100;
/// A page of `GET /events` ends once this many bytes of JSON are written
/// (after at least one event), whatever its `limit`: with payloads capped
/// at 16 KiB, one page is about 1 MiB at most.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// SSE keep-alive comment interval.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Reads the log after a cursor, and knows whether retention removed
/// events it has not read.
///
/// A reader that resumes after a seq it holds (`since > 0`) is *strict*: if
/// the log's watermark (`Store::read_events`) is past its cursor, it may
/// have missed events, and it is answered 410 with where to resume. A
/// reader from the start (`since = 0`) takes what is kept: the whole log
/// from the watermark on, or, for one workspace, that workspace's kept
/// events (its latest status event however old) and then the rest; it is
/// strict once it is past the watermark.
pub(crate) struct LogReader {
    store: Arc<dyn Store>,
    after: i64,
    org: Option<OrgId>,
    workspace: Option<WorkspaceId>,
    strict: bool,
}

impl LogReader {
    /// `since`: the last seq the reader holds, or 0 for the start of the log.
    pub(crate) fn new(store: Arc<dyn Store>, since: i64, org: Option<OrgId>, workspace: Option<WorkspaceId>) -> Self {
        Self { store, after: since, org, workspace, strict: since > 0 }
    }

    /// The seq of the last event read (or where reading starts).
    pub(crate) fn after(&self) -> i64 {
        self.after
    }

    /// 410 now if a strict reader's cursor is already compacted past (a
    /// stream checks before it answers 200).
    pub(crate) async fn check(&self) -> ApiResult<()> {
        if self.strict {
            let compacted = self.store.compacted_through().await?;
            if compacted > self.after {
                return Err(ApiError::events_compacted(self.after, compacted + 1));
            }
        }
        Ok(())
    }

    /// The next events after the cursor, at most `limit`, in seq order; 410
    /// `events_compacted` when retention removed some of them.
    pub(crate) async fn next(&mut self, limit: i64) -> ApiResult<Vec<Event>> {
        let query = |since| EventQuery { since, org: self.org, workspace: self.workspace, limit };
        let page = if !self.strict && self.workspace.is_none() {
            // The whole log from its start: from the watermark on, where it
            // is complete (the watermark may move meanwhile: read again).
            let mut tries = 0;
            loop {
                let from = self.store.compacted_through().await?.max(self.after);
                let page = self.store.read_events(query(from)).await?;
                tries += 1;
                if page.compacted_through <= from || tries == 3 {
                    self.after = from;
                    self.strict = true;
                    break page;
                }
            }
        } else {
            self.store.read_events(query(self.after)).await?
        };
        if self.strict && page.compacted_through > self.after {
            return Err(ApiError::events_compacted(self.after, page.compacted_through + 1));
        }
        match page.events.last() {
            Some(last) => {
                self.after = last.seq;
                self.strict |= last.seq >= page.compacted_through;
            }
            None if !self.strict => {
                // Nothing of this workspace after the cursor: nothing is
                // skipped by moving it to the watermark.
                self.after = self.after.max(page.compacted_through);
                self.strict = true;
            }
            None => {}
        }
        Ok(page.events)
    }
}

pub(crate) fn event_response(e: &Event) -> EventResponse {
    EventResponse {
        seq: e.seq,
        id: e.id.0,
        event: e.kind.as_str().into(),
        workspace_id: e.workspace_id,
        timestamp: e.timestamp,
        payload: e.payload.clone(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// Return events with a larger seq (default 0).
    since: Option<i64>,
    workspace_id: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<i64>,
    /// Only this org's events (the admin token; an org token reads its own
    /// org, and naming another is 404).
    org: Option<String>,
}

/// A page of the event log, ascending: at most `limit` events and about
/// 1 MiB ([`MAX_PAGE_BYTES`]), so a page may hold fewer events than asked
/// while more follow; the end of the log is an empty page. Written as it is
/// read, a chunk at a time.
#[utoipa::path(get, path = "/events", tag = "events", params(ListEventsQuery),
    responses((status = 200, body = Vec<EventResponse>), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody),
        (status = 410, body = ApiErrorBody, description = "`events_compacted`: events after `since` were removed by retention; resume after `earliest_seq - 1`")))]
pub async fn list_events(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<ListEventsQuery>,
) -> ApiResult<Response> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and 1000, got {limit}"),
        ));
    }
    let since = query.since.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad_request(ErrorCode::InvalidQuery, format!("since must not be negative, got {since}")));
    }
    let workspace = query.workspace_id.as_deref().map(|raw| parse_id(raw, "workspace_id")).transpose()?;
    let org = crate::routes::orgs::listed_org(&state, operator, query.org.as_deref()).await?;
    let mut reader = LogReader::new(state.store.clone(), since, org, workspace);
    // The first chunk before the answer's head: a refusal (410, 503) is a
    // status, not a broken body.
    let first = reader.next(limit.min(CHUNK)).await?;
    let page = Page::new(reader, first, limit);
    let mut response = Body::from_stream(stream::unfold(page, Page::next_bytes)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// A page of `GET /events` being written: a JSON array, a chunk of events
/// at a time, until `limit` events or [`MAX_PAGE_BYTES`] are written or the
/// log ends.
struct Page {
    reader: LogReader,
    chunk: Vec<Event>,
    /// Events still allowed.
    left: i64,
    written: usize,
    /// A chunk came back short: the log ends after it.
    last_chunk: bool,
    state: PageState,
}

#[derive(PartialEq)]
enum PageState {
    Open,
    Closing,
    Done,
}

impl Page {
    fn new(reader: LogReader, first: Vec<Event>, limit: i64) -> Self {
        let last_chunk = (first.len() as i64) < limit.min(CHUNK);
        Self { reader, left: limit, chunk: first, written: 0, last_chunk, state: PageState::Open }
    }

    /// The next piece of the body: a chunk's events (the first with the
    /// array's `[`), then the closing `]`.
    async fn next_bytes(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        loop {
            match self.state {
                PageState::Done => return None,
                PageState::Closing => {
                    self.state = PageState::Done;
                    let close: &'static [u8] = if self.written == 0 { b"[]" } else { b"]" };
                    return Some((Ok(Bytes::from_static(close)), self));
                }
                PageState::Open => {}
            }
            let out = self.write_chunk();
            self.read_chunk().await;
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), self));
            }
        }
    }

    /// The current chunk as JSON array elements, until the page is full.
    fn write_chunk(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for event in std::mem::take(&mut self.chunk) {
            let mark = out.len();
            out.push(if self.written + out.len() == 0 { b'[' } else { b',' });
            if let Err(error) = serde_json::to_writer(&mut out, &event_response(&event)) {
                // Never a null or a broken element: the page ends before it.
                metrics::counter!("hearth_event_page_errors_total").increment(1);
                tracing::error!(seq = event.seq, %error, "cannot serialize an event; the page ends before it");
                out.truncate(mark);
                self.left = 0;
                break;
            }
            self.left -= 1;
            if self.written + out.len() >= MAX_PAGE_BYTES {
                self.left = 0;
                break;
            }
        }
        self.written += out.len();
        out
    }

    /// Reads the next chunk while the page has room and the log more; the
    /// page closes when there is none.
    async fn read_chunk(&mut self) {
        if self.left > 0 && !self.last_chunk {
            let asked = self.left.min(CHUNK);
            match self.reader.next(asked).await {
                Ok(chunk) => {
                    self.last_chunk = (chunk.len() as i64) < asked;
                    self.chunk = chunk;
                }
                // What was written is a true prefix of the log: the page ends
                // there, and the next page asked for gets the refusal itself
                // (410 after a compaction, 503 while the database is away).
                Err(error) => {
                    if let Some(operation) = error.operation {
                        crate::metrics::database_error(operation);
                    }
                    tracing::warn!(
                        after = self.reader.after(),
                        status = error.status.as_u16(),
                        error = %error.body.error,
                        cause = ?error.cause,
                        "an event page ends early"
                    );
                }
            }
        }
        if self.chunk.is_empty() {
            self.state = PageState::Closing;
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this seq (the `Last-Event-ID` header wins).
    since: Option<i64>,
    /// Only this org's events (the admin token; an org token streams its
    /// own org, and naming another is 404).
    org: Option<String>,
}

/// A workspace's stream: where it resumes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceStreamQuery {
    /// Resume after this seq (the `Last-Event-ID` header wins).
    since: Option<i64>,
}

/// Where a stream starts: `Last-Event-ID`, else `?since=`, else the tail;
/// 0 is the start of what the log keeps.
async fn start_seq(state: &AppState, headers: &HeaderMap, since: Option<i64>) -> ApiResult<i64> {
    if let Some(raw) = headers.get("last-event-id") {
        let text = raw.to_str().unwrap_or("");
        return text.trim().parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidHeader, format!("Last-Event-ID must be an event seq, got {text:?}"))
        });
    }
    match since {
        Some(seq) if seq < 0 => Err(ApiError::bad_request(ErrorCode::InvalidQuery, "since must not be negative")),
        Some(seq) => Ok(seq),
        None => Ok(state.store.last_event_seq().await?),
    }
}

/// Live stream of every event (of the caller's org).
#[utoipa::path(get, path = "/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "text/event-stream of events"), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody),
        (status = 410, body = ApiErrorBody, description = "`events_compacted`: resume after `earliest_seq - 1`"), (status = 429, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    OperatorToken { operator, token_hash }: OperatorToken,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let org = crate::routes::orgs::listed_org(&state, operator, query.org.as_deref()).await?;
    let cursor = start_seq(&state, &headers, query.since).await?;
    let reader = LogReader::new(state.store.clone(), cursor, org, None);
    reader.check().await?;
    let slot = stream_slot(&state, token_hash)?;
    Ok(sse(state, reader, Format::Hearth, slot))
}

/// A slot among the token's concurrent streams (else 429) and the server's
/// long polls (else 503), both with `Retry-After`.
fn stream_slot(state: &AppState, key: [u8; 32]) -> ApiResult<LongPollSlot> {
    crate::routes::long_polls::long_poll_slot(state, LongPollKind::Stream, key).inspect_err(|_| {
        metrics::counter!("hearth_event_streams_refused_total").increment(1);
    })
}

/// Live stream of one workspace's events, with the old platform's keys too.
#[utoipa::path(get, path = "/workspaces/{id}/events/stream", tag = "events", params(("id" = uuid::Uuid, Path), WorkspaceStreamQuery),
    responses((status = 200, description = "text/event-stream of events"), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub async fn stream_workspace_events(
    State(state): State<AppState>,
    bearer: Bearer,
    headers: HeaderMap,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiQuery(query): ApiQuery<WorkspaceStreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Refuse).await?;
    // Authenticated above, so the request presented a token.
    let token_hash = bearer.hash().ok_or_else(|| ApiError::unauthorized("missing workspace auth token"))?;
    let cursor = start_seq(&state, &headers, query.since).await?;
    let reader = LogReader::new(state.store.clone(), cursor, None, Some(id));
    reader.check().await?;
    let slot = stream_slot(&state, token_hash)?;
    Ok(sse(state, reader, Format::Compatible, slot))
}

#[derive(Clone, Copy)]
enum Format {
    Hearth,
    /// Also `type`, `data` and `timestamp` as unix milliseconds (the old
    /// platform's keys); the RFC 3339 time moves to `time`.
    Compatible,
}

fn frame(event: &Event, format: Format) -> Result<SseEvent, serde_json::Error> {
    let mut body = serde_json::to_value(event_response(event))?;
    if let (Format::Compatible, Value::Object(map)) = (format, &mut body) {
        map.insert("type".into(), Value::String(event.kind.as_str().into()));
        map.insert("data".into(), event.payload.clone());
        map.insert("time".into(), Value::String(event.timestamp.to_rfc3339()));
        map.insert("timestamp".into(), Value::from(event.timestamp.timestamp_millis()));
    }
    Ok(SseEvent::default().id(event.seq.to_string()).event(event.kind.as_str()).data(body.to_string()))
}

/// Counts open streams; decremented when the stream is dropped.
struct SubscriberGuard;

impl SubscriberGuard {
    fn new() -> Self {
        metrics::gauge!("hearth_event_subscribers").increment(1.0);
        SubscriberGuard
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        metrics::gauge!("hearth_event_subscribers").decrement(1.0);
    }
}

struct Cursor {
    reader: LogReader,
    buffer: VecDeque<Event>,
    wake: tokio::sync::watch::Receiver<i64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    _guard: SubscriberGuard,
    _slot: LongPollSlot,
}

/// Reads the log after the reader's cursor, forever: every committed event
/// exactly once, in seq order. The bus only says when to look; the log says
/// what is there. If retention compacts past the cursor before the stream
/// has read it, the stream ends: the subscriber reconnects from its last
/// seq and is told (410) where to resume.
fn sse(
    state: AppState,
    reader: LogReader,
    format: Format,
    slot: LongPollSlot,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let cursor = Cursor {
        wake: state.bus.subscribe(),
        shutdown: state.shutdown.clone(),
        reader,
        buffer: VecDeque::new(),
        _guard: SubscriberGuard::new(),
        _slot: slot,
    };
    let events = stream::unfold(cursor, move |mut c| async move {
        loop {
            if *c.shutdown.borrow() {
                return None;
            }
            if let Some(event) = c.buffer.pop_front() {
                return match frame(&event, format) {
                    Ok(frame) => Some((Ok(frame), c)),
                    Err(error) => {
                        // Never a null or skipped frame: the stream ends, and
                        // the subscriber resumes from the last seq it has.
                        metrics::counter!("hearth_event_stream_errors_total").increment(1);
                        tracing::error!(seq = event.seq, %error, "cannot serialize an event; ending the stream");
                        None
                    }
                };
            }
            // Marked before reading: a publish after this point wakes us at once.
            c.wake.mark_unchanged();
            match c.reader.next(CHUNK).await {
                Ok(page) if !page.is_empty() => {
                    c.buffer.extend(page);
                    continue;
                }
                Ok(_) => {}
                Err(error) if error.body.code == ErrorCode::EventsCompacted => {
                    metrics::counter!("hearth_event_streams_compacted_total").increment(1);
                    tracing::info!(
                        after = c.reader.after(),
                        "retention compacted past an event stream's cursor; ending it"
                    );
                    return None;
                }
                Err(error) => {
                    if let Some(operation) = error.operation {
                        crate::metrics::database_error(operation);
                    }
                    tracing::warn!(after = c.reader.after(), error = %error.body.error, cause = ?error.cause,
                        "event stream could not read the log; retrying");
                }
            }
            tokio::select! {
                changed = c.wake.changed() => if changed.is_err() { return None },
                _ = c.shutdown.changed() => return None,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
