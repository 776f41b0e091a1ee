//! Log lines a client can cause (one per refused request) are throttled: at most one per
//! period, carrying how many were left out.

#[derive(Debug)]
pub struct LogThrottle {
    period_ms: u64,
    /// When the last line was let through (`None`: never).
    last_ms: Option<u64>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(period_ms: u64) -> Self {
        LogThrottle {
            period_ms,
            last_ms: None,
            suppressed: 0,
        }
    }

    /// `Some(left out since the last line)` when a line may be logged now, else `None` (and
    /// the event is counted).
    pub fn admit(&mut self, now_ms: u64) -> Option<u64> {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) < self.period_ms => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last_ms = Some(now_ms);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn one_line_per_period_with_the_count_left_out() {
        let mut t = LogThrottle::new(10_000);
        assert_eq!(t.admit(0), Some(0));
        for now in 1..1000 {
            assert_eq!(t.admit(now), None);
        }
        assert_eq!(t.admit(9_999), None);
        assert_eq!(t.admit(10_000), Some(1000));
        assert_eq!(t.admit(10_001), None);
        assert_eq!(t.admit(30_000), Some(1));
        assert_eq!(t.admit(45_000), Some(0));
    }
}
