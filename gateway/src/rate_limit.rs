//! Per-client rate limits in bounded memory: a token bucket per client (a source address, a
//! user id), found by a keyed 64-bit hash of its key. At most [`MAX_CLIENTS`] buckets are
//! kept: past that, buckets that have refilled (their client idle long enough to be as good
//! as new) are dropped, and if every one is still in use, a new client goes unmetered until
//! some are (the limiter must not grow without bound under a flood of sources, and what it
//! guards costs the server nothing it keeps).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked by one limiter (about 40 bytes each).
const MAX_CLIENTS: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub struct RateLimit {
    per_minute: f64,
    hasher: RandomState,
    clients: Mutex<HashMap<u64, Bucket>>,
}

impl RateLimit {
    /// `per_minute` requests a minute per client, in bursts of up to as many.
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute.max(1));
        RateLimit {
            per_minute,
            hasher: RandomState::new(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s budget, or says how long until one is free.
    pub fn check(&self, key: &impl Hash) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &impl Hash, now: Instant) -> Result<(), Duration> {
        let id = self.hasher.hash_one(key);
        let per_second = self.per_minute / 60.0;
        // Any bucket is full again a minute after its last use.
        let full_after = Duration::from_secs(60);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(&id) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, b| now.saturating_duration_since(b.last) < full_after);
            if clients.len() >= MAX_CLIENTS {
                return Ok(());
            }
        }
        let bucket = clients.entry(id).or_insert(Bucket {
            tokens: self.per_minute,
            last: now,
        });
        let refill = now.saturating_duration_since(bucket.last).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.per_minute);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Duration::from_secs_f64(wait.clamp(1.0, 3600.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_refill_per_client() {
        let limit = RateLimit::per_minute(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limit.check_at(&"a", t0).is_ok());
        }
        let wait = limit.check_at(&"a", t0).expect_err("over the burst");
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20));
        // Another client has its own budget.
        for i in 0..100 {
            assert!(limit.check_at(&format!("client-{i}"), t0).is_ok());
        }
        // One request's worth comes back in 20 s.
        assert!(limit.check_at(&"a", t0 + Duration::from_secs(21)).is_ok());
        assert!(limit.check_at(&"a", t0 + Duration::from_secs(21)).is_err());
    }
}
