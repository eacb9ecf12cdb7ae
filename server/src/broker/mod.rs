//! The broker: clients, topics, targeted and broadcast sends, history and
//! resume. Plain Rust + tokio channels; no HTTP types in here.
//!
//! **Everything is a topic.** A connection is put on `client:<id>`, `all`,
//! `user:<uid>` (when it has one), `session:<sid>` (when it has one) and the
//! topics it asks for. [`SSEBroker::send`], [`SSEBroker::notify_user`],
//! [`SSEBroker::broadcast`] and friends are all [`SSEBroker::publish`] to the
//! matching topic: one fan-out path, one history, one resume mechanism.
//!
//! **Encode once.** A published event is encoded to bytes once; every
//! subscriber's queue gets a clone of the same `Bytes` (a reference count).
//!
//! **Ordered ids.** Each event gets the next value of one counter, written
//! as `id: <epoch>-<seq>`. A client reconnecting with that id gets what it
//! missed on its topics, in order, before live events; if history no longer
//! reaches back that far, or the id is from another epoch, it first gets a
//! `reset` event.
//!
//! **Slow consumers never block anyone.** Queues are bounded; a publish uses
//! `try_send`, and a client whose queue is full is disconnected (counted as an
//! eviction) so that it reconnects and resumes from history.
//!
//! ```
//! use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
//! use herald_shared::wire::Event;
//!
//! # tokio_test_block(async {
//! let broker = SSEBroker::new(BrokerConfig::default());
//! let mut sub = broker.connect(ConnectOptions::default()).unwrap();
//! let connected = sub.recv().await.unwrap(); // the `connected` event
//! assert!(connected.starts_with(b"event: connected\n"));
//! broker.broadcast(Event::data("hello")).unwrap();
//! let frame = sub.recv().await.unwrap();
//! assert!(frame.ends_with(b"data: hello\n\n"));
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod client;
mod helper;
mod id;
mod stats;
mod topic;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use herald_shared::events::{Connected, Heartbeat, Reset, ResetReason};
use herald_shared::wire::{EncodeError, Event};
use herald_shared::SseEvent;
use thiserror::Error;
use tokio::sync::mpsc;

pub use client::{ClientState, Subscription};
pub use helper::SSEHelper;
pub use id::{Epoch, EventId, InvalidEventId};
pub use stats::{Stats, StatsSnapshot};
use topic::{HistoryLimits, Topic};

/// Called with the client on connect or disconnect.
pub type Hook = Arc<dyn Fn(&ClientState) + Send + Sync>;

/// How heartbeats are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatStyle {
    /// `: heartbeat` — invisible to `EventSource`, keeps proxies open.
    Comment,
    /// `event: heartbeat` with `{"timestamp": ...}` — visible to clients
    /// that monitor liveness, such as Herald's own client runtime.
    Event,
}

/// Broker settings. Defaults follow GoSPA's `SSEConfig`.
#[derive(Clone)]
pub struct BrokerConfig {
    /// Frames a client may have queued before it counts as too slow (100).
    pub event_buffer_size: usize,
    /// Time between heartbeats (30 s); zero disables them.
    pub heartbeat_interval: Duration,
    pub heartbeat_style: HeartbeatStyle,
    /// Events kept per topic for resume (1000).
    pub history_size: usize,
    /// How long an event stays resumable (5 min).
    pub history_max_age: Duration,
    /// The `retry:` hint sent on connect, in milliseconds (1000).
    pub retry_hint_ms: u64,
    pub on_connect: Option<Hook>,
    pub on_disconnect: Option<Hook>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            event_buffer_size: 100,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_style: HeartbeatStyle::Event,
            history_size: 1000,
            history_max_age: Duration::from_secs(300),
            retry_hint_ms: 1000,
            on_connect: None,
            on_disconnect: None,
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("event_buffer_size", &self.event_buffer_size)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_style", &self.heartbeat_style)
            .field("history_size", &self.history_size)
            .field("history_max_age", &self.history_max_age)
            .field("retry_hint_ms", &self.retry_hint_ms)
            .finish_non_exhaustive()
    }
}

/// What a new connection asks for.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Reuse an id (a reconnecting client); a new one is drawn otherwise.
    /// A live connection with the same id is replaced.
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Extra topics, on top of the implicit ones.
    pub topics: Vec<String>,
    /// Resume after this id (`Last-Event-ID`).
    pub last_event_id: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// Why the broker refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BrokerError {
    #[error("invalid topic {topic:?}: {rule}")]
    InvalidTopic { topic: String, rule: &'static str },
    #[error("invalid client id {0:?}: 1 to 128 characters of A-Z a-z 0-9 - _ . : @")]
    InvalidClientId(String),
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("event data is not serialisable: {0}")]
    Serialize(String),
}

/// The longest topic name accepted.
pub const MAX_TOPIC_LEN: usize = 128;

/// Checks a topic name: 1 to 128 characters of `A-Z a-z 0-9 - _ . : @ /`.
///
/// ```
/// use herald_server::broker::validate_topic;
/// assert!(validate_topic("room:general").is_ok());
/// assert!(validate_topic("bad topic").is_err());
/// ```
pub fn validate_topic(topic: &str) -> Result<(), BrokerError> {
    let fail = |rule| {
        Err(BrokerError::InvalidTopic {
            topic: topic.chars().take(MAX_TOPIC_LEN).collect(),
            rule,
        })
    };
    if topic.is_empty() {
        return fail("must not be empty");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return fail("must be at most 128 bytes");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b))
    {
        return fail("allowed characters are A-Z a-z 0-9 - _ . : @ /");
    }
    Ok(())
}

fn validate_client_id(id: &str) -> Result<(), BrokerError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidClientId(id.chars().take(128).collect()))
    }
}

/// The broker. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct SSEBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SSEBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SSEBroker")
            .field("epoch", &self.inner.epoch)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: BrokerConfig,
    epoch: Epoch,
    /// The last seq handed out; ids start at 1.
    seq: AtomicU64,
    /// Read-locked on every publish to find the topic, write-locked only to
    /// create or drop one: publishes to different topics do not contend.
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    clients: RwLock<HashMap<Arc<str>, Arc<ClientState>>>,
    /// Highest seq trimmed from a topic that was since dropped: resuming
    /// from before it on a topic we no longer know is reported as a gap.
    forgotten_through: AtomicU64,
    stats: Stats,
    started: Instant,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl SSEBroker {
    /// A broker with a fresh random epoch. Call [`SSEBroker::spawn_maintenance`]
    /// inside a tokio runtime to get heartbeats and history expiry.
    pub fn new(config: BrokerConfig) -> Self {
        SSEBroker {
            inner: Arc::new(Inner {
                config,
                epoch: Epoch::random(),
                seq: AtomicU64::new(0),
                topics: RwLock::new(HashMap::new()),
                clients: RwLock::new(HashMap::new()),
                forgotten_through: AtomicU64::new(0),
                stats: Stats::default(),
                started: Instant::now(),
            }),
        }
    }

    /// The settings this broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// This broker's epoch (the first part of every id it writes).
    pub fn epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// Registers a client and returns the stream of frames to write to it.
    pub fn connect(&self, opts: ConnectOptions) -> Result<Subscription, BrokerError> {
        for topic in &opts.topics {
            validate_topic(topic)?;
        }
        let id: Arc<str> = match opts.client_id {
            Some(id) => {
                validate_client_id(&id)?;
                id.into()
            }
            None => random_token(8).into(),
        };
        if let Some(uid) = &opts.user_id {
            validate_topic(&format!("user:{uid}"))?;
        }
        if let Some(sid) = &opts.session_id {
            validate_topic(&format!("session:{sid}"))?;
        }

        let (tx, rx) = mpsc::channel(self.inner.config.event_buffer_size.max(1));
        let client = Arc::new(ClientState::new(
            id.clone(),
            random_token(16),
            opts.user_id.clone(),
            opts.session_id.clone(),
            opts.metadata,
            tx,
        ));
        if let Some(old) = write(&self.inner.clients).insert(id.clone(), client.clone()) {
            // Same id reconnecting before we noticed the old stream died.
            old.close();
            self.unsubscribe_all(&old);
        }
        self.inner.stats.connected();

        let mut topics = vec![format!("client:{id}"), "all".to_owned()];
        topics.extend(opts.user_id.as_ref().map(|u| format!("user:{u}")));
        topics.extend(opts.session_id.as_ref().map(|s| format!("session:{s}")));
        topics.extend(opts.topics);

        // Resume point: `None` = live only.
        let mut reset = None;
        let after = match opts.last_event_id.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<EventId>() {
                Ok(id) if id.epoch == self.inner.epoch => Some(id.seq),
                Ok(_) => {
                    reset = Some(ResetReason::UnknownEpoch);
                    None
                }
                Err(_) => {
                    reset = Some(ResetReason::InvalidId);
                    None
                }
            },
        };

        let mut replay = BTreeMap::new();
        for name in &topics {
            let topic = self.topic(name);
            let r = topic.subscribe(&client, after);
            let forgotten = self.inner.forgotten_through.load(Ordering::Relaxed);
            let unknown_topic_gap = r.entries.is_empty() && after.is_some_and(|a| a < forgotten);
            if r.gap || unknown_topic_gap {
                reset = Some(ResetReason::HistoryGap);
            }
            for entry in r.entries {
                replay.insert(entry.seq, entry.frame);
            }
            client
                .topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone());
        }

        // From here on, dropping `sub` (also on an early `?`) cleans up.
        let mut sub = Subscription {
            broker: self.clone(),
            client,
            pending: VecDeque::with_capacity(replay.len() + 2),
            rx,
        };
        let connected = Connected {
            client_id: id.to_string(),
            secret: Some(sub.client.secret.clone()),
            user_id: opts.user_id,
            session_id: opts.session_id,
            topics,
            retry: Some(self.inner.config.retry_hint_ms),
        };
        let mut first = typed_event(&connected)?;
        first.retry = Some(self.inner.config.retry_hint_ms);
        sub.pending.push_back(first.encode()?);
        if let Some(reason) = reset {
            let reset = Reset {
                reason,
                last_event_id: opts.last_event_id.unwrap_or_default(),
            };
            sub.pending.push_back(typed_event(&reset)?.encode()?);
        }
        sub.pending.extend(replay.into_values());

        if let Some(hook) = &self.inner.config.on_connect {
            hook(&sub.client);
        }
        Ok(sub)
    }

    /// Disconnects a client by id; its stream ends. Returns whether it was connected.
    pub fn disconnect(&self, client_id: &str) -> bool {
        let client = read(&self.inner.clients).get(client_id).cloned();
        match client {
            Some(client) => {
                client.close();
                self.remove_connection(&client);
                true
            }
            None => false,
        }
    }

    /// Called when a [`Subscription`] is dropped.
    pub(crate) fn remove_connection(&self, client: &Arc<ClientState>) {
        let removed = {
            let mut clients = write(&self.inner.clients);
            let current = clients
                .get(&client.id)
                .is_some_and(|c| Arc::ptr_eq(c, client));
            if current {
                clients.remove(&client.id);
            }
            current
        };
        self.unsubscribe_all(client);
        if removed {
            if let Some(hook) = &self.inner.config.on_disconnect {
                hook(client);
            }
        }
    }

    fn unsubscribe_all(&self, client: &Arc<ClientState>) {
        let topics = std::mem::take(&mut *client.topics.lock().unwrap_or_else(|e| e.into_inner()));
        let known = read(&self.inner.topics);
        for name in topics {
            if let Some(topic) = known.get(&name) {
                topic.unsubscribe(client);
            }
        }
    }

    /// The live connection with this id, if any.
    pub fn client(&self, client_id: &str) -> Option<Arc<ClientState>> {
        read(&self.inner.clients).get(client_id).cloned()
    }

    /// Adds a connected client to topics (live events only, no replay).
    pub fn subscribe(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<Vec<String>, BrokerError> {
        for t in topics {
            validate_topic(t)?;
        }
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        for name in topics {
            self.topic(name).subscribe(&client, None);
            client
                .topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone());
        }
        Ok(client.topics())
    }

    /// Removes a connected client from topics.
    pub fn unsubscribe(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<Vec<String>, BrokerError> {
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        let known = read(&self.inner.topics);
        for name in topics {
            client
                .topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            if let Some(topic) = known.get(name) {
                topic.unsubscribe(&client);
            }
        }
        Ok(client.topics())
    }

    /// Publishes an event to a topic: stored in its history, queued for
    /// every subscriber. The broker assigns the id; an id set on `event` is
    /// ignored. Returns the id.
    pub fn publish(&self, topic: &str, mut event: Event) -> Result<EventId, BrokerError> {
        validate_topic(topic)?;
        event.id = None;
        // Encode everything but the id outside the lock; the id line is
        // prepended under the topic lock, once the seq is known.
        let body = event.encode()?;
        let inner = &self.inner;
        let limits = HistoryLimits {
            max_events: inner.config.history_size,
            max_age: inner.config.history_max_age,
        };
        let seq = self.topic(topic).publish(
            || inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            |seq| {
                let id = EventId {
                    epoch: inner.epoch,
                    seq,
                }
                .to_string();
                let mut frame = BytesMut::with_capacity(body.len() + id.len() + 5);
                frame.put_slice(b"id: ");
                frame.put_slice(id.as_bytes());
                frame.put_u8(b'\n');
                frame.put_slice(&body);
                frame.freeze()
            },
            limits,
            &inner.stats,
        );
        inner.stats.published();
        Ok(EventId {
            epoch: inner.epoch,
            seq,
        })
    }

    /// Publishes a typed event.
    pub fn publish_typed<T: SseEvent>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<EventId, BrokerError> {
        self.publish(topic, typed_event(value)?)
    }

    /// Sends to one client (topic `client:<id>`).
    pub fn send(&self, client_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&format!("client:{client_id}"), event)
    }

    /// Sends to every connection of a user (topic `user:<id>`).
    pub fn notify_user(&self, user_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&format!("user:{user_id}"), event)
    }

    /// Sends to every connection of a session (topic `session:<id>`).
    pub fn notify_session(&self, session_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&format!("session:{session_id}"), event)
    }

    /// Sends to everyone (topic `all`).
    pub fn broadcast(&self, event: Event) -> Result<EventId, BrokerError> {
        self.publish("all", event)
    }

    /// Sends to a topic's subscribers (GoSPA's `BroadcastToTopic`).
    pub fn broadcast_to_topic(&self, topic: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(topic, event)
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        read(&self.inner.clients).len()
    }

    /// How many clients are subscribed to a topic.
    pub fn clients_in(&self, topic: &str) -> usize {
        read(&self.inner.topics)
            .get(topic)
            .map_or(0, |t| t.subscriber_count())
    }

    /// Counters for `/_sse/stats`.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot(
            self.client_count(),
            read(&self.inner.topics).len(),
            self.inner.started.elapsed().as_secs(),
        )
    }

    /// Time since the broker started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Closes every stream (graceful shutdown): each client gets a `retry:`
    /// hint first so it comes back soon, possibly to another node.
    pub fn close_all(&self) {
        let clients: Vec<_> = read(&self.inner.clients).values().cloned().collect();
        let hint = Event::retry_hint(self.inner.config.retry_hint_ms).encode();
        for client in clients {
            if let Ok(hint) = &hint {
                client.offer(hint.clone());
            }
            client.close();
        }
    }

    /// Sends one heartbeat to every client and drops expired history. A
    /// client whose queue is full is closed here too.
    pub fn tick(&self) {
        let frame = match self.inner.config.heartbeat_style {
            HeartbeatStyle::Comment => Ok(Event::comment("heartbeat")),
            HeartbeatStyle::Event => typed_event(&Heartbeat {
                timestamp: crate::clock::now_rfc3339(),
            }),
        }
        .and_then(|e| Ok(e.encode()?));
        if let Ok(frame) = frame {
            let clients: Vec<_> = read(&self.inner.clients).values().cloned().collect();
            for client in clients {
                if !client.offer(frame.clone()) {
                    self.inner.stats.evicted();
                }
            }
        }
        self.sweep();
    }

    fn sweep(&self) {
        let limits = HistoryLimits {
            max_events: self.inner.config.history_size,
            max_age: self.inner.config.history_max_age,
        };
        let now = Instant::now();
        let idle: Vec<String> = read(&self.inner.topics)
            .iter()
            .filter(|(_, t)| t.sweep(limits, now))
            .map(|(name, _)| name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        let mut topics = write(&self.inner.topics);
        for name in idle {
            // Re-check under the write lock: someone may have subscribed since.
            if topics.get(&name).is_some_and(|t| t.sweep(limits, now)) {
                if let Some(t) = topics.remove(&name) {
                    let trimmed = t.lock().trimmed_through;
                    self.inner
                        .forgotten_through
                        .fetch_max(trimmed, Ordering::Relaxed);
                }
            }
        }
    }

    /// Spawns the heartbeat/expiry loop; it stops when every broker handle is gone.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = if self.inner.config.heartbeat_interval.is_zero() {
            Duration::from_secs(30)
        } else {
            self.inner.config.heartbeat_interval
        };
        let beats = !self.inner.config.heartbeat_interval.is_zero();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await; // the first tick is immediate
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let broker = SSEBroker { inner };
                if beats {
                    broker.tick();
                } else {
                    broker.sweep();
                }
            }
        })
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = read(&self.inner.topics).get(name) {
            return t.clone();
        }
        write(&self.inner.topics)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Topic::new()))
            .clone()
    }
}

/// A typed value as an untyped event.
fn typed_event<T: SseEvent>(value: &T) -> Result<Event, BrokerError> {
    value
        .to_event()
        .map_err(|e| BrokerError::Serialize(e.to_string()))
}

/// A random lowercase hex token of `bytes` random bytes.
fn random_token(bytes: usize) -> String {
    use std::fmt::Write;
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
        let _ = write!(s, "{:02x}", rand::random::<u8>());
        s
    })
}
