//! Exponential backoff with bounded jitter.

/// How long to wait before reconnect attempt `n` (1-based).
///
/// `base * multiplier^(n-1)`, capped at `max`, then reduced by up to
/// `jitter` (a fraction, 0.0 to 1.0) so that many clients dropped at the same
/// moment do not all come back at the same moment. Jitter only ever shortens
/// the delay, so the cap holds.
///
/// ```
/// use herald_client::runtime::backoff::Backoff;
///
/// let b = Backoff { base_ms: 1000, max_ms: 30_000, multiplier: 2.0, jitter: 0.0 };
/// let delays: Vec<u64> = (1..=7).map(|n| b.delay(n, 0.5)).collect();
/// assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub base_ms: u64,
    /// No delay is longer.
    pub max_ms: u64,
    /// Growth per attempt (at least 1).
    pub multiplier: f64,
    /// Up to this fraction (0 to 1) is taken off each delay at random.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before attempt `attempt`; `random` is uniform in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> u64 {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.base_ms as f64 * self.multiplier.max(1.0).powi(exponent);
        let capped = raw.min(self.max_ms as f64).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        (capped * (1.0 - jitter)).round() as u64
    }
}

/// A small deterministic PRNG (xorshift64*): jitter needs no cryptographic
/// quality, and tests need reproducible sequences.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds_and_under_the_cap() {
        let b = Backoff {
            base_ms: 1000,
            max_ms: 30_000,
            multiplier: 2.0,
            jitter: 0.25,
        };
        let mut rng = Jitter::new(42);
        for attempt in 1..=20 {
            let nominal = Backoff { jitter: 0.0, ..b }.delay(attempt, 0.0);
            for _ in 0..200 {
                let d = b.delay(attempt, rng.next_f64());
                assert!(
                    d <= nominal && d as f64 >= nominal as f64 * 0.75 - 1.0,
                    "{attempt}: {d} vs {nominal}"
                );
                assert!(d <= 30_000);
            }
        }
    }

    #[test]
    fn rng_is_uniformish_and_in_range() {
        let mut rng = Jitter::new(7);
        let samples: Vec<f64> = (0..10_000).map(|_| rng.next_f64()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn silly_settings_do_not_panic_or_overflow() {
        let b = Backoff {
            base_ms: u64::MAX,
            max_ms: u64::MAX,
            multiplier: 1e300,
            jitter: 5.0,
        };
        let _ = b.delay(u32::MAX, 0.99);
        let shrinking = Backoff {
            base_ms: 1000,
            max_ms: 30_000,
            multiplier: 0.5,
            jitter: 0.0,
        };
        assert_eq!(
            shrinking.delay(5, 0.0),
            1000,
            "a multiplier below 1 is treated as 1"
        );
    }
}
