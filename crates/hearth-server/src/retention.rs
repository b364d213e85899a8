//! The event log's retention: a background loop that compacts the log
//! (`Store::compact_events`) every sweep interval, in bounded steps.
//!
//! Events older than `--event-retention`, and a workspace's events beyond
//! its newest `--event-retention-per-workspace`, are removed; each
//! workspace's latest status event stays however old. Readers learn what
//! they may have missed from the log's watermark (`routes/events.rs`
//! answers 410 `events_compacted`). Safe on every replica at once: one
//! compacts, the others find it busy and skip their turn.

use std::time::Duration;

use chrono::Utc;
use hearth_store::{Compaction, Retention, Store, StoreResult};

use crate::config::Settings;
use crate::metrics::store_error;
use crate::state::AppState;

/// Events judged by age per step (ten times as many by count): one step is
/// one short transaction.
const BATCH: i64 = 1000;
/// Steps per round at most; the rest waits for the next round.
const MAX_STEPS: usize = 200;

/// What the settings keep.
pub fn retention(settings: &Settings) -> Retention {
    Retention {
        max_age: chrono::Duration::from_std(settings.event_retention).unwrap_or(chrono::Duration::MAX),
        per_workspace: i64::from(settings.event_retention_per_workspace),
        batch: BATCH,
    }
}

/// Compacts until nothing is left to do now (or [`MAX_STEPS`] steps), and
/// returns what the steps removed in all. Each step is counted in
/// `hearth_events_compacted_total{reason}`.
pub async fn compact(store: &dyn Store, retention: Retention) -> StoreResult<Compaction> {
    let mut total = Compaction::default();
    for _ in 0..MAX_STEPS {
        let step = store.compact_events(retention, Utc::now()).await?;
        if step.busy {
            total.busy = true;
            break;
        }
        for (reason, removed) in [("age", step.by_age), ("count", step.by_count), ("superseded", step.superseded)] {
            if removed > 0 {
                metrics::counter!("hearth_events_compacted_total", "reason" => reason).increment(removed);
            }
        }
        total.by_age += step.by_age;
        total.by_count += step.by_count;
        total.superseded += step.superseded;
        total.compacted_through = step.compacted_through;
        total.more = step.more;
        metrics::gauge!("hearth_event_log_compacted_through").set(step.compacted_through as f64);
        if !step.more {
            break;
        }
        // Other writers (SQLite's single writer above all) go between steps.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

/// Runs [`compact`] every `interval` until shutdown; errors are logged and
/// counted, and the next round tries again.
pub async fn run(state: AppState, interval: Duration) {
    let mut shutdown = state.shutdown.clone();
    let retention = retention(&state.settings);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => match compact(&*state.store, retention).await {
                Ok(done) if done.removed() > 0 => tracing::info!(
                    by_age = done.by_age,
                    by_count = done.by_count,
                    superseded = done.superseded,
                    compacted_through = done.compacted_through,
                    more = done.more,
                    "event log compacted"
                ),
                Ok(_) => {}
                Err(error) => {
                    store_error(&error);
                    metrics::counter!("hearth_retention_errors_total").increment(1);
                    tracing::warn!(%error, "cannot compact the event log; trying again next round");
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}
