//! Plugins: the registry (push, list), the SDK-compatible download, install
//! reports, and desired vs installed per workspace.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_api::{
    ApiErrorBody, ErrorCode, InstalledPluginRecord, PluginDetailResponse, PluginResponse, RecordInstallRequest,
    RecordInstallResponse, UploadPluginRequest, WorkspacePluginsResponse,
};
use hearth_archive::{BundlePath, Limits};
use hearth_core::digest::{plugin_content_hash, PLUGIN_MANIFEST};
use hearth_core::manifest::{is_valid_plugin_name, plugin_yaml_with_sha256, PluginManifest};
use hearth_core::reconcile::DesiredState;
use hearth_core::{Input, WorkspaceId};
use hearth_store::{NewPlugin, Plugin, StoreError, Workspace};
use serde::Deserialize;

use crate::auth::{Bearer, IfRemoved, Operator};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::orgs::{acting_org, OrgQuery};
use crate::routes::workspaces::{visible_workspace, workspace_for_runtime_or_operator};
use crate::state::AppState;
use crate::uploads::{to_new_files, MAX_FILES};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes (its uploads are in [`upload_routes`]).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_plugin))
        .routes(routes!(download_plugin))
        .routes(routes!(add_operator_plugin, remove_operator_plugin))
        .routes(routes!(record_install, workspace_plugins))
}

/// The routes that take an upload: the router gives them the larger body
/// limit (`--max-upload-bytes`).
pub(crate) fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload_plugin, list_plugins))
}

pub(crate) fn plugin_response(p: &Plugin) -> PluginResponse {
    PluginResponse {
        name: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        sha256: p.sha256.clone(),
    }
}

fn upload_limits(state: &AppState) -> Limits {
    let cap = state.settings.max_upload_bytes as u64;
    Limits { max_file_bytes: cap, max_total_bytes: cap, max_entries: MAX_FILES as u64 }
}

/// Push a plugin: a gzip tarball body (entries relative to the plugin root)
/// or JSON `{"name"?, "files": {...}}`. `plugin.yaml` must name the plugin
/// and a version. Replaces a plugin of the same name.
/// A body over 1 MiB waits for none: without a free place among
/// `--max-concurrent-uploads` it is a 429 with `Retry-After` at once.
#[utoipa::path(post, path = "/plugins", tag = "plugins", request_body(content = UploadPluginRequest,
        description = "JSON, or an application/gzip tarball"), params(OrgQuery),
    responses((status = 201, body = PluginResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 413, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
pub async fn upload_plugin(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
    request: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<PluginResponse>)> {
    // The org first: an unknown one is a 404 before the upload is read.
    let org = acting_org(&state, operator, &in_org).await?;
    let (parts, body) = request.into_parts();
    let received =
        crate::uploads::receive(&state.uploads, state.settings.max_upload_bytes, &parts.headers, body).await?;
    let upload = if received.is_gzip() {
        received.tarball(upload_limits(&state)).await?
    } else {
        received.json(crate::uploads::Name::Optional).await?
    };
    let (expected_name, files) = (upload.name, upload.files);
    let manifest_bytes =
        files.iter().find(|(path, _)| path.as_str() == PLUGIN_MANIFEST).map(|(_, bytes)| bytes).ok_or_else(|| {
            ApiError::unprocessable(ErrorCode::MissingManifest, "a plugin must contain plugin.yaml at its root")
        })?;
    let manifest_text = std::str::from_utf8(manifest_bytes)
        .map_err(|_| ApiError::unprocessable(ErrorCode::InvalidManifest, "plugin.yaml is not UTF-8 text"))?;
    let manifest = PluginManifest::parse(manifest_text)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidManifest, e.to_string()))?;
    if let Some(name) = expected_name {
        if name != manifest.name.as_str() {
            return Err(ApiError::unprocessable(
                ErrorCode::NameMismatch,
                format!("name {name:?} does not match plugin.yaml's name {:?}", manifest.name.as_str()),
            ));
        }
    }
    let hash_input: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let sha256 = plugin_content_hash(&hash_input);
    let plugin = state
        .store
        .put_plugin(NewPlugin {
            org_id: org,
            name: manifest.name.as_str().to_owned(),
            version: manifest.version,
            description: manifest.description.unwrap_or_default(),
            sha256,
            files: to_new_files(files),
            now: chrono::Utc::now(),
        })
        .await?;
    state.heartbeats.desired().plugin_changed(plugin.org_id, &plugin.name);
    tracing::info!(plugin = %plugin.name, version = %plugin.version, sha256 = %plugin.sha256, "plugin pushed");
    Ok((StatusCode::CREATED, Json(plugin_response(&plugin))))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PluginsQuery {
    /// Plugins per page (1 to 1000, default 500).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Where the previous page ended: its `X-Next-Cursor`.
    cursor: Option<String>,
    /// Only this org's (the admin token; an org token lists its own org,
    /// and naming another is 404).
    org: Option<String>,
}

/// Plugins by name, one page at a time (two queries per page); when more
/// remain, `X-Next-Cursor` and `Link` (`rel="next"`) say where the next starts.
#[utoipa::path(get, path = "/plugins", tag = "plugins", params(PluginsQuery),
    responses((status = 200, body = Vec<PluginResponse>,
            headers(("x-next-cursor" = String, description = "the next page's cursor, when there is one"),
                ("link" = String, description = "`<url>; rel=\"next\"`, when there is a next page"))),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn list_plugins(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<PluginsQuery>,
) -> ApiResult<(HeaderMap, Json<Vec<PluginResponse>>)> {
    let limit = crate::paging::limit(query.limit)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<uuid::Uuid>().map_err(|_| crate::paging::bad_cursor(text))?),
    };
    let org = crate::routes::orgs::listed_org(&state, operator, query.org.as_deref()).await?;
    let mut plugins = state.store.list_plugins(org, after, limit + 1).await?;
    let next = crate::paging::trim(&mut plugins, limit).map(|last| last.id.to_string());
    let headers =
        crate::paging::next_headers(&crate::paging::prefix("/plugins", org, query.org.is_some()), limit, next)?;
    Ok((headers, Json(plugins.iter().map(plugin_response).collect())))
}

fn plugin_name(raw: &str) -> ApiResult<&str> {
    if is_valid_plugin_name(raw) {
        Ok(raw)
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidPluginName,
            format!("plugin name {raw:?} must match ^[a-z0-9][a-z0-9._-]{{0,127}}$"),
        ))
    }
}

/// Who calls a route open to a workspace's runtime and its operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// The workspace's own token.
    Runtime,
    /// An admin or org token that may see the workspace.
    Operator(hearth_core::By),
}

/// The workspace of the path (removed ones refused, 410) and who asks.
async fn workspace_and_caller(state: &AppState, bearer: &Bearer, id: WorkspaceId) -> ApiResult<(Workspace, Caller)> {
    match state.auth.workspace_or_operator(&*state.store, bearer, id, IfRemoved::Refuse).await? {
        Some(operator) => Ok((visible_workspace(state, operator, id).await?, Caller::Operator(operator.by()))),
        None => {
            let workspace = state.store.get_workspace(id).await?;
            if workspace.status == hearth_core::WorkspaceStatus::Removed {
                return Err(hearth_core::Rejection::Removed.into());
            }
            Ok((workspace, Caller::Runtime))
        }
    }
}

/// A runtime reads and reports only the plugins its desired state names
/// (its template's and those an operator added); any other plugin of the
/// org answers exactly as an unknown one does, so its existence does not
/// show.
fn wanted(desired: &DesiredState, name: &str) -> ApiResult<()> {
    if desired.plugins.iter().any(|plugin| plugin.name == name) {
        Ok(())
    } else {
        Err(StoreError::NotFound("plugin").into())
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `local://<name>` or `<name>`, naming the plugin of the path (the
    /// only source Hearth serves). Malformed: 400; another plugin: 422.
    source: Option<String>,
}

/// The plugin as a gzip tarball; its `plugin.yaml` carries `sha256:` (the
/// content-manifest hash) so the SDK's own verification passes. The
/// workspace's own token gets only a plugin its desired state names (its
/// template's or one an operator added); any other answers 404 as an
/// unknown plugin does. Operators get any plugin of the org.
#[utoipa::path(get, path = "/workspaces/{id}/plugins/{name}/download", tag = "plugins",
    params(("id" = uuid::Uuid, Path), ("name" = String, Path), DownloadQuery),
    responses((status = 200, content_type = "application/gzip", description = "the plugin tarball"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
pub async fn download_plugin(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath((id, name)): ApiPath<(WorkspaceId, String)>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
) -> ApiResult<Response> {
    let name = plugin_name(&name)?;
    let (workspace, caller) = workspace_and_caller(&state, &bearer, id).await?;
    let source = format!("local://{name}");
    if let Some(asked) = &query.source {
        // Malformed (the document's pattern): 400. Well-formed but naming
        // another plugin than the path: 422, as JSON Schema cannot say it.
        let asked_name = asked.strip_prefix("local://").unwrap_or(asked);
        if !is_valid_plugin_name(asked_name) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidSource,
                format!("unsupported plugin source {asked:?}; use {source}"),
            )
            .field("source"));
        }
        if asked_name != name {
            return Err(ApiError::unprocessable(
                ErrorCode::NameMismatch,
                format!("source {asked:?} names another plugin than {name:?}; use {source}"),
            )
            .field("source"));
        }
    }
    if caller == Caller::Runtime {
        wanted(&state.store.desired_state_for_workspace(workspace.id).await?, name)?;
    }
    let plugin = state.store.get_plugin(workspace.org_id, name).await?;
    let mut files = Vec::with_capacity(plugin.files.len());
    for file in &plugin.files {
        let mut bytes = state.store.get_blob(&file.sha256).await?;
        if file.path == PLUGIN_MANIFEST {
            let text = String::from_utf8(bytes).map_err(|_| ApiError::internal("stored plugin.yaml is not UTF-8"))?;
            bytes = plugin_yaml_with_sha256(&text, &plugin.sha256).into_bytes();
        }
        let path = BundlePath::new(file.path.clone()).map_err(ApiError::internal)?;
        files.push((path, bytes));
    }
    let tarball = hearth_archive::pack(&files).map_err(ApiError::internal)?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    let disposition = format!("attachment; filename=\"{name}.tar.gz\"");
    for (key, value) in [
        ("content-disposition", disposition.as_str()),
        ("x-plugin-name", name),
        ("x-plugin-source", source.as_str()),
        ("x-plugin-sha256", plugin.sha256.as_str()),
        ("x-plugin-version", plugin.version.as_str()),
    ] {
        let value = HeaderValue::from_str(value).map_err(ApiError::internal)?;
        headers.insert(key, value);
    }
    Ok((headers, tarball).into_response())
}

/// A runtime reports that it installed a plugin (observed state). From the
/// workspace's own token, a plugin its desired state does not name answers
/// 404 as an unknown plugin does; a `sha256` that is not the plugin's is a
/// 422 that does not tell the right one.
#[utoipa::path(post, path = "/workspaces/{id}/plugins", tag = "plugins", params(("id" = uuid::Uuid, Path)),
    request_body = RecordInstallRequest,
    responses((status = 200, body = RecordInstallResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
pub async fn record_install(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(req): ApiJson<RecordInstallRequest>,
) -> ApiResult<Json<RecordInstallResponse>> {
    let (workspace, caller) = workspace_and_caller(&state, &bearer, id).await?;
    let name = plugin_name(req.source.strip_prefix("local://").unwrap_or(&req.source))?.to_owned();
    let desired = state.store.desired_state_for_workspace(workspace.id).await?;
    if caller == Caller::Runtime {
        wanted(&desired, &name)?;
    }
    let plugin = state.store.get_plugin(workspace.org_id, &name).await?;
    if let Some(sha) = &req.sha256 {
        if !sha.eq_ignore_ascii_case(&plugin.sha256) {
            // Not the real hash: a report is no way to learn it.
            return Err(ApiError::unprocessable(
                ErrorCode::Sha256Mismatch,
                format!("sha256 {sha} is not the content hash of plugin {name}"),
            )
            .field("sha256"));
        }
    }
    let by = match caller {
        Caller::Runtime => None,
        Caller::Operator(by) => Some(by),
    };
    let input =
        Input::RecordInstall { name: name.clone(), sha256: Some(plugin.sha256.clone()), desired: Some(desired), by };
    state.transitions.apply(workspace.id, input).await?;
    tracing::info!(workspace_id = %workspace.id, plugin = %name, "plugin install recorded");
    Ok(Json(RecordInstallResponse {
        status: "installed".into(),
        plugin: name.clone(),
        source: format!("local://{name}"),
    }))
}

/// Desired vs installed plugins of a workspace.
#[utoipa::path(get, path = "/workspaces/{id}/plugins", tag = "plugins", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = WorkspacePluginsResponse), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 400, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn workspace_plugins(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> ApiResult<Json<WorkspacePluginsResponse>> {
    let workspace = workspace_for_runtime_or_operator(&state, &bearer, id, IfRemoved::Refuse).await?;
    plugins_response(&state, &workspace).await
}

async fn plugins_response(state: &AppState, workspace: &Workspace) -> ApiResult<Json<WorkspacePluginsResponse>> {
    let desired = state.store.desired_state_for_workspace(workspace.id).await?;
    Ok(Json(WorkspacePluginsResponse {
        desired: hearth_api::Desired::from(&desired).plugins,
        installed: workspace
            .installed_plugins
            .iter()
            .map(|p| InstalledPluginRecord {
                name: p.name.clone(),
                sha256: p.sha256.clone(),
                installed_at: p.installed_at,
            })
            .collect(),
    }))
}

/// Add a plugin to one workspace's desired state, beyond its template's.
/// Idempotent; the runtime installs it on its next heartbeat.
#[utoipa::path(put, path = "/workspaces/{id}/plugins/{name}", tag = "plugins", params(("id" = uuid::Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = WorkspacePluginsResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody),
        (status = 422, body = ApiErrorBody)))]
pub async fn add_operator_plugin(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath((id, name)): ApiPath<(WorkspaceId, String)>,
) -> ApiResult<Json<WorkspacePluginsResponse>> {
    let name = plugin_name(&name)?.to_owned();
    let workspace = visible_workspace(&state, operator, id).await?;
    match state.store.get_plugin(workspace.org_id, &name).await {
        Ok(_) => {}
        Err(hearth_store::StoreError::NotFound(_)) => {
            return Err(ApiError::unprocessable(
                ErrorCode::UnknownPlugin,
                format!("plugin {name:?} is not pushed; push it first"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let mut plugins = workspace.operator_plugins.clone();
    if !plugins.contains(&name) {
        plugins.push(name.clone());
    }
    let workspace = state.store.set_operator_plugins(workspace.id, plugins, chrono::Utc::now()).await?;
    tracing::info!(workspace_id = %workspace.id, plugin = %name, "operator added a plugin");
    plugins_response(&state, &workspace).await
}

/// Remove a plugin an operator added (template plugins stay desired).
#[utoipa::path(delete, path = "/workspaces/{id}/plugins/{name}", tag = "plugins", params(("id" = uuid::Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = WorkspacePluginsResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub async fn remove_operator_plugin(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath((id, name)): ApiPath<(WorkspaceId, String)>,
) -> ApiResult<Json<WorkspacePluginsResponse>> {
    let name = plugin_name(&name)?.to_owned();
    let workspace = visible_workspace(&state, operator, id).await?;
    if !workspace.operator_plugins.contains(&name) {
        return Err(ApiError::not_found(format!("plugin {name} was not added to this workspace by an operator")));
    }
    let plugins = workspace.operator_plugins.iter().filter(|p| **p != name).cloned().collect();
    let workspace = state.store.set_operator_plugins(workspace.id, plugins, chrono::Utc::now()).await?;
    tracing::info!(workspace_id = %workspace.id, plugin = %name, "operator removed a plugin");
    plugins_response(&state, &workspace).await
}

/// One plugin of the caller's org and its files (path, sha256, size): what
/// the dashboard shows as its contents.
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins", params(("name" = String, Path), OrgQuery),
    responses((status = 200, body = PluginDetailResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn get_plugin(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(name): ApiPath<String>,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
) -> ApiResult<Json<PluginDetailResponse>> {
    let name = plugin_name(&name)?;
    let org = acting_org(&state, operator, &in_org).await?;
    let plugin = match state.store.get_plugin(org, name).await {
        Ok(plugin) => plugin,
        Err(hearth_store::StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!("plugin {name:?} not found; push it first")))
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Json(PluginDetailResponse {
        name: plugin.name,
        version: plugin.version,
        description: plugin.description,
        sha256: plugin.sha256,
        files: plugin
            .files
            .iter()
            .map(|f| hearth_api::AssetFile { path: f.path.clone(), sha256: f.sha256.clone(), size: f.size })
            .collect(),
        created_at: plugin.created_at,
        updated_at: plugin.updated_at,
    }))
}
