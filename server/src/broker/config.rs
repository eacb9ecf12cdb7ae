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
    /// Events kept per topic for resume (1000).
    pub history_size: usize,
    /// How long an event stays resumable (5 min).
    pub history_max_age: Duration,
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
            history_size: DEFAULT_HISTORY_SIZE,
            history_max_age: Duration::from_secs(DEFAULT_HISTORY_SECS),
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
            .field("history_size", &self.history_size)
            .field("history_max_age", &self.history_max_age)
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
