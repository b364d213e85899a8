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
//! route. A 5xx answer is logged at `error` in the request's span; every
//! answer at `debug` (`RUST_LOG=hearth_server::edge=debug`).

use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::state::AppState;

/// The middleware (`routes::router` applies it to every route).
pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = span(&state, &request, route.as_ref());
    let answer = crate::limits::deadline(state.settings.request_timeout, checked(&state, request, next));
    let response = answer.instrument(span.clone()).await;
    let status = response.status();
    crate::metrics::request(&method, route.as_ref(), status, started);
    let _entered = span.enter();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    } else {
        tracing::debug!(status = status.as_u16(), latency_ms, "response sent");
    }
    response
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
        .or_else(|| crate::extract::nul_in_path(request.uri().path()));
    match refusal {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}
