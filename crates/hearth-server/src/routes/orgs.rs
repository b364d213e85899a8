//! Organisations: the admin creates, lists and reads them. An org token
//! may not use these routes: 403 `forbidden` (`access.rs`), since the
//! token is valid.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hearth_api::{ApiErrorBody, CreateOrgRequest, DeleteOrgResponse, ErrorCode, OrgQuotas, OrgResponse, OrgUsage};
use hearth_core::OrgId;
use hearth_store::{Org, Quotas, Usage};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org, delete_org))
        .routes(routes!(set_quotas))
}

/// `?org=ID`: the org a request acts in.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// The org to act in: the admin token's choice (default: the default
    /// org); an org token acts in its own org, and naming another is 404.
    org: Option<String>,
}

/// `?org=ID` on a list: which org's.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrgQuery {
    /// Only this org's (the admin token; default: every org); an org token
    /// reads its own org, and naming another is 404.
    org: Option<String>,
}

impl ListOrgQuery {
    /// The org named, as given.
    pub(crate) fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }
}

/// The org a request acts in: the admin's `?org=` (which must exist: 404
/// otherwise) or the default org; an org token's own, where naming another
/// org is the same 404 as anything of another org (no existence leak).
pub(crate) async fn acting_org(state: &AppState, operator: Operator, query: &OrgQuery) -> ApiResult<OrgId> {
    let asked = match query.org.as_deref() {
        Some(raw) => Some(parse_id::<OrgId>(raw, "org id").map_err(|e| e.field("org"))?),
        None => None,
    };
    match (operator, asked) {
        (Operator::Admin, None) => Ok(OrgId::DEFAULT),
        (Operator::Admin, Some(org)) => Ok(state.store.get_org(org).await?.id),
        (Operator::Org { org: own, .. }, None) => Ok(own),
        (Operator::Org { org: own, .. }, Some(org)) if org == own => Ok(own),
        (Operator::Org { .. }, Some(_)) => Err(ApiError::not_found("org not found")),
    }
}

/// The orgs a list reads: the admin's `?org=` (which must exist: 404
/// otherwise) or every org (`None`); an org token's own, where naming
/// another org is 404 as in [`acting_org`].
pub(crate) async fn listed_org(state: &AppState, operator: Operator, org: Option<&str>) -> ApiResult<Option<OrgId>> {
    match (operator, org) {
        (Operator::Admin, None) => Ok(None),
        (_, Some(_)) => Ok(Some(acting_org(state, operator, &OrgQuery { org: org.map(str::to_owned) }).await?)),
        (Operator::Org { org, .. }, None) => Ok(Some(org)),
    }
}

fn org_response(org: Org) -> OrgResponse {
    let Quotas { workspaces, running, template_bytes, plugin_bytes } = org.quotas;
    OrgResponse {
        id: org.id.0,
        name: org.name,
        created_at: org.created_at,
        quotas: OrgQuotas { workspaces, running, template_bytes, plugin_bytes },
        usage: None,
        workspaces: None,
    }
}

/// Create an organisation (admin). Its name is unique and follows the
/// naming rules of a workspace's name. It starts empty: create an org token
/// in it (`POST /org/tokens?org=ID`) for its operators.
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = CreateOrgRequest,
    responses((status = 201, body = OrgResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    _admin: Operator,
    ApiJson(request): ApiJson<CreateOrgRequest>,
) -> ApiResult<(StatusCode, Json<OrgResponse>)> {
    hearth_core::validate::name("name", &request.name)
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidField, m).field("name"))?;
    let org = state.store.create_org(OrgId::new_random(), &request.name, Utc::now()).await?;
    tracing::info!(org_id = %org.id, name = %org.name, "org created");
    Ok((StatusCode::CREATED, Json(org_response(org))))
}

/// Every organisation, by name (admin).
#[utoipa::path(get, path = "/orgs", tag = "orgs",
    responses((status = 200, body = Vec<OrgResponse>), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub async fn list_orgs(State(state): State<AppState>, _admin: Operator) -> ApiResult<Json<Vec<OrgResponse>>> {
    Ok(Json(state.store.list_orgs().await?.into_iter().map(org_response).collect()))
}

/// One organisation with its workspaces counted by status (admin).
#[utoipa::path(get, path = "/orgs/{id}", tag = "orgs", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = OrgResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn get_org(
    State(state): State<AppState>,
    _admin: Operator,
    ApiPath(id): ApiPath<OrgId>,
) -> ApiResult<Json<OrgResponse>> {
    let org = state.store.get_org(id).await?;
    let counted = state.store.count_workspaces_by_status(Some(org.id)).await?;
    let usage = state.store.org_usage(org.id).await?;
    crate::metrics::quota_use(&org, &usage);
    let Usage { workspaces, running, template_bytes, plugin_bytes } = usage;
    let mut response = org_response(org);
    response.workspaces = Some(crate::routes::workspaces::counts(counted));
    response.usage = Some(OrgUsage { workspaces, running, template_bytes, plugin_bytes });
    Ok(Json(response))
}

/// Set an org's quotas (admin): all of them at once; a quota absent or
/// null is none. A quota below what is used now is accepted (nothing more
/// may be added until use falls under it).
#[utoipa::path(put, path = "/orgs/{id}/quotas", tag = "orgs", params(("id" = uuid::Uuid, Path)), request_body = OrgQuotas,
    responses((status = 200, body = OrgResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn set_quotas(
    State(state): State<AppState>,
    _admin: Operator,
    ApiPath(id): ApiPath<OrgId>,
    ApiJson(request): ApiJson<OrgQuotas>,
) -> ApiResult<Json<OrgResponse>> {
    let OrgQuotas { workspaces, running, template_bytes, plugin_bytes } = request;
    for (name, value) in [
        ("workspaces", workspaces),
        ("running", running),
        ("template_bytes", template_bytes),
        ("plugin_bytes", plugin_bytes),
    ] {
        if value.is_some_and(|limit| limit < 0) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("{name} must be 0 or more, or null for no quota"),
            )
            .field(name));
        }
    }
    let quotas = Quotas { workspaces, running, template_bytes, plugin_bytes };
    let org = state.store.set_org_quotas(id, quotas, Utc::now()).await?;
    tracing::info!(org_id = %org.id, ?quotas, "org quotas set");
    Ok(Json(org_response(org)))
}

/// `?cascade=true`: delete an org that still has workspaces.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteOrgQuery {
    /// Remove the org's workspaces first, through their lifecycle (runtimes
    /// told, secrets deleted, events written). Without it, an org with
    /// workspaces is 409.
    cascade: Option<bool>,
}

/// Delete an organisation (admin): refused (409) while it has workspaces
/// that are not removed, unless `?cascade=true`. Its tokens are revoked,
/// its secrets, templates and plugins deleted; its removed workspaces and
/// their events stay. The default org cannot be deleted.
#[utoipa::path(delete, path = "/orgs/{id}", tag = "orgs", params(("id" = uuid::Uuid, Path), DeleteOrgQuery),
    responses((status = 200, body = DeleteOrgResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn delete_org(
    State(state): State<AppState>,
    admin: Operator,
    ApiPath(id): ApiPath<OrgId>,
    ApiQuery(query): ApiQuery<DeleteOrgQuery>,
) -> ApiResult<Json<DeleteOrgResponse>> {
    if id == OrgId::DEFAULT {
        return Err(ApiError::conflict(ErrorCode::Conflict, "the default org cannot be deleted"));
    }
    let org = state.store.get_org(id).await?;
    let mut removed_workspaces = 0;
    if query.cascade == Some(true) {
        for workspace in state.store.list_workspaces(Some(org.id), false).await? {
            let deleted = state.transitions.delete(workspace.id, admin.by()).await?;
            for removed in &deleted.removed {
                state.forget_workspace(*removed);
            }
            removed_workspaces += deleted.removed.len() as u64;
        }
    }
    let revoked = state.store.delete_org(org.id, Utc::now()).await?;
    for token in &revoked {
        state.auth.forget_token(*token);
    }
    tracing::info!(org_id = %org.id, name = %org.name, removed_workspaces, revoked_tokens = revoked.len(), "org deleted");
    Ok(Json(DeleteOrgResponse { status: "deleted".into(), removed_workspaces, revoked_tokens: revoked.len() as u64 }))
}
