//! Publish rate limits: one token bucket per caller (a token's user, or the
//! peer's IP address for anonymous callers).
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second; a
//! publish takes one. An empty bucket answers how long until the next token,
//! which the route turns into `429 Too Many Requests` with `Retry-After`.
//! Time is passed in, so the arithmetic is tested with a fake clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Publishes per second per caller, sustained (`--publish-rate`).
pub const DEFAULT_PUBLISH_RATE: f64 = 100.0;
/// Publishes a caller may make at once (`--publish-burst`).
pub const DEFAULT_PUBLISH_BURST: u32 = 200;

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-caller token buckets.
///
/// ```
/// use std::time::{Duration, Instant};
/// use herald_server::ratelimit::RateLimiter;
///
/// let limiter = RateLimiter::new(1.0, 2); // one per second, bursts of two
/// let t0 = Instant::now();
/// assert!(limiter.check_at("alice", t0).is_ok());
/// assert!(limiter.check_at("alice", t0).is_ok());
/// let wait = limiter.check_at("alice", t0).unwrap_err();
/// assert_eq!(wait, Duration::from_secs(1));
/// assert!(limiter.check_at("bob", t0).is_ok()); // buckets are per caller
/// assert!(limiter.check_at("alice", t0 + Duration::from_secs(1)).is_ok());
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second; `0` disables the limiter.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Above this many buckets, full ones are dropped on the next check (a full
/// bucket is the same as no bucket), so memory follows active callers.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` at once. A `rate` of zero
    /// (or a `burst` of zero) turns limiting off.
    pub fn new(rate: f64, burst: u32) -> Self {
        let enabled = rate > 0.0 && burst > 0;
        RateLimiter {
            rate: if enabled { rate } else { 0.0 },
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter that lets everything through.
    pub fn unlimited() -> Self {
        Self::new(0.0, 0)
    }

    pub fn is_enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes a token for `key` now, or says how long until one is free.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Takes `n` tokens for `key` at once, or none and says how long until
    /// `n` are free (a request that makes several publishes, such as a chat
    /// stream announcing itself to its rooms). Asking for more than the
    /// burst takes the whole burst, so it can succeed once the bucket is full.
    ///
    /// ```
    /// use herald_server::ratelimit::RateLimiter;
    /// let limiter = RateLimiter::new(10.0, 5);
    /// assert!(limiter.check_n("alice", 4).is_ok());
    /// assert!(limiter.check_n("alice", 2).is_err()); // one left: all or nothing
    /// assert!(limiter.check_n("alice", 1).is_ok());
    /// ```
    pub fn check_n(&self, key: &str, n: u32) -> Result<(), Duration> {
        self.take_at(key, f64::from(n), Instant::now())
    }

    /// [`check`](Self::check) at a given time (for tests).
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take_at(key, 1.0, now)
    }

    fn take_at(&self, key: &str, n: f64, now: Instant) -> Result<(), Duration> {
        if !self.is_enabled() || n <= 0.0 {
            return Ok(());
        }
        let mut buckets = lock(&self.buckets);
        let bucket = self.bucket_at(&mut buckets, key, now);
        let n = n.min(self.burst);
        if bucket.tokens >= n {
            bucket.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - bucket.tokens) / self.rate))
        }
    }

    /// Whether `key` has a token now, without taking it; else how long
    /// until it has one. With [`spend_at`](Self::spend_at), for a cost
    /// known only afterwards (the topics a publish turned out to create).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use herald_server::ratelimit::RateLimiter;
    /// let limiter = RateLimiter::new(1.0, 2);
    /// let t0 = Instant::now();
    /// assert!(limiter.peek_at("svc", t0).is_ok());
    /// limiter.spend_at("svc", 3, t0); // cost more than was left: owed
    /// assert_eq!(limiter.peek_at("svc", t0), Err(Duration::from_secs(2)));
    /// assert!(limiter.peek_at("svc", t0 + Duration::from_secs(2)).is_ok());
    /// ```
    pub fn peek_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.is_enabled() {
            return Ok(());
        }
        let buckets = lock(&self.buckets);
        let tokens = buckets
            .get(key)
            .map_or(self.burst, |b| refilled(b, now, self.rate, self.burst));
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Takes `n` tokens for `key` whatever is left: what goes past empty
    /// is owed (at most one burst), so the caller waits it off.
    pub fn spend_at(&self, key: &str, n: u32, now: Instant) {
        if !self.is_enabled() || n == 0 {
            return;
        }
        let mut buckets = lock(&self.buckets);
        let bucket = self.bucket_at(&mut buckets, key, now);
        bucket.tokens = (bucket.tokens - f64::from(n)).max(-self.burst);
    }

    /// `key`'s bucket refilled to `now` (made full if new). Full buckets
    /// are dropped first when there are many (a full bucket is the same as
    /// none), so the map follows the callers active now.
    fn bucket_at<'a>(
        &self,
        buckets: &'a mut HashMap<String, Bucket>,
        key: &str,
        now: Instant,
    ) -> &'a mut Bucket {
        if buckets.len() > SWEEP_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| refilled(b, now, rate, burst) < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        bucket.tokens = refilled(bucket, now, self.rate, self.burst);
        bucket.updated = now;
        bucket
    }

    /// How many callers have a bucket (for tests and stats).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// The bucket's tokens at `now`.
fn refilled(bucket: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let limiter = RateLimiter::new(10.0, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check_at("k", t0).is_ok());
        }
        assert_eq!(limiter.check_at("k", t0), Err(Duration::from_millis(100)));
        // 250 ms later: two tokens back (2.5, floored by use).
        let t1 = t0 + Duration::from_millis(250);
        assert!(limiter.check_at("k", t1).is_ok());
        assert!(limiter.check_at("k", t1).is_ok());
        assert!(limiter.check_at("k", t1).is_err());
        // A long pause never banks more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert!(limiter.check_at("k", t2).is_ok());
        }
        assert!(limiter.check_at("k", t2).is_err());
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = RateLimiter::new(0.0, 10);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(limiter.check_at("k", t0).is_ok());
        }
        assert_eq!(limiter.tracked(), 0);
        assert!(RateLimiter::unlimited().check("k").is_ok());
    }

    #[test]
    fn spent_buckets_are_swept_too_once_full_again() {
        let limiter = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        for i in 0..=SWEEP_ABOVE {
            limiter.spend_at(&i.to_string(), 1, t0);
        }
        assert_eq!(limiter.tracked(), SWEEP_ABOVE + 1);
        limiter.spend_at("new", 1, t0 + Duration::from_secs(2));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn full_buckets_are_swept_when_many() {
        let limiter = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        for i in 0..=SWEEP_ABOVE {
            assert!(limiter.check_at(&i.to_string(), t0).is_ok());
        }
        assert_eq!(limiter.tracked(), SWEEP_ABOVE + 1);
        // Two seconds on, every bucket is full again: the next check sweeps them.
        assert!(limiter.check_at("new", t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }
}
