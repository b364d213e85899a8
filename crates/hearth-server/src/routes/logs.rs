//! A workspace's runtime log, answered by the provisioner that runs it.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hearth_api::{ApiErrorBody, ErrorCode};
use hearth_core::WorkspaceId;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Bearer, IfRemoved};
use crate::bus::LongPollKind;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::routes::workspaces::workspace_for_runtime_or_operator;
use crate::state::AppState;

/// Lines sent when the request does not say.
pub const DEFAULT_TAIL: usize = 100;
/// Lines a request may ask for at most.
pub const MAX_TAIL: usize = 10_000;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(workspace_logs))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The last lines to send (1 to 10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    tail: Option<usize>,
    /// Keep the answer open and send what the runtime writes next, until
    /// the client goes (it counts as one of the token's event streams).
    #[serde(default)]
    follow: bool,
}

/// The runtime's log (`text/plain`): its last `tail` lines, and with
/// `follow=true` what it writes next. Open to operators of its org and to
/// the workspace's own token. 409 `no_provisioner` when this server starts
/// no runtimes; 404 when it has not started this one (yet). A runtime that
/// crashed keeps its log.
#[utoipa::path(get, path = "/workspaces/{id}/logs", tag = "workspaces", params(("id" = uuid::Uuid, Path), LogsQuery),
    responses((status = 200, content_type = "text/plain", description = "the runtime's log"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 410, body = ApiErrorBody), (status = 429, body = ApiErrorBody),
        (status = 503, body = ApiErrorBody)))]
pub async fn workspace_logs(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let tail = query.tail.unwrap_or(DEFAULT_TAIL);
    if !(1..=MAX_TAIL).contains(&tail) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("tail must be between 1 and {MAX_TAIL} lines, got {tail}"),
        )
        .field("tail"));
    }
    workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Refuse).await?;
    let Some(provisioner) = &state.provisioner else {
        return Err(ApiError::conflict(
            ErrorCode::NoProvisioner,
            "this server starts no runtimes (--provisioner none), so it has no runtime logs; read them where the \
             runtime runs",
        ));
    };
    let slot = match (query.follow, bearer.hash()) {
        (true, Some(key)) => Some(crate::routes::long_polls::long_poll_slot(&state, LongPollKind::Stream, key)?),
        _ => None,
    };
    let log = provisioner.logs(id, tail, query.follow).await.map_err(|error| {
        tracing::error!(workspace_id = %id, %error, "cannot read the runtime's log");
        ApiError::internal(format!("cannot read the runtime's log: {error}"))
    })?;
    let Some(log) = log else {
        return Err(ApiError::not_found(format!(
            "workspace {id} has no runtime log on this server: its runtime has not been started here (yet)"
        )));
    };
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        // An error means the server is gone: stop as well.
        let _stopping = shutdown.wait_for(|stopping| *stopping).await;
    };
    let body = log.take_until(Box::pin(stopping)).map(move |chunk| {
        // The long-poll place is held for as long as the answer streams.
        let _held = &slot;
        chunk.inspect_err(|error| tracing::warn!(workspace_id = %id, %error, "reading the runtime's log failed"))
    });
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(body)).into_response())
}
