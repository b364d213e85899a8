//! `GET /workspaces/{id}/wait`: a long poll that answers when a workspace
//! reaches a status or a condition, when the time runs out, or when it can
//! no longer happen (the workspace is removed). It re-reads the workspace
//! whenever the event bus says the log grew (every status and condition
//! change writes an event), and once a second as the event streams do, so
//! another replica's change is seen too. Scripts (`hearth workspace wait`)
//! wait on this instead of polling.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hearth_api::{ApiErrorBody, ErrorCode, WaitFor, WaitOutcome, WaitResponse};
use hearth_core::WorkspaceId;
use serde::Deserialize;

use crate::bus::POLL_INTERVAL;
use crate::caller::OperatorToken;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::workspaces::{visible_workspace, workspace_response};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(wait_for))
}

/// The longest wait one request may ask for.
pub const MAX_WAIT_SECS: u64 = 300;
/// How long a wait lasts when the request does not say.
pub const DEFAULT_WAIT_SECS: u64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// `status=STATUS` (such as `status=online`) or `condition=TYPE` (that
    /// condition `True`: `Live`, `AssetsDelivered`, `PluginsInstalled`,
    /// `AgentRunning`).
    #[serde(rename = "for")]
    #[param(rename = "for")]
    waited_for: String,
    /// Seconds to wait at most (0 to 300, default 30). The answer comes
    /// earlier when the server's request deadline is shorter; ask again to
    /// keep waiting.
    #[param(minimum = 0, maximum = 300)]
    timeout: Option<u64>,
}

/// Wait until the workspace is in a status or has a condition `True`.
/// Always 200 once the workspace is found: `outcome` is `met`, `timed_out`
/// or `impossible` (removed), with the workspace as it was then. A token
/// holding `--max-waits-per-token` waits gets 429, a server holding
/// `--max-long-polls` event streams and waits 503 (both with `Retry-After`).
#[utoipa::path(get, path = "/workspaces/{id}/wait", tag = "workspaces", params(("id" = uuid::Uuid, Path), WaitQuery),
    responses((status = 200, body = WaitResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody)))]
pub async fn wait_for(
    State(state): State<AppState>,
    OperatorToken { operator, token_hash }: OperatorToken,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> ApiResult<Json<WaitResponse>> {
    let target: WaitFor =
        query.waited_for.parse().map_err(|m: String| ApiError::bad_request(ErrorCode::InvalidQuery, m).field("for"))?;
    let asked = query.timeout.unwrap_or(DEFAULT_WAIT_SECS);
    if asked > MAX_WAIT_SECS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("timeout must be between 0 and {MAX_WAIT_SECS} seconds, got {asked}"),
        )
        .field("timeout"));
    }
    let _slot = crate::routes::long_polls::long_poll_slot(&state, crate::bus::LongPollKind::Wait, token_hash)?;
    // Answer before the request deadline would cut this handler off.
    let budget = state.settings.request_timeout.saturating_sub(Duration::from_secs(1)).max(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(asked).min(budget);
    let mut wake = state.bus.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return Err(shutting_down());
        }
        // Marked before reading: a change committed after this wakes us.
        wake.mark_unchanged();
        let workspace = visible_workspace(&state, operator, id).await?;
        let desired = state.store.desired_state_for_workspace(id).await?;
        let current = workspace_response(&workspace, &desired);
        let answer = |outcome: WaitOutcome, message: String| {
            Ok(Json(WaitResponse { outcome, waited_for: target.to_string(), message, workspace: current.clone() }))
        };
        if target.is_met(&current) {
            return answer(WaitOutcome::Met, format!("workspace {id} has {target}"));
        }
        if let Some(why) = target.impossible(&current) {
            return answer(WaitOutcome::Impossible, why);
        }
        if tokio::time::Instant::now() >= deadline {
            return answer(
                WaitOutcome::TimedOut,
                format!("workspace {id} does not have {target} yet; it is {}", current.status),
            );
        }
        let poll = tokio::time::Instant::now() + POLL_INTERVAL;
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return Err(shutting_down()) },
            _ = shutdown.changed() => return Err(shutting_down()),
            _ = tokio::time::sleep_until(poll.min(deadline)) => {}
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "the server is shutting down; wait again")
}
