//! Rate-limited log lines, for warnings that a client or a busy store can cause once per
//! request: a few go out per window, the rest are counted and the next line that goes out
//! says how many were suppressed. (A lost write race logged once per race made 150 lines in
//! 6 s.)
//!
//! Use [`warn_limited!`](crate::warn_limited): each call site has its own budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines one call site may log per [`WINDOW`].
pub const BURST: u32 = 5;
/// The window the [`BURST`] is counted over.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One call site's budget.
#[derive(Debug)]
pub struct LogLimit {
    state: Mutex<Option<State>>,
}

#[derive(Debug)]
struct State {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimit {
    pub const fn new() -> Self {
        LogLimit {
            state: Mutex::new(None),
        }
    }

    /// Whether a line may go out now; `Some(n)` with the lines suppressed since the last one
    /// that went out.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`LogLimit::admit`] at a given time (tests).
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked while counting: keep counting.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = guard.get_or_insert(State {
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(state.window_start) >= WINDOW {
            state.window_start = now;
            state.logged = 0;
        }
        if state.logged < BURST {
            state.logged += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

/// `tracing::warn!` with a per-call-site budget of [`BURST`] lines per [`WINDOW`]; a line
/// after suppressed ones carries `suppressed = N` ("N similar messages suppressed").
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new();
        match LIMIT.admit() {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(suppressed) => ::tracing::warn!(suppressed, $($arg)+),
            None => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_the_count_of_what_was_dropped() {
        let limit = LogLimit::new();
        let t0 = Instant::now();
        let admitted: Vec<_> = (0..150).filter_map(|_| limit.admit_at(t0)).collect();
        assert_eq!(admitted, vec![0; BURST as usize]);
        let later = t0 + WINDOW;
        assert_eq!(limit.admit_at(later), Some(150 - u64::from(BURST)));
        assert_eq!(limit.admit_at(later), Some(0));
    }
}
