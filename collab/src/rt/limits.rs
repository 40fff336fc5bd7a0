//! Per-socket and per-participant rates: token buckets and an error window.

use std::time::{Duration, Instant};

/// A token bucket of `rate` per second holding at most `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Bucket {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: Instant::now(),
        }
    }

    /// Takes one token; false when none is left.
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts errors sent in the last minute (in one-second slots).
#[derive(Debug)]
pub(crate) struct ErrorWindow {
    max: u32,
    times: std::collections::VecDeque<Instant>,
}

impl ErrorWindow {
    pub(crate) fn new(max_per_minute: u32) -> Self {
        ErrorWindow {
            max: max_per_minute,
            times: Default::default(),
        }
    }

    /// Records one error; true when the socket is now over its allowance.
    pub(crate) fn record(&mut self) -> bool {
        let now = Instant::now();
        while let Some(t) = self.times.front() {
            if now.duration_since(*t) > Duration::from_secs(60) {
                self.times.pop_front();
            } else {
                break;
            }
        }
        // Bounded: the socket is closed once the count passes `max`.
        self.times.push_back(now);
        self.times.len() > self.max as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_refuses() {
        let mut b = Bucket::new(1, 3);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }

    #[test]
    fn error_window_trips_past_the_allowance() {
        let mut w = ErrorWindow::new(2);
        assert!(!w.record());
        assert!(!w.record());
        assert!(w.record());
    }
}
