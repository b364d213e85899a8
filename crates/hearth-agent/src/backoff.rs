//! Capped exponential backoff with full jitter.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling)
//! spreads the retries of many agents that lost Hearth at the same moment,
//! so they do not all come back in lockstep when it returns.

use std::time::Duration;

use rand::Rng;

/// First ceiling: the first retry waits up to half a second.
pub(crate) const BASE: Duration = Duration::from_millis(500);
/// Largest ceiling: during a long outage an agent still tries about twice a
/// minute.
pub(crate) const CAP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, failures: 0 }
    }

    /// Failures since the last [`Backoff::reset`].
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling of the next delay, before jitter.
    fn ceiling(&self) -> Duration {
        // Past 2^20 the cap has long been reached; stopping there keeps the
        // multiplication from overflowing.
        let factor = 1u32 << self.failures.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Records a failure and returns how long to wait before the next
    /// attempt: uniform in `[0, min(cap, base * 2^failures)]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    /// Records a failure and returns the ceiling itself, without jitter:
    /// `min(cap, base * 2^failures)` (a program's restarts, which one
    /// agent makes alone, need no spreading).
    pub(crate) fn next_ceiling(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        ceiling
    }

    /// Called after a success: the next failure starts from the base again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let mut backoff = Backoff::new(BASE, CAP);
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling());
            let delay = backoff.next_delay();
            assert!(delay <= *ceilings.last().unwrap(), "{delay:?} within its ceiling");
        }
        let expected_ms = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000];
        let got_ms: Vec<u128> = ceilings.iter().map(Duration::as_millis).collect();
        assert_eq!(got_ms, expected_ms);
        assert_eq!(backoff.failures(), 10);
    }

    #[test]
    fn reset_starts_over_and_huge_failure_counts_do_not_overflow() {
        let mut backoff = Backoff::new(BASE, CAP);
        backoff.failures = u32::MAX;
        assert_eq!(backoff.ceiling(), CAP);
        assert!(backoff.next_delay() <= CAP);
        assert_eq!(backoff.failures(), u32::MAX, "saturates");
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.ceiling(), BASE);
    }

    #[test]
    fn delays_are_jittered() {
        let mut backoff = Backoff::new(BASE, CAP);
        let delays: Vec<Duration> = (0..20)
            .map(|_| {
                backoff.reset();
                backoff.next_delay()
            })
            .collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "twenty identical delays: {delays:?}");
    }
}
