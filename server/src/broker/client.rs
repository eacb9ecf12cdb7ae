//! One connected client: its bounded queue, and the [`Subscription`] its
//! stream reads from.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::Notify;

use super::policy::Principal;
use super::registry::Group;
use super::SSEBroker;

/// One frame on its way to a client. `key` and `seq` say which topic and
/// which position it comes from (both 0 for heartbeats and control frames),
/// so a resuming connection can drop live frames its replay already gave.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub key: usize,
    pub seq: u64,
    pub frame: Bytes,
}

impl Delivery {
    pub fn control(frame: Bytes) -> Self {
        Delivery {
            key: 0,
            seq: 0,
            frame,
        }
    }
}

/// Why a [`Subscription::on_ready`] hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Frames were queued, or the stream was closed.
    Queued,
    /// The queue is full: write what the socket takes now; the push
    /// retries once right after, and evicts the client if still full.
    Full,
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
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `d`; a full queue is closed instead (see `ClientState::offer`).
    fn push(&self, d: Delivery) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if state.items.len() >= self.capacity {
            if let Some(hook) = self.hook.get() {
                // Full may mean the writer lags, not the client: let it
                // write what the socket takes now, then look again.
                drop(state);
                hook(Ready::Full);
                state = self.lock();
                if state.closed {
                    return false;
                }
            }
        }
        let queued = state.items.len() < self.capacity;
        if queued {
            state.items.push_back(d);
        } else {
            state.closed = true;
        }
        drop(state);
        self.wake();
        queued
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake();
    }

    fn wake(&self) {
        match self.hook.get() {
            Some(hook) => hook(Ready::Queued),
            None => self.ready.notify_one(),
        }
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

    /// Up to `max` queued frames, without waiting, under one lock.
    fn take_ready(&self, max: usize) -> Vec<Delivery> {
        let mut state = self.lock();
        let n = state.items.len().min(max);
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
    pub(crate) topics: Mutex<BTreeSet<String>>,
    /// Frames waiting to be written. Closed on eviction, which ends the
    /// client's stream once it has drained what is already queued.
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
            topics: Mutex::new(BTreeSet::new()),
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

    /// Queues a frame without waiting. A full queue means the client reads
    /// slower than events arrive: it is closed rather than skipped, so its
    /// EventSource reconnects with its last id and resumes from history
    /// instead of silently missing events. Returns false if not queued.
    pub(crate) fn offer(&self, frame: Delivery) -> bool {
        self.queue.push(frame)
    }

    /// Closes the queue: the stream ends after what is already queued.
    pub(crate) fn close(&self) {
        self.queue.close();
    }

    /// The topics this connection is on.
    pub fn topics(&self) -> Vec<String> {
        self.lock_topics().iter().cloned().collect()
    }

    pub(crate) fn lock_topics(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // Every update is one insert or remove.
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
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
#[derive(Debug)]
pub struct Subscription {
    pub(crate) broker: SSEBroker,
    pub(crate) client: Arc<ClientState>,
    pub(crate) pending: VecDeque<Delivery>,
    /// Per topic key: the last seq the replay gave. Live frames at or below
    /// it were queued while the replay was read and are duplicates.
    pub(crate) replayed_through: Vec<(usize, u64)>,
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
    /// id, shutdown, or `disconnect`).
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.recv_with_seq().await.map(|(_, frame)| frame)
    }

    /// Like [`recv`](Self::recv), with the event's sequence number (the
    /// number in its id, `<epoch>-<seq>`), or 0 for frames that are not
    /// published events (greetings, heartbeats). Lets a stream end once a
    /// known event has gone out (a job stream after the job's last update).
    pub async fn recv_with_seq(&mut self) -> Option<(u64, Bytes)> {
        if let Some(d) = self.pending.pop_front() {
            return Some((d.seq, d.frame));
        }
        loop {
            let delivery = self.client.queue.pop().await?;
            if !self.already_replayed(&delivery) {
                return Some((delivery.seq, delivery.frame));
            }
        }
    }

    fn already_replayed(&self, d: &Delivery) -> bool {
        d.key != 0
            && self
                .replayed_through
                .iter()
                .any(|&(key, through)| key == d.key && d.seq <= through)
    }

    /// Has the stream ended: the broker closed it and everything queued
    /// was read?
    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.client.queue.is_drained()
    }

    /// Calls `ready` whenever frames are queued (or the stream is closed),
    /// instead of waking [`recv`](Self::recv); for a writer that drains the
    /// queue itself with [`drain_ready`](Self::drain_ready), from any
    /// thread, without a task per connection waking up for each event (see
    /// `net::flusher`). `ready` runs on the publishing thread: on
    /// [`Ready::Queued`] it should only schedule work; on [`Ready::Full`]
    /// it should write what it can at once, because the client is evicted
    /// if the queue is still full right after. Set once; later calls are
    /// ignored.
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
    /// sub.drain_ready(&mut frames, 64); // `connected`, then "hi"
    /// assert_eq!(frames.len(), 2);
    /// # });
    /// ```
    pub fn on_ready(&self, ready: impl Fn(Ready) + Send + Sync + 'static) {
        let _ = self.client.queue.hook.set(Box::new(ready));
    }

    /// Everything already available without waiting, appended to `out`:
    /// lets the HTTP layer coalesce a burst into one write.
    pub fn drain_ready(&mut self, out: &mut Vec<Bytes>, max: usize) {
        while out.len() < max {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            out.push(d.frame);
        }
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            // The greeting is out: an idle stream should not keep its slots.
            self.pending = VecDeque::new();
        }
        let room = max.saturating_sub(out.len());
        if room > 0 {
            for d in self.client.queue.take_ready(room) {
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
