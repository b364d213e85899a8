//! What every request passes before its route, as one middleware: its
//! span (request id, method, route, client, scheme: every log line of the
//! request carries them), its count and duration (`metrics.rs`), its
//! deadline, the per-token rate limit (`limits.rs`), the protocol version
//! and a NUL in the path (`extract.rs`). One layer on each route where
//! there were seven: each `Router::layer` wraps every route once more, and
//! a request pays a boxed clone of the route and its own future per layer
//! (`perf` and callgrind figures in BENCHMARKS.md, "The per-request stack").
//!
//! The order is the one the separate layers had: a refusal of any check is
//! counted like any answer, and the deadline covers the checks and the
//! route. A declared `Content-Length` over the route's body limit is a 413
//! before the body is read. A 5xx answer is logged at `error` in the
//! request's span, unless its error code says the client's request decided
//! it ([`refusal_level`]: a `discover` of a target that is not online, a
//! full server), which is logged below `error`; every answer at `debug`
//! (`RUST_LOG=hearth_server::edge=debug`). Every answer says
//! `X-Content-Type-Options: nosniff`.

use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{HeaderValue, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth_api::ErrorCode;
use tracing::{Instrument, Level};

use crate::state::AppState;

/// The middleware (`routes::router` applies it to every route).
pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = span(&state, &request, route.as_ref());
    let answer = crate::limits::deadline(state.settings.request_timeout, checked(&state, request, next));
    let mut response = answer.instrument(span.clone()).await;
    response.headers_mut().insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let status = response.status();
    crate::metrics::request(&method, route.as_ref(), status, started);
    let _entered = span.enter();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        let code = response.extensions().get::<ErrorCode>().copied();
        match refusal_level(status, code) {
            Some(level) => log_at(level, status, latency_ms, "response refused"),
            None => tracing::error!(status = status.as_u16(), latency_ms, "response failed"),
        }
    } else {
        tracing::debug!(status = status.as_u16(), latency_ms, "response sent");
    }
    response
}

/// The level below `error` of a 5xx that the client's request decided, by
/// its error code (`ApiError` puts it in the response's extensions): a
/// `discover` of a target that is not online (`workspace_unavailable`,
/// `info`: any workspace token can ask), a server full of long polls
/// (`server_busy`, `warn`: the operator may want a larger cap). `None`: a
/// real failure (database, internal), logged at `error`.
pub fn refusal_level(status: StatusCode, code: Option<ErrorCode>) -> Option<Level> {
    if !status.is_server_error() {
        return None;
    }
    match code? {
        ErrorCode::WorkspaceUnavailable => Some(Level::INFO),
        ErrorCode::ServerBusy => Some(Level::WARN),
        _ => None,
    }
}

/// An answer's line at a level chosen at run time (tracing's macros take
/// a constant level).
fn log_at(level: Level, status: StatusCode, latency_ms: f64, message: &str) {
    let status = status.as_u16();
    match level {
        Level::ERROR => tracing::error!(status, latency_ms, "{message}"),
        Level::WARN => tracing::warn!(status, latency_ms, "{message}"),
        Level::INFO => tracing::info!(status, latency_ms, "{message}"),
        Level::DEBUG => tracing::debug!(status, latency_ms, "{message}"),
        Level::TRACE => tracing::trace!(status, latency_ms, "{message}"),
    }
}

/// The request's span. Its id is a v4 UUID from the thread's generator
/// (`Uuid::new_v4` asks the kernel for every one: a system call per request).
fn span(state: &AppState, request: &Request, route: Option<&MatchedPath>) -> tracing::Span {
    let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(addr)| *addr);
    let settings = &state.settings;
    let origin = crate::forwarded::origin(request.headers(), peer, settings.tls.is_some(), &settings.trusted_proxies);
    let request_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = route.map_or("", MatchedPath::as_str),
        client = %crate::forwarded::Client(origin.client),
        scheme = origin.scheme
    )
}

/// The checks, then the route.
async fn checked(state: &AppState, request: Request, next: Next) -> Response {
    let refusal = crate::limits::token_refusal(state, request.headers())
        .or_else(|| crate::extract::protocol_refusal(request.headers()))
        .or_else(|| crate::extract::nul_in_path(request.uri().path()))
        .or_else(|| crate::limits::declared_too_large(state, &request));
    match refusal {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_decided_5xx_are_logged_below_error() {
        let level = |status: u16, code| refusal_level(StatusCode::from_u16(status).unwrap(), code);
        assert_eq!(level(503, Some(ErrorCode::WorkspaceUnavailable)), Some(Level::INFO));
        assert_eq!(level(503, Some(ErrorCode::ServerBusy)), Some(Level::WARN));
        assert_eq!(level(503, Some(ErrorCode::Unavailable)), None, "the database is down: an error");
        assert_eq!(level(500, Some(ErrorCode::Internal)), None);
        assert_eq!(level(500, Some(ErrorCode::SecretDecryptFailed)), None);
        assert_eq!(level(500, None), None, "a panic or a bare 500");
        assert_eq!(level(404, Some(ErrorCode::NotFound)), None, "not a 5xx");
    }
}
