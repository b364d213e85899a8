//! The load generator: `concurrency` senders, each with its own HTTP client
//! (one kept-alive connection), each going round its share of the targets
//! with heartbeat bodies and the target's bearer token for a fixed time;
//! and what one run of it measured.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use hearth_core::display::truncate;
use serde::Serialize;

use super::workspaces::Target;

/// Longest a single load request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest sample error kept, in characters (a server's answer can be long).
const MAX_SAMPLE_CHARS: usize = 120;

/// One run of the load generator, as printed and as in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Requests answered with a 2xx.
    pub requests: u64,
    /// Requests answered with a non-2xx, or not answered at all.
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Of the 2xx answers, in milliseconds; `null` when there were none.
    pub latency_ms: Option<Latency>,
    /// Failed requests by kind (`HTTP 503 Service Unavailable`, `transport`, …).
    pub error_kinds: BTreeMap<String, u64>,
    /// The first failure, with what the server said.
    pub sample_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What one sender saw.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    error_kinds: BTreeMap<String, u64>,
    sample_error: Option<String>,
}

impl Tally {
    fn failed(&mut self, kind: String, detail: impl FnOnce() -> String) {
        *self.error_kinds.entry(kind).or_default() += 1;
        if self.sample_error.is_none() {
            self.sample_error = Some(detail());
        }
    }
}

/// Sends `POST url` for `duration` from `concurrency` senders that share
/// `targets` out between them.
pub(super) async fn drive(
    url: &str,
    targets: &[Target],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<RunReport> {
    if targets.is_empty() {
        bail!("no workspaces to send for");
    }
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for (index, client) in clients.into_iter().enumerate() {
        let mut share: Vec<Target> = targets.iter().skip(index).step_by(concurrency).cloned().collect();
        if share.is_empty() {
            // More senders than workspaces: senders share workspaces.
            share.extend(targets.get(index % targets.len()).cloned());
        }
        tasks.push(tokio::spawn(send_until(client, url.to_owned(), share, deadline)));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|err| anyhow!("a load task failed: {err}"))?;
        total.latencies.extend(tally.latencies);
        for (kind, count) in tally.error_kinds {
            *total.error_kinds.entry(kind).or_default() += count;
        }
        total.sample_error = total.sample_error.or(tally.sample_error);
    }
    Ok(summarize(total, started.elapsed()))
}

async fn send_until(client: reqwest::Client, url: String, share: Vec<Target>, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    for (sent, target) in (0_i64..).zip(share.iter().cycle()) {
        if Instant::now() >= deadline {
            break;
        }
        let body = serde_json::json!({
            "workspace_id": target.id,
            "error_rate": 0.0,
            "active_tasks": 0,
            "uptime_seconds": sent,
        });
        let start = Instant::now();
        let response = match client.post(&url).bearer_auth(&target.token).json(&body).send().await {
            Ok(response) => response,
            Err(err) => {
                tally.failed("transport".to_owned(), || format!("POST {url}: {err}"));
                continue;
            }
        };
        let status = response.status();
        // The whole answer is read, so the connection can be reused.
        match response.bytes().await {
            Ok(_) if status.is_success() => tally.latencies.push(start.elapsed()),
            Ok(answer) => tally.failed(format!("HTTP {status}"), || {
                truncate(&format!("POST {url}: {status}: {}", String::from_utf8_lossy(&answer)), MAX_SAMPLE_CHARS)
            }),
            Err(err) => tally.failed("transport".to_owned(), || format!("POST {url}: reading the answer: {err}")),
        }
    }
    tally
}

fn summarize(mut tally: Tally, elapsed: Duration) -> RunReport {
    tally.latencies.sort_unstable();
    let requests = tally.latencies.len() as u64;
    let seconds = elapsed.as_secs_f64();
    RunReport {
        requests,
        errors: tally.error_kinds.values().sum(),
        seconds: rounded(seconds, 3),
        requests_per_second: rounded(if seconds > 0.0 { requests as f64 / seconds } else { 0.0 }, 1),
        latency_ms: latency(&tally.latencies),
        error_kinds: tally.error_kinds,
        sample_error: tally.sample_error,
    }
}

/// Percentiles (nearest rank) of sorted latencies, in milliseconds.
fn latency(sorted: &[Duration]) -> Option<Latency> {
    let max = sorted.last()?;
    let at = |fraction: f64| {
        let rank = (fraction * sorted.len() as f64).ceil() as usize;
        let duration = sorted.get(rank.saturating_sub(1)).unwrap_or(max);
        milliseconds(*duration)
    };
    Some(Latency { p50: at(0.50), p90: at(0.90), p99: at(0.99), p999: at(0.999), max: milliseconds(*max) })
}

/// Milliseconds, to the microsecond.
fn milliseconds(duration: Duration) -> f64 {
    rounded(duration.as_secs_f64() * 1000.0, 3)
}

/// `value` to `decimals` places (for the JSON document; the figures are
/// not that precise anyway).
pub(super) fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use hearth_core::WorkspaceId;

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = latency(&sorted).unwrap();
        assert_eq!((latency.p50, latency.p90, latency.p99, latency.max), (50.0, 90.0, 99.0, 100.0));
        let thousand: Vec<Duration> = (1..=2000).map(Duration::from_micros).collect();
        assert_eq!(super::latency(&thousand).unwrap().p999, 1.998, "nearest rank: the 1998th of 2000");
        let one = super::latency(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(super::latency(&[]).is_none());
    }

    #[tokio::test]
    async fn non_2xx_answers_are_counted_as_errors_not_as_requests() {
        async fn unavailable() -> (axum::http::StatusCode, &'static str) {
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "database busy")
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/x", axum::routing::post(unavailable));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let targets = [Target { id: WorkspaceId::new_random(), token: "t".into() }];
        let report = drive(&url, &targets, 3, Duration::from_millis(200)).await.unwrap();
        server.abort();
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0);
        assert_eq!(report.error_kinds.keys().collect::<Vec<_>>(), ["HTTP 503 Service Unavailable"]);
        assert!(report.sample_error.unwrap().contains("database busy"));
        assert!(report.latency_ms.is_none());
    }

    #[test]
    fn failures_are_counted_by_kind_and_the_first_is_kept() {
        let mut tally = Tally::default();
        tally.failed("HTTP 503".into(), || "first".into());
        tally.failed("HTTP 503".into(), || "second".into());
        tally.failed("transport".into(), || "third".into());
        let report = summarize(tally, Duration::from_secs(1));
        assert_eq!(report.errors, 3);
        assert_eq!(report.error_kinds.get("HTTP 503"), Some(&2));
        assert_eq!(report.sample_error.as_deref(), Some("first"));
        assert_eq!(report.requests, 0);
        assert!(report.latency_ms.is_none());
    }
}
