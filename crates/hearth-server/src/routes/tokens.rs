//! Org API tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hearth_api::{ApiErrorBody, CreateTokenRequest, ErrorCode, StatusResponse, TokenResponse};
use hearth_core::TokenId;
use hearth_store::Token;

use crate::auth::{self, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, parse_json};
use crate::state::AppState;

pub(crate) fn token_response(t: &Token) -> TokenResponse {
    TokenResponse {
        id: t.id.0,
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        workspace_id: t.workspace_id,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
        auth_token: None,
    }
}

/// Create an org API token (the secret is returned once).
#[utoipa::path(post, path = "/org/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 201, body = TokenResponse), (status = 401, body = ApiErrorBody)))]
pub async fn create_org_token(
    State(state): State<AppState>,
    operator: Operator,
    body: bytes::Bytes,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    // The body is optional: an empty one means "no name".
    let request: CreateTokenRequest =
        if body.iter().all(u8::is_ascii_whitespace) { CreateTokenRequest::default() } else { parse_json(&body)? };
    let name = request.name;
    if let Some(name) = &name {
        hearth_core::validate::name("name", name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidField, m))?;
    }
    let minted = auth::mint(operator.org(), None, name);
    let token = state.store.insert_token(minted.record).await?;
    tracing::info!(token_id = %token.id, org_id = %token.org_id, "org token created");
    let mut body = token_response(&token);
    body.auth_token = Some(minted.secret);
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(get, path = "/org/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenResponse>), (status = 401, body = ApiErrorBody)))]
pub async fn list_org_tokens(State(state): State<AppState>, operator: Operator) -> ApiResult<Json<Vec<TokenResponse>>> {
    let tokens = state.store.list_org_tokens(operator.org()).await?;
    Ok(Json(tokens.iter().map(token_response).collect()))
}

#[utoipa::path(delete, path = "/org/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = StatusResponse), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn revoke_org_token(
    State(state): State<AppState>,
    operator: Operator,
    Path(raw): Path<String>,
) -> ApiResult<Json<StatusResponse>> {
    let id: TokenId = parse_id(&raw, "token id")?;
    state.store.revoke_token(operator.org(), id, Utc::now()).await?;
    tracing::info!(token_id = %id, "org token revoked");
    Ok(Json(StatusResponse { status: "revoked".into() }))
}
