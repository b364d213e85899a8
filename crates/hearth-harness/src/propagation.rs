//! Event propagation between replicas (`hearth bench propagation`): how long
//! an event written through one replica takes to reach a subscriber of
//! another replica's event stream, beside a subscriber of the replica that
//! wrote it.
//!
//! [`Propagation::start`] starts two servers in this process, replicas A and
//! B, on one Postgres database (one temp dir, so one admin token and one
//! secret key, as replicas share them). [`Propagation::measure`] creates a
//! workspace through A, opens `GET /events/stream` on A and on B, then
//! restarts the workspace through A N times, one call at a time at a steady
//! rate: a provisioning workspace may be restarted again and again, and each
//! restart writes exactly one `WORKSPACE_PROVISIONING` event, so the k-th
//! such event of the workspace on a stream is the k-th call's. Each event's
//! latency runs from A's answer to its arrival on the stream (the commit
//! happens before the answer, so an event may arrive first: that counts as
//! 0 ms), and, as an upper bound that includes the write, from the call
//! being sent. Events not on a stream 5 s after the last call are lost.
//!
//! B hears of A's commits through Postgres `NOTIFY hearth` (`notices.rs`
//! wakes its event bus); its streams also re-read the log after a second
//! without a wake. The report counts the wakes of B's bus while the events
//! are written: B writes nothing, so they are A's notices, and none means
//! only the poll carried events to B (latencies of up to a second then).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use hearth_api::CreateWorkspaceRequest;
use hearth_client::Client;
use hearth_core::WorkspaceId;
use hearth_server::bus::EventBus;
use hearth_server::{Application, Settings};
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The event each call writes.
pub const EVENT: &str = "WORKSPACE_PROVISIONING";
/// How long events may still arrive after the last call.
const LATE: Duration = Duration::from_secs(5);
/// How long the servers get to drain once told to stop.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(30);

/// The size of the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events to write through replica A.
    pub events: u32,
    /// Calls per second (one at a time; a slow answer delays the next).
    pub rate: u32,
    /// The replicas' database (`postgres://…`); the bench's workspace stays in it.
    pub database_url: String,
}

/// One replica: a server started in this process.
struct Replica {
    url: String,
    bus: EventBus,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

/// Two replicas on one database, in a temp dir of their own.
pub struct Propagation {
    options: Options,
    dir: tempfile::TempDir,
    admin_token: String,
    a: Replica,
    b: Replica,
}

impl Propagation {
    /// Starts replicas A and B. Refuses a database that is not Postgres:
    /// only Postgres replicas share a database.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let scheme = options.database_url.split(':').next().unwrap_or("");
        if !matches!(scheme, "postgres" | "postgresql") {
            // Only the scheme is echoed: the rest of the URL may hold a password.
            bail!(
                "event propagation between replicas needs PostgreSQL (replicas share one Postgres database; SQLite \
                 has no replicas): --database-url must be postgres://…, not {scheme}:…"
            );
        }
        let dir =
            tempfile::Builder::new().prefix("hearth-propagation-").tempdir().context("cannot create a temp dir")?;
        let settings = Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().to_path_buf(),
            database_url: Some(SecretString::from(options.database_url.clone())),
            sweep_interval: Duration::from_secs(3600),
            ..Settings::default()
        };
        let admin_token = hearth_server::startup::admin_token(&settings)?;
        // One after the other: B migrates a database A has migrated already.
        let a = Replica::start(settings.clone()).await.context("cannot start replica A")?;
        let b = match Replica::start(settings).await.context("cannot start replica B") {
            Ok(b) => b,
            // A is stopped before the error is returned, and says so if it cannot.
            Err(err) => match a.stop().await {
                Ok(()) => return Err(err),
                Err(stopping) => return Err(err.context(format!("replica A did not stop either: {stopping:#}"))),
            },
        };
        Ok(Self { options, dir, admin_token, a, b })
    }

    /// Everything between starting the replicas and stopping them; `note`
    /// hears what is being done, for people waiting on it.
    pub async fn measure(&self, note: &mut dyn FnMut(&str)) -> anyhow::Result<Report> {
        let events = self.options.events as usize;
        let on_a = Client::new(&self.a.url, Some(self.admin_token.clone()))?;
        let on_b = Client::new(&self.b.url, Some(self.admin_token.clone()))?;

        note("creating a workspace through replica A…");
        let run = uuid::Uuid::new_v4().simple().to_string();
        let request = CreateWorkspaceRequest {
            name: format!("propagation-{}", run.get(..8).unwrap_or(&run)),
            ..Default::default()
        };
        let workspace = on_a.create_workspace(&request).await.context("cannot create the bench's workspace")?;

        note("following the event streams of replicas A and B…");
        let same =
            Subscriber::follow(&on_a, workspace.id, events).await.context("cannot follow replica A's event stream")?;
        let cross =
            Subscriber::follow(&on_b, workspace.id, events).await.context("cannot follow replica B's event stream")?;

        let wakes = Arc::new(AtomicU64::new(0));
        let mut wake = self.b.bus.subscribe();
        wake.mark_unchanged();
        let counter = tokio::spawn({
            let wakes = wakes.clone();
            async move {
                // Ends when aborted (the bus outlives the bench's reading).
                while wake.changed().await.is_ok() {
                    wakes.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        note(&format!("restarting it {events} times through replica A, {}/s…", self.options.rate));
        let calls = match drive(&on_a, workspace.id, events, self.options.rate).await {
            Ok(calls) => calls,
            Err(err) => {
                // The subscribers stop reading when dropped.
                counter.abort();
                return Err(err);
            }
        };

        note("waiting for the last events on both streams…");
        let deadline = tokio::time::Instant::now() + LATE;
        let cross = cross.finish(deadline, &calls).await;
        let same = same.finish(deadline, &calls).await;
        counter.abort();
        let cross = cross.context("replica B's event stream failed")?;
        let same = same.context("replica A's event stream failed")?;
        let round_trips: Vec<Duration> = calls.iter().map(|call| call.answered - call.sent).collect();
        Ok(Report::new(&self.options, cross, same, wakes.load(Ordering::Relaxed), &round_trips))
    }

    /// Stops both replicas and removes the temp dir; the first failure is
    /// the error.
    pub async fn stop(self) -> anyhow::Result<()> {
        let b = self.b.stop().await.context("replica B");
        let a = self.a.stop().await.context("replica A");
        let removed = self.dir.close().context("cannot remove the bench's temp dir");
        b?;
        a?;
        removed
    }
}

impl Replica {
    async fn start(settings: Settings) -> anyhow::Result<Self> {
        let app = Application::build(settings).await?;
        let url = format!("http://{}", app.local_addr()?);
        let bus = app.state().bus.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            // Told to stop, or the sender is gone: stop either way.
            stopped.await.unwrap_or_default();
        }));
        Ok(Self { url, bus, stop, server })
    }

    /// Stops the server and waits (bounded) until it has.
    async fn stop(self) -> anyhow::Result<()> {
        // The server may have ended on its own already (then nothing
        // receives this); the task's outcome says how it ended either way.
        self.stop.send(()).unwrap_or_default();
        match tokio::time::timeout(SHUTDOWN_PATIENCE, self.server).await {
            Ok(Ok(result)) => result.context("the server failed"),
            Ok(Err(err)) => Err(anyhow!("the server's task failed: {err}")),
            Err(_) => Err(anyhow!("the server did not stop within {}s", SHUTDOWN_PATIENCE.as_secs())),
        }
    }
}

/// One call through replica A: when it was sent and when its answer came.
#[derive(Debug, Clone, Copy)]
struct Call {
    sent: Instant,
    answered: Instant,
}

/// Restarts the workspace `events` times, one call at a time, `rate` a second.
async fn drive(admin: &Client, id: WorkspaceId, events: usize, rate: u32) -> anyhow::Result<Vec<Call>> {
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut calls = Vec::with_capacity(events);
    for index in 0..events {
        pace.tick().await;
        let sent = Instant::now();
        admin
            .restart(id)
            .await
            .with_context(|| format!("restart {} of {events} through replica A failed", index + 1))?;
        calls.push(Call { sent, answered: Instant::now() });
    }
    Ok(calls)
}

/// A subscriber of one replica's event stream, timing the workspace's
/// events as they arrive.
struct Subscriber {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    reader: JoinHandle<anyhow::Result<()>>,
}

impl Subscriber {
    /// Connects (from the log's tail) and reads until `events` events of
    /// the workspace have arrived.
    async fn follow(admin: &Client, id: WorkspaceId, events: usize) -> anyhow::Result<Self> {
        let mut stream = admin.follow_events(None, None).await?;
        let arrivals = Arc::new(Mutex::new(Vec::with_capacity(events)));
        let reader = tokio::spawn({
            let arrivals = arrivals.clone();
            async move {
                while lock(&arrivals).len() < events {
                    let Some(event) = stream.next().await else { bail!("the event stream ended") };
                    let event = event?;
                    if event.workspace_id == Some(id) && event.event == EVENT {
                        lock(&arrivals).push(Instant::now());
                    }
                }
                Ok(())
            }
        });
        Ok(Self { arrivals, reader })
    }

    /// Waits until every event has arrived or `deadline` has passed; then
    /// matches arrivals to calls in order.
    async fn finish(mut self, deadline: tokio::time::Instant, calls: &[Call]) -> anyhow::Result<Delivery> {
        match tokio::time::timeout_at(deadline, &mut self.reader).await {
            Ok(Ok(result)) => result?,
            Ok(Err(err)) => bail!("the task reading the event stream failed: {err}"),
            // Out of time: what has not arrived is lost.
            Err(_) => {}
        }
        let arrivals = lock(&self.arrivals).clone();
        Ok(Delivery::new(calls, &arrivals))
    }
}

impl Drop for Subscriber {
    /// Stops reading (when finished, or on the way out after an error).
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The data under a mutex, even if a holder panicked (the data are only
/// ever pushed to, so they stay whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one subscriber saw.
#[derive(Debug, Serialize)]
pub struct Delivery {
    /// Events that arrived on the stream.
    pub received: u64,
    /// Events that did not arrive within 5 s of the last call.
    pub lost: u64,
    /// From A's answer to the event's arrival on the stream.
    pub latency_ms: Option<Latency>,
    /// Events that arrived before A's answer (their latency counts as 0).
    pub before_answer: u64,
    /// From the call being sent to the event's arrival: an upper bound
    /// that includes A's write.
    pub since_call_ms: Option<Latency>,
}

impl Delivery {
    fn new(calls: &[Call], arrivals: &[Instant]) -> Self {
        let matched: Vec<(&Call, Instant)> = calls.iter().zip(arrivals.iter().copied()).collect();
        let sorted = |from: fn(&Call) -> Instant| {
            let mut latencies: Vec<Duration> =
                matched.iter().map(|(call, arrived)| arrived.saturating_duration_since(from(call))).collect();
            latencies.sort_unstable();
            latencies
        };
        Delivery {
            received: matched.len() as u64,
            lost: calls.len().saturating_sub(matched.len()) as u64,
            latency_ms: Latency::of(&sorted(|call| call.answered)),
            before_answer: matched.iter().filter(|(call, arrived)| *arrived < call.answered).count() as u64,
            since_call_ms: Latency::of(&sorted(|call| call.sent)),
        }
    }
}

/// Percentiles (nearest rank), in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Of sorted durations; `None` for none.
    fn of(sorted: &[Duration]) -> Option<Self> {
        let max = sorted.last()?;
        let at = |fraction: f64| {
            let rank = (fraction * sorted.len() as f64).ceil() as usize;
            milliseconds(*sorted.get(rank.saturating_sub(1)).unwrap_or(max))
        };
        Some(Latency { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: milliseconds(*max) })
    }
}

/// Milliseconds, to the microsecond.
fn milliseconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The bench's result, as printed and as the `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub engine: &'static str,
    pub replicas: u32,
    pub events: u32,
    pub rate: u32,
    /// Cores of this machine, shared by the bench, both replicas and Postgres.
    pub cores: usize,
    /// The event each call writes.
    pub event: &'static str,
    /// A subscriber on replica B, which did not write the events.
    pub cross_replica: Delivery,
    /// A subscriber on replica A, which wrote them: what delivery costs
    /// without the hop between replicas.
    pub same_replica: Delivery,
    /// Times replica B's event bus was woken while the events were written
    /// and read: B writes nothing, so each wake is a `NOTIFY` from A
    /// (notices close together may count once). 0: only the streams' 1 s
    /// poll carried A's events to B.
    pub notify_wakes_on_b: u64,
    /// Round trip of the restart calls through replica A.
    pub call_ms: Option<Latency>,
    /// Events lost by either subscriber.
    pub lost: u64,
}

impl Report {
    fn new(
        options: &Options,
        cross_replica: Delivery,
        same_replica: Delivery,
        notify_wakes_on_b: u64,
        round_trips: &[Duration],
    ) -> Self {
        let mut round_trips = round_trips.to_vec();
        round_trips.sort_unstable();
        Report {
            benchmark: "propagation",
            engine: "postgres",
            replicas: 2,
            events: options.events,
            rate: options.rate,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            event: EVENT,
            lost: cross_replica.lost + same_replica.lost,
            cross_replica,
            same_replica,
            notify_wakes_on_b,
            call_ms: Latency::of(&round_trips),
        }
    }

    /// An error when an event was lost: the bench fails (exit 1), after
    /// its report is printed.
    pub fn check(&self) -> anyhow::Result<()> {
        match (self.cross_replica.lost, self.same_replica.lost) {
            (0, 0) => Ok(()),
            (cross, same) => bail!("events lost: {cross} on replica B's stream, {same} on replica A's"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_matched_to_calls_in_order_and_the_rest_are_lost() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let calls: Vec<Call> = (0..4).map(|k| Call { sent: at(100 * k), answered: at(100 * k + 10) }).collect();
        // The first arrives before its answer, the second 5 ms after it.
        let arrivals = [at(8), at(115), at(260)];
        let delivery = Delivery::new(&calls, &arrivals);
        assert_eq!((delivery.received, delivery.lost, delivery.before_answer), (3, 1, 1));
        let latency = delivery.latency_ms.unwrap();
        assert_eq!((latency.p50, latency.max), (5.0, 50.0));
        let since_call = delivery.since_call_ms.unwrap();
        assert_eq!((since_call.p50, since_call.max), (15.0, 60.0));
    }

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = Latency::of(&sorted).unwrap();
        assert_eq!((latency.p50, latency.p90, latency.p99, latency.max), (50.0, 90.0, 99.0, 100.0));
        assert!(Latency::of(&[]).is_none());
    }
}
