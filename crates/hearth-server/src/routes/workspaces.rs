//! Workspaces: operator CRUD and lifecycle actions, the runtime's `/state`.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use hearth_api::{
    ApiErrorBody, Condition, CreateWorkspaceRequest, CreateWorkspacesRequest, CreateWorkspacesResponse, DeleteResponse,
    ErrorCode, StateResponse, StatusResponse, WorkspaceCounts, WorkspaceResponse,
};
use hearth_core::reconcile::{ConditionStatus, DesiredState};
use hearth_core::{By, Input, OrgId, WorkspaceId, WorkspaceStatus};
use hearth_store::{NewToken, NewWorkspace, StoreError, Workspace, WorkspaceCursor, WorkspaceFilter, WorkspacePage};
use serde::Deserialize;

use crate::auth::{self, Bearer, IfRemoved, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::orgs::{acting_org, listed_org, ListOrgQuery, OrgQuery};
use crate::routes::workspace_spec::WorkspaceSpec;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_workspace, list_workspaces))
        .routes(routes!(create_workspaces))
        .routes(routes!(workspace_counts))
        .routes(routes!(get_workspace, delete_workspace))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(restart))
        .routes(routes!(hibernate))
        .routes(routes!(workspace_state))
}

/// Loads a workspace the operator may see; another org's is "not found".
pub(crate) async fn visible_workspace(state: &AppState, operator: Operator, id: WorkspaceId) -> ApiResult<Workspace> {
    let workspace = state.store.get_workspace(id).await?;
    if !operator.can_see(&workspace) {
        return Err(ApiError::not_found("workspace not found"));
    }
    Ok(workspace)
}

/// The workspace, if the caller is its runtime or an operator who may see
/// it. A removed workspace is refused (410) to everyone unless the route
/// answers for removed workspaces (`/state` only).
pub(crate) async fn workspace_for_runtime_or_operator(
    state: &AppState,
    bearer: &Bearer,
    id: WorkspaceId,
    if_removed: IfRemoved,
) -> ApiResult<Workspace> {
    let workspace = match state.auth.workspace_or_operator(&*state.store, bearer, id, if_removed).await? {
        Some(operator) => visible_workspace(state, operator, id).await?,
        None => state.store.get_workspace(id).await?,
    };
    if workspace.status == WorkspaceStatus::Removed && if_removed == IfRemoved::Refuse {
        return Err(hearth_core::Rejection::Removed.into());
    }
    Ok(workspace)
}

pub(crate) fn conditions(w: &Workspace) -> Vec<Condition> {
    let live = w.status.is_available();
    let mut all = vec![Condition {
        kind: "Live".into(),
        status: ConditionStatus::from(live).as_str().into(),
        reason: format!("{:?}", w.status),
        message: match w.last_heartbeat_at {
            Some(at) => format!("workspace is {}; last heartbeat at {}", w.status, at.to_rfc3339()),
            None => format!("workspace is {}; no heartbeat yet", w.status),
        },
        last_transition_time: w.status_changed_at,
    }];
    all.extend(w.conditions.iter().map(Condition::from));
    all
}

pub(crate) fn workspace_response(w: &Workspace, desired: &DesiredState) -> WorkspaceResponse {
    WorkspaceResponse {
        id: w.id,
        org_id: w.org_id.0,
        name: w.name.clone(),
        role: w.role.clone(),
        tier: w.tier,
        status: w.status,
        url: w.url.clone(),
        agent_card: w.agent_card.clone(),
        parent_id: w.parent_id,
        template: w.template.clone(),
        runtime: w.runtime.clone(),
        model: w.model.clone(),
        max_concurrent_tasks: w.max_concurrent_tasks,
        budget_limit: w.budget_limit,
        external: w.external,
        last_heartbeat_at: w.last_heartbeat_at,
        last_error_rate: w.last_error_rate,
        last_sample_error: w.last_sample_error.clone(),
        active_tasks: w.active_tasks,
        uptime_seconds: w.uptime_seconds,
        current_task: w.current_task.clone(),
        monthly_spend: w.monthly_spend,
        runtime_state: w.runtime_state.clone(),
        runtime_metadata: w.runtime_metadata.clone(),
        conditions: conditions(w),
        desired_plugins: hearth_api::Desired::from(desired).plugins,
        installed_plugins: w
            .installed_plugins
            .iter()
            .map(|p| hearth_api::InstalledPlugin { name: p.name.clone(), sha256: p.sha256.clone() })
            .collect(),
        reported_assets_digest: w.reported_assets_digest.clone(),
        status_changed_at: w.status_changed_at,
        created_at: w.created_at,
        updated_at: w.updated_at,
        auth_token: None,
    }
}

/// Create a workspace; it starts in `provisioning`.
#[utoipa::path(post, path = "/workspaces", tag = "workspaces", request_body = CreateWorkspaceRequest, params(OrgQuery),
    responses((status = 201, body = WorkspaceResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
pub async fn create_workspace(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> ApiResult<(StatusCode, Json<WorkspaceResponse>)> {
    let mut templates = HashMap::new();
    let org = acting_org(&state, operator, &in_org).await?;
    let prepared = prepare(&state, (org, operator.by()), req, &mut templates).await?;
    let created = state.store.create_workspace(prepared.new, prepared.token).await?;
    state.bus.wake();
    tracing::info!(workspace_id = %created.id, name = %created.name, "workspace created");
    let mut body = workspace_response(&created, &prepared.desired);
    body.auth_token = prepared.secret;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Workspaces a batch creates at most.
pub const MAX_CREATE_BATCH: usize = 1000;

/// Create up to 1000 workspaces in one request, all or none (the bulk
/// registration path: one transaction instead of one per workspace). Each
/// item is checked like `POST /workspaces`; a refusal names the item
/// (`workspaces[3].tier`) and nothing is created. A `parent_id` must name a
/// workspace that exists before the batch.
#[utoipa::path(post, path = "/workspaces/batch", tag = "workspaces", request_body = CreateWorkspacesRequest, params(OrgQuery),
    responses((status = 201, body = CreateWorkspacesResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create_workspaces(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
    ApiJson(req): ApiJson<CreateWorkspacesRequest>,
) -> ApiResult<(StatusCode, Json<CreateWorkspacesResponse>)> {
    let count = req.workspaces.len();
    if !(1..=MAX_CREATE_BATCH).contains(&count) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            format!("workspaces must hold 1 to {MAX_CREATE_BATCH} workspaces, got {count}"),
        )
        .field("workspaces"));
    }
    let org = acting_org(&state, operator, &in_org).await?;
    let mut templates = HashMap::new();
    let mut prepared = Vec::with_capacity(count);
    for (index, item) in req.workspaces.into_iter().enumerate() {
        let one = prepare(&state, (org, operator.by()), item, &mut templates).await;
        prepared.push(one.map_err(|error| error.item("workspaces", index))?);
    }
    let (batch, answers): (Vec<_>, Vec<_>) =
        prepared.into_iter().map(|p| ((p.new, p.token), (p.secret, p.desired))).unzip();
    let created = state.store.create_workspaces(batch).await?;
    state.bus.wake();
    if let (Some(first), Some(last)) = (created.first(), created.last()) {
        tracing::info!(count = created.len(), first_workspace_id = %first.id, last_workspace_id = %last.id,
            "workspaces created in a batch");
    }
    let workspaces = created
        .iter()
        .zip(answers)
        .map(|(row, (secret, desired))| {
            let mut body = workspace_response(row, &desired);
            body.auth_token = secret;
            body
        })
        .collect();
    Ok((StatusCode::CREATED, Json(CreateWorkspacesResponse { workspaces })))
}

/// A checked request to create a workspace, ready for the store.
struct Prepared {
    new: NewWorkspace,
    token: Option<NewToken>,
    /// The token's secret, shown once in the response.
    secret: Option<String>,
    desired: DesiredState,
}

/// Checks `req` for `org` (its fields, [`WorkspaceSpec::parse`]; then its
/// template and parent in the store) and mints
/// its token if it asks for one. `templates` remembers the desired states
/// read so far in this request.
async fn prepare(
    state: &AppState,
    (org, by): (OrgId, By),
    req: CreateWorkspaceRequest,
    templates: &mut HashMap<String, DesiredState>,
) -> ApiResult<Prepared> {
    let spec = WorkspaceSpec::parse(req, state.settings.allow_private_agent_urls)?;
    // The desired state doubles as the existence check of the template.
    let desired = match &spec.template {
        Some(name) => match templates.get(name) {
            Some(desired) => desired.clone(),
            None => {
                let desired = state.store.desired_state(org, name).await?.ok_or_else(|| {
                    ApiError::unprocessable(
                        ErrorCode::UnknownTemplate,
                        format!("template {name:?} does not exist; push it first"),
                    )
                    .field("template")
                })?;
                templates.insert(name.clone(), desired.clone());
                desired
            }
        },
        None => DesiredState::default(),
    };
    if let Some(parent) = spec.parent_id {
        // Another org's or a removed workspace is no parent either.
        match state.store.get_workspace(parent).await {
            Ok(ws) if ws.org_id == org && ws.status != WorkspaceStatus::Removed => {}
            Ok(_) | Err(StoreError::NotFound(_)) => {
                return Err(ApiError::unprocessable(
                    ErrorCode::UnknownParent,
                    format!("parent_id: workspace {parent} does not exist"),
                )
                .field("parent_id"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let new = NewWorkspace {
        id: WorkspaceId::new_random(),
        org_id: org,
        name: spec.name,
        role: spec.role,
        tier: spec.tier,
        parent_id: spec.parent_id,
        template: spec.template,
        runtime: spec.runtime,
        model: spec.model,
        max_concurrent_tasks: spec.max_concurrent_tasks,
        budget_limit: spec.budget_limit,
        external: spec.external,
        url: spec.url,
        now: Utc::now(),
        by,
    };
    let minted = spec.issue_token.then(|| auth::mint(org, new.id, Some("issued".into())));
    let (secret, token) = match minted {
        Some(m) => (Some(m.secret), Some(m.record)),
        None => (None, None),
    };
    Ok(Prepared { new, token, secret, desired })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include removed workspaces (tombstones).
    #[serde(default)]
    include_removed: bool,
    /// Workspaces per page (1 to 1000, default 500).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Where the previous page ended: its `X-Next-Cursor`.
    cursor: Option<String>,
    /// Only workspaces in this status (`removed` needs `include_removed`;
    /// empty: any status).
    status: Option<String>,
    /// Only workspaces whose name contains this text (ASCII case ignored).
    q: Option<String>,
    /// Only workspaces created from this template (its name).
    template: Option<String>,
    /// Only workspaces that want this plugin (their template declares it or
    /// an operator added it).
    plugin: Option<String>,
    /// Only this org's workspaces (the admin token; an org token lists its
    /// own org, and naming another is 404).
    org: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> ApiResult<WorkspaceFilter> {
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(text.parse::<WorkspaceStatus>().map_err(|_| {
                let all: Vec<&str> = WorkspaceStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("status must be one of {}, got {text:?}", all.join(", ")),
                )
                .field("status")
            })?),
        };
        let text = |value: &Option<String>, field: &'static str| -> ApiResult<Option<String>> {
            match value.as_deref().filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if v.chars().count() > 255 || v.chars().any(char::is_control) => Err(ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("{field} must be at most 255 characters, no control characters"),
                )
                .field(field)),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        Ok(WorkspaceFilter {
            status,
            name_contains: text(&self.q, "q")?,
            template: text(&self.template, "template")?,
            plugin: text(&self.plugin, "plugin")?,
        })
    }

    /// The query up to the paging parameters, for the next page's `Link`.
    fn link_prefix(&self, filter: &WorkspaceFilter, org: Option<OrgId>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("include_removed", if self.include_removed { "true" } else { "false" });
        if let (Some(org), Some(_)) = (org, &self.org) {
            query.append_pair("org", &org.to_string());
        }
        if let Some(status) = filter.status {
            query.append_pair("status", status.as_str());
        }
        for (key, value) in [("q", &filter.name_contains), ("template", &filter.template), ("plugin", &filter.plugin)] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        format!("/workspaces?{}&", query.finish())
    }
}

/// Workspaces of the caller's org (all orgs for the admin), in creation
/// order, one page at a time: two queries per page whatever its size. When
/// more remain, `X-Next-Cursor` holds the cursor of the next page and `Link`
/// (`rel="next"`) its URL.
#[utoipa::path(get, path = "/workspaces", tag = "workspaces", params(ListQuery),
    responses((status = 200, body = Vec<WorkspaceResponse>,
            headers(("x-next-cursor" = String, description = "the next page's cursor, when there is one"),
                ("link" = String, description = "`<url>; rel=\"next\"`, when there is a next page"))),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<(axum::http::HeaderMap, Json<Vec<WorkspaceResponse>>)> {
    let limit = crate::paging::limit(query.limit)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(WorkspaceCursor::parse(text).ok_or_else(|| crate::paging::bad_cursor(text))?),
    };
    let filter = query.filter()?;
    let org = listed_org(&state, operator, query.org.as_deref()).await?;
    // One more than asked tells whether another page follows.
    let page = WorkspacePage { org, include_removed: query.include_removed, after, limit: limit + 1 };
    let mut rows = if filter.is_empty() {
        state.store.list_workspaces_page(page).await?
    } else {
        state.store.list_workspaces_filtered(page, &filter).await?
    };
    let next = crate::paging::trim(&mut rows, limit).map(|(last, _)| WorkspaceCursor::of(last).encode()).transpose()?;
    let prefix = query.link_prefix(&filter, org);
    let headers = crate::paging::next_headers(&prefix, limit, next)?;
    Ok((headers, Json(rows.iter().map(|(w, desired)| workspace_response(w, desired)).collect())))
}

#[utoipa::path(get, path = "/workspaces/{id}", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = WorkspaceResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn get_workspace(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<WorkspaceResponse>> {
    let workspace = visible_workspace(&state, operator, id).await?;
    let desired = state.store.desired_state_for_workspace(workspace.id).await?;
    Ok(Json(workspace_response(&workspace, &desired)))
}

/// Delete a workspace and its descendants. Idempotent.
#[utoipa::path(delete, path = "/workspaces/{id}", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = DeleteResponse), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 400, body = ApiErrorBody)))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<DeleteResponse>> {
    visible_workspace(&state, operator, id).await?;
    let deleted = state.transitions.delete(id, operator.by()).await?;
    for removed in &deleted.removed {
        state.forget_workspace(*removed);
    }
    Ok(Json(DeleteResponse { status: "removed".into(), cascade_deleted: deleted.cascade_deleted }))
}

/// An operator's lifecycle action (`action` names the operator in the input,
/// so its events say who acted).
async fn lifecycle(
    state: AppState,
    operator: Operator,
    id: WorkspaceId,
    action: fn(By) -> Input,
) -> ApiResult<Json<StatusResponse>> {
    visible_workspace(&state, operator, id).await?;
    let input = action(operator.by());
    // A resume or a restart may start a runtime: within the org's `running`
    // quota, under its lock.
    let applied = match input {
        Input::Resume(_) | Input::Restart(_) => state.transitions.apply_starting(id, input).await?,
        _ => state.transitions.apply(id, input).await?,
    };
    Ok(Json(StatusResponse { status: applied.workspace.status.as_str().into() }))
}

#[utoipa::path(post, path = "/workspaces/{id}/pause", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 409, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<StatusResponse>> {
    lifecycle(state, operator, id, Input::Pause).await
}

#[utoipa::path(post, path = "/workspaces/{id}/resume", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 409, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<StatusResponse>> {
    lifecycle(state, operator, id, Input::Resume).await
}

#[utoipa::path(post, path = "/workspaces/{id}/restart", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 409, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<StatusResponse>> {
    lifecycle(state, operator, id, Input::Restart).await
}

#[utoipa::path(post, path = "/workspaces/{id}/hibernate", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StatusResponse), (status = 409, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn hibernate(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<StatusResponse>> {
    lifecycle(state, operator, id, Input::Hibernate).await
}

/// What the runtime should be doing. After delete: 404 with `deleted: true`,
/// also for the workspace's own token, so a runtime learns it must exit.
#[utoipa::path(get, path = "/workspaces/{id}/state", tag = "workspaces", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = StateResponse), (status = 401, body = ApiErrorBody), (status = 404, body = StateResponse), (status = 400, body = ApiErrorBody)))]
pub async fn workspace_state(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<(StatusCode, Json<StateResponse>)> {
    let workspace = workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Answer).await?;
    let removed = workspace.status == WorkspaceStatus::Removed;
    let body = StateResponse {
        workspace_id: id,
        status: workspace.status,
        paused: workspace.status.is_stopped(),
        deleted: removed,
        error: removed.then(|| "workspace removed".to_owned()),
        code: removed.then_some(ErrorCode::NotFound),
    };
    Ok((if removed { StatusCode::NOT_FOUND } else { StatusCode::OK }, Json(body)))
}

/// How many workspaces of the caller's org (all orgs for the admin) are in
/// each status: one grouped query, for the dashboard's fleet summary.
#[utoipa::path(get, path = "/workspaces/counts", tag = "workspaces", params(ListOrgQuery),
    responses((status = 200, body = WorkspaceCounts), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub async fn workspace_counts(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<ListOrgQuery>,
) -> ApiResult<Json<WorkspaceCounts>> {
    let org = listed_org(&state, operator, query.org()).await?;
    let counted = state.store.count_workspaces_by_status(org).await?;
    Ok(Json(counts(counted)))
}

/// [`WorkspaceCounts`] from the store's counts (every status, zero
/// included; removed ones not in the total).
pub(crate) fn counts(counted: Vec<(WorkspaceStatus, i64)>) -> WorkspaceCounts {
    let mut by_status: std::collections::BTreeMap<String, i64> =
        WorkspaceStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    let mut total = 0;
    for (status, count) in counted {
        by_status.insert(status.as_str().to_owned(), count);
        if status != WorkspaceStatus::Removed {
            total += count;
        }
    }
    WorkspaceCounts { total, by_status }
}
