//! Prometheus metrics. The recorder is process-wide (the `metrics` facade has
//! one global recorder), installed once; every app in the process renders it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
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

/// Counts requests by matched route (never the raw URI) and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("hearth_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("hearth_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_histogram_buckets_are_accepted() {
        assert!(super::recorder().is_ok());
    }
}
