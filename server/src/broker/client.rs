//! One connected client: its bounded queue, and the [`Subscription`] its
//! stream reads from.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::Notify;

use super::id::{shard_of, Position};
use super::names;
use super::policy::Principal;
use super::registry::Group;
use super::replay::ReplayCursor;
use super::topic::Topic;
use super::{BrokerError, SSEBroker};

use crate::sync::lock;

/// Events written from history to resuming clients.
pub(crate) static REPLAYED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("herald_events_replayed_total"));

/// One frame on its way to a client. `key`, `shard` and `seq` say which
/// topic and which position it comes from (all 0 for heartbeats and
/// control frames), so a resuming connection can drop live frames its
/// replay already gave.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub key: usize,
    pub shard: usize,
    pub seq: u64,
    pub frame: Bytes,
}

impl Delivery {
    pub fn control(frame: Bytes) -> Self {
        Delivery {
            key: 0,
            shard: 0,
            seq: 0,
            frame,
        }
    }
}

/// What a resume's replay covers (`Subscription::replayed`).
#[derive(Debug)]
pub(crate) struct Replayed {
    /// The replayed topics' keys ([`Delivery::key`]).
    pub keys: Vec<usize>,
    /// Per shard, the last seq the replay reads.
    pub through: Position,
}

/// Why a [`Subscription::on_ready`] hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Frames were queued, or the stream was closed (it ends once what
    /// is queued is written).
    Queued,
    /// The queue is full: write what the socket takes now; the push
    /// retries once right after, and evicts the client if still full.
    Full,
    /// The client was evicted: its queued frames are gone and its stream
    /// should end now, without waiting for the socket (it reconnects and
    /// resumes from history).
    Evicted,
}

/// What [`ClientState::offer`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Queued,
    /// The queue was full: the client is evicted (counted once, here).
    Evicted,
    /// The stream was already closed or evicted.
    Closed,
}

/// "End the stream after the frame `at` of topic `key`" (a job stream
/// after the job's final update), and the highest seq of that topic seen.
#[derive(Debug, Clone, Copy)]
struct End {
    key: usize,
    seen: u64,
    at: Option<u64>,
}

/// A client's bounded queue of frames.
///
/// One lock per push or batch pop and a `Notify` to wake the connection:
/// cheaper than a channel on the fan-out path, and an idle connection's
/// empty queue holds no allocation at all (a channel allocates its first
/// block of slots up front, ~1.5 KiB per connection).
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
    /// Set when a writer outside the broker drains this queue itself
    /// ([`Subscription::on_ready`]): called instead of waking `ready`.
    hook: OnceLock<Box<dyn Fn(Ready) + Send + Sync>>,
    capacity: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("hooked", &self.hook.get().is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Delivery>,
    /// No more pushes; what is queued is still read.
    closed: bool,
    /// Closed for reading too slowly: what was queued is dropped.
    evicted: bool,
    /// Boxed: only job streams have one.
    end: Option<Box<End>>,
}

impl QueueState {
    /// Closes the queue if `d` is the frame it was to end after.
    fn note(&mut self, d: &Delivery) {
        if let Some(end) = self.end.as_deref_mut() {
            if d.key == end.key {
                end.seen = end.seen.max(d.seq);
                if end.at.is_some_and(|at| end.seen >= at) {
                    self.closed = true;
                }
            }
        }
    }
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            hook: OnceLock::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Each update is a push, a pop or a flag: never half done.
        lock(&self.state)
    }

    /// Queues `d`; a full queue evicts the client instead (see
    /// `ClientState::offer`).
    fn push(&self, d: Delivery) -> Offered {
        let mut state = self.lock();
        if state.closed {
            return Offered::Closed;
        }
        if state.items.len() >= self.capacity {
            if let Some(hook) = self.hook.get() {
                // Full may mean the writer lags, not the client: let it
                // write what the socket takes now, then look again.
                drop(state);
                hook(Ready::Full);
                state = self.lock();
                if state.closed {
                    return Offered::Closed;
                }
            }
        }
        if state.items.len() >= self.capacity {
            // Gone at once: nothing more is written, so the connection
            // (and its slot) is released now, not when a stalled write
            // times out.
            state.closed = true;
            state.evicted = true;
            state.items = VecDeque::new();
            drop(state);
            self.wake(Ready::Evicted);
            return Offered::Evicted;
        }
        state.note(&d);
        state.items.push_back(d);
        drop(state);
        self.wake(Ready::Queued);
        Offered::Queued
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake(Ready::Queued);
    }

    fn wake(&self, why: Ready) {
        match self.hook.get() {
            Some(hook) => hook(why),
            None => self.ready.notify_one(),
        }
    }

    fn is_evicted(&self) -> bool {
        self.lock().evicted
    }

    /// Starts noting the frames of topic `key` (the highest seq seen,
    /// counting what is queued and what the replay gave, `replayed`), so
    /// that [`end_at`](Self::end_at) knows whether its frame came already.
    fn watch(&self, key: usize, replayed: u64) {
        let mut state = self.lock();
        let queued = state
            .items
            .iter()
            .filter(|d| d.key == key)
            .map(|d| d.seq)
            .max()
            .unwrap_or(0);
        state.end = Some(Box::new(End {
            key,
            seen: queued.max(replayed),
            at: None,
        }));
    }

    /// Ends the stream after frame `seq` of the watched topic: now, if it
    /// came already, else when it does.
    fn end_at(&self, seq: u64) {
        let mut state = self.lock();
        let Some(end) = state.end.as_deref_mut() else {
            return;
        };
        end.at = Some(seq);
        if end.seen >= seq {
            state.closed = true;
        }
        drop(state);
        self.wake(Ready::Queued);
    }

    /// Closed, and nothing left to read.
    fn is_drained(&self) -> bool {
        let state = self.lock();
        state.closed && state.items.is_empty()
    }

    /// The next frame; `None` once closed and drained.
    async fn pop(&self) -> Option<Delivery> {
        loop {
            // Registered before looking: a push in between leaves a permit.
            let pushed = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(d) = state.items.pop_front() {
                    return Some(d);
                }
                if state.closed {
                    return None;
                }
            }
            pushed.await;
        }
    }

    /// Queued frames, without waiting, under one lock: up to `max`
    /// frames and `bytes` bytes (the first frame whatever its size).
    fn take_ready(&self, max: usize, bytes: usize) -> Vec<Delivery> {
        let mut state = self.lock();
        let mut n = 0;
        let mut taken = 0;
        for d in state.items.iter().take(max) {
            if n > 0 && taken + d.frame.len() > bytes {
                break;
            }
            taken += d.frame.len();
            n += 1;
        }
        state.items.drain(..n).collect()
    }
}

/// A connected client as the broker's topics see it.
///
/// ```
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let sub = broker.connect(ConnectOptions { client_id: Some("c1".into()), ..Default::default() }).await.unwrap();
/// let client = broker.client("c1").unwrap();
/// assert_eq!(client.secret, sub.secret());
/// assert_eq!(client.topics(), ["all", "client:c1"]);
/// # });
/// ```
#[derive(Debug)]
pub struct ClientState {
    pub id: Arc<str>,
    /// Proves ownership of this connection to the subscribe/unsubscribe
    /// routes, and of its id to a reconnect (the same for every connection
    /// that continues the id).
    pub secret: String,
    /// This connection and no other (the id may be continued by a later
    /// one): names it in the backplane's cluster-wide records.
    pub(crate) serial: String,
    /// Who opened it, as verified: decides which topics it may be put on.
    pub principal: Principal,
    pub metadata: HashMap<String, String>,
    /// What it counts against besides the global limit.
    pub(crate) group: Option<Group>,
    /// When it opened, in ms since the Unix epoch (for presence).
    pub(crate) since_ms: u64,
    /// The topics it is on (a few: a list costs less than a set).
    topics: Mutex<Vec<Arc<Topic>>>,
    /// The log shards of every topic it has been on, as [`shard_bit`]s:
    /// the shards its stream's ids name. Only grows, and before a topic's
    /// first event can reach the queue.
    ///
    /// [`shard_bit`]: super::id::shard_bit
    reads: AtomicU64,
    /// Frames waiting to be written. Closing it ends the stream once what
    /// is queued is written; evicting it ends the stream at once.
    queue: Queue,
}

impl ClientState {
    pub(crate) fn new(
        id: Arc<str>,
        secret: String,
        serial: String,
        principal: Principal,
        group: Option<Group>,
        metadata: HashMap<String, String>,
        queue_capacity: usize,
    ) -> Self {
        ClientState {
            id,
            secret,
            serial,
            principal,
            group,
            metadata,
            since_ms: crate::clock::unix_ms(),
            topics: Mutex::new(Vec::new()),
            reads: AtomicU64::new(0),
            queue: Queue::new(queue_capacity),
        }
    }

    /// The authenticated user, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.principal.user_id.as_deref()
    }

    /// The verified session, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.principal.session_id.as_deref()
    }

    /// Whether `topic` is one every connection is put on (`all`, its own
    /// `client:`, `user:` and `session:`), not one it asked for.
    pub(crate) fn is_assigned(&self, topic: &str) -> bool {
        topic == names::ALL
            || topic == names::client(&self.id)
            || self.user_id().is_some_and(|u| topic == names::user(u))
            || self
                .session_id()
                .is_some_and(|s| topic == names::session(s))
    }

    /// The log shards its stream reads (see `reads`).
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }

    /// Notes that it reads `shards` too.
    pub(crate) fn read_shards(&self, shards: u64) {
        self.reads.fetch_or(shards, Ordering::AcqRel);
    }

    /// Queues a frame without waiting. A full queue means the client reads
    /// slower than events arrive: it is evicted rather than skipped, so its
    /// EventSource reconnects with its last id and resumes from history
    /// instead of silently missing events.
    pub(crate) fn offer(&self, frame: Delivery) -> Offered {
        self.queue.push(frame)
    }

    /// Everything queued, taken (for tests that look at frames).
    #[cfg(test)]
    pub(crate) fn take_queued(&self) -> Vec<Delivery> {
        self.queue.take_ready(usize::MAX, usize::MAX)
    }

    /// Closes the queue: the stream ends after what is already queued.
    pub(crate) fn close(&self) {
        self.queue.close();
    }

    /// The topics this connection is on, by name.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock_topics()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Topic>>> {
        // Every update is one push, remove or take.
        lock(&self.topics)
    }

    /// Notes that it is on `topic`.
    pub(crate) fn add_topic(&self, topic: &Arc<Topic>) {
        let mut topics = self.lock_topics();
        match topics.iter_mut().find(|t| t.name == topic.name) {
            Some(held) => *held = topic.clone(),
            None => topics.push(topic.clone()),
        }
    }

    /// Notes that it left topic `name`; returns the topic.
    pub(crate) fn remove_topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.lock_topics();
        let at = topics.iter().position(|t| &*t.name == name)?;
        Some(topics.swap_remove(at))
    }

    /// Forgets every topic; returns them.
    pub(crate) fn take_topics(&self) -> Vec<Arc<Topic>> {
        std::mem::take(&mut *self.lock_topics())
    }
}

/// A live connection's view of the broker: the frames to write, in order.
///
/// First the frames prepared at connect time (`connected`, a possible
/// `reset`, then the replayed history), then live events. Dropping it
/// disconnects the client, so an HTTP stream that ends for any reason
/// cleans up after itself.
///
/// ```
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let sub = broker.connect(ConnectOptions::default()).await.unwrap();
/// assert_eq!(broker.client_count(), 1);
/// drop(sub); // the HTTP stream ended
/// assert_eq!(broker.client_count(), 0);
/// # });
/// ```
pub struct Subscription {
    pub(crate) broker: SSEBroker,
    pub(crate) client: Arc<ClientState>,
    pub(crate) pending: VecDeque<Delivery>,
    /// What a resume's replay covers: live frames it also gives were
    /// queued while it was read and are duplicates.
    pub(crate) replayed: Option<Replayed>,
    /// Kept for as long as the stream lives ([`hold`](Self::hold)).
    pub(crate) held: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The rest of a resuming stream's history, read as it is written
    /// (boxed: most streams have none).
    pub(crate) replay: Option<Box<ReplayCursor>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("client", &self.client.id)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The client's id.
    pub fn client_id(&self) -> &str {
        &self.client.id
    }

    /// The per-connection secret (also sent in the `connected` event).
    pub fn secret(&self) -> &str {
        &self.client.secret
    }

    /// The next frame to write, or `None` once the broker closed the
    /// connection (eviction, replacement by a newer connection with the same
    /// id, shutdown, `disconnect`, or [`end_after`](Self::end_after)).
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            if self.is_evicted() {
                return None;
            }
            if let Some(d) = self.pending.pop_front() {
                return Some(d.frame);
            }
            if self.replay.is_none() {
                break;
            }
            if let Err(e) = self.read_replay().await {
                // The client reconnects and resumes from what it got.
                tracing::warn!(client = %self.client.id, error = %e, "replay failed; ending the stream");
                return None;
            }
        }
        loop {
            let delivery = self.client.queue.pop().await?;
            if !self.already_replayed(&delivery) {
                return Some(delivery.frame);
            }
        }
    }

    /// Whether history must be read before anything more can be written
    /// ([`read_replay`](Self::read_replay)): live frames wait behind it.
    pub fn needs_replay(&self) -> bool {
        self.pending.is_empty() && self.replay.is_some() && !self.is_evicted()
    }

    /// Reads the next page of a resuming stream's history into the frames
    /// to write; a writer calls it when [`needs_replay`](Self::needs_replay)
    /// says so ([`recv`](Self::recv) does it by itself).
    pub async fn read_replay(&mut self) -> Result<(), BrokerError> {
        let Some(cursor) = self.replay.as_mut() else {
            return Ok(());
        };
        let (batch, _) = cursor.next_batch(self.broker.backplane().as_ref()).await?;
        if cursor.is_done() {
            self.replay = None;
        }
        REPLAYED.increment(batch.len() as u64);
        self.pending.extend(batch);
        Ok(())
    }

    /// Keeps `value` (with any held before) for as long as this stream
    /// lives, and drops it when the stream ends, for whatever reason: a
    /// route's "on disconnect" (the chat's `user-left` announcement, a
    /// connection-limit slot).
    pub fn hold(&mut self, value: impl std::any::Any + Send + Sync) {
        let value: Box<dyn std::any::Any + Send + Sync> = Box::new(value);
        self.held = Some(match self.held.take() {
            Some(before) => Box::new((before, value)),
            None => value,
        });
    }

    /// Ends the stream right after the event of `topic` whose sequence
    /// number `last` will say (a job stream after the job's final update,
    /// whose number is known only once it is published): it may already
    /// have gone out, be queued, or come later. A `last` that closes
    /// without a number ends the stream too (nothing final is coming).
    pub fn end_after(&self, topic: &str, mut last: tokio::sync::watch::Receiver<Option<u64>>) {
        let Some(key) = self.broker.inner.hub.existing(topic).map(|t| t.key()) else {
            return;
        };
        let shard = shard_of(topic, self.broker.backplane().shards());
        let replayed = self
            .replayed
            .as_ref()
            .filter(|r| r.keys.contains(&key))
            .map_or(0, |r| r.through.seq(shard));
        // Noted from now on, before any writer drains a frame.
        self.client.queue.watch(key, replayed);
        let client = Arc::downgrade(&self.client);
        tokio::spawn(async move {
            let seq = match last.wait_for(Option::is_some).await {
                Ok(seq) => *seq,
                Err(_) => None,
            };
            if let Some(client) = client.upgrade() {
                match seq {
                    Some(seq) => client.queue.end_at(seq),
                    None => client.close(),
                }
            }
        });
    }

    fn already_replayed(&self, d: &Delivery) -> bool {
        d.key != 0
            && self
                .replayed
                .as_ref()
                .is_some_and(|r| d.seq <= r.through.seq(d.shard) && r.keys.contains(&d.key))
    }

    /// Has the stream ended: evicted, or closed and everything queued
    /// was read?
    pub fn is_finished(&self) -> bool {
        self.is_evicted() || (self.pending.is_empty() && self.client.queue.is_drained())
    }

    /// Was the client evicted (too slow)? Its stream should end at once.
    pub fn is_evicted(&self) -> bool {
        self.client.queue.is_evicted()
    }

    /// Calls `ready` whenever frames are queued (or the stream is closed),
    /// instead of waking [`recv`](Self::recv); for a writer that drains the
    /// queue itself with [`drain_ready`](Self::drain_ready), from any
    /// thread, without a task per connection waking up for each event (see
    /// `net::flusher`). `ready` runs on the publishing thread: on
    /// [`Ready::Queued`] it should only schedule work; on [`Ready::Full`]
    /// it should write what it can at once, because the client is evicted
    /// if the queue is still full right after; on [`Ready::Evicted`] it
    /// should end the stream. Set once; later calls are ignored.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
    /// use herald_shared::wire::Event;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    ///
    /// let broker = SSEBroker::new(BrokerConfig::default());
    /// let mut sub = broker.connect(ConnectOptions { client_id: Some("c".into()), ..Default::default() }).await.unwrap();
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let counter = calls.clone();
    /// sub.on_ready(move |_| { counter.fetch_add(1, Ordering::Relaxed); });
    /// broker.send("c", Event::data("hi")).await.unwrap();
    /// assert_eq!(calls.load(Ordering::Relaxed), 1);
    ///
    /// let mut frames = Vec::new();
    /// sub.drain_ready(&mut frames, 64, 64 * 1024); // `connected`, then "hi"
    /// assert_eq!(frames.len(), 2);
    /// # });
    /// ```
    pub fn on_ready(&self, ready: impl Fn(Ready) + Send + Sync + 'static) {
        let _ = self.client.queue.hook.set(Box::new(ready));
    }

    /// Everything already available without waiting, appended to `out`,
    /// up to `max` frames and `max_bytes` bytes (at least one frame): lets
    /// the HTTP layer coalesce a burst into one write of bounded size.
    /// Stops where history must be read first
    /// ([`needs_replay`](Self::needs_replay)).
    pub fn drain_ready(&mut self, out: &mut Vec<Bytes>, max: usize, max_bytes: usize) {
        if self.is_evicted() {
            return;
        }
        let mut bytes: usize = out.iter().map(Bytes::len).sum();
        while out.len() < max {
            let Some(d) = self.pending.front() else {
                break;
            };
            if !out.is_empty() && bytes + d.frame.len() > max_bytes {
                return;
            }
            bytes += d.frame.len();
            if let Some(d) = self.pending.pop_front() {
                out.push(d.frame);
            }
        }
        if !self.pending.is_empty() || self.replay.is_some() {
            return;
        }
        if self.pending.capacity() > 0 {
            // The greeting is out: an idle stream should not keep its slots.
            self.pending = VecDeque::new();
        }
        let room = max.saturating_sub(out.len());
        if room > 0 && (out.is_empty() || bytes < max_bytes) {
            let budget = if out.is_empty() {
                max_bytes
            } else {
                max_bytes - bytes
            };
            for d in self.client.queue.take_ready(room, budget) {
                if !self.already_replayed(&d) {
                    out.push(d.frame);
                }
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client.close();
        self.broker.remove_connection(&self.client);
    }
}
