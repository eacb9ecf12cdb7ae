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
//! **Ordered ids, behind a seam.** The [`Backplane`] numbers events and keeps
//! their history ([`MemoryBackplane`] by default; a shared log for clusters);
//! ids are written as `id: <epoch>-<seq>`. A client reconnecting with that id gets what it
//! missed on its topics, in order, before live events; if history no longer
//! reaches back that far, or the id is from another epoch, it first gets a
//! `reset` event.
//!
//! **Slow consumers never block anyone.** Queues are bounded; a publish
//! never waits, and a client whose queue is still full after its writer
//! had a chance to flush is disconnected (counted as an eviction) so that
//! it reconnects and resumes from history.
//!
//! ```
//! use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
//! use herald_shared::wire::Event;
//!
//! # tokio_test_block(async {
//! let broker = SSEBroker::new(BrokerConfig::default());
//! let mut sub = broker.connect(ConnectOptions::default()).await.unwrap();
//! let connected = sub.recv().await.unwrap(); // the `connected` event
//! assert!(connected.starts_with(b"event: connected\n"));
//! broker.broadcast(Event::data("hello")).await.unwrap();
//! let frame = sub.recv().await.unwrap();
//! assert!(frame.ends_with(b"data: hello\n\n"));
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod backplane;
mod client;
mod config;
mod error;
mod helper;
mod id;
mod memory;
pub mod names;
pub mod policy;
mod redis_streams;
mod stats;
mod topic;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_shared::events::{Connected, Heartbeat, Reset, ResetReason};
use herald_shared::wire::Event;
use herald_shared::SseEvent;

pub use backplane::{
    frame_with_id, Backplane, BackplaneError, BackplaneHealth, BoxFuture, Replay, Sink,
};
use client::Delivery;
pub use client::{ClientState, Ready, Subscription};
pub use config::{BrokerConfig, HeartbeatStyle, Hook};
pub use error::BrokerError;
pub use helper::SSEHelper;
pub use id::{Epoch, EventId, InvalidEventId};
pub use memory::{HistoryLimits, MemoryBackplane};
use names::{validate_client_id, validate_requested_topic};
pub use names::{validate_topic, MAX_TOPIC_LEN};
pub use redis_streams::{redis_shard, RedisBackplane, RedisOptions};
pub use stats::{Stats, StatsSnapshot};
use topic::Topic;

/// What a new connection asks for.
///
/// ```
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let sub = broker.connect(ConnectOptions {
///     client_id: Some("tab-1".into()),
///     user_id: Some("alice".into()),
///     topics: vec!["room:general".into()],
///     ..ConnectOptions::default()
/// }).await.unwrap();
/// assert_eq!(sub.client_id(), "tab-1");
/// assert_eq!(broker.clients_in("user:alice"), 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Reuse an id (a reconnecting client); a new one is drawn otherwise.
    /// A live connection with the same id and the same user is replaced;
    /// another user's is not (`ClientIdInUse`).
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Extra topics, on top of the implicit ones.
    pub topics: Vec<String>,
    /// Resume after this id (`Last-Event-ID`).
    pub last_event_id: Option<String>,
    pub metadata: HashMap<String, String>,
    /// Leave out the `all` topic: for streams that must carry only their
    /// own topics (e.g. the public system status stream).
    pub no_broadcasts: bool,
    /// Topic patterns this connection may ask for (a token's `subscribe`
    /// claim); `None` puts no limit beyond the reserved prefixes.
    pub allowed_topics: Option<Vec<String>>,
    /// The first events of the stream. `None` sends the broker's
    /// `connected` event; APIs whose documented streams begin differently
    /// (the job streams' `connected` message, the plain broadcast's nothing
    /// at all) give their own. The `retry:` hint is sent either way.
    pub greeting: Option<Vec<Event>>,
}

/// The broker. Cheap to clone: clones share one state. See the module docs
/// for the design; every send below is a [`SSEBroker::publish`] to a topic.
///
/// ```
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// use herald_shared::wire::Event;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let sub = broker.connect(ConnectOptions { session_id: Some("s1".into()), ..Default::default() }).await.unwrap();
/// let id = sub.client_id().to_owned();
/// broker.send(&id, Event::data("just you")).await.unwrap();
/// broker.notify_session("s1", Event::data("your session")).await.unwrap();
/// broker.subscribe(&id, &["news".into()]).unwrap();
/// broker.broadcast_to_topic("news", Event::data("headline").event("news")).await.unwrap();
/// broker.broadcast(Event::data("everyone")).await.unwrap();
/// assert_eq!(broker.stats().events_published, 4);
/// assert_eq!(broker.client_count(), 1);
/// assert!(broker.disconnect(&id));
/// assert_eq!(broker.client_count(), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct SSEBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SSEBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SSEBroker")
            .field("epoch", &self.epoch())
            .field("backplane", &self.inner.backplane.name())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: BrokerConfig,
    backplane: Arc<dyn Backplane>,
    hub: Arc<Hub>,
    clients: RwLock<HashMap<Arc<str>, Arc<ClientState>>>,
    /// Open connections per user. Only changed while `clients` is
    /// write-locked (lock order: clients, then users).
    users: std::sync::Mutex<HashMap<String, usize>>,
    started: Instant,
}

/// This node's subscribers by topic: the [`Sink`] the backplane delivers to.
#[derive(Default)]
struct Hub {
    /// Read-locked on every delivery to find the topic, write-locked only to
    /// create or drop one: deliveries to different topics do not contend.
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    stats: Stats,
}

impl Hub {
    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = read(&self.topics).get(name) {
            return t.clone();
        }
        write(&self.topics)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Drops topics nobody here listens to any more.
    fn sweep(&self) {
        let idle: Vec<String> = read(&self.topics)
            .iter()
            .filter(|(_, t)| t.subscriber_count() == 0)
            .map(|(name, _)| name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        let mut topics = write(&self.topics);
        for name in idle {
            // Re-check under the write lock: someone may have subscribed since.
            if topics.get(&name).is_some_and(|t| t.subscriber_count() == 0) {
                topics.remove(&name);
            }
        }
    }
}

impl Sink for Hub {
    fn deliver(&self, topic: &str, seq: u64, frame: Bytes) {
        // No local subscriber, no topic: nothing to do here.
        let found = read(&self.topics).get(topic).cloned();
        if let Some(t) = found {
            t.deliver(seq, frame, &self.stats);
        }
    }

    fn lost(&self) {
        let topics: Vec<_> = read(&self.topics).values().cloned().collect();
        tracing::warn!("the backplane lost events for this node: closing its streams so clients resume from history");
        for t in topics {
            t.close_all();
        }
    }
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl SSEBroker {
    /// A broker with a fresh random epoch. Call [`SSEBroker::spawn_maintenance`]
    /// inside a tokio runtime to get heartbeats and history expiry.
    pub fn new(config: BrokerConfig) -> Self {
        let limits = HistoryLimits {
            max_events: config.history_size,
            max_age: config.history_max_age,
        };
        Self::with_backplane(config, Arc::new(MemoryBackplane::new(limits)))
    }

    /// A broker over another backplane (e.g. a shared log for several nodes).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use herald_server::broker::{BrokerConfig, HistoryLimits, MemoryBackplane, SSEBroker};
    ///
    /// let log = Arc::new(MemoryBackplane::new(HistoryLimits::default()));
    /// let broker = SSEBroker::with_backplane(BrokerConfig::default(), log);
    /// assert_eq!(broker.backplane().name(), "memory");
    /// ```
    pub fn with_backplane(config: BrokerConfig, backplane: Arc<dyn Backplane>) -> Self {
        let hub = Arc::new(Hub::default());
        backplane.attach(hub.clone());
        SSEBroker {
            inner: Arc::new(Inner {
                config,
                backplane,
                hub,
                clients: RwLock::new(HashMap::new()),
                users: std::sync::Mutex::new(HashMap::new()),
                started: Instant::now(),
            }),
        }
    }

    /// The backplane this broker publishes through.
    pub fn backplane(&self) -> &Arc<dyn Backplane> {
        &self.inner.backplane
    }

    /// The settings this broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// This broker's epoch (the first part of every id it writes).
    pub fn epoch(&self) -> Epoch {
        self.inner.backplane.epoch()
    }

    /// Registers a client and returns the stream of frames to write to it.
    ///
    /// The client is subscribed to its topics first and the missed history
    /// is read second; live frames queued in between that the replay also
    /// holds are dropped by the [`Subscription`], so nothing falls between
    /// replay and live and nothing arrives twice.
    pub async fn connect(&self, opts: ConnectOptions) -> Result<Subscription, BrokerError> {
        for topic in &opts.topics {
            validate_requested_topic(topic)?;
            allowed(opts.allowed_topics.as_deref(), topic)?;
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

        let client = Arc::new(ClientState::new(
            id.clone(),
            random_token(16),
            opts.user_id.clone(),
            opts.session_id.clone(),
            opts.metadata,
            opts.allowed_topics.clone(),
            self.inner.config.event_buffer_size,
        ));
        if let Some(old) = self.register(&client)? {
            // Same id reconnecting before we noticed the old stream died.
            old.close();
            self.unsubscribe_all(&old);
        }
        self.inner.hub.stats.connected();
        // From here on, dropping `sub` (also on an early `?`) cleans up.
        let mut sub = Subscription {
            broker: self.clone(),
            client: client.clone(),
            pending: VecDeque::new(),
            replayed_through: Vec::new(),
        };
        // The per-user limit holds across nodes: the backplane counts too.
        if let Some(uid) = &opts.user_id {
            let limit = self.inner.config.max_connections_per_user;
            match self.inner.backplane.admit(uid, &client.secret, limit).await {
                Ok(true) => {}
                Ok(false) => {
                    self.inner.hub.stats.refused();
                    return Err(BrokerError::TooManyConnections {
                        scope: "user",
                        limit,
                    });
                }
                // Counting is down with the backplane: the local limit
                // still holds, and the stream itself may still work.
                Err(e) => {
                    tracing::warn!(user = %uid, error = %e, "cluster-wide connection count unavailable")
                }
            }
        }

        let mut topics = vec![format!("client:{id}")];
        if !opts.no_broadcasts {
            topics.push("all".to_owned());
        }
        topics.extend(opts.user_id.as_ref().map(|u| format!("user:{u}")));
        topics.extend(opts.session_id.as_ref().map(|s| format!("session:{s}")));
        topics.extend(opts.topics);
        topics.dedup();

        // Resume point: `None` = live only.
        let mut reset = None;
        let after = match opts.last_event_id.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<EventId>() {
                Ok(id) if id.epoch == self.epoch() => Some(id.seq),
                // An id from another epoch: the log restarted since (or it
                // is not ours). Its tail may be lost, so `reset`; everything
                // in the current log came after it, so replay all of it.
                Ok(_) => {
                    reset = Some(ResetReason::UnknownEpoch);
                    Some(0)
                }
                Err(_) => {
                    reset = Some(ResetReason::InvalidId);
                    None
                }
            },
        };

        // 1. Live first: from now on every new event reaches the queue.
        let mut keys = Vec::with_capacity(topics.len());
        for name in &topics {
            let topic = self.inner.hub.topic(name);
            topic.subscribe(&client);
            keys.push(topic.key());
            client
                .topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone());
        }
        // 2. Then what was missed, merged across topics in id order.
        let mut replay: BTreeMap<u64, Delivery> = BTreeMap::new();
        if let Some(after) = after {
            for (name, key) in topics.iter().zip(keys) {
                let r = self.inner.backplane.replay(name, after).await?;
                if r.gap && reset.is_none() {
                    reset = Some(ResetReason::HistoryGap);
                }
                let through = r.entries.last().map_or(after, |(seq, _)| *seq);
                sub.replayed_through.push((key, through));
                replay.extend(
                    r.entries
                        .into_iter()
                        .map(|(seq, frame)| (seq, Delivery { key, seq, frame })),
                );
            }
        }

        let retry = self.inner.config.retry_hint_ms;
        let greeting = match opts.greeting {
            Some(events) => events,
            None => vec![typed_event(&Connected {
                client_id: id.to_string(),
                secret: Some(client.secret.clone()),
                user_id: opts.user_id,
                session_id: opts.session_id,
                topics,
                retry: Some(retry),
            })?],
        };
        if greeting.is_empty() {
            sub.pending.push_back(Delivery::control(Bytes::from(format!(
                "retry: {retry}\n\n"
            ))));
        }
        for (i, mut event) in greeting.into_iter().enumerate() {
            if i == 0 {
                event.retry = Some(retry);
            }
            sub.pending.push_back(Delivery::control(event.encode()?));
        }
        if let Some(reason) = reset {
            let reset = Reset {
                reason,
                last_event_id: opts.last_event_id.unwrap_or_default(),
            };
            sub.pending
                .push_back(Delivery::control(typed_event(&reset)?.encode()?));
        }
        metrics::counter!("herald_events_replayed_total").increment(replay.len() as u64);
        sub.pending.extend(replay.into_values());

        if let Some(hook) = &self.inner.config.on_connect {
            hook(&client);
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

    /// Adds a client to the registry within the connection limits; returns
    /// the connection it replaces (same id), already unregistered.
    fn register(&self, client: &Arc<ClientState>) -> Result<Option<Arc<ClientState>>, BrokerError> {
        let config = &self.inner.config;
        let mut clients = write(&self.inner.clients);
        let mut users = self.inner.users.lock().unwrap_or_else(|e| e.into_inner());
        // A reconnecting client may replace its own older connection, never
        // someone else's: the same user (or anonymous for anonymous).
        if let Some(old) = clients.get(&client.id) {
            if old.user_id != client.user_id {
                return Err(BrokerError::ClientIdInUse(client.id.to_string()));
            }
        }
        let old = clients.remove(&client.id);
        if let Some(old) = &old {
            forget_user(&mut users, old);
        }
        let over = if clients.len() >= config.max_connections {
            Some(("server", config.max_connections))
        } else {
            client.user_id.as_ref().and_then(|uid| {
                let open = users.get(uid).copied().unwrap_or(0);
                (open >= config.max_connections_per_user)
                    .then_some(("user", config.max_connections_per_user))
            })
        };
        if let Some((scope, limit)) = over {
            // Refused: the connection being replaced (if any) stays.
            if let Some(old) = old {
                if let Some(uid) = &old.user_id {
                    *users.entry(uid.clone()).or_insert(0) += 1;
                }
                clients.insert(old.id.clone(), old);
            }
            self.inner.hub.stats.refused();
            return Err(BrokerError::TooManyConnections { scope, limit });
        }
        if let Some(uid) = &client.user_id {
            *users.entry(uid.clone()).or_insert(0) += 1;
        }
        clients.insert(client.id.clone(), client.clone());
        Ok(old)
    }

    /// Called when a [`Subscription`] is dropped.
    pub(crate) fn remove_connection(&self, client: &Arc<ClientState>) {
        if let Some(uid) = &client.user_id {
            self.inner.backplane.release(uid, &client.secret);
        }
        let removed = {
            let mut clients = write(&self.inner.clients);
            let current = clients
                .get(&client.id)
                .is_some_and(|c| Arc::ptr_eq(c, client));
            if current {
                clients.remove(&client.id);
                forget_user(
                    &mut self.inner.users.lock().unwrap_or_else(|e| e.into_inner()),
                    client,
                );
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
        let known = read(&self.inner.hub.topics);
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
            validate_requested_topic(t)?;
        }
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        for t in topics {
            allowed(client.allowed_topics.as_deref(), t)?;
        }
        for name in topics {
            self.inner.hub.topic(name).subscribe(&client);
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
        let known = read(&self.inner.hub.topics);
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

    /// Publishes an event to a topic through the backplane, which numbers
    /// it, keeps it for resume and delivers it to every node's subscribers.
    /// The broker assigns the id. Encoding happens once, here; subscribers
    /// share the bytes.
    ///
    /// An id set on `event` is the publisher's idempotency key: publishing
    /// again with the same key to the same topic, while the first event is
    /// still in history, returns the first event's id and delivers nothing.
    pub async fn publish(&self, topic: &str, mut event: Event) -> Result<EventId, BrokerError> {
        validate_topic(topic)?;
        event.validate()?;
        let key = event.id.take();
        let body = event.encode()?;
        let started = Instant::now();
        let id = self
            .inner
            .backplane
            .append(topic, key.as_deref(), body)
            .await?;
        PUBLISH_SECONDS.record(started.elapsed().as_secs_f64());
        self.inner.hub.stats.published();
        Ok(id)
    }

    /// Publishes a typed event.
    pub async fn publish_typed<T: SseEvent>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<EventId, BrokerError> {
        self.publish(topic, typed_event(value)?).await
    }

    /// Sends to one client (topic `client:<id>`).
    pub async fn send(&self, client_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&format!("client:{client_id}"), event).await
    }

    /// Sends to every connection of a user (topic `user:<id>`).
    pub async fn notify_user(&self, user_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&format!("user:{user_id}"), event).await
    }

    /// Sends to every connection of a session (topic `session:<id>`).
    pub async fn notify_session(
        &self,
        session_id: &str,
        event: Event,
    ) -> Result<EventId, BrokerError> {
        self.publish(&format!("session:{session_id}"), event).await
    }

    /// Sends to everyone (topic `all`).
    pub async fn broadcast(&self, event: Event) -> Result<EventId, BrokerError> {
        self.publish("all", event).await
    }

    /// Sends to a topic's subscribers (GoSPA's `BroadcastToTopic`).
    pub async fn broadcast_to_topic(
        &self,
        topic: &str,
        event: Event,
    ) -> Result<EventId, BrokerError> {
        self.publish(topic, event).await
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        read(&self.inner.clients).len()
    }

    /// How many clients of this node are subscribed to a topic.
    pub fn clients_in(&self, topic: &str) -> usize {
        read(&self.inner.hub.topics)
            .get(topic)
            .map_or(0, |t| t.subscriber_count())
    }

    /// Subscriptions of this node's clients, over all topics.
    pub fn subscription_count(&self) -> usize {
        read(&self.inner.hub.topics)
            .values()
            .map(|t| t.subscriber_count())
            .sum()
    }

    /// Counters for `/_sse/stats`; `topicCount` counts topics with history.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.hub.stats.snapshot(
            self.client_count(),
            self.inner.backplane.topic_count(),
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
                client.offer(Delivery::control(hint.clone()));
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
                if !client.offer(Delivery::control(frame.clone())) {
                    self.inner.hub.stats.evicted();
                }
            }
        }
        self.sweep();
    }

    fn sweep(&self) {
        self.inner.backplane.sweep();
        self.inner.hub.sweep();
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
}

/// Drops one connection from its user's count.
fn forget_user(users: &mut HashMap<String, usize>, client: &ClientState) {
    if let Some(uid) = &client.user_id {
        if let Some(n) = users.get_mut(uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                users.remove(uid);
            }
        }
    }
}

/// Checks a requested topic against a connection's allowed patterns.
fn allowed(patterns: Option<&[String]>, topic: &str) -> Result<(), BrokerError> {
    match patterns {
        Some(p) if !crate::auth::any_matches(p, topic) => {
            Err(BrokerError::TopicNotAllowed(topic.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Publish latency (the backplane's append), looked up once.
static PUBLISH_SECONDS: std::sync::LazyLock<metrics::Histogram> =
    std::sync::LazyLock::new(|| metrics::histogram!("herald_publish_duration_seconds"));

/// A typed value as an untyped event.
fn typed_event<T: SseEvent>(value: &T) -> Result<Event, BrokerError> {
    value
        .to_event()
        .map_err(|e| BrokerError::Serialize(e.to_string()))
}

/// A random lowercase hex token of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    use std::fmt::Write;
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
        let _ = write!(s, "{:02x}", rand::random::<u8>());
        s
    })
}
