//! Why the broker refused a request. The HTTP layer maps each variant to
//! one status (`web::error`), so a new variant must choose one there.

use herald_shared::wire::EncodeError;
use thiserror::Error;

use super::BackplaneError;

/// Why the broker refused a request.
///
/// ```
/// use herald_server::broker::{BrokerConfig, BrokerError, SSEBroker};
/// use herald_shared::wire::Event;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let err = broker.publish("no spaces allowed", Event::data("x")).await.unwrap_err();
/// assert!(matches!(err, BrokerError::InvalidTopic { .. }));
/// assert!(matches!(broker.subscribe("ghost", &["a".into()]).await, Err(BrokerError::UnknownClient(_))));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BrokerError {
    #[error("invalid topic {topic:?}: {rule}")]
    InvalidTopic { topic: String, rule: &'static str },
    #[error("invalid client id {0:?}: 1 to 128 characters of A-Z a-z 0-9 - _ . : @")]
    InvalidClientId(String),
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    #[error("topic {0:?} is reserved: client:, user: and session: topics are assigned by the server, not requested")]
    ReservedTopic(String),
    #[error("topic {0:?} needs a token (Authorization: Bearer, or ?token=)")]
    NeedsToken(String),
    #[error("topic {topic:?} is not readable by this caller (rule {rule})")]
    ReadDenied { topic: String, rule: String },
    #[error("this connection's token does not allow topic {0:?}")]
    TopicNotAllowed(String),
    #[error("may not publish to {topic:?}: {why}")]
    PublishDenied { topic: String, why: &'static str },
    #[error("event name {0:?} is reserved for the server's own stream events")]
    ReservedEventName(String),
    #[error("client id {0:?} is in use by another owner: reconnect with its secret (from `connected`) or choose another id")]
    ClientIdInUse(String),
    #[error("sessionId {0:?} is not this caller's: a session comes from the token's sessionId claim or this server's session cookie")]
    SessionNotProven(String),
    #[error("an event goes to 1 to {limit} topics")]
    Destinations { limit: usize },
    #[error("too many topics for one connection (limit {limit})")]
    TooManyTopics { limit: usize },
    #[error("too many connections for this {scope} (limit {limit})")]
    TooManyConnections { scope: &'static str, limit: usize },
    #[error("the server keeps history for at most {limit} topics: publish to a topic in use, or retry once idle topics have expired")]
    TopicCap { limit: usize },
    #[error("too many new topics from this caller (limit {per_minute} per minute)")]
    TopicCreations {
        per_minute: u32,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("event data is not serialisable: {0}")]
    Serialize(String),
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}
