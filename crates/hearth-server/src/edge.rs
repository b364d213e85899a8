//! What every request passes before its route, as one middleware: its
//! count and duration (`metrics.rs`), its deadline, the per-token rate
//! limit (`limits.rs`), the protocol version and a NUL in the path
//! (`extract.rs`). One layer, not five: each `Router::layer` wraps every
//! route once more, and a request pays a boxed clone of the route and its
//! own future per layer (`perf`: a tenth of the server's cycles under
//! heartbeat load went to the middleware stack, BENCHMARKS.md).
//!
//! The order is the one the separate layers had: a refusal of any check is
//! counted like any answer, and the deadline covers the checks and the route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The middleware (`routes::router` applies it to every route).
pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = crate::limits::deadline(state.settings.request_timeout, checked(&state, request, next)).await;
    crate::metrics::request(&method, route.as_ref(), response.status(), started);
    response
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
