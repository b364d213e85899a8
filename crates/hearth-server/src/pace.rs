//! The server sets the fleet's heartbeat pace. Every heartbeat answer says
//! when to send the next one: the configured interval, stretched when the
//! fleet would otherwise exceed the heartbeat budget (fleet size ÷ maximum
//! heartbeats per second), with ±10 % jitter so that runtimes started
//! together spread out. When the budget stretches the interval, the
//! liveness TTL stretches by the same factor, so a fleet told to slow down
//! is not swept offline for obeying.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// The interval for a fleet of `fleet` workspaces: `base`, or longer when
/// `fleet` heartbeats per `base` would exceed `max_rate` per second
/// (`max_rate` 0: no budget).
pub fn interval(base: Duration, fleet: u64, max_rate: u32) -> Duration {
    if max_rate == 0 {
        return base;
    }
    let needed = Duration::from_secs_f64(fleet as f64 / f64::from(max_rate));
    base.max(needed)
}

/// The liveness TTL in effect: the configured one, stretched as the
/// interval is stretched past `base`.
pub fn liveness_ttl(configured: Duration, base: Duration, interval: Duration) -> Duration {
    if interval <= base || base.is_zero() {
        return configured;
    }
    configured.mul_f64(interval.as_secs_f64() / base.as_secs_f64())
}

/// The pace of one server: its settings and the fleet size, refreshed by
/// the sweeper.
pub struct Pace {
    base: Duration,
    max_rate: u32,
    fleet: AtomicU64,
}

impl Pace {
    pub fn new(base: Duration, max_rate: u32) -> Self {
        Self { base, max_rate, fleet: AtomicU64::new(0) }
    }

    pub fn set_fleet(&self, workspaces: u64) {
        self.fleet.store(workspaces, Ordering::Relaxed);
    }

    pub fn fleet(&self) -> u64 {
        self.fleet.load(Ordering::Relaxed)
    }

    pub fn interval(&self) -> Duration {
        interval(self.base, self.fleet(), self.max_rate)
    }

    /// The liveness TTL in effect for a configured one (see [`liveness_ttl`]).
    pub fn liveness_ttl(&self, configured: Duration) -> Duration {
        liveness_ttl(configured, self.base, self.interval())
    }

    /// Seconds until the next heartbeat, jittered by ±10 %.
    pub fn next_heartbeat_seconds(&self) -> f64 {
        let jitter = rand::thread_rng().gen_range(0.9..=1.1);
        (self.interval().as_secs_f64() * jitter * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_stretches_only_past_the_budget() {
        let base = Duration::from_secs(30);
        assert_eq!(interval(base, 0, 1000), base);
        assert_eq!(interval(base, 30_000, 1000), base, "exactly at the budget");
        assert_eq!(interval(base, 100_000, 1000), Duration::from_secs(100));
        assert_eq!(interval(base, 1_000_000, 0), base, "no budget");
        assert_eq!(interval(Duration::from_millis(100), 1_000, 5000), Duration::from_millis(200));
    }

    #[test]
    fn the_liveness_ttl_follows_the_interval() {
        let (ttl, base) = (Duration::from_secs(90), Duration::from_secs(30));
        assert_eq!(liveness_ttl(ttl, base, base), ttl);
        assert_eq!(liveness_ttl(ttl, base, Duration::from_secs(60)), Duration::from_secs(180));
        assert_eq!(liveness_ttl(Duration::ZERO, base, Duration::from_secs(60)), Duration::ZERO);
    }

    #[test]
    fn the_answer_is_jittered_around_the_interval() {
        let pace = Pace::new(Duration::from_secs(10), 0);
        let answers: Vec<f64> = (0..200).map(|_| pace.next_heartbeat_seconds()).collect();
        assert!(answers.iter().all(|s| (9.0..=11.0).contains(s)), "{answers:?}");
        assert!(answers.iter().any(|s| *s != answers[0]), "jittered");
    }
}
