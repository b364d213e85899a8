//! The assets channel: a workspace's template files, by manifest and by path.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_api::{ApiErrorBody, AssetFile, AssetsManifest, ErrorCode};
use hearth_core::bundle_path::BundlePath;
use hearth_core::digest::assets_digest;
use hearth_core::WorkspaceId;
use hearth_store::Template;

use crate::auth::{Bearer, IfRemoved};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::routes::workspaces::workspace_for_runtime_or_operator;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(assets_manifest)).routes(routes!(asset_file))
}

async fn template_of(state: &AppState, bearer: &Bearer, id: WorkspaceId) -> ApiResult<Option<Template>> {
    let workspace = workspace_for_runtime_or_operator(state, bearer, id, IfRemoved::Refuse).await?;
    match &workspace.template {
        Some(name) => Ok(Some(state.store.get_template_by_name(workspace.org_id, name).await?)),
        None => Ok(None),
    }
}

/// The files of the workspace's template and their digest (empty without a template).
#[utoipa::path(get, path = "/workspaces/{id}/assets", tag = "assets", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = AssetsManifest), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn assets_manifest(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<AssetsManifest>> {
    Ok(Json(match template_of(&state, &bearer, id).await? {
        Some(t) => AssetsManifest {
            digest: t.assets_digest.clone(),
            files: t
                .files
                .iter()
                .map(|f| AssetFile { path: f.path.clone(), sha256: f.sha256.clone(), size: f.size })
                .collect(),
        },
        None => AssetsManifest { digest: assets_digest::<&str, &str>(&[]), files: Vec::new() },
    }))
}

/// One asset's bytes, with `ETag: "<sha256>"`.
#[utoipa::path(get, path = "/workspaces/{id}/assets/{*path}", tag = "assets",
    params(("id" = uuid::Uuid, Path), ("path" = String, Path, description = "the file's path in the template")),
    responses((status = 200, content_type = "application/octet-stream", description = "the file"),
        (status = 304, description = "If-None-Match matched"), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn asset_file(
    State(state): State<AppState>,
    bearer: Bearer,
    headers: HeaderMap,
    ApiPath((id, path)): ApiPath<(WorkspaceId, String)>,
) -> ApiResult<Response> {
    let path =
        BundlePath::new(path.clone()).map_err(|e| ApiError::bad_request(ErrorCode::InvalidPath, e.to_string()))?;
    let template = template_of(&state, &bearer, id).await?;
    let file = template
        .as_ref()
        .and_then(|t| t.files.iter().find(|f| f.path == path.as_str()))
        .ok_or_else(|| ApiError::not_found(format!("no asset {path}")))?;
    let etag = format!("\"{}\"", file.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let bytes = state.store.get_blob(&file.sha256).await?;
    Ok((
        [(header::ETAG, etag_value), (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))],
        bytes,
    )
        .into_response())
}
