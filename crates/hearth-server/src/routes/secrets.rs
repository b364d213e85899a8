//! Secrets: sealed with AES-256-GCM before they reach the store.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use hearth_api::{ApiErrorBody, ErrorCode, StatusResponse};
use hearth_core::{OrgId, WorkspaceId};

use crate::auth::{Bearer, IfRemoved, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::orgs::{acting_org, OrgQuery};
use crate::routes::workspaces::{visible_workspace, workspace_for_runtime_or_operator};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_workspace_secrets))
        .routes(routes!(put_org_secrets))
        .routes(routes!(secret_values))
}

fn validate_secrets(secrets: &BTreeMap<String, String>) -> ApiResult<()> {
    for key in secrets.keys() {
        let valid = !key.is_empty()
            && key.len() <= 255
            && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("secret name {key:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 255 characters)"),
            ));
        }
    }
    Ok(())
}

async fn put(
    state: &AppState,
    org: OrgId,
    workspace: Option<WorkspaceId>,
    secrets: BTreeMap<String, String>,
) -> ApiResult<()> {
    validate_secrets(&secrets)?;
    let sealed = secrets
        .iter()
        .map(|(k, v)| {
            state.cipher.seal(org, workspace, k, v).map_err(|e| {
                ApiError::internal(format!("cannot encrypt secret {k:?} of org {org} (workspace {workspace:?}): {e}"))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    state.store.put_secrets(org, workspace, sealed, Utc::now()).await?;
    Ok(())
}

/// Set workspace secrets (merged by name).
#[utoipa::path(put, path = "/workspaces/{id}/secrets", tag = "secrets", params(("id" = uuid::Uuid, Path)),
    request_body = BTreeMap<String, String>,
    responses((status = 200, body = StatusResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn put_workspace_secrets(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(secrets): ApiJson<BTreeMap<String, String>>,
) -> ApiResult<Json<StatusResponse>> {
    let workspace = visible_workspace(&state, operator, id).await?;
    put(&state, workspace.org_id, Some(id), secrets).await?;
    Ok(Json(StatusResponse { status: "updated".into() }))
}

/// Set org secrets (merged by name).
#[utoipa::path(put, path = "/org/secrets", tag = "secrets", request_body = BTreeMap<String, String>, params(OrgQuery),
    responses((status = 200, body = StatusResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn put_org_secrets(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
    ApiJson(secrets): ApiJson<BTreeMap<String, String>>,
) -> ApiResult<Json<StatusResponse>> {
    let org = acting_org(&state, operator, &in_org).await?;
    put(&state, org, None, secrets).await?;
    Ok(Json(StatusResponse { status: "updated".into() }))
}

/// Org secrets overlaid by workspace secrets, decrypted. Never a partial
/// bundle: one value that cannot be decrypted fails the whole call.
#[utoipa::path(get, path = "/workspaces/{id}/secrets/values", tag = "secrets", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = BTreeMap<String, String>), (status = 401, body = ApiErrorBody), (status = 500, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn secret_values(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let workspace = workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Refuse).await?;
    let org = workspace.org_id;
    let mut values = BTreeMap::new();
    let mut broken = Vec::new();
    for (scope, sealed) in
        [(None, state.store.list_secrets(org, None).await?), (Some(id), state.store.list_secrets(org, Some(id)).await?)]
    {
        for secret in sealed {
            match state.cipher.open(org, scope, &secret) {
                Some(value) => {
                    values.insert(secret.key, value);
                }
                None => broken.push(secret.key),
            }
        }
    }
    if !broken.is_empty() {
        tracing::error!(workspace_id = %id, keys = ?broken, "secrets cannot be decrypted (wrong HEARTH_SECRET_KEY?)");
        let mut error = ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::SecretDecryptFailed,
            format!("cannot decrypt secrets: {}", broken.join(", ")),
        )
        .keys(broken.clone());
        error.cause = Some(format!("undecryptable secrets {broken:?} for workspace {id}"));
        return Err(error);
    }
    Ok(Json(values))
}
