//! Wakes event-stream subscribers when new events are durable.
//!
//! The event log in the database is the source of truth; the bus only
//! carries "the log now reaches seq N". Subscribers read the log themselves,
//! so a missed wake-up can delay an event but never lose one. Events written
//! by another replica wake this bus through `NOTIFY hearth` (`notices.rs`);
//! a subscriber also polls on a timer, the safety net for a lost notice.

use std::time::Duration;

use hearth_store::Event;
use tokio::sync::watch;

/// How often a subscriber re-reads the log without a wake-up.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Open event streams (or wait long polls) per token (by its sha256), capped.
#[derive(Clone, Default)]
pub struct StreamSlots {
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], usize>>>,
}

/// One open stream of a token; the slot is freed when it is dropped.
pub struct StreamSlot {
    slots: StreamSlots,
    key: [u8; 32],
}

impl StreamSlots {
    /// A slot for `key`, or `None` when it already holds `max`.
    pub fn acquire(&self, key: [u8; 32], max: usize) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StreamSlot { slots: self.clone(), key })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Long polls (event streams and waits) the whole server holds open,
/// capped by `--max-long-polls`: each holds a connection, a task and a
/// read of the database every second, whichever token it belongs to.
#[derive(Clone, Default)]
pub struct LongPolls {
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// One open long poll of the server; freed when dropped.
pub struct LongPoll {
    polls: LongPolls,
}

impl LongPolls {
    /// A place among the server's long polls, or `None` when `max` are open.
    pub fn acquire(&self, max: usize) -> Option<LongPoll> {
        use std::sync::atomic::Ordering;
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < max).then_some(open + 1)).ok()?;
        metrics::gauge!("hearth_long_polls_open").increment(1.0);
        Some(LongPoll { polls: self.clone() })
    }

    /// How many are open now.
    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Drop for LongPoll {
    fn drop(&mut self) {
        self.polls.open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        metrics::gauge!("hearth_long_polls_open").decrement(1.0);
    }
}

/// What an open event stream or wait holds: its place among its token's
/// and among the server's long polls.
pub struct LongPollSlot {
    _token: StreamSlot,
    _server: LongPoll,
}

impl LongPollSlot {
    pub fn new(token: StreamSlot, server: LongPoll) -> Self {
        Self { _token: token, _server: server }
    }
}

/// Which long poll a refusal is about (its message and metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongPollKind {
    Stream,
    Wait,
}

/// `Retry-After` of a refused long poll: long enough that a reconnect loop
/// does not spin, short next to a stream's life.
pub const LONG_POLL_RETRY_SECS: u64 = 5;

#[derive(Clone)]
pub struct EventBus {
    latest: watch::Sender<i64>,
}

impl EventBus {
    pub fn new(latest_seq: i64) -> Self {
        Self { latest: watch::channel(latest_seq).0 }
    }

    /// Called after the transaction that wrote `events` committed: counts
    /// them and wakes subscribers.
    pub fn published(&self, events: &[Event]) {
        record_event_metrics(events);
        if let Some(max) = events.iter().map(|e| e.seq).max() {
            self.latest.send_if_modified(|latest| {
                if max > *latest {
                    *latest = max;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Makes every subscriber re-read the log (for writers that do not hold
    /// the new events in hand).
    pub fn wake(&self) {
        self.latest.send_modify(|_| {});
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }
}

/// Counts written events by name, and reconcile outcomes (condition changes
/// by type, new status and reason) for `/metrics`.
fn record_event_metrics(events: &[Event]) {
    for event in events {
        metrics::counter!("hearth_events_total", "event" => event.kind.as_str()).increment(1);
        if event.kind == hearth_core::EventKind::ConditionChanged {
            let field = |key: &str| event.payload[key].as_str().unwrap_or("unknown").to_owned();
            metrics::counter!(
                "hearth_reconcile_outcomes_total",
                "condition" => field("type"),
                "status" => field("status"),
                "reason" => field("reason")
            )
            .increment(1);
        }
    }
}
