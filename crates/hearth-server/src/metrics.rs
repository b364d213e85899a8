//! Prometheus metrics. The recorder is process-wide (the `metrics` facade has
//! one global recorder), installed once; every app in the process renders it.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use metrics::SharedString;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder with Hearth's histogram buckets.
fn recorder() -> Result<PrometheusRecorder, BuildError> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("hearth_heartbeat_duration_seconds".into()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("hearth_http_request_duration_seconds".into()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
        )?;
    Ok(builder.build_recorder())
}

/// Installs the recorder on first use and returns the render handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = recorder().unwrap_or_else(|error| {
                // Constant buckets cannot be refused (a unit test proves it);
                // should that change, /metrics still works, with summaries.
                tracing::error!(%error, "cannot set histogram buckets; latencies are exported as summaries");
                PrometheusBuilder::new().build_recorder()
            });
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Counts a database error of a store operation (`hearth_database_errors_total`).
pub fn database_error(operation: &'static str) {
    metrics::counter!("hearth_database_errors_total", "operation" => operation).increment(1);
}

/// Counts a request by matched route (never the raw URI; `unmatched`
/// without one), method and status, and records its duration
/// (`hearth_http_requests_total`, `hearth_http_request_duration_seconds`).
pub fn request(method: &Method, route: Option<&MatchedPath>, status: StatusCode, started: Instant) {
    let method = method_label(method);
    let route = route_label(route.map(MatchedPath::as_str));
    metrics::counter!("hearth_http_requests_total", "method" => method.clone(), "route" => route.clone(),
        "status" => status.as_u16().to_string())
    .increment(1);
    metrics::histogram!("hearth_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

/// The method as a label without an allocation for the common ones.
fn method_label(method: &Method) -> SharedString {
    match *method {
        Method::GET => SharedString::const_str("GET"),
        Method::POST => SharedString::const_str("POST"),
        Method::PUT => SharedString::const_str("PUT"),
        Method::DELETE => SharedString::const_str("DELETE"),
        Method::PATCH => SharedString::const_str("PATCH"),
        Method::HEAD => SharedString::const_str("HEAD"),
        _ => SharedString::from(method.as_str().to_owned()),
    }
}

/// Routes are a fixed set (the router's templates), so each is made a
/// `'static` label once and shared by every request after it.
fn route_label(route: Option<&str>) -> SharedString {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let Some(route) = route else { return SharedString::const_str("unmatched") };
    let routes = ROUTES.get_or_init(Default::default);
    let known = routes.read().unwrap_or_else(PoisonError::into_inner).get(route).copied();
    let label = known.unwrap_or_else(|| {
        *routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.to_owned())
            .or_insert_with_key(|route| Box::leak(route.clone().into_boxed_str()))
    });
    SharedString::const_str(label)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_histogram_buckets_are_accepted() {
        assert!(super::recorder().is_ok());
    }

    #[test]
    fn a_route_label_is_made_once_and_says_the_route() {
        let first = super::route_label(Some("/workspaces/{id}"));
        let again = super::route_label(Some("/workspaces/{id}"));
        assert_eq!(first.as_ref(), "/workspaces/{id}");
        assert_eq!(again.as_ref(), first.as_ref());
        assert!(std::ptr::eq(first.as_ref(), again.as_ref()), "the second request reuses the first one's label");
        assert_eq!(super::route_label(Some("/templates")).as_ref(), "/templates");
        assert_eq!(super::route_label(None).as_ref(), "unmatched");
    }

    #[test]
    fn every_method_is_labelled_by_its_name() {
        use axum::http::Method;
        for method in
            [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS]
        {
            assert_eq!(super::method_label(&method).as_ref(), method.as_str());
        }
    }
}
