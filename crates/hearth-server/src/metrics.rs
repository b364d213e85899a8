//! Prometheus metrics. The recorder is process-wide (the `metrics` facade has
//! one global recorder), installed once; every app in the process renders it.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
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

/// An org's quota use and limits (`hearth_org_quota_used`,
/// `hearth_org_quota_limit`, labelled by org name and quota; a limit only
/// where one is set): refreshed by the sweeper for every org with a quota,
/// and by `GET /orgs/{id}`.
pub fn quota_use(org: &hearth_store::Org, usage: &hearth_store::Usage) {
    for quota in hearth_store::Quota::ALL {
        let labels = [("org", org.name.clone()), ("quota", quota.as_str().to_owned())];
        metrics::gauge!("hearth_org_quota_used", &labels).set(quota.used(usage) as f64);
        if let Some(limit) = quota.limit(&org.quotas) {
            metrics::gauge!("hearth_org_quota_limit", &labels).set(limit as f64);
        }
    }
}

/// Counts a store error that a background loop handles (the HTTP edge
/// counts its own when it answers).
pub fn store_error(error: &hearth_store::StoreError) {
    if let Some(operation) = error.operation() {
        database_error(operation);
    }
}

/// Counts a database error of a store operation (`hearth_database_errors_total`).
pub fn database_error(operation: &'static str) {
    metrics::counter!("hearth_database_errors_total", "operation" => operation).increment(1);
}

/// Counts a request by matched route (never the raw URI; `unmatched`
/// without one), method and status, and records its duration
/// (`hearth_http_requests_total`, `hearth_http_request_duration_seconds`).
///
/// The handles are registered once per method, route and status and kept
/// here: the `counter!` and `histogram!` macros build their labels and look
/// them up in the registry on every call, which cost every request more than
/// the recording itself. Routes, methods (see [`method_label`]) and statuses
/// are fixed sets, so the map stays small.
pub fn request(method: &Method, route: Option<&MatchedPath>, status: StatusCode, started: Instant) {
    type Key = (&'static str, &'static str, u16);
    static HANDLES: OnceLock<RwLock<HashMap<Key, (Counter, Histogram)>>> = OnceLock::new();
    let key = (method_label(method), route_label(route.map(MatchedPath::as_str)), status.as_u16());
    let seconds = started.elapsed().as_secs_f64();
    let handles = HANDLES.get_or_init(Default::default);
    if let Some((count, duration)) = handles.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        count.increment(1);
        duration.record(seconds);
        return;
    }
    let (method, route, status) = key;
    let registered = (
        metrics::counter!("hearth_http_requests_total", "method" => method, "route" => route,
            "status" => status.to_string()),
        metrics::histogram!("hearth_http_request_duration_seconds", "method" => method, "route" => route),
    );
    let mut handles = handles.write().unwrap_or_else(PoisonError::into_inner);
    let (count, duration) = handles.entry(key).or_insert(registered);
    count.increment(1);
    duration.record(seconds);
}

/// The method's label: its name for the standard methods, `other` for any
/// extension method (a client may send any token as a method, and each
/// would otherwise be a time series of its own).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Routes are a fixed set (the router's templates), so each is made a
/// `'static` label once and shared by every request after it.
fn route_label(route: Option<&str>) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let Some(route) = route else { return "unmatched" };
    let routes = ROUTES.get_or_init(Default::default);
    let known = routes.read().unwrap_or_else(PoisonError::into_inner).get(route).copied();
    known.unwrap_or_else(|| {
        *routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.to_owned())
            .or_insert_with_key(|route| Box::leak(route.clone().into_boxed_str()))
    })
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
        assert_eq!(first, "/workspaces/{id}");
        assert!(std::ptr::eq(first, again), "the second request reuses the first one's label");
        assert_eq!(super::route_label(Some("/templates")), "/templates");
        assert_eq!(super::route_label(None), "unmatched");
    }

    #[test]
    fn every_method_is_labelled_by_its_name() {
        use axum::http::Method;
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ] {
            assert_eq!(super::method_label(&method), method.as_str());
        }
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(super::method_label(&invented), "other", "an extension method is no label of its own");
    }
}
