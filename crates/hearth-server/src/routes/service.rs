//! Service endpoints: health, readiness, build info, metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_api::{ApiErrorBody, BuildInfo, ErrorCode, StatusResponse};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(buildinfo))
        .routes(routes!(metrics))
}

/// Old platform's health check.
#[utoipa::path(get, path = "/health", tag = "service", security(()), responses((status = 200, body = StatusResponse)))]
pub async fn health() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok".into() })
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "service", security(()), responses((status = 200, body = StatusResponse)))]
pub async fn healthz() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok".into() })
}

/// The database is reachable and migrated.
#[utoipa::path(get, path = "/readyz", tag = "service", security(()),
    responses((status = 200, body = StatusResponse), (status = 503, body = ApiErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<StatusResponse>> {
    state.store.ping().await?;
    let applied = state.store.schema_version().await?;
    let expected = state.store.expected_schema_version();
    if applied < expected {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotMigrated,
            format!("database schema is at version {applied}, this build needs {expected}; run hearth migrate"),
        ));
    }
    Ok(Json(StatusResponse { status: "ready".into() }))
}

#[utoipa::path(get, path = "/buildinfo", tag = "service", security(()),
    responses((status = 200, body = BuildInfo), (status = 503, body = ApiErrorBody)))]
pub async fn buildinfo(State(state): State<AppState>) -> ApiResult<Json<BuildInfo>> {
    let build = &state.build;
    Ok(Json(BuildInfo {
        version: build.version.into(),
        git_sha: build.git_sha.into(),
        git_dirty: build.git_dirty,
        built_at: build.built_at.clone(),
        rustc: build.rustc.into(),
        database: state.store.engine().as_str().into(),
        schema_version: state.store.schema_version().await?,
        provisioner: match state.settings.provisioner {
            crate::config::ProvisionerKind::None => "none",
            crate::config::ProvisionerKind::Process => "process",
            crate::config::ProvisionerKind::Docker => "docker",
        }
        .into(),
        protocol_versions: (hearth_api::MIN_PROTOCOL_VERSION..=hearth_api::PROTOCOL_VERSION).collect(),
    }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "service", security(()), responses((status = 200, description = "Prometheus text")))]
pub async fn metrics() -> Response {
    let body = crate::metrics::handle().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
