//! Templates: a `config.yaml` (name, runtime, model, declared plugins,
//! settings) plus prompts and other assets, stored content-addressed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hearth_api::{ApiErrorBody, AssetFile, ErrorCode, ImportTemplateRequest, ImportTemplateResponse, TemplateResponse};
use hearth_core::digest::assets_digest;
use hearth_core::manifest::{TemplateConfig, TEMPLATE_CONFIG};
use hearth_store::{NewTemplate, StoreError, Template};

use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::extract::ApiQuery;
use crate::routes::orgs::{acting_org, OrgQuery};
use crate::state::AppState;
use crate::uploads::to_new_files;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This resource's routes (its uploads are in [`upload_routes`]).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_templates)).routes(routes!(get_template))
}

/// The routes that take an upload: the router gives them the larger body
/// limit (`--max-upload-bytes`).
pub(crate) fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_template))
}

pub(crate) fn template_response(t: &Template) -> TemplateResponse {
    TemplateResponse {
        id: t.id,
        name: t.name.clone(),
        runtime: t.runtime.clone(),
        model: t.model.clone(),
        plugins: t.plugins.clone(),
        assets_digest: t.assets_digest.clone(),
        files: t
            .files
            .iter()
            .map(|f| AssetFile { path: f.path.clone(), sha256: f.sha256.clone(), size: f.size })
            .collect(),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

/// Import (or replace) a template. Its `config.yaml` must parse and every
/// plugin it declares must already be pushed.
/// A body over 1 MiB waits for none: without a free place among
/// `--max-concurrent-uploads` it is a 429 with `Retry-After` at once.
#[utoipa::path(post, path = "/templates/import", tag = "templates", request_body = ImportTemplateRequest, params(OrgQuery),
    responses((status = 201, body = ImportTemplateResponse), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
        (status = 413, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
pub async fn import_template(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
    request: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<ImportTemplateResponse>)> {
    // The org first: an unknown one is a 404 before the upload is read.
    let org = acting_org(&state, operator, &in_org).await?;
    let (parts, body) = request.into_parts();
    let upload = crate::uploads::receive(&state.uploads, state.settings.max_upload_bytes, &parts.headers, body)
        .await?
        .json(crate::uploads::Name::Required)
        .await?;
    // The parse requires a name.
    let name = upload.name.unwrap_or_default();
    hearth_core::validate::name("name", &name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidField, m))?;
    let files = upload.files;
    let config_bytes =
        files.iter().find(|(path, _)| path.as_str() == TEMPLATE_CONFIG).map(|(_, bytes)| bytes).ok_or_else(|| {
            ApiError::unprocessable(ErrorCode::MissingConfig, "a template must contain config.yaml at its root")
        })?;
    let config_text = std::str::from_utf8(config_bytes)
        .map_err(|_| ApiError::unprocessable(ErrorCode::InvalidConfig, "config.yaml is not UTF-8 text"))?;
    let config = TemplateConfig::parse(config_text)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidConfig, e.to_string()))?;
    let mut missing = Vec::new();
    for plugin in &config.plugins {
        match state.store.get_plugin(org, plugin.as_str()).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => missing.push(plugin.as_str().to_owned()),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::unprocessable(
            ErrorCode::UnknownPlugin,
            format!("config.yaml declares plugins that are not pushed: {}", missing.join(", ")),
        )
        .keys(missing));
    }
    let (runtime, model) = (config.runtime, config.model);
    let plugins = config.plugins.iter().map(|p| p.as_str().to_owned()).collect();
    let new_files = to_new_files(files);
    let digest_input: Vec<(&str, &str)> = new_files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())).collect();
    let template = state
        .store
        .put_template(NewTemplate {
            org_id: org,
            name,
            runtime,
            model,
            plugins,
            assets_digest: assets_digest(&digest_input),
            files: new_files,
            now: chrono::Utc::now(),
        })
        .await?;
    state.heartbeats.desired().template_changed(template.org_id, &template.name);
    tracing::info!(template_id = %template.id, name = %template.name, digest = %template.assets_digest, files = template.files.len(), "template imported");
    Ok((
        StatusCode::CREATED,
        Json(ImportTemplateResponse {
            status: "imported".into(),
            id: template.id,
            name: template.name,
            assets_digest: template.assets_digest,
        }),
    ))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplatesQuery {
    /// Templates per page (1 to 1000, default 500).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Where the previous page ended: its `X-Next-Cursor`.
    cursor: Option<String>,
    /// Only this org's (the admin token; an org token lists its own org,
    /// and naming another is 404).
    org: Option<String>,
}

/// Templates by name, one page at a time (two queries per page); when more
/// remain, `X-Next-Cursor` and `Link` (`rel="next"`) say where the next starts.
#[utoipa::path(get, path = "/templates", tag = "templates", params(TemplatesQuery),
    responses((status = 200, body = Vec<TemplateResponse>,
            headers(("x-next-cursor" = String, description = "the next page's cursor, when there is one"),
                ("link" = String, description = "`<url>; rel=\"next\"`, when there is a next page"))),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn list_templates(
    State(state): State<AppState>,
    operator: Operator,
    ApiQuery(query): ApiQuery<TemplatesQuery>,
) -> ApiResult<(axum::http::HeaderMap, Json<Vec<TemplateResponse>>)> {
    let limit = crate::paging::limit(query.limit)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<uuid::Uuid>().map_err(|_| crate::paging::bad_cursor(text))?),
    };
    let org = crate::routes::orgs::listed_org(&state, operator, query.org.as_deref()).await?;
    let mut templates = state.store.list_templates(org, after, limit + 1).await?;
    let next = crate::paging::trim(&mut templates, limit).map(|last| last.id.to_string());
    let headers =
        crate::paging::next_headers(&crate::paging::prefix("/templates", org, query.org.is_some()), limit, next)?;
    Ok((headers, Json(templates.iter().map(template_response).collect())))
}

/// A template by id, or by name.
#[utoipa::path(get, path = "/templates/{id}", tag = "templates", params(("id" = String, Path, description = "id or name"), OrgQuery),
    responses((status = 200, body = TemplateResponse), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 400, body = ApiErrorBody)))]
pub async fn get_template(
    State(state): State<AppState>,
    operator: Operator,
    ApiPath(key): ApiPath<String>,
    ApiQuery(in_org): ApiQuery<OrgQuery>,
) -> ApiResult<Json<TemplateResponse>> {
    let template = match key.parse::<uuid::Uuid>() {
        Ok(id) => state.store.get_template_by_id(id).await?,
        Err(_) => state.store.get_template_by_name(acting_org(&state, operator, &in_org).await?, &key).await?,
    };
    if operator.scope().is_some_and(|org| org != template.org_id) {
        return Err(ApiError::not_found("template not found"));
    }
    Ok(Json(template_response(&template)))
}
