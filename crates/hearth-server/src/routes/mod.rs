//! The HTTP surface: one module per resource, assembled here. The OpenAPI
//! document is generated from the handlers' annotations as they are routed,
//! so a route cannot exist without being documented.

pub mod assets;
pub mod constraints;
pub mod events;
mod logs;
mod long_polls;
pub mod orgs;
pub mod plugins;
pub mod registry;
pub mod secrets;
pub mod service;
pub mod templates;
pub mod tokens;
pub mod wait;
mod workspace_spec;
pub mod workspaces;

use hearth_api::ErrorCode;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth", description = "Control plane for fleets of AI-agent workspaces (PROTOCOL.md)."),
    components(schemas(hearth_api::ApiErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Every credential is a bearer token (admin, org or workspace; which ones
/// a route accepts, and the least role, are in its description and its
/// `x-hearth-access` extension: `access.rs`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The routes and their OpenAPI document: each resource's routes come
/// from its module.
pub fn api(max_upload_bytes: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Uploads get a larger body limit than the rest (the inner limit wins).
    let uploads = OpenApiRouter::new()
        .merge(templates::upload_routes())
        .merge(plugins::upload_routes())
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(uploads)
        .merge(templates::routes())
        .merge(plugins::routes())
        .merge(assets::routes())
        .merge(registry::routes())
        .merge(workspaces::routes())
        .merge(wait::routes())
        .merge(tokens::routes())
        .merge(orgs::routes())
        .merge(secrets::routes())
        .merge(events::routes())
        .merge(logs::routes())
        .merge(service::routes())
        .split_for_parts();
    let mut openapi = openapi_paths(openapi);
    crate::access::document(&mut openapi);
    (router, openapi)
}

/// The document's paths in OpenAPI's template syntax: axum's catch-all
/// `{*path}` is the parameter `{path}` (the router keeps its own syntax).
fn openapi_paths(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut openapi.paths.paths);
    openapi.paths.paths = paths.into_iter().map(|(path, item)| (path.replace("{*", "{"), item)).collect();
    openapi
}

/// The whole application router. Routing comes first, then one layer on
/// every route (`edge.rs`: the request span, metrics, deadline and checks);
/// the body limit and the panic guard wrap the routing itself, so they do
/// not add a boxed clone of every route to every request.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api(state.settings.max_upload_bytes);
    let openapi = Arc::new(constraints::document(&openapi));
    let max_body = state.settings.max_body_bytes;
    let edge_state = state.clone();
    let routed = routes
        .route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .merge(crate::ui::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(edge_state, crate::edge::edge))
        .with_state(state);
    // The upload routes set their own, larger limit after routing (the
    // inner limit wins).
    let guarded = tower::ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| -> Response {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(DefaultBodyLimit::max(max_body))
        .service(routed);
    Router::new().fallback_service(guarded)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "method not allowed on this route")
}
