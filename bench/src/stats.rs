//! The numbers a run reports: latency percentiles and, per subscriber,
//! whether every event arrived exactly once and in order.

/// A latency summary in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// Summarises latency samples (µs); `None` when there are none. Uses the
/// nearest-rank percentile: the value below which `p` % of samples fall.
///
/// ```
/// use herald_bench::stats::summarize;
/// let s = summarize(&mut (1..=100).collect::<Vec<u64>>()).unwrap();
/// assert_eq!((s.p50, s.p99, s.max, s.count), (50, 99, 100, 100));
/// ```
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let r = (p / 100.0 * samples.len() as f64).ceil() as usize;
        samples[r.clamp(1, samples.len()) - 1]
    };
    Some(Summary {
        count: samples.len(),
        p50: rank(50.0),
        p99: rank(99.0),
        max: samples[samples.len() - 1],
    })
}

/// One subscriber's view of a run whose events are numbered `1..=expected`.
#[derive(Debug, Clone)]
pub struct SeqCheck {
    seen: Vec<bool>,
    last: u64,
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl SeqCheck {
    pub fn new(expected: u64) -> Self {
        SeqCheck {
            seen: vec![false; expected as usize + 1],
            last: 0,
            received: 0,
            duplicated: 0,
            out_of_order: 0,
        }
    }

    /// Records event `seq` (numbers outside `1..=expected` count as duplicates:
    /// nobody published them).
    pub fn record(&mut self, seq: u64) {
        self.received += 1;
        match self.seen.get_mut(seq as usize) {
            Some(seen) if seq > 0 && !*seen => {
                *seen = true;
                if seq < self.last {
                    self.out_of_order += 1;
                }
                self.last = self.last.max(seq);
            }
            _ => self.duplicated += 1,
        }
    }

    /// Whether every event arrived (once).
    pub fn complete(&self) -> bool {
        self.lost() == 0
    }

    /// Events that never arrived.
    pub fn lost(&self) -> u64 {
        self.seen.iter().skip(1).filter(|s| !**s).count() as u64
    }
}

/// Totals over every subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Integrity {
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl Integrity {
    pub fn add(&mut self, c: &SeqCheck) {
        self.lost += c.lost();
        self.duplicated += c.duplicated;
        self.out_of_order += c.out_of_order;
    }

    pub fn clean(&self) -> bool {
        *self == Integrity::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(summarize(&mut []), None);
        let s = summarize(&mut [7]).expect("one");
        assert_eq!((s.p50, s.p99, s.max), (7, 7, 7));
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = summarize(&mut v).expect("many");
        assert_eq!((s.p50, s.p99, s.max), (500, 990, 1000));
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let mut c = SeqCheck::new(5);
        for seq in [1, 2, 4, 3, 3, 9, 0] {
            c.record(seq);
        }
        assert_eq!(c.received, 7);
        assert_eq!(c.lost(), 1); // 5
        assert_eq!(c.duplicated, 3); // the second 3, 9, 0
        assert_eq!(c.out_of_order, 1); // 3 after 4
        let mut total = Integrity::default();
        total.add(&c);
        assert!(!total.clean());

        let mut ok = SeqCheck::new(3);
        (1..=3).for_each(|s| ok.record(s));
        assert!(ok.complete());
        let mut total = Integrity::default();
        total.add(&ok);
        assert!(total.clean());
    }
}
