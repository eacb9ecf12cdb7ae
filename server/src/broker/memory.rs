//! The in-memory backplane: one node, history in this process.
//!
//! Each topic has its own log behind its own lock; ids come from one atomic
//! counter, taken under the topic's lock so that within a topic the id
//! order, the history order and the delivery order are the same. Delivery
//! to the local sink happens under that lock too, and the sink never calls
//! back into the log, so there is no lock cycle.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::backplane::{
    frame_with_id, Backplane, BackplaneError, BoxFuture, Entry, EventFrame, Fanout, Matched, Page,
    Replay, Sink,
};
use super::claims::{ClaimTable, Claimed, ClientClaim};
use super::id::{Epoch, EventId, Position};
use crate::sync::{read, write};

use crate::sync::lock;

/// How much history each topic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events kept per topic (1000).
    pub max_events: usize,
    /// How long an event stays resumable (5 min).
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_events: 1000,
            max_age: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
struct Record {
    seq: u64,
    at: Instant,
    /// The publisher's idempotency key, if it gave one.
    key: Option<Box<str>>,
    frame: Bytes,
}

#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Record>,
    /// The highest seq dropped from this log.
    trimmed_through: u64,
}

impl Log {
    fn trim(&mut self, limits: HistoryLimits, now: Instant) {
        while self.entries.len() > limits.max_events
            || self
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > limits.max_age)
        {
            if let Some(old) = self.entries.pop_front() {
                self.trimmed_through = old.seq;
            }
        }
    }
}

/// See the module docs.
pub struct MemoryBackplane {
    epoch: Epoch,
    limits: HistoryLimits,
    seq: AtomicU64,
    logs: RwLock<HashMap<String, Arc<Mutex<Log>>>>,
    /// Highest seq trimmed from a log that was since dropped: resuming from
    /// before it on a topic we no longer know is reported as a gap.
    forgotten_through: AtomicU64,
    sink: OnceLock<Arc<dyn Sink>>,
    claims: Mutex<ClaimTable>,
}

impl std::fmt::Debug for MemoryBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackplane")
            .field("epoch", &self.epoch)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryBackplane {
    /// A log with a fresh random epoch.
    ///
    /// ```
    /// use herald_server::broker::{Backplane, HistoryLimits, MemoryBackplane};
    /// let log = MemoryBackplane::new(HistoryLimits { max_events: 10, ..Default::default() });
    /// assert_eq!(log.name(), "memory");
    /// ```
    pub fn new(limits: HistoryLimits) -> Self {
        MemoryBackplane {
            epoch: Epoch::random(),
            limits,
            seq: AtomicU64::new(0),
            logs: RwLock::new(HashMap::new()),
            forgotten_through: AtomicU64::new(0),
            sink: OnceLock::new(),
            claims: Mutex::new(ClaimTable::default()),
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, ClaimTable> {
        // Every update is one insert, field change or retain.
        lock(&self.claims)
    }

    fn log(&self, topic: &str) -> Arc<Mutex<Log>> {
        if let Some(log) = read(&self.logs).get(topic) {
            return log.clone();
        }
        write(&self.logs)
            .entry(topic.to_owned())
            .or_default()
            .clone()
    }

    /// Appends under the locks of every log involved, taken in name order
    /// (so two appends to overlapping topics never wait on each other in a
    /// cycle) and held through delivery, so that each topic's history and
    /// delivery order are its id order.
    fn append_now(&self, topics: &[&str], key: Option<&str>, body: &[u8]) -> EventId {
        if let [topic] = topics {
            // The common case, without collecting locks.
            let log = self.log(topic);
            let mut log = lock(&log);
            return self.append_locked(topics, &mut [&mut log], key, body);
        }
        let logs: Vec<Arc<Mutex<Log>>> = topics.iter().map(|t| self.log(t)).collect();
        let mut order: Vec<usize> = (0..topics.len()).collect();
        order.sort_by_key(|&i| topics[i]);
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, Log>>> =
            logs.iter().map(|_| None).collect();
        for i in order {
            guards[i] = Some(lock(&logs[i]));
        }
        let mut held: Vec<&mut Log> = guards.iter_mut().flatten().map(|g| &mut **g).collect();
        self.append_locked(topics, &mut held, key, body)
    }

    /// The append itself, with `logs[i]` the locked log of `topics[i]`.
    fn append_locked(
        &self,
        topics: &[&str],
        logs: &mut [&mut Log],
        key: Option<&str>,
        body: &[u8],
    ) -> EventId {
        if let (Some(key), Some(first)) = (key, logs.first()) {
            // Newest first: a retry usually follows its original closely.
            let seen = first
                .entries
                .iter()
                .rev()
                .find(|e| e.key.as_deref() == Some(key));
            if let Some(seen) = seen {
                return EventId {
                    epoch: self.epoch,
                    seq: seen.seq,
                };
            }
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let id = EventId {
            epoch: self.epoch,
            seq,
        };
        let frame = frame_with_id(id, body);
        let now = Instant::now();
        for (i, log) in logs.iter_mut().enumerate() {
            log.entries.push_back(Record {
                seq,
                at: now,
                // The key is looked up in the first topic's log only.
                key: key.filter(|_| i == 0).map(Into::into),
                frame: frame.clone(),
            });
            log.trim(self.limits, now);
        }
        if let Some(sink) = self.sink.get() {
            sink.deliver(Fanout {
                topics,
                shard: 0,
                seq,
                frame: EventFrame::Whole(frame),
            });
        }
        id
    }

    fn replay_now(&self, topic: &str, page: Page) -> Replay {
        let Some(log) = read(&self.logs).get(topic).cloned() else {
            return Replay {
                entries: Vec::new(),
                gap: page.after < self.forgotten_through.load(Ordering::Relaxed),
            };
        };
        let log = lock(&log);
        // Entries are in seq order: find the page's start by bisection.
        let start = log.entries.partition_point(|e| e.seq <= page.after);
        Replay {
            gap: page.after < log.trimmed_through,
            entries: log
                .entries
                .range(start..)
                .take_while(|e| e.seq <= page.until)
                .take(page.limit)
                .map(|e| Entry::new(e.seq, e.frame.clone()))
                .collect(),
        }
    }
}

impl Backplane for MemoryBackplane {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn attach(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    fn append<'a>(
        &'a self,
        topics: &'a [&'a str],
        key: Option<&'a str>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<EventId, BackplaneError>> {
        let id = self.append_now(topics, key, &body);
        Box::pin(std::future::ready(Ok(id)))
    }

    fn replay<'a>(
        &'a self,
        topic: &'a str,
        page: Page,
    ) -> BoxFuture<'a, Result<Replay, BackplaneError>> {
        let replay = self.replay_now(topic, page);
        Box::pin(std::future::ready(Ok(replay)))
    }

    fn topics_under<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Matched, BackplaneError>> {
        let logs = read(&self.logs);
        let mut topics: Vec<String> = logs
            .keys()
            .filter(|name| name.starts_with(prefix))
            .take(limit.saturating_add(1))
            .cloned()
            .collect();
        drop(logs);
        let truncated = topics.len() > limit;
        topics.truncate(limit);
        Box::pin(std::future::ready(Ok(Matched {
            topics,
            forgotten_through: vec![self.forgotten_through.load(Ordering::Relaxed)],
            truncated,
        })))
    }

    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>> {
        let seq = self.seq.load(Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(Position::new(self.epoch, vec![seq]))))
    }

    fn claim_client<'a>(
        &'a self,
        id: &'a str,
        claim: ClientClaim<'a>,
    ) -> BoxFuture<'a, Result<Claimed, BackplaneError>> {
        let claimed = self.claims().claim(id, &claim, Instant::now());
        Box::pin(std::future::ready(Ok(claimed)))
    }

    fn release_client(&self, id: &str, holder: &str, keep_for: Duration) {
        self.claims().release(id, holder, keep_for, Instant::now());
    }

    fn sweep(&self) {
        let now = Instant::now();
        self.claims().sweep(now);
        let empty: Vec<String> = read(&self.logs)
            .iter()
            .filter_map(|(name, log)| {
                let mut log = lock(log);
                log.trim(self.limits, now);
                log.entries.is_empty().then(|| name.clone())
            })
            .collect();
        if empty.is_empty() {
            return;
        }
        let mut logs = write(&self.logs);
        for name in empty {
            // Re-check under the write lock: an append may have come in.
            if logs.get(&name).is_some_and(|l| lock(l).entries.is_empty()) {
                if let Some(log) = logs.remove(&name) {
                    let trimmed = lock(&log).trimmed_through;
                    self.forgotten_through.fetch_max(trimmed, Ordering::Relaxed);
                }
            }
        }
    }

    fn topic_count(&self) -> usize {
        read(&self.logs).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_after(after: u64) -> Page {
        Page {
            after,
            until: u64::MAX,
            limit: usize::MAX,
        }
    }

    #[test]
    fn pages_are_bounded_by_until_and_limit() {
        let log = MemoryBackplane::new(HistoryLimits::default());
        for _ in 0..10 {
            log.append_now(&["t"], None, b"data: x\n\n");
        }
        let seqs = |page| {
            log.replay_now("t", page)
                .entries
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seqs(Page {
                after: 2,
                until: 6,
                limit: 100
            }),
            [3, 4, 5, 6]
        );
        assert_eq!(
            seqs(Page {
                after: 2,
                until: 10,
                limit: 3
            }),
            [3, 4, 5]
        );
        assert_eq!(
            seqs(Page {
                after: 10,
                until: 12,
                limit: 3
            }),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn history_is_bounded_by_count_and_gaps_are_reported() {
        let log = MemoryBackplane::new(HistoryLimits {
            max_events: 2,
            ..Default::default()
        });
        for _ in 0..5 {
            log.append_now(&["t"], None, b"data: x\n\n");
        }
        let r = log.replay_now("t", all_after(1));
        assert!(r.gap);
        assert_eq!(r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(!log.replay_now("t", all_after(3)).gap);
        assert!(log.replay_now("t", all_after(5)).entries.is_empty());
    }

    #[test]
    fn a_repeated_key_is_appended_once_per_topic() {
        let log = MemoryBackplane::new(HistoryLimits::default());
        let a = log.append_now(&["t"], Some("order-7"), b"data: x\n\n");
        let again = log.append_now(&["t"], Some("order-7"), b"data: x\n\n");
        let elsewhere = log.append_now(&["u"], Some("order-7"), b"data: x\n\n");
        assert_eq!(a, again);
        assert_ne!(a, elsewhere);
        assert_eq!(log.replay_now("t", all_after(0)).entries.len(), 1);
    }

    #[test]
    fn an_event_for_several_topics_is_one_id_in_each_history() {
        let log = MemoryBackplane::new(HistoryLimits::default());
        log.append_now(&["b"], None, b"data: x\n\n");
        let both = log.append_now(&["b", "a"], Some("k"), b"data: y\n\n");
        let seqs = |t| {
            log.replay_now(t, all_after(0))
                .entries
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs("a"), [both.seq]);
        assert_eq!(seqs("b"), [1, both.seq]);
        // The key is the first topic's: a retry is recognised there.
        assert_eq!(log.append_now(&["b", "a"], Some("k"), b"data: y\n\n"), both);
    }

    #[test]
    fn expired_logs_are_dropped_but_remembered_as_gaps() {
        let log = MemoryBackplane::new(HistoryLimits {
            max_events: 10,
            max_age: Duration::ZERO,
        });
        log.append_now(&["t"], None, b"data: x\n\n");
        std::thread::sleep(Duration::from_millis(2));
        log.sweep();
        assert_eq!(log.topic_count(), 0);
        assert!(
            log.replay_now("t", all_after(0)).gap,
            "a client that saw nothing missed seq 1"
        );
        assert!(!log.replay_now("t", all_after(1)).gap);
    }
}
