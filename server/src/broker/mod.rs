//! The broker: clients, topics, targeted and broadcast sends, history and
//! resume. Plain Rust, locks and tokio tasks; no HTTP types in here.
//!
//! **Everything is a topic.** A connection is put on `client:<id>`, `all`,
//! `user:<uid>` (when it has one), `session:<sid>` (when it has one) and the
//! topics it asks for. [`SSEBroker::send`], [`SSEBroker::notify_user`],
//! [`SSEBroker::broadcast`] and friends are all [`SSEBroker::publish`] to the
//! matching topic: one fan-out path, one history, one resume mechanism.
//!
//! **Every topic has an owner.** The [`policy`] table says who may read and
//! who may publish each topic; [`SSEBroker::connect`],
//! [`SSEBroker::subscribe`] and [`SSEBroker::publish_as`] ask it, whatever
//! route the request came by. Identities are verified ones
//! ([`policy::Principal`]); a client id has an owner beyond its connection
//! ([`claims`]).
//!
//! **Encode once.** A published event is encoded to bytes once; every
//! subscriber's queue gets a clone of the same `Bytes` (a reference count).
//!
//! **Ordered ids, behind a seam.** The [`Backplane`] numbers events and keeps
//! their history ([`MemoryBackplane`] by default; a shared log for clusters);
//! ids are written as `id: <epoch>-<seq>`. A client reconnecting with that id gets what it
//! missed on its topics, in order, before live events, read a page at a
//! time as it is written; if history no longer reaches back that far, or
//! the id is from another epoch or past the log's head, it first gets a
//! `reset` event.
//!
//! **Slow consumers never block anyone.** Queues are bounded; a publish
//! never waits, and a client whose queue is still full after its writer
//! had a chance to flush is evicted at once (counted once) so that it
//! reconnects and resumes from history.
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
pub mod claims;
mod client;
pub mod config;
mod connect;
mod error;
mod helper;
mod hub;
mod id;
mod maintenance;
mod memory;
pub mod names;
pub mod pattern;
pub mod policy;
mod presence;
mod redis;
mod registry;
mod replay;
mod stats;
mod topic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_shared::wire::Event;
use herald_shared::SseEvent;

pub(crate) use self::redis::{Link, Target};
pub use self::redis::{
    RedisBackplane, RedisOptions, DEFAULT_LEASE, DEFAULT_PREFIX as DEFAULT_REDIS_PREFIX,
    DEFAULT_SHARDS as DEFAULT_REDIS_SHARDS,
};
pub use backplane::{
    frame_with_id, reframe, Append, AppendError, Appended, Backplane, BackplaneError,
    BackplaneHealth, BoxFuture, Entry, EventFrame, Fanout, Matched, NewTopics, Page, Replay, Sink,
    Usage, MAX_TOPICS_PER_EVENT,
};
pub use claims::{ClaimTable, Claimed, ClientClaim};
pub use client::{ClientState, Ready, Subscription};
pub use config::{BrokerConfig, HeartbeatStyle, HistoryLimits, Hook};
pub use connect::ConnectOptions;
pub use error::BrokerError;
pub use helper::SSEHelper;
pub use id::{
    every_shard, shard_bit, shard_of, Epoch, EventId, InvalidEventId, Naming, Position, MAX_SHARDS,
};
pub use memory::MemoryBackplane;
pub use names::{validate_topic, MAX_TOPIC_LEN};
use policy::{Publisher, TopicPolicy};
pub use presence::{shown_to as presence_shown_to, Member};
pub use stats::{Stats, StatsSnapshot};

/// The broker. Cheap to clone: clones share one state. See the module docs
/// for the design; every send below is a [`SSEBroker::publish`] to a topic.
///
/// ```
/// use herald_server::broker::policy::Principal;
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// use herald_shared::wire::Event;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let me = Principal::anonymous().with_session("s1");
/// let sub = broker.connect(ConnectOptions { principal: me, ..Default::default() }).await.unwrap();
/// let id = sub.client_id().to_owned();
/// broker.send(&id, Event::data("just you")).await.unwrap();
/// broker.notify_session("s1", Event::data("your session")).await.unwrap();
/// broker.subscribe(&id, &["news".into()]).await.unwrap();
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
    /// Topics each caller may still start ([`BrokerConfig::topic_creations_per_minute`]).
    creations: crate::ratelimit::RateLimiter,
    policy: Arc<TopicPolicy>,
    backplane: Arc<dyn Backplane>,
    hub: Arc<hub::Hub>,
    registry: registry::Registry,
    started: Instant,
    node_id: String,
}

impl SSEBroker {
    /// A broker with a fresh random epoch. Call [`SSEBroker::spawn_maintenance`]
    /// inside a tokio runtime to get heartbeats and history expiry.
    pub fn new(config: BrokerConfig) -> Self {
        let log = MemoryBackplane::new(config.history);
        Self::with_backplane(config, Arc::new(log))
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
        let policy = Arc::new(
            TopicPolicy::with_rules(config.topic_rules.clone())
                .open_publishing(config.open_publishing),
        );
        let hub = Arc::new(hub::Hub::new(policy.clone(), backplane.shards()));
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{}", crate::random::token(4)));
        backplane.attach(hub.clone());
        let per_minute = config.topic_creations_per_minute;
        SSEBroker {
            inner: Arc::new(Inner {
                creations: crate::ratelimit::RateLimiter::new(
                    f64::from(per_minute) / 60.0,
                    per_minute,
                ),
                config,
                policy,
                backplane,
                hub,
                registry: registry::Registry::default(),
                started: Instant::now(),
                node_id,
            }),
        }
    }

    /// The shard of the log that holds `topic` (0 unless it is sharded).
    pub fn shard_of(&self, topic: &str) -> usize {
        shard_of(topic, self.inner.backplane.shards())
    }

    /// The position of a stream of `topic` that has its events up to `seq`.
    pub fn position_of(&self, topic: &str, seq: u64) -> Position {
        let mut at = Position::start(self.epoch(), self.inner.backplane.shards());
        at.advance(self.shard_of(topic), seq);
        at
    }

    /// The backplane this broker publishes through.
    pub fn backplane(&self) -> &Arc<dyn Backplane> {
        &self.inner.backplane
    }

    /// The settings this broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Who may read and publish each topic.
    pub fn policy(&self) -> &TopicPolicy {
        &self.inner.policy
    }

    /// This node's name among several (`BrokerConfig::node_id`, or drawn
    /// at start).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// This broker's epoch (the first part of every id it writes).
    pub fn epoch(&self) -> Epoch {
        self.inner.backplane.epoch()
    }

    /// Disconnects a client by id; its stream ends. Returns whether it was connected.
    pub fn disconnect(&self, client_id: &str) -> bool {
        match self.inner.registry.get(client_id) {
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
        if let Some(group) = &client.group {
            self.inner.backplane.release(&group.key, &client.serial);
        }
        self.release_claim(&client.id, &client.serial);
        let removed = self.inner.registry.remove(client);
        self.unsubscribe_all(client);
        if removed {
            if let Some(hook) = &self.inner.config.on_disconnect {
                hook(client);
            }
        }
    }

    /// The live connection with this id, if any.
    pub fn client(&self, client_id: &str) -> Option<Arc<ClientState>> {
        self.inner.registry.get(client_id)
    }

    /// Publishes an event to a topic through the backplane, which numbers
    /// it, keeps it for resume and delivers it to every node's subscribers.
    /// The broker assigns the id. Encoding happens once, here; subscribers
    /// share the bytes.
    ///
    /// This is the server's own publish (code in this process may publish
    /// anywhere); what callers ask for goes through
    /// [`publish_as`](Self::publish_as). Either way the event names the
    /// server speaks itself ([`policy::LIFECYCLE_EVENTS`]) are refused.
    ///
    /// An id set on `event` is the publisher's idempotency key: publishing
    /// again with the same key to the same topic, while the first event is
    /// still in history, returns the first event's id and delivers nothing.
    pub async fn publish(&self, topic: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish_as(Publisher::Server, topic, event).await
    }

    /// Publishes for `who`, if the topic policy lets them.
    ///
    /// ```
    /// use herald_server::broker::policy::{Principal, Publisher};
    /// use herald_server::broker::{BrokerConfig, BrokerError, SSEBroker};
    /// use herald_shared::wire::Event;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    ///
    /// let broker = SSEBroker::new(BrokerConfig::default());
    /// let alice = Principal::user("alice"); // a token without a publish claim
    /// let refused = broker.publish_as(Publisher::Caller(&alice), "news", Event::data("x")).await;
    /// assert!(matches!(refused, Err(BrokerError::PublishDenied { .. })));
    /// # });
    /// ```
    pub async fn publish_as(
        &self,
        who: Publisher<'_>,
        topic: &str,
        event: Event,
    ) -> Result<EventId, BrokerError> {
        self.publish_to_as(who, &[topic], event).await
    }

    /// Publishes one event to several topics at once, for `who`: one id,
    /// kept in each topic's history, delivered to each connection on any
    /// of them once (a send to a client, a user and a session together).
    /// Repeated topics count once; every topic must pass the policy.
    ///
    /// ```
    /// use herald_server::broker::policy::{Principal, Publisher};
    /// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
    /// use herald_shared::wire::Event;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    ///
    /// let broker = SSEBroker::new(BrokerConfig::default());
    /// let alice = Principal::user("alice");
    /// let mut sub = broker.connect(ConnectOptions { principal: alice, ..Default::default() }).await.unwrap();
    /// sub.recv().await.unwrap(); // connected
    /// let id = sub.client_id().to_owned();
    /// let topics = [format!("client:{id}"), "user:alice".to_owned()];
    /// let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    /// broker.publish_to_as(Publisher::Server, &topics, Event::data("once")).await.unwrap();
    /// assert!(sub.recv().await.unwrap().ends_with(b"data: once\n\n"));
    /// assert_eq!(broker.stats().events_delivered, 1); // on both topics, delivered once
    /// # });
    /// ```
    pub async fn publish_to_as(
        &self,
        who: Publisher<'_>,
        topics: &[&str],
        mut event: Event,
    ) -> Result<EventId, BrokerError> {
        let mut distinct: Vec<&str> = Vec::with_capacity(topics.len());
        for topic in topics {
            if !distinct.contains(topic) {
                distinct.push(topic);
            }
        }
        if distinct.is_empty() || distinct.len() > MAX_TOPICS_PER_EVENT {
            return Err(BrokerError::Destinations {
                limit: MAX_TOPICS_PER_EVENT,
            });
        }
        event.validate()?;
        for topic in &distinct {
            names::validate_topic(topic)?;
            self.inner
                .policy
                .check_publish(who, topic, event.event.as_deref())?;
        }
        let caller = match who {
            Publisher::Server => None,
            Publisher::Caller(p) | Publisher::OnBehalfOf(p) | Publisher::App(p) => {
                Some(p.caller_key())
            }
        };
        // A caller's idempotency keys are its own: another publisher's
        // event never passes for its retry.
        let key = event.id.take().map(|key| {
            let scope = caller.as_deref().unwrap_or("server");
            format!("{}:{scope}:{key}", scope.len())
        });
        let body = event.encode()?;
        // A caller starts topics within its quota (a cost known only
        // once the log has the event: it is paid afterwards).
        let now = Instant::now();
        let quota = caller
            .as_deref()
            .map(|c| self.inner.creations.peek_at(c, now));
        let new_topics = match quota {
            Some(Err(_)) => NewTopics::Refuse,
            _ => NewTopics::Allow,
        };
        let appended = self
            .inner
            .backplane
            .append(Append {
                topics: &distinct,
                key: key.as_deref(),
                body,
                new_topics,
            })
            .await;
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => return Err(self.refused_append(e, quota)),
        };
        if let (Some(caller), Ok(created)) = (&caller, u32::try_from(appended.created)) {
            self.inner.creations.spend_at(caller, created, now);
        }
        PUBLISH_SECONDS.record(now.elapsed().as_secs_f64());
        self.inner.hub.stats.published();
        Ok(appended.id)
    }

    /// The broker's word for an append the log refused; `quota` is the
    /// caller's topic creations as they stood.
    fn refused_append(&self, e: AppendError, quota: Option<Result<(), Duration>>) -> BrokerError {
        match e {
            AppendError::Unavailable(e) => BrokerError::Backplane(e),
            AppendError::TopicCap { limit } => {
                TOPICS_REFUSED.increment(1);
                BrokerError::TopicCap { limit }
            }
            AppendError::NewTopic => {
                TOPICS_REFUSED.increment(1);
                let wait = match quota {
                    Some(Err(wait)) => wait,
                    _ => Duration::from_secs(1),
                };
                BrokerError::TopicCreations {
                    per_minute: self.inner.config.topic_creations_per_minute,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
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
        self.publish(&names::client(client_id), event).await
    }

    /// Sends to every connection of a user (topic `user:<id>`).
    pub async fn notify_user(&self, user_id: &str, event: Event) -> Result<EventId, BrokerError> {
        self.publish(&names::user(user_id), event).await
    }

    /// Sends to every connection of a session (topic `session:<id>`).
    pub async fn notify_session(
        &self,
        session_id: &str,
        event: Event,
    ) -> Result<EventId, BrokerError> {
        self.publish(&names::session(session_id), event).await
    }

    /// Sends to everyone (topic `all`).
    pub async fn broadcast(&self, event: Event) -> Result<EventId, BrokerError> {
        self.publish(names::ALL, event).await
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
        self.inner.registry.len()
    }

    /// How many clients of this node are subscribed to a topic.
    pub fn clients_in(&self, topic: &str) -> usize {
        self.inner.hub.subscribers(topic)
    }

    /// Subscriptions of this node's clients, over all topics.
    pub fn subscription_count(&self) -> usize {
        self.inner.hub.subscriptions()
    }

    /// Counters for `/_sse/stats`; `topicCount` counts topics with
    /// history, `historyBytes` what their history holds.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.hub.stats.snapshot(
            self.client_count(),
            self.inner.backplane.usage(),
            self.inner.started.elapsed().as_secs(),
        )
    }

    /// Time since the broker started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

/// Publishes refused because they would start a topic past a limit.
static TOPICS_REFUSED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("herald_topics_refused_total"));

/// Publish latency (the backplane's append), looked up once.
static PUBLISH_SECONDS: std::sync::LazyLock<metrics::Histogram> =
    std::sync::LazyLock::new(|| metrics::histogram!("herald_publish_duration_seconds"));

/// A typed value as an untyped event.
fn typed_event<T: SseEvent>(value: &T) -> Result<Event, BrokerError> {
    value
        .to_event()
        .map_err(|e| BrokerError::Serialize(e.to_string()))
}
