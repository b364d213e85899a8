//! Org API tokens, and the tokens of one workspace (issue, rotate, list, revoke).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hearth_api::{
    ApiErrorBody, CreateTokenRequest, CreateWorkspaceTokenRequest, ErrorCode, StatusResponse, TokenResponse,
    WhoamiResponse,
};
use hearth_core::{Role, TokenId, WorkspaceId, WorkspaceStatus};
use hearth_store::Token;

use crate::auth::{self, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, ApiPath, ApiQuery};
use crate::routes::orgs::{acting_org, OrgQuery};
use crate::routes::workspaces::visible_workspace;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace_token, list_workspace_tokens))
        .routes(routes!(revoke_workspace_token))
        .routes(routes!(create_org_token, list_org_tokens))
        .routes(routes!(revoke_org_token))
        .routes(routes!(whoami))
}

pub(crate) fn token_response(t: &Token) -> TokenResponse {
    TokenResponse {
        id: t.id.0,
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        workspace_id: t.workspace_id,
        role: t.role,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
        auth_token: None,
    }
}

/// What the presented token is: its role, its org and its id (the
/// dashboard shows the signed-in role; scripts check a token before use).
#[utoipa::path(get, path = "/whoami", tag = "tokens",
    responses((status = 200, body = WhoamiResponse), (status = 401, body = ApiErrorBody)))]
pub async fn whoami(operator: Operator) -> Json<WhoamiResponse> {
    Json(WhoamiResponse {
        role: operator.role(),
        org_id: operator.scope().map(|org| org.0),
        token_id: operator.token_id().map(|token| token.0),
    })
}

/// Create an org API token (the secret is returned once), in the caller's
/// org (the admin: `?org=ID`, default the default org). An org holds at
/// most `--max-org-tokens` live ones (revoked ones do not count): one more
/// is a 409 `limit_reached`.
#[utoipa::path(post, path = "/org/tokens", tag = "tokens", request_body = Option<CreateTokenRequest>, params(OrgQuery),
    responses((status = 201, body = TokenResponse), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn create_org_token(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<OrgQuery>,
    body: bytes::Bytes,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    // The body is optional: an empty one means "no name".
    let request: CreateTokenRequest = optional_body(&body)?;
    let CreateTokenRequest { name, role } = request;
    let role = role.unwrap_or(Role::Owner);
    if role == Role::Admin {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "role: an org token is an owner, operator or viewer; the admin token is configured, not created",
        ));
    }
    if let Some(name) = &name {
        hearth_core::validate::name("name", name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidField, m))?;
    }
    let org = acting_org(&state, operator, &query).await?;
    let minted = auth::mint_org(org, role, name);
    let max = state.settings.max_org_tokens;
    let token = match state.store.insert_org_token(minted.record, max as u64).await {
        Ok(token) => token,
        Err(hearth_store::StoreError::LimitReached { limit, .. }) => {
            return Err(ApiError::conflict(
                ErrorCode::LimitReached,
                format!(
                "this org already holds {limit} live org tokens, the most allowed (--max-org-tokens); revoke one first"
            ),
            ))
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(token_id = %token.id, org_id = %token.org_id, %role, "org token created");
    let mut body = token_response(&token);
    body.auth_token = Some(minted.secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// The org tokens of the caller's org (the admin: `?org=ID`, default the
/// default org), newest first.
#[utoipa::path(get, path = "/org/tokens", tag = "tokens", params(OrgQuery),
    responses((status = 200, body = Vec<TokenResponse>), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn list_org_tokens(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> ApiResult<Json<Vec<TokenResponse>>> {
    let org = acting_org(&state, operator, &query).await?;
    let tokens = state.store.list_org_tokens(org).await?;
    Ok(Json(tokens.iter().map(token_response).collect()))
}

/// Revoke an org API token, at once: one of the caller's org, or of any org
/// for the admin (a leaked token is revoked by its id alone). A workspace's
/// token is not one: its id is 404 here, as an unknown id is (`DELETE /workspaces/{id}/tokens/{token_id}`
/// revokes it).
#[utoipa::path(delete, path = "/org/tokens/{id}", tag = "tokens", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 400, body = ApiErrorBody)))]
pub async fn revoke_org_token(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<TokenId>,
) -> ApiResult<Json<StatusResponse>> {
    state.store.revoke_token(operator.scope(), id, Utc::now()).await.map_err(|error| match error {
        hearth_store::StoreError::NotFound(_) => ApiError::not_found(
            "org token not found (a workspace's token is revoked with DELETE /workspaces/{id}/tokens/{token_id}, \
             or `hearth token revoke TOKEN_ID --workspace ID`)",
        ),
        other => other.into(),
    })?;
    state.auth.forget_token(id);
    tracing::info!(token_id = %id, "org token revoked");
    Ok(Json(StatusResponse { status: "revoked".into() }))
}

/// Longest overlap a rotation may give the tokens it replaces.
const MAX_OVERLAP_SECONDS: u32 = 30 * 24 * 3600;

/// An optional JSON body: none (empty) or `null` (as the document says:
/// `oneOf: [null, …]`) is the default request; anything else must be the
/// JSON of the request type.
fn optional_body<T: serde::de::DeserializeOwned + serde::Serialize + Default>(body: &[u8]) -> ApiResult<T> {
    // Whitespace alone is not JSON: a body that is there must parse.
    if body.is_empty() || body.trim_ascii() == b"null" {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_or_null_body_is_the_default_request() {
        for body in [&b""[..], b"null", b" null "] {
            let request: CreateTokenRequest = optional_body(body).unwrap();
            assert_eq!(request.name, None, "{body:?}");
        }
        let named: CreateTokenRequest = optional_body(br#"{"name": "ci"}"#).unwrap();
        assert_eq!(named.name.as_deref(), Some("ci"));
        assert!(optional_body::<CreateTokenRequest>(b"42").is_err());
        assert!(optional_body::<CreateTokenRequest>(b"\r").is_err(), "whitespace alone is not JSON (schemathesis)");
        assert!(optional_body::<CreateTokenRequest>(b"  \n").is_err());
    }
}

/// The workspace, if the operator may act on it and it is not removed.
async fn live_workspace(state: &AppState, operator: Operator, id: WorkspaceId) -> ApiResult<hearth_store::Workspace> {
    let workspace = visible_workspace(state, operator, id).await?;
    if workspace.status == WorkspaceStatus::Removed {
        return Err(hearth_core::Rejection::Removed.into());
    }
    Ok(workspace)
}

/// Issue a token for a workspace (shown once). With
/// `revoke_previous_after_seconds`, rotate: the workspace's other tokens stop
/// working after that overlap.
#[utoipa::path(post, path = "/workspaces/{id}/tokens", tag = "tokens", params(("id" = uuid::Uuid, Path)),
    request_body = Option<CreateWorkspaceTokenRequest>,
    responses((status = 201, body = TokenResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn create_workspace_token(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
    body: bytes::Bytes,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let request: CreateWorkspaceTokenRequest = optional_body(&body)?;
    if let Some(name) = &request.name {
        hearth_core::validate::name("name", name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidField, m))?;
    }
    if request.revoke_previous_after_seconds.is_some_and(|s| s > MAX_OVERLAP_SECONDS) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            format!("revoke_previous_after_seconds must be at most {MAX_OVERLAP_SECONDS} (30 days)"),
        )
        .field("revoke_previous_after_seconds"));
    }
    let workspace = live_workspace(&state, operator, id).await?;
    let minted = auth::mint(workspace.org_id, workspace.id, Some(request.name.unwrap_or_else(|| "issued".into())));
    let revoke_others_at = request
        .revoke_previous_after_seconds
        .map(|seconds| minted.record.now + chrono::Duration::seconds(i64::from(seconds)));
    let token = state
        .store
        .issue_workspace_token(hearth_store::NewWorkspaceToken::new(workspace.id, minted.record), revoke_others_at)
        .await?;
    if revoke_others_at.is_some() {
        // The previous tokens now stop at a time: cached entries do not know it.
        state.forget_workspace(workspace.id);
    }
    match revoke_others_at {
        Some(at) => {
            tracing::info!(workspace_id = %workspace.id, token_id = %token.id, previous_until = %at, "workspace token rotated")
        }
        None => tracing::info!(workspace_id = %workspace.id, token_id = %token.id, "workspace token issued"),
    }
    let mut body = token_response(&token);
    body.auth_token = Some(minted.secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// A workspace's tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/workspaces/{id}/tokens", tag = "tokens", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Vec<TokenResponse>), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn list_workspace_tokens(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<Vec<TokenResponse>>> {
    visible_workspace(&state, operator, id).await?;
    let tokens = state.store.list_workspace_tokens(id).await?;
    Ok(Json(tokens.iter().map(token_response).collect()))
}

/// Revoke one of a workspace's tokens, at once.
#[utoipa::path(delete, path = "/workspaces/{id}/tokens/{token_id}", tag = "tokens",
    params(("id" = uuid::Uuid, Path), ("token_id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn revoke_workspace_token(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath((id, token)): ApiPath<(WorkspaceId, TokenId)>,
) -> ApiResult<Json<StatusResponse>> {
    visible_workspace(&state, operator, id).await?;
    state.store.revoke_workspace_token(id, token, Utc::now()).await?;
    state.auth.forget_token(token);
    tracing::info!(workspace_id = %id, token_id = %token, "workspace token revoked");
    Ok(Json(StatusResponse { status: "revoked".into() }))
}
