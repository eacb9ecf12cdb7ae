//! The in-memory backplane: one node, history in this process.
//!
//! Each topic has its own log behind its own lock; ids come from one atomic
//! counter, taken under the topic's lock so that within a topic the id
//! order, the history order and the delivery order are the same. Delivery
//! to the local sink happens under that lock too, and the sink never calls
//! back into the log, so there is no lock cycle. Locks are taken map first,
//! then logs (in name order), never the other way.
//!
//! **Bounded.** History is kept within [`HistoryLimits`]: each log trims
//! its oldest events past its count, age or bytes; past the bytes of all
//! logs (each event's frame plus a fixed cost per event and per topic), the
//! logs idle longest are dropped whole until a tenth of the budget is free
//! again; a new topic past the topic cap is refused. A dropped log leaves
//! a tombstone (its name and the last seq it held), so a resume from before
//! that is told of the gap instead of silently missing events.
//!
//! Topics are kept sorted by name, so a wildcard's resume reads only the
//! topics under its prefix.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::backplane::{
    frame_with_id, Append, AppendError, Appended, Backplane, BackplaneError, BoxFuture, Entry,
    EventFrame, Fanout, Matched, NewTopics, Page, Replay, Sink, Usage,
};
use super::claims::{ClaimTable, Claimed, ClientClaim};
pub use super::config::HistoryLimits;
use super::id::{Epoch, EventId, Position};
use crate::sync::{lock, read, write};

/// What one kept event costs beyond its frame (the record, its slot in
/// the log's ring): counted in the history's bytes.
const EVENT_COST: usize = 64;
/// What one topic's log costs beyond its events and name (its map entry,
/// lock and ring), counted likewise.
const TOPIC_COST: usize = 192;
/// Tombstones of dropped logs kept by name; past it they are folded into
/// one seq for every topic (more resumes are told of a gap, none misses one).
const MAX_TOMBSTONES: usize = 16_384;

#[derive(Debug)]
struct Record {
    seq: u64,
    at: Instant,
    /// The publisher's idempotency key (scoped by the broker), if any.
    key: Option<Box<str>>,
    frame: Bytes,
}

impl Record {
    fn cost(&self) -> usize {
        self.frame.len() + self.key.as_ref().map_or(0, |k| k.len()) + EVENT_COST
    }
}

#[derive(Debug)]
struct Log {
    entries: VecDeque<Record>,
    /// The highest seq dropped from this log.
    trimmed_through: u64,
    /// The events' bytes ([`Record::cost`]).
    bytes: usize,
    /// What the log itself costs (its name and [`TOPIC_COST`]).
    own_cost: usize,
    last_append: Instant,
    /// Taken out of the map: an appender that locked it late looks again.
    dropped: bool,
}

impl Log {
    fn new(name: &str, now: Instant) -> Self {
        Log {
            entries: VecDeque::new(),
            trimmed_through: 0,
            bytes: 0,
            own_cost: name.len() + TOPIC_COST,
            last_append: now,
            dropped: false,
        }
    }

    /// Drops the oldest events past the limits; returns the bytes freed.
    fn trim(&mut self, limits: &HistoryLimits, now: Instant) -> usize {
        let mut freed = 0;
        while self.entries.len() > limits.max_events
            || self.bytes > limits.topic_bytes
            || self
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > limits.max_age)
        {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.trimmed_through = old.seq;
            self.bytes -= old.cost();
            freed += old.cost();
        }
        freed
    }

    /// The last seq this log held (kept or trimmed).
    fn last_seq(&self) -> u64 {
        self.entries.back().map_or(self.trimmed_through, |e| e.seq)
    }
}

/// Where the history of dropped logs ended.
#[derive(Debug, Default)]
struct Tombstones {
    by_name: BTreeMap<Box<str>, u64>,
    /// Folded tombstones: every topic's history may have ended here.
    all: u64,
}

impl Tombstones {
    fn note(&mut self, topic: &str, seq: u64) {
        if self.by_name.len() >= MAX_TOMBSTONES {
            let most = self.by_name.values().copied().max().unwrap_or(0);
            self.all = self.all.max(most);
            self.by_name.clear();
        }
        let kept = self.by_name.entry(topic.into()).or_insert(0);
        *kept = (*kept).max(seq);
    }

    /// A resume of `topic` from before this may have missed events.
    fn of(&self, topic: &str) -> u64 {
        self.by_name.get(topic).copied().unwrap_or(0).max(self.all)
    }

    /// The same for any topic under `prefix`.
    fn under(&self, prefix: &str) -> u64 {
        self.by_name
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(_, &seq)| seq)
            .max()
            .unwrap_or(0)
            .max(self.all)
    }
}

/// One topic's log, shared by the map and the appenders holding it.
type Shared = Arc<Mutex<Log>>;

type Logs = BTreeMap<Arc<str>, Shared>;

/// What an append under the logs' locks came to.
enum Outcome {
    Added(EventId),
    /// The idempotency key was in one of the logs: its event's id.
    Repeated(EventId),
}

/// See the module docs.
pub struct MemoryBackplane {
    epoch: Epoch,
    limits: HistoryLimits,
    seq: AtomicU64,
    logs: RwLock<Logs>,
    /// Every log's bytes together, with each log's own cost.
    bytes: AtomicUsize,
    tombstones: Mutex<Tombstones>,
    /// Held by the one publisher shedding idle logs at a time.
    shedding: Mutex<()>,
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
            logs: RwLock::new(BTreeMap::new()),
            bytes: AtomicUsize::new(0),
            tombstones: Mutex::new(Tombstones::default()),
            shedding: Mutex::new(()),
            sink: OnceLock::new(),
            claims: Mutex::new(ClaimTable::default()),
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, ClaimTable> {
        // Every update is one insert, field change or retain.
        lock(&self.claims)
    }

    /// The logs of `topics`, in order, creating the missing ones as
    /// `new_topics` and the topic cap allow (all or none); and how many
    /// were created.
    fn logs_of(
        &self,
        topics: &[&str],
        new_topics: NewTopics,
    ) -> Result<(Vec<Shared>, usize), AppendError> {
        {
            let logs = read(&self.logs);
            let found: Vec<_> = topics.iter().map(|t| logs.get(*t).cloned()).collect();
            if let Some(found) = found.into_iter().collect::<Option<Vec<_>>>() {
                return Ok((found, 0));
            }
        }
        if new_topics == NewTopics::Refuse {
            return Err(AppendError::NewTopic);
        }
        let mut logs = write(&self.logs);
        let missing = topics.iter().filter(|t| !logs.contains_key(**t)).count();
        if logs.len() + missing > self.limits.max_topics {
            return Err(AppendError::TopicCap {
                limit: self.limits.max_topics,
            });
        }
        let now = Instant::now();
        let found = topics
            .iter()
            .map(|topic| {
                logs.entry(Arc::from(*topic))
                    .or_insert_with(|| {
                        let log = Log::new(topic, now);
                        self.bytes.fetch_add(log.own_cost, Ordering::Relaxed);
                        Arc::new(Mutex::new(log))
                    })
                    .clone()
            })
            .collect();
        Ok((found, missing))
    }

    /// Appends under the locks of every log involved, taken in name order
    /// (so two appends to overlapping topics never wait on each other in a
    /// cycle) and held through delivery, so that each topic's history and
    /// delivery order are its id order. Then sheds idle logs if the
    /// history is over its bytes.
    fn append_now(&self, event: &Append<'_>) -> Result<Appended, AppendError> {
        let appended = loop {
            if let [topic] = event.topics {
                // The common case, without collecting locks.
                let found = read(&self.logs).get(*topic).cloned();
                if let Some(log) = found {
                    let mut log = lock(&log);
                    if log.dropped {
                        continue;
                    }
                    break match self.append_locked(event, &mut [&mut log]) {
                        Outcome::Added(id) | Outcome::Repeated(id) => Appended { id, created: 0 },
                    };
                }
            }
            let (logs, created) = self.logs_of(event.topics, event.new_topics)?;
            let mut order: Vec<usize> = (0..logs.len()).collect();
            order.sort_by_key(|&i| event.topics[i]);
            let mut guards: Vec<Option<std::sync::MutexGuard<'_, Log>>> =
                logs.iter().map(|_| None).collect();
            for i in order {
                guards[i] = Some(lock(&logs[i]));
            }
            let mut held: Vec<&mut Log> = guards.iter_mut().flatten().map(|g| &mut **g).collect();
            if held.iter().any(|log| log.dropped) {
                // Shed or swept between the lookup and the lock: the topic
                // starts over in a new log.
                continue;
            }
            break match self.append_locked(event, &mut held) {
                Outcome::Added(id) => Appended { id, created },
                // A repeated key: nothing new (a log made for it stays
                // empty until swept).
                Outcome::Repeated(id) => Appended { id, created: 0 },
            };
        };
        if self.bytes.load(Ordering::Relaxed) > self.limits.total_bytes {
            self.shed();
        }
        Ok(appended)
    }

    /// The append itself, with `logs[i]` the locked log of `event.topics[i]`.
    fn append_locked(&self, event: &Append<'_>, logs: &mut [&mut Log]) -> Outcome {
        if let Some(key) = event.key {
            // Newest first: a retry usually follows its original closely.
            let seen = logs
                .iter()
                .flat_map(|log| log.entries.iter().rev())
                .find(|e| e.key.as_deref() == Some(key));
            if let Some(seen) = seen {
                return Outcome::Repeated(EventId {
                    epoch: self.epoch,
                    seq: seen.seq,
                });
            }
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let id = EventId {
            epoch: self.epoch,
            seq,
        };
        let frame = frame_with_id(id, &event.body);
        let now = Instant::now();
        let (mut added, mut freed) = (0, 0);
        for log in logs.iter_mut() {
            let record = Record {
                seq,
                at: now,
                key: event.key.map(Into::into),
                frame: frame.clone(),
            };
            log.bytes += record.cost();
            added += record.cost();
            log.entries.push_back(record);
            log.last_append = now;
            freed += log.trim(&self.limits, now);
        }
        self.bytes.fetch_add(added, Ordering::Relaxed);
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
        if let Some(sink) = self.sink.get() {
            sink.deliver(Fanout {
                topics: event.topics,
                shard: 0,
                seq,
                frame: EventFrame::Whole(frame),
            });
        }
        Outcome::Added(id)
    }

    /// Drops the logs idle longest until a tenth of the bytes budget is
    /// free. One publisher does it at a time; the others go on.
    fn shed(&self) {
        let Ok(_shedding) = self.shedding.try_lock() else {
            return;
        };
        let target = self.limits.total_bytes - self.limits.total_bytes / 10;
        let mut idle: Vec<(Instant, Arc<str>)> = read(&self.logs)
            .iter()
            .map(|(name, log)| (lock(log).last_append, name.clone()))
            .collect();
        idle.sort_unstable();
        let mut shed = 0u64;
        for (_, name) in idle {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            self.drop_log(&name, |_| true);
            shed += 1;
        }
        SHED.increment(shed);
    }

    /// Takes `name`'s log out of the map if `when` says so (asked under
    /// its lock), leaving a tombstone.
    fn drop_log(&self, name: &str, when: impl Fn(&Log) -> bool) {
        let mut logs = write(&self.logs);
        let Some(log) = logs.get(name).cloned() else {
            return;
        };
        let mut log = lock(&log);
        if !when(&log) {
            return;
        }
        logs.remove(name);
        drop(logs);
        log.dropped = true;
        lock(&self.tombstones).note(name, log.last_seq());
        self.bytes
            .fetch_sub(log.bytes + log.own_cost, Ordering::Relaxed);
    }

    /// The topics under `prefix`, in name order (only those are read).
    fn topics_under_now(&self, prefix: &str, limit: usize) -> Matched {
        let mut topics: Vec<String> = read(&self.logs)
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .take(limit.saturating_add(1))
            .map(|(name, _)| name.to_string())
            .collect();
        let truncated = topics.len() > limit;
        topics.truncate(limit);
        Matched {
            topics,
            forgotten_through: vec![lock(&self.tombstones).under(prefix)],
            truncated,
        }
    }

    fn replay_now(&self, topic: &str, page: Page) -> Replay {
        let dropped_through = lock(&self.tombstones).of(topic);
        let Some(log) = read(&self.logs).get(topic).cloned() else {
            return Replay {
                entries: Vec::new(),
                gap: page.after < dropped_through,
            };
        };
        let log = lock(&log);
        // Entries are in seq order: find the page's start by bisection.
        let start = log.entries.partition_point(|e| e.seq <= page.after);
        Replay {
            gap: page.after < log.trimmed_through.max(dropped_through),
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

/// Logs dropped whole to keep the history within its bytes.
static SHED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("herald_history_shed_topics_total"));

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

    fn append<'a>(&'a self, event: Append<'a>) -> BoxFuture<'a, Result<Appended, AppendError>> {
        let appended = self.append_now(&event);
        Box::pin(std::future::ready(appended))
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
        let matched = self.topics_under_now(prefix, limit);
        Box::pin(std::future::ready(Ok(matched)))
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
        let mut freed = 0;
        let empty: Vec<Arc<str>> = read(&self.logs)
            .iter()
            .filter_map(|(name, log)| {
                let mut log = lock(log);
                freed += log.trim(&self.limits, now);
                log.entries.is_empty().then(|| name.clone())
            })
            .collect();
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
        for name in empty {
            // Re-checked under the lock: an append may have come in.
            self.drop_log(&name, |log| log.entries.is_empty());
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            topics: read(&self.logs).len(),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `body` to `topics` (new topics allowed): its id.
    fn add(
        log: &MemoryBackplane,
        topics: &[&str],
        key: Option<&str>,
        body: &'static [u8],
    ) -> EventId {
        let event = Append {
            key,
            ..Append::new(topics, Bytes::from_static(body))
        };
        log.append_now(&event).expect("appended").id
    }

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
            add(&log, &["t"], None, b"data: x\n\n");
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
            add(&log, &["t"], None, b"data: x\n\n");
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
        let a = add(&log, &["t"], Some("order-7"), b"data: x\n\n");
        let again = add(&log, &["t"], Some("order-7"), b"data: x\n\n");
        let elsewhere = add(&log, &["u"], Some("order-7"), b"data: x\n\n");
        assert_eq!(a, again);
        assert_ne!(a, elsewhere);
        assert_eq!(log.replay_now("t", all_after(0)).entries.len(), 1);
        // Honoured on every topic of the event, not only its first.
        assert_eq!(add(&log, &["v", "t"], Some("order-7"), b"data: x\n\n"), a);
        assert!(log.replay_now("v", all_after(0)).entries.is_empty());
    }

    #[test]
    fn a_topics_history_is_bounded_by_its_bytes() {
        let limits = HistoryLimits {
            topic_bytes: 3 * (110 + EVENT_COST),
            ..Default::default()
        };
        let log = MemoryBackplane::new(limits);
        let body: &'static [u8] = &[b'x'; 90];
        let ids: Vec<EventId> = (0..5).map(|_| add(&log, &["t"], None, body)).collect();
        let kept = log.replay_now("t", all_after(0));
        // Each event is 90 bytes of body plus its `id:` line (under 100).
        assert_eq!(
            kept.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(kept.gap, "a resume from the start missed 1 and 2");
        assert!(!log.replay_now("t", all_after(ids[1].seq)).gap);
        let used = log.usage();
        assert_eq!(used.topics, 1);
        assert!(
            used.bytes <= limits.topic_bytes + TOPIC_COST + 1,
            "{used:?}"
        );
    }

    #[test]
    fn past_the_total_bytes_the_idlest_topics_go_first_and_resumes_see_the_gap() {
        let body: &'static [u8] = &[b'x'; 1000];
        let cost = 1000 + 20 + EVENT_COST + TOPIC_COST;
        let limits = HistoryLimits {
            total_bytes: 11 * cost,
            ..Default::default()
        };
        let log = MemoryBackplane::new(limits);
        let names: Vec<String> = (0..10).map(|i| format!("room:{i}")).collect();
        let mut ids = Vec::new();
        for name in &names {
            ids.push(add(&log, &[name], None, body));
            std::thread::sleep(Duration::from_millis(1)); // distinct idle times
        }
        // room:0 is touched again: room:1 is now the idlest.
        add(&log, &["room:0"], None, body);
        add(&log, &["room:10"], None, body); // over the budget
        let used = log.usage();
        assert!(used.bytes <= limits.total_bytes, "{used:?}");
        assert!(log.replay_now("room:0", all_after(0)).entries.len() == 2);
        let gone = log.replay_now("room:1", all_after(0));
        assert!(gone.entries.is_empty() && gone.gap, "dropped, and said so");
        assert!(
            !log.replay_now("room:1", all_after(ids[1].seq)).gap,
            "nothing after it was lost"
        );
        assert!(
            !log.replay_now("room:9", all_after(0)).gap,
            "the newest stay"
        );
        // A wildcard's resume from before the drop hears of it too.
        let matched = log.topics_under_now("room:", 100);
        assert!(matched.forgotten_through[0] >= ids[1].seq);
        assert!(!matched.topics.contains(&"room:1".to_owned()));
    }

    #[test]
    fn new_topics_past_the_cap_or_refused_are_not_started() {
        let log = MemoryBackplane::new(HistoryLimits {
            max_topics: 2,
            ..Default::default()
        });
        let event = |topics| Append::new(topics, Bytes::from_static(b"data: x\n\n"));
        assert_eq!(
            log.append_now(&event(&["a", "b"])).map(|a| a.created),
            Ok(2)
        );
        assert_eq!(
            log.append_now(&event(&["a", "c"])),
            Err(AppendError::TopicCap { limit: 2 })
        );
        assert_eq!(
            log.append_now(&event(&["b", "a"])).map(|a| a.created),
            Ok(0)
        );
        let refused = Append {
            new_topics: NewTopics::Refuse,
            ..event(&["a", "z"])
        };
        assert_eq!(log.append_now(&refused), Err(AppendError::NewTopic));
        assert!(log
            .append_now(&Append {
                topics: &["a"],
                ..refused
            })
            .is_ok());
        assert_eq!(log.usage().topics, 2);
    }

    #[test]
    fn a_wildcards_topics_are_found_by_prefix() {
        let log = MemoryBackplane::new(HistoryLimits::default());
        for t in ["chat:a", "chat:b", "chats", "jobs:x", "chat:c"] {
            add(&log, &[t], None, b"data: x\n\n");
        }
        let matched = log.topics_under_now("chat:", 2);
        assert_eq!(matched.topics, ["chat:a", "chat:b"]);
        assert!(matched.truncated);
        assert_eq!(log.topics_under_now("chat:", 10).topics.len(), 3);
    }

    #[test]
    fn an_event_for_several_topics_is_one_id_in_each_history() {
        let log = MemoryBackplane::new(HistoryLimits::default());
        add(&log, &["b"], None, b"data: x\n\n");
        let both = add(&log, &["b", "a"], Some("k"), b"data: y\n\n");
        let seqs = |t| {
            log.replay_now(t, all_after(0))
                .entries
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs("a"), [both.seq]);
        assert_eq!(seqs("b"), [1, both.seq]);
        // A retry is recognised in any of its topics.
        assert_eq!(add(&log, &["b", "a"], Some("k"), b"data: y\n\n"), both);
        assert_eq!(add(&log, &["a"], Some("k"), b"data: y\n\n"), both);
    }

    #[test]
    fn expired_logs_are_dropped_but_remembered_as_gaps() {
        let log = MemoryBackplane::new(HistoryLimits {
            max_events: 10,
            max_age: Duration::ZERO,
            ..Default::default()
        });
        add(&log, &["t"], None, b"data: x\n\n");
        std::thread::sleep(Duration::from_millis(2));
        log.sweep();
        assert_eq!(log.usage(), Usage::default());
        assert!(
            log.replay_now("t", all_after(0)).gap,
            "a client that saw nothing missed seq 1"
        );
        assert!(!log.replay_now("t", all_after(1)).gap);
    }
}
