//! The load generator: `concurrency` senders, each with its own HTTP client
//! (one kept-alive connection), each going round its share of the targets
//! with heartbeat bodies and the target's bearer token for a fixed time;
//! and what one run of it measured.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use hearth_core::display::truncate;
use hearth_core::WorkspaceId;
use serde::Serialize;

use super::workspaces::Target;
use super::Progress;

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
    /// Per workspace, when its last acknowledged request was sent.
    acked: HashMap<WorkspaceId, DateTime<Utc>>,
}

impl Tally {
    fn failed(&mut self, kind: String, detail: impl FnOnce() -> String) {
        *self.error_kinds.entry(kind).or_default() += 1;
        if self.sample_error.is_none() {
            self.sample_error = Some(detail());
        }
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Until {
    /// Senders go round their share of the workspaces for this long;
    /// progress counts seconds.
    Elapsed(Duration),
    /// Every workspace is sent for once; progress counts requests.
    EachOnce,
}

/// A run: its report, and per workspace when its last acknowledged
/// request was sent (for the audit).
pub(super) struct Run {
    pub(super) report: RunReport,
    pub(super) acked: HashMap<WorkspaceId, DateTime<Utc>>,
}

/// How often a run reports its position.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Sends `POST url` from `concurrency` senders that share `targets` out
/// between them, until `until`.
pub(super) async fn drive(
    url: &str,
    targets: &[Target],
    concurrency: usize,
    until: Until,
    progress: &dyn Progress,
) -> anyhow::Result<Run> {
    if targets.is_empty() {
        bail!("no workspaces to send for");
    }
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?);
    }
    let started = Instant::now();
    let deadline = match until {
        Until::Elapsed(duration) => Some(started + duration),
        Until::EachOnce => None,
    };
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for (index, client) in clients.into_iter().enumerate() {
        let mut share: Vec<Target> = targets.iter().skip(index).step_by(concurrency).cloned().collect();
        if share.is_empty() {
            if deadline.is_none() {
                continue; // each once: the other senders have them all
            }
            // More senders than workspaces: senders share workspaces.
            share.extend(targets.get(index % targets.len()).cloned());
        }
        tasks.push(tokio::spawn(send(client, url.to_owned(), share, deadline, answered.clone())));
    }
    let all = futures_util::future::join_all(tasks);
    tokio::pin!(all);
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    let tallies = loop {
        tokio::select! {
            tallies = &mut all => break tallies,
            _ = ticks.tick() => progress.position(match until {
                Until::Elapsed(_) => started.elapsed().as_secs(),
                Until::EachOnce => answered.load(Ordering::Relaxed),
            }),
        }
    };
    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally.map_err(|err| anyhow!("a load task failed: {err}"))?;
        total.latencies.extend(tally.latencies);
        for (kind, count) in tally.error_kinds {
            *total.error_kinds.entry(kind).or_default() += count;
        }
        total.sample_error = total.sample_error.or(tally.sample_error);
        merge_acked(&mut total.acked, tally.acked);
    }
    let acked = std::mem::take(&mut total.acked);
    Ok(Run { report: summarize(total, started.elapsed()), acked })
}

/// Adds `more` to `into`, keeping per workspace the later acknowledgement.
pub(super) fn merge_acked(into: &mut HashMap<WorkspaceId, DateTime<Utc>>, more: HashMap<WorkspaceId, DateTime<Utc>>) {
    for (id, at) in more {
        let entry = into.entry(id).or_insert(at);
        *entry = (*entry).max(at);
    }
}

/// One sender: its share of the targets round and round until `deadline`,
/// or each once when there is none.
async fn send(
    client: reqwest::Client,
    url: String,
    share: Vec<Target>,
    deadline: Option<Instant>,
    answered: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    let rounds = if deadline.is_some() { usize::MAX } else { 1 };
    let targets = std::iter::repeat_n(share.iter(), rounds).flatten();
    for (sent, target) in (0_i64..).zip(targets) {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let body = serde_json::json!({
            "workspace_id": target.id,
            "error_rate": 0.0,
            "active_tasks": 0,
            "uptime_seconds": sent,
        });
        let sent_at = Utc::now();
        let start = Instant::now();
        let response = client.post(&url).bearer_auth(&target.token).json(&body).send().await;
        answered.fetch_add(1, Ordering::Relaxed);
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                tally.failed("transport".to_owned(), || format!("POST {url}: {err}"));
                continue;
            }
        };
        let status = response.status();
        // The whole answer is read, so the connection can be reused.
        match response.bytes().await {
            Ok(_) if status.is_success() => {
                tally.latencies.push(start.elapsed());
                tally.acked.insert(target.id, sent_at);
            }
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
    use super::*;
    use crate::bench::Quiet;

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
        let run = drive(&url, &targets, 3, Until::Elapsed(Duration::from_millis(200)), &Quiet).await.unwrap();
        assert!(run.acked.is_empty(), "nothing was acknowledged");
        let report = run.report;
        server.abort();
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0);
        assert_eq!(report.error_kinds.keys().collect::<Vec<_>>(), ["HTTP 503 Service Unavailable"]);
        assert!(report.sample_error.unwrap().contains("database busy"));
        assert!(report.latency_ms.is_none());
    }

    #[tokio::test]
    async fn each_once_sends_for_every_workspace_exactly_once_and_records_the_acknowledged() {
        type Seen = Arc<std::sync::Mutex<Vec<String>>>;
        async fn record(
            axum::extract::State(seen): axum::extract::State<Seen>,
            axum::Json(body): axum::Json<serde_json::Value>,
        ) -> axum::http::StatusCode {
            let id = body["workspace_id"].as_str().unwrap_or_default().to_owned();
            seen.lock().unwrap().push(id);
            axum::http::StatusCode::OK
        }
        let seen = Seen::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/x", axum::routing::post(record)).with_state(seen.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let targets: Vec<Target> =
            (0..7).map(|_| Target { id: WorkspaceId::new_random(), token: "t".into() }).collect();
        let before = Utc::now();
        let run = drive(&url, &targets, 3, Until::EachOnce, &Quiet).await.unwrap();
        server.abort();
        let mut sent = seen.lock().unwrap().clone();
        sent.sort();
        let mut expected: Vec<String> = targets.iter().map(|t| t.id.to_string()).collect();
        expected.sort();
        assert_eq!(sent, expected, "each workspace once");
        assert_eq!((run.report.requests, run.report.errors), (7, 0));
        assert_eq!(run.acked.len(), 7);
        assert!(run.acked.values().all(|at| *at >= before));
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
