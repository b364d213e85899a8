//! Runtime → Hearth: register, heartbeat, update-card, peers, discover.

use std::time::Instant;

use chrono::Utc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hearth_api::{
    ApiErrorBody, DiscoverResponse, ErrorCode, HeartbeatRequest, HeartbeatResponse, Peer, RegisterRequest,
    RegisterResponse, StatusResponse, UpdateCardRequest,
};
use hearth_core::heartbeat::RawHeartbeat;
use hearth_core::{Heartbeat, Input, WorkspaceId};
use hearth_store::{Bootstrap, PeerCursor, PeersPage, StoreError, Workspace};
use serde::Deserialize;

use crate::agent_url;
use crate::auth::{self, Bearer, RequiredBearer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, ApiPath, ApiQuery};
use crate::paging;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes, with their OpenAPI paths.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .routes(routes!(update_card))
        .routes(routes!(peers))
        .routes(routes!(discover))
}

/// Register a runtime for a workspace. Without a bearer token this is the
/// bootstrap, a one-time join that mints the workspace's first token: only
/// for a workspace that never had a token, is still `provisioning` and was
/// created less than `--bootstrap-window` ago; otherwise 401.
#[utoipa::path(post, path = "/registry/register", tag = "registry", request_body = RegisterRequest,
    security((), ("bearer" = [])),
    responses((status = 200, body = RegisterResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Json<RegisterResponse>> {
    agent_url::validate(&req.url, state.settings.allow_private_agent_urls)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidUrl, message).field("url"))?;
    if let Some(card) = &req.agent_card {
        check_card(card)?;
    }
    let agent_card = req.agent_card.unwrap_or(serde_json::json!({}));
    if bearer.is_present() {
        state.auth.workspace(&*state.store, &bearer, req.id).await?;
        state.transitions.apply(req.id, Input::Register { url: req.url, agent_card }).await?;
        tracing::info!(workspace_id = %req.id, "runtime registered");
        return Ok(Json(RegisterResponse { status: "registered".into(), auth_token: None }));
    }
    // The bootstrap. The store decides it under the row lock, in the same
    // transaction as the registration (so of two at once, one mints).
    let Some(created_after) = state.settings.bootstrap_cutoff(Utc::now()) else {
        return Err(bootstrap_refused(req.id));
    };
    let org = state.store.get_workspace(req.id).await?.org_id;
    let minted = auth::mint(org, req.id, Some("bootstrap".into()));
    let token_id = minted.record.id;
    let bootstrap = Bootstrap { url: req.url, agent_card, token: minted.record, created_after };
    match state.transitions.register_minting(req.id, bootstrap).await {
        Ok(_) => {
            metrics::counter!("hearth_bootstraps_total", "outcome" => "minted").increment(1);
            tracing::info!(workspace_id = %req.id, token_id = %token_id,
                "runtime registered without a token; bootstrap minted the workspace's first token");
            Ok(Json(RegisterResponse { status: "registered".into(), auth_token: Some(minted.secret) }))
        }
        Err(StoreError::BootstrapRefused) => Err(bootstrap_refused(req.id)),
        Err(other) => Err(other.into()),
    }
}

/// A register without a token that may not mint one: counted, logged, and
/// answered with what an honest runtime needs, without saying to someone
/// unauthenticated why (the workspace had a token, is past `provisioning`
/// or its bootstrap window, or bootstrap is off).
fn bootstrap_refused(id: WorkspaceId) -> ApiError {
    metrics::counter!("hearth_bootstraps_total", "outcome" => "refused").increment(1);
    tracing::info!(workspace_id = %id, "bootstrap refused: a register without a token minted nothing");
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        format!(
            "missing workspace auth token: workspace {id} does not accept a registration without one; an operator \
             issues its token with `hearth token create --workspace {id}`"
        ),
    )
}

/// A runtime's heartbeat: level-triggered, answered with the desired state.
#[utoipa::path(post, path = "/registry/heartbeat", tag = "registry", request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    RequiredBearer(bearer): RequiredBearer,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    let started = Instant::now();
    state.auth.workspace(&*state.store, &bearer, req.workspace_id).await?;
    let workspace_id = req.workspace_id;
    let heartbeat = Heartbeat::validate(RawHeartbeat::from(req))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.to_string()).field(e.field()))?;
    let (status, desired) = state.heartbeats.handle(workspace_id, heartbeat, Utc::now()).await?;
    state.heartbeats.record_duration(started.elapsed());
    Ok(Json(HeartbeatResponse {
        status: "ok".into(),
        workspace_status: status,
        desired,
        next_heartbeat_seconds: Some(state.pace.next_heartbeat_seconds()),
    }))
}

/// Replace the agent card.
#[utoipa::path(post, path = "/registry/update-card", tag = "registry", request_body = UpdateCardRequest,
    responses((status = 200, body = StatusResponse), (status = 401, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody), (status = 400, body = ApiErrorBody)))]
pub async fn update_card(
    State(state): State<AppState>,
    RequiredBearer(bearer): RequiredBearer,
    ApiJson(req): ApiJson<UpdateCardRequest>,
) -> ApiResult<Json<StatusResponse>> {
    state.auth.workspace(&*state.store, &bearer, req.workspace_id).await?;
    check_card(&req.agent_card)?;
    // An unchanged card writes no event, and is still what the runtime asked for.
    state.transitions.update_agent_card(req.workspace_id, req.agent_card).await?;
    Ok(Json(StatusResponse { status: "updated".into() }))
}

/// A card larger than `hearth_core::agent_card::MAX_AGENT_CARD_BYTES` is a 400.
fn check_card(card: &serde_json::Value) -> ApiResult<()> {
    hearth_core::agent_card::check(card)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidField, message).field("agent_card"))
}

/// Peers per page when the caller does not say. A page of 100 peer rows is
/// ~20 KB of JSON (agent cards aside), and the old SDK, which reads only
/// the first page, still sees every peer of a workspace with up to 100.
pub const DEFAULT_PEERS_PAGE: i64 = 100;

/// How many levels apart an ancestor and its descendant may be for
/// `discover` to find them related: deeper than any real team tree, and a
/// bound on the parent-link walk (one key read per level) whatever the
/// tree holds.
pub const MAX_DISCOVER_GENERATIONS: i32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeersQuery {
    /// Substring filter on name or role (ASCII case ignored).
    q: Option<String>,
    /// Peers per page (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Where the previous page ended: its `X-Next-Cursor`.
    cursor: Option<String>,
}

/// Siblings (same parent; for a root, the other roots of the org), then
/// children, then the parent; removed excluded. The answer is a JSON array
/// (the old SDK's), one page at a time: when more remain, `X-Next-Cursor`
/// holds the next page's cursor and `Link` (`rel="next"`) its URL.
#[utoipa::path(get, path = "/registry/{id}/peers", tag = "registry", params(("id" = uuid::Uuid, Path), PeersQuery),
    responses((status = 200, body = Vec<Peer>,
            headers(("x-next-cursor" = String, description = "the next page's cursor, when there is one"),
                ("link" = String, description = "`<url>; rel=\"next\"`, when there is a next page"))),
        (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn peers(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiQuery(query): ApiQuery<PeersQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<Peer>>)> {
    state.auth.workspace(&*state.store, &bearer, id).await?;
    let limit = paging::limit_or(query.limit, DEFAULT_PEERS_PAGE)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(PeerCursor::parse(text).ok_or_else(|| paging::bad_cursor(text))?),
    };
    let contains = query.q.filter(|q| !q.is_empty());
    let me = state.store.get_workspace(id).await?;
    // One more than asked tells whether another page follows.
    let page = PeersPage {
        org: me.org_id,
        workspace: me.id,
        parent: me.parent_id,
        after,
        name_or_role_contains: contains.clone(),
        limit: limit + 1,
    };
    let mut rows = state.store.list_peers(&page).await?;
    let next = paging::trim(&mut rows, limit).map(|(group, last)| PeerCursor::of(*group, last).encode()).transpose()?;
    let mut prefix = format!("/registry/{id}/peers?");
    if let Some(q) = &contains {
        prefix.push_str(&url::form_urlencoded::Serializer::new(String::new()).append_pair("q", q).finish());
        prefix.push('&');
    }
    let headers = paging::next_headers(&prefix, limit, next)?;
    Ok((headers, Json(rows.iter().map(|(_, w)| peer(w)).collect())))
}

fn peer(w: &Workspace) -> Peer {
    Peer {
        id: w.id,
        name: w.name.clone(),
        role: w.role.clone().unwrap_or_default(),
        tier: w.tier,
        status: w.status,
        agent_card: w.agent_card.clone(),
        url: w.url.clone(),
        parent_id: w.parent_id,
        active_tasks: w.active_tasks,
    }
}

/// May `caller` reach `target`? Same org, and the same workspace, siblings
/// (same parent, or both roots), or ancestor and descendant: two key reads
/// and at most one bounded walk up the parent links, never the org.
async fn may_discover(state: &AppState, caller: &Workspace, target: &Workspace) -> ApiResult<bool> {
    if caller.org_id != target.org_id {
        return Ok(false);
    }
    if caller.id == target.id || caller.parent_id == target.parent_id {
        return Ok(true);
    }
    Ok(state.store.is_ancestor_or_descendant(caller.id, target.id, MAX_DISCOVER_GENERATIONS).await?)
}

/// Find where a related workspace can be reached.
#[utoipa::path(get, path = "/registry/discover/{target}", tag = "registry", params(("target" = uuid::Uuid, Path),
    ("X-Workspace-ID" = uuid::Uuid, Header, description = "the caller's workspace id")),
    responses((status = 200, body = DiscoverResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 503, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn discover(
    State(state): State<AppState>,
    RequiredBearer(bearer): RequiredBearer,
    headers: HeaderMap,
    ApiPath(target_id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<DiscoverResponse>> {
    let caller_raw = headers
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(ErrorCode::MissingHeader, "X-Workspace-ID header is required"))?;
    let caller_id: WorkspaceId = parse_id(caller_raw, "X-Workspace-ID")?;
    state.auth.workspace(&*state.store, &bearer, caller_id).await?;
    // Not allowed and unknown look the same.
    let not_found = || ApiError::not_found("workspace not found");
    let caller = state.store.get_workspace(caller_id).await?;
    let target = match state.store.get_workspace(target_id).await {
        Ok(target) => target,
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(other) => return Err(other.into()),
    };
    if target.status == hearth_core::WorkspaceStatus::Removed || !may_discover(&state, &caller, &target).await? {
        return Err(not_found());
    }
    if !target.status.is_available() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WorkspaceUnavailable,
            "workspace not available",
        )
        .workspace_status(target.status));
    }
    Ok(Json(DiscoverResponse { id: target.id, url: target.url.clone(), name: target.name.clone() }))
}
