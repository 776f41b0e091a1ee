//! When to (re)fetch every reference from the sidecar: after configure, on the refresh interval,
//! and with a short backoff after failures. Time is passed in (milliseconds), never read here.

use std::time::Duration;

const FIRST_RETRY_MS: u64 = 250;

#[derive(Debug)]
pub struct Refresh {
    interval_ms: u64,
    /// How long a callout may be outstanding before it is given up on.
    give_up_ms: u64,
    next_due_ms: u64,
    in_flight: Option<(u32, u64)>,
    failures: u32,
    loaded: bool,
}

impl Refresh {
    /// Due at once, then every `interval`. `timeout` is the callout's own timeout.
    pub fn new(now_ms: u64, interval: Duration, timeout: Duration) -> Self {
        Refresh {
            interval_ms: millis(interval).max(1),
            give_up_ms: millis(timeout).saturating_add(1000),
            next_due_ms: now_ms,
            in_flight: None,
            failures: 0,
            loaded: false,
        }
    }

    /// Whether a fetch should start now. A callout outstanding past its deadline counts as failed.
    pub fn due(&mut self, now_ms: u64) -> bool {
        if let Some((_, deadline)) = self.in_flight {
            if now_ms < deadline {
                return false;
            }
            self.failed(now_ms);
        }
        now_ms >= self.next_due_ms
    }

    pub fn started(&mut self, token: u32, now_ms: u64) {
        self.in_flight = Some((token, now_ms.saturating_add(self.give_up_ms)));
    }

    /// Whether a callout is outstanding (and not yet past its deadline at `now_ms`).
    pub fn in_flight(&self, now_ms: u64) -> bool {
        matches!(self.in_flight, Some((_, deadline)) if now_ms < deadline)
    }

    /// Whether `token` is the callout we are waiting for (a late answer to an abandoned one is not).
    pub fn is_current(&self, token: u32) -> bool {
        matches!(self.in_flight, Some((t, _)) if t == token)
    }

    pub fn succeeded(&mut self, now_ms: u64) {
        self.in_flight = None;
        self.failures = 0;
        self.loaded = true;
        self.next_due_ms = now_ms.saturating_add(self.interval_ms);
    }

    /// Retries after 250 ms, 500 ms, 1 s, ... up to the refresh interval.
    pub fn failed(&mut self, now_ms: u64) {
        self.in_flight = None;
        let backoff = FIRST_RETRY_MS
            .saturating_mul(1u64 << self.failures.min(16))
            .min(self.interval_ms);
        self.failures = self.failures.saturating_add(1);
        self.next_due_ms = now_ms.saturating_add(backoff);
    }

    /// Whether a first answer has ever been applied.
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Consecutive failed fetches (0 after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Refresh {
        Refresh::new(1_000, Duration::from_secs(30), Duration::from_secs(2))
    }

    #[test]
    fn due_at_once_then_every_interval() {
        let mut r = r();
        assert!(r.due(1_000));
        r.started(7, 1_000);
        assert!(!r.due(1_500), "one at a time");
        assert!(r.is_current(7) && !r.is_current(8));
        r.succeeded(1_100);
        assert!(r.loaded());
        assert!(!r.due(31_099));
        assert!(r.due(31_100));
    }

    #[test]
    fn backoff_after_failures_is_capped_by_the_interval() {
        let mut r = r();
        let mut now = 0;
        let mut gaps = Vec::new();
        for _ in 0..10 {
            r.failed(now);
            let mut t = now;
            while !r.due(t) {
                t += 1;
            }
            gaps.push(t - now);
            now = t;
        }
        assert_eq!(&gaps[..4], &[250, 500, 1000, 2000]);
        assert_eq!(*gaps.last().unwrap(), 30_000);
        assert!(!r.loaded());
        r.succeeded(now);
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn a_lost_callout_is_given_up_after_its_timeout() {
        let mut r = r();
        assert!(r.due(1_000));
        r.started(1, 1_000);
        assert!(!r.due(3_999));
        assert!(
            !r.due(4_000),
            "given up, but the retry waits for the backoff"
        );
        assert!(!r.is_current(1), "a late answer is ignored");
        assert!(r.due(4_250));
    }
}
