//! Broker settings and their defaults, each written once here (the
//! command-line flags in `crate::config` use the same constants).

use std::sync::Arc;
use std::time::Duration;

use super::policy::Rule;
use super::ClientState;

/// Frames a client may have queued before it counts as too slow.
pub const DEFAULT_EVENT_BUFFER: usize = 100;
/// Seconds between heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 30;
/// Events kept per topic for resume.
pub const DEFAULT_HISTORY_SIZE: usize = 1000;
/// Seconds an event stays resumable.
pub const DEFAULT_HISTORY_SECS: u64 = 300;
/// The `retry:` hint, in milliseconds.
pub const DEFAULT_RETRY_MS: u64 = 1000;
/// Open connections allowed in all.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open connections allowed per authenticated user.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 5;
/// Open anonymous connections allowed per source address: higher than per
/// user, because many people can share one address (an office, a NAT).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 100;
/// Topics one connection may be on, counting the ones it asks for.
pub const DEFAULT_MAX_TOPICS: usize = 64;
/// Bytes of history kept for all topics together.
pub const DEFAULT_HISTORY_BYTES: usize = 256 * 1024 * 1024;
/// Bytes of history kept for one topic.
pub const DEFAULT_HISTORY_TOPIC_BYTES: usize = 1024 * 1024;
/// Topics with history the log keeps at once.
pub const DEFAULT_MAX_LOG_TOPICS: usize = 100_000;
/// Topics one caller may start per minute (with bursts of as many).
pub const DEFAULT_TOPIC_CREATIONS_PER_MINUTE: u32 = 120;

/// How much history the log keeps: per topic by count, age and bytes, and
/// for all topics together by bytes and number of topics. Every backplane
/// keeps to it ([`Backplane::append`](super::Backplane::append) says how).
///
/// ```
/// use herald_server::broker::HistoryLimits;
/// let limits = HistoryLimits::default();
/// assert_eq!((limits.max_events, limits.max_age.as_secs()), (1000, 300));
/// assert_eq!(limits.total_bytes, 256 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events kept per topic (1000).
    pub max_events: usize,
    /// How long an event stays resumable (5 min).
    pub max_age: Duration,
    /// Bytes kept per topic (1 MiB): its oldest events go first.
    pub topic_bytes: usize,
    /// Bytes kept for all topics (256 MiB): past it, the history of the
    /// topics idle longest goes first.
    pub total_bytes: usize,
    /// Topics with history at once (100 000): a publish that would start
    /// another is refused.
    pub max_topics: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_events: DEFAULT_HISTORY_SIZE,
            max_age: Duration::from_secs(DEFAULT_HISTORY_SECS),
            topic_bytes: DEFAULT_HISTORY_TOPIC_BYTES,
            total_bytes: DEFAULT_HISTORY_BYTES,
            max_topics: DEFAULT_MAX_LOG_TOPICS,
        }
    }
}

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
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use herald_server::broker::{BrokerConfig, HeartbeatStyle, SSEBroker};
///
/// let broker = SSEBroker::new(BrokerConfig {
///     heartbeat_interval: Duration::from_secs(15),
///     heartbeat_style: HeartbeatStyle::Comment,
///     on_connect: Some(Arc::new(|c| println!("client connected: {}", c.id))),
///     ..BrokerConfig::default()
/// });
/// assert_eq!(broker.config().event_buffer_size, 100);
/// ```
#[derive(Clone)]
pub struct BrokerConfig {
    /// Frames a client may have queued before it counts as too slow (100).
    pub event_buffer_size: usize,
    /// Time between heartbeats (30 s); zero disables them.
    pub heartbeat_interval: Duration,
    pub heartbeat_style: HeartbeatStyle,
    /// How much history the log keeps, per topic and in all.
    pub history: HistoryLimits,
    /// Topics one caller (a user, or an anonymous address) may start per
    /// minute by publishing (120); 0 for no limit. The server's own
    /// publishes start topics freely, within `history.max_topics`.
    pub topic_creations_per_minute: u32,
    /// The `retry:` hint sent on connect, in milliseconds (1000).
    pub retry_hint_ms: u64,
    /// Open connections allowed in all (10 000).
    pub max_connections: usize,
    /// Open connections allowed per authenticated user (5).
    pub max_connections_per_user: usize,
    /// Open anonymous connections allowed per source address (100); 0 for
    /// no limit.
    pub max_connections_per_ip: usize,
    /// Topics one connection may be on, besides the ones the server puts
    /// it on (64).
    pub max_topics: usize,
    /// Rules added to the topic policy's table (`--topic-rule`).
    pub topic_rules: Vec<Rule>,
    /// Callers without a `publish` claim may publish to open topics
    /// (`--anonymous-publish`, dev mode).
    pub open_publishing: bool,
    pub on_connect: Option<Hook>,
    pub on_disconnect: Option<Hook>,
    /// This node's name among several (`--node-id`): in its status
    /// readings. `None` draws a random one at start.
    pub node_id: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            event_buffer_size: DEFAULT_EVENT_BUFFER,
            heartbeat_interval: Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
            heartbeat_style: HeartbeatStyle::Event,
            history: HistoryLimits::default(),
            topic_creations_per_minute: DEFAULT_TOPIC_CREATIONS_PER_MINUTE,
            retry_hint_ms: DEFAULT_RETRY_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_user: DEFAULT_MAX_CONNECTIONS_PER_USER,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_topics: DEFAULT_MAX_TOPICS,
            topic_rules: Vec::new(),
            open_publishing: false,
            on_connect: None,
            on_disconnect: None,
            node_id: None,
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("event_buffer_size", &self.event_buffer_size)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_style", &self.heartbeat_style)
            .field("history", &self.history)
            .field(
                "topic_creations_per_minute",
                &self.topic_creations_per_minute,
            )
            .field("retry_hint_ms", &self.retry_hint_ms)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_topics", &self.max_topics)
            .field("topic_rules", &self.topic_rules)
            .field("open_publishing", &self.open_publishing)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}
