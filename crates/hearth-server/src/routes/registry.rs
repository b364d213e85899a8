//! Runtime → Hearth: register, heartbeat, update-card, peers, discover.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hearth_api::{
    ApiErrorBody, DiscoverResponse, ErrorCode, HeartbeatRequest, HeartbeatResponse, Peer, RegisterRequest,
    RegisterResponse, StatusResponse, UpdateCardRequest,
};
use hearth_core::heartbeat::RawHeartbeat;
use hearth_core::{Heartbeat, Input, WorkspaceId};
use hearth_store::{Bootstrap, StoreError, Workspace};
use serde::Deserialize;

use crate::agent_url;
use crate::auth::{self, Bearer, RequiredBearer};
use crate::desired::to_wire;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, ApiQuery};
use crate::state::AppState;

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
    let agent_card = req.agent_card.unwrap_or(serde_json::json!({}));
    if bearer.0.is_some() {
        state.auth.workspace(&*state.store, &bearer, req.id).await?;
        state.lifecycle.apply(req.id, Input::Register { url: req.url, agent_card }).await?;
        tracing::info!(workspace_id = %req.id, "runtime registered");
        return Ok(Json(RegisterResponse { status: "registered".into(), auth_token: None }));
    }
    // The bootstrap. The store decides it under the row lock, in the same
    // transaction as the registration (so of two at once, one mints).
    let Some(created_after) = state.settings.bootstrap_cutoff(Utc::now()) else {
        return Err(bootstrap_refused(req.id));
    };
    let org = state.store.get_workspace(req.id).await?.org_id;
    let minted = auth::mint(org, Some(req.id), Some("bootstrap".into()));
    let token_id = minted.record.id;
    let bootstrap = Bootstrap { url: req.url, agent_card, token: minted.record, created_after };
    match state.lifecycle.register_minting(req.id, bootstrap).await {
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
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidField, e.to_string()))?;
    // The fast path (fast.rs): a heartbeat that decides like the last one
    // is answered from memory once its batch has committed (or, with
    // `--heartbeat-ack queued`, once it is queued).
    let (status, desired) = match state.fast.try_heartbeat(workspace_id, heartbeat, Utc::now()).await {
        Ok(answer) => (answer.status, answer.desired),
        Err(heartbeat) => {
            let (row, desired) = locked_heartbeat(&state, workspace_id, heartbeat, Utc::now()).await?;
            (row.status, to_wire(&desired))
        }
    };
    state.fast.record_duration(started.elapsed());
    Ok(Json(HeartbeatResponse {
        status: "ok".into(),
        workspace_status: status,
        desired,
        next_heartbeat_seconds: Some(state.pace.next_heartbeat_seconds()),
    }))
}

/// A heartbeat on the locked path: the desired state is read (one query)
/// before the transaction; a template change that lands in between is
/// picked up by the next heartbeat (the epoch keeps it from being
/// remembered). Afterwards the fast path remembers the row if it is a
/// fixpoint for heartbeats like this one. `at`: when it was received.
pub async fn locked_heartbeat(
    state: &AppState,
    id: WorkspaceId,
    mut heartbeat: Heartbeat,
    at: chrono::DateTime<Utc>,
) -> hearth_store::StoreResult<(Workspace, hearth_core::reconcile::DesiredState)> {
    let epoch = state.fast.desired.epoch();
    let desired = state.store.desired_state_for_workspace(id).await?;
    heartbeat.desired = Some(desired.clone());
    let remembered = heartbeat.clone();
    let applied = state.lifecycle.apply_at(id, Input::Heartbeat(heartbeat), at).await?;
    state.fast.remember(&applied.workspace, remembered, &desired, epoch, Utc::now());
    Ok((applied.workspace, desired))
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
    state.lifecycle.update_agent_card(req.workspace_id, req.agent_card).await?;
    Ok(Json(StatusResponse { status: "updated".into() }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeersQuery {
    /// Substring filter on name or role (case-insensitive).
    q: Option<String>,
}

/// Siblings, then children, then the parent (removed excluded).
#[utoipa::path(get, path = "/registry/{id}/peers", tag = "registry", params(("id" = uuid::Uuid, Path), PeersQuery),
    responses((status = 200, body = Vec<Peer>), (status = 401, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn peers(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(raw): Path<String>,
    ApiQuery(query): ApiQuery<PeersQuery>,
) -> ApiResult<Json<Vec<Peer>>> {
    let id: WorkspaceId = parse_id(&raw, "workspace id")?;
    state.auth.workspace(&*state.store, &bearer, id).await?;
    let me = state.store.get_workspace(id).await?;
    let all = state.store.list_workspaces(Some(me.org_id), false).await?;
    let needle = query.q.map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let peers = select_peers(&me, &all)
        .into_iter()
        .filter(|w| {
            needle.as_deref().is_none_or(|n| {
                w.name.to_lowercase().contains(n) || w.role.as_deref().unwrap_or("").to_lowercase().contains(n)
            })
        })
        .map(peer)
        .collect();
    Ok(Json(peers))
}

/// Siblings (same parent; for a root, the other roots), then children, then
/// the parent. `all` holds the org's non-removed workspaces.
fn select_peers<'a>(me: &Workspace, all: &'a [Workspace]) -> Vec<&'a Workspace> {
    let siblings = all.iter().filter(|w| w.id != me.id && w.parent_id == me.parent_id);
    let children = all.iter().filter(|w| w.parent_id == Some(me.id));
    let parent = all.iter().filter(|w| Some(w.id) == me.parent_id);
    siblings.chain(children).chain(parent).collect()
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

/// May `caller` reach `target`? Same workspace, siblings, both roots, or
/// ancestor/descendant.
fn may_discover(caller: &Workspace, target: &Workspace, parents: &HashMap<WorkspaceId, Option<WorkspaceId>>) -> bool {
    if caller.org_id != target.org_id {
        return false;
    }
    if caller.id == target.id || caller.parent_id == target.parent_id {
        return true;
    }
    let is_ancestor = |ancestor: WorkspaceId, mut node: WorkspaceId| {
        // Bounded walk: a parent cycle cannot loop forever.
        for _ in 0..parents.len() {
            match parents.get(&node).copied().flatten() {
                Some(parent) if parent == ancestor => return true,
                Some(parent) => node = parent,
                None => return false,
            }
        }
        false
    };
    is_ancestor(caller.id, target.id) || is_ancestor(target.id, caller.id)
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
    Path(raw): Path<String>,
) -> ApiResult<Json<DiscoverResponse>> {
    let target_id: WorkspaceId = parse_id(&raw, "target workspace id")?;
    let caller_raw = headers
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(ErrorCode::MissingHeader, "X-Workspace-ID header is required"))?;
    let caller_id: WorkspaceId = parse_id(caller_raw, "X-Workspace-ID")?;
    state.auth.workspace(&*state.store, &bearer, caller_id).await?;
    let not_found = || ApiError::not_found("workspace not found");
    let caller = state.store.get_workspace(caller_id).await?;
    let all = state.store.list_workspaces(Some(caller.org_id), true).await?;
    let target = all.iter().find(|w| w.id == target_id).ok_or_else(not_found)?;
    let parents: HashMap<_, _> = all.iter().map(|w| (w.id, w.parent_id)).collect();
    if target.status == hearth_core::WorkspaceStatus::Removed || !may_discover(&caller, target, &parents) {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use hearth_core::OrgId;
    use hearth_store::NewWorkspace;

    use super::*;

    fn ws(name: &str, parent: Option<&Workspace>) -> Workspace {
        let new = NewWorkspace::named(OrgId::DEFAULT, name, Utc::now());
        let now = new.now;
        Workspace {
            id: new.id,
            org_id: new.org_id,
            name: name.into(),
            role: None,
            tier: 1,
            status: hearth_core::WorkspaceStatus::Online,
            url: None,
            agent_card: None,
            parent_id: parent.map(|p| p.id),
            template: None,
            runtime: None,
            model: None,
            max_concurrent_tasks: None,
            budget_limit: None,
            external: false,
            last_heartbeat_at: None,
            last_error_rate: 0.0,
            last_sample_error: None,
            active_tasks: 0,
            uptime_seconds: 0,
            current_task: None,
            monthly_spend: 0,
            runtime_state: None,
            runtime_metadata: None,
            reported_assets_digest: None,
            installed_plugins: Vec::new(),
            conditions: Vec::new(),
            operator_plugins: Vec::new(),
            status_changed_at: now,
            last_active_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    #[test]
    fn peers_are_siblings_then_children_then_parent() {
        let root = ws("root", None);
        let other_root = ws("other-root", None);
        let me = ws("me", Some(&root));
        let sibling = ws("sibling", Some(&root));
        let child = ws("child", Some(&me));
        let cousin = ws("cousin", Some(&sibling));
        let all = vec![root.clone(), other_root.clone(), me.clone(), sibling.clone(), child.clone(), cousin.clone()];
        let names: Vec<&str> = select_peers(&me, &all).iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["sibling", "child", "root"]);
        let names: Vec<&str> = select_peers(&root, &all).iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["other-root", "me", "sibling"]);
    }

    #[test]
    fn discovery_follows_the_tree() {
        let root = ws("root", None);
        let other_root = ws("other-root", None);
        let me = ws("me", Some(&root));
        let sibling = ws("sibling", Some(&root));
        let child = ws("child", Some(&me));
        let grandchild = ws("grandchild", Some(&child));
        let cousin = ws("cousin", Some(&sibling));
        let all = [&root, &other_root, &me, &sibling, &child, &grandchild, &cousin];
        let parents: HashMap<_, _> = all.iter().map(|w| (w.id, w.parent_id)).collect();
        assert!(may_discover(&me, &me, &parents));
        assert!(may_discover(&me, &sibling, &parents));
        assert!(may_discover(&root, &other_root, &parents), "both roots");
        assert!(may_discover(&me, &grandchild, &parents), "descendant");
        assert!(may_discover(&grandchild, &root, &parents), "ancestor");
        assert!(!may_discover(&me, &cousin, &parents));
        assert!(!may_discover(&child, &sibling, &parents));
    }
}
