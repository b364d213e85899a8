//! The event log: a page API and live SSE streams that resume without gaps.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use hearth_api::{ApiErrorBody, ErrorCode, EventResponse};
use hearth_core::{OrgId, WorkspaceId};
use hearth_store::{Event, EventQuery};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Bearer, IfRemoved, Operator};
use crate::bus::{LongPollKind, LongPollSlot, POLL_INTERVAL};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiQuery};
use crate::routes::workspaces::workspace_for_runtime_or_operator;
use crate::state::AppState;

/// Events read from the log per query while catching up.
const PAGE: i64 = 500;
/// SSE keep-alive comment interval.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
}

/// A page of the event log, ascending.
#[utoipa::path(get, path = "/events", tag = "events", params(ListEventsQuery),
    responses((status = 200, body = Vec<EventResponse>), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<ListEventsQuery>,
) -> ApiResult<Json<Vec<EventResponse>>> {
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
    let events = state.store.list_events(EventQuery { since, org: operator.scope(), workspace, limit }).await?;
    Ok(Json(events.iter().map(event_response).collect()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this seq (the `Last-Event-ID` header wins).
    since: Option<i64>,
}

/// Where a stream starts: `Last-Event-ID`, else `?since=`, else the tail.
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
    responses((status = 200, description = "text/event-stream of events"), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    operator: Operator,
    bearer: Bearer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let cursor = start_seq(&state, &headers, query.since).await?;
    let slot = stream_slot(&state, &bearer)?;
    Ok(sse(state, cursor, operator.scope(), None, Format::Hearth, slot))
}

/// A slot among the token's concurrent streams (else 429) and the server's
/// long polls (else 503), both with `Retry-After`.
fn stream_slot(state: &AppState, bearer: &Bearer) -> ApiResult<LongPollSlot> {
    // Routes reach here only authenticated, so there is a token.
    let key = crate::auth::hash_token(bearer.0.as_deref().unwrap_or_default());
    crate::bus::long_poll_slot(state, LongPollKind::Stream, key).inspect_err(|_| {
        metrics::counter!("hearth_event_streams_refused_total").increment(1);
    })
}

/// Live stream of one workspace's events, with the old platform's keys too.
#[utoipa::path(get, path = "/workspaces/{id}/events/stream", tag = "events", params(("id" = uuid::Uuid, Path), StreamQuery),
    responses((status = 200, description = "text/event-stream of events"), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub async fn stream_workspace_events(
    State(state): State<AppState>,
    bearer: Bearer,
    headers: HeaderMap,
    Path(raw): Path<String>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id: WorkspaceId = parse_id(&raw, "workspace id")?;
    workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Refuse).await?;
    let cursor = start_seq(&state, &headers, query.since).await?;
    let slot = stream_slot(&state, &bearer)?;
    Ok(sse(state, cursor, None, Some(id), Format::Compatible, slot))
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
    state: AppState,
    after: i64,
    org: Option<OrgId>,
    workspace: Option<WorkspaceId>,
    buffer: VecDeque<Event>,
    wake: tokio::sync::watch::Receiver<i64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    _guard: SubscriberGuard,
    _slot: LongPollSlot,
}

/// Reads the log after `after`, forever: every committed event exactly once,
/// in seq order. The bus only says when to look; the log says what is there.
fn sse(
    state: AppState,
    after: i64,
    org: Option<OrgId>,
    workspace: Option<WorkspaceId>,
    format: Format,
    slot: LongPollSlot,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let cursor = Cursor {
        wake: state.bus.subscribe(),
        shutdown: state.shutdown.clone(),
        state,
        after,
        org,
        workspace,
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
                    Ok(frame) => {
                        c.after = event.seq;
                        Some((Ok(frame), c))
                    }
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
            let query = EventQuery { since: c.after, org: c.org, workspace: c.workspace, limit: PAGE };
            match c.state.store.list_events(query).await {
                Ok(page) if !page.is_empty() => {
                    c.buffer.extend(page);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    crate::lifecycle::count_store_error(&error);
                    tracing::warn!(%error, after = c.after, "event stream could not read the log; retrying");
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
