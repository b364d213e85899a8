//! What every request passes before its route, as one middleware: its
//! span (request id, method, route, client, scheme, and the token id once
//! authenticated: every log line of the request carries them), its count and duration (`metrics.rs`), its
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
//! it ([`crate::error::refusal_level`]: a `discover` of a target that is not online, a
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

use crate::auth::Presented;
use crate::error::ApiError;
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
        match crate::error::refusal_level(status, code) {
            Some(level) => log_at(level, status, latency_ms, "response refused"),
            None => tracing::error!(status = status.as_u16(), latency_ms, "response failed"),
        }
    } else {
        tracing::debug!(status = status.as_u16(), latency_ms, "response sent");
    }
    response
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
        scheme = origin.scheme,
        // The id of the token that authenticated (never the token), or
        // `admin`: recorded by `auth` once the token is resolved.
        token_id = tracing::field::Empty,
    )
}

/// The checks, then the route. The bearer token is read and hashed once
/// here, for the rate limit and for the route's extractors.
async fn checked(state: &AppState, mut request: Request, next: Next) -> Response {
    let token = Presented::from_headers(request.headers());
    let refusal = token_refusal(state, token.as_ref())
        .or_else(|| crate::extract::protocol_refusal(request.headers()))
        .or_else(|| crate::extract::nul_in_path(request.uri().path()))
        .or_else(|| declared_too_large(state, &request));
    if let Some(refusal) = refusal {
        return refusal.into_response();
    }
    if let Some(token) = token {
        request.extensions_mut().insert(token);
    }
    next.run(request).await
}

/// A 429 `too_many_requests` with `Retry-After` for a token over its rate
/// (checked before the route).
fn token_refusal(state: &AppState, token: Option<&Presented>) -> Option<ApiError> {
    let wait = state.limits.check(&token?.hash).err()?;
    metrics::counter!("hearth_rate_limited_total", "scope" => "token").increment(1);
    Some(
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            format!(
                "this token sends more than {} requests per second; slow down",
                state.settings.rate_limit_per_token
            ),
        )
        .retry_after(wait),
    )
}

/// A 413 `body_too_large` for a request whose declared `Content-Length`
/// is over its route's body limit (`--max-upload-bytes` on the upload
/// routes, `--max-body-bytes` elsewhere), answered before the body is read:
/// otherwise the request would wait for a body it may never send (408).
fn declared_too_large(state: &AppState, request: &axum::extract::Request) -> Option<ApiError> {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())?;
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
    let (limit, flag) = if route.is_some_and(|route| crate::uploads::is_upload_route(request.method(), route)) {
        (state.settings.max_upload_bytes, "--max-upload-bytes")
    } else {
        (state.settings.max_body_bytes, "--max-body-bytes")
    };
    (declared > limit as u64).then(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("request body is too large: Content-Length {declared} is over the limit of {limit} bytes ({flag})"),
        )
    })
}
