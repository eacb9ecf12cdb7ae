//! What every handler can reach: [`AppState`].

use crate::broker::SSEBroker;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub broker: SSEBroker,
    /// Verifies tokens.
    pub auth: std::sync::Arc<crate::auth::Verifier>,
    /// `Access-Control-Allow-Origin` for the streams (`*` by default).
    pub cors_origin: Option<String>,
    /// Largest request body accepted (64 KiB).
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, whole (10 s); `None`
    /// waits forever. A body trickled a byte at a time would otherwise
    /// hold its connection and its handler as long as the client likes.
    pub body_timeout: Option<std::time::Duration>,
    /// Publish rate limit per user (or per IP when anonymous).
    pub publish_limit: std::sync::Arc<crate::ratelimit::RateLimiter>,
    /// The job-progress app's queue.
    pub jobs: crate::jobs::JobQueue,
    /// Seed 002's connection limit for its four streams.
    pub streams_cap: std::sync::Arc<crate::limits::ConnectionCap>,
    /// Renders `/metrics` (`None`: no Prometheus recorder installed, 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl AppState {
    /// State with a random HS256 secret (tokens minted elsewhere won't verify).
    pub fn new(broker: SSEBroker) -> Self {
        let secret: [u8; 32] = rand::random();
        Self::with_auth(broker, crate::auth::Verifier::hs256(&secret))
    }

    pub fn with_auth(broker: SSEBroker, auth: crate::auth::Verifier) -> Self {
        AppState {
            jobs: crate::jobs::JobQueue::new(broker.clone(), Default::default()),
            metrics: None,
            streams_cap: crate::limits::ConnectionCap::new(
                crate::limits::DEFAULT_STREAMS_MAX_CONNECTIONS,
            ),
            broker,
            auth: std::sync::Arc::new(auth),
            cors_origin: Some("*".to_owned()),
            max_body_bytes: crate::limits::DEFAULT_MAX_BODY_BYTES,
            body_timeout: Some(std::time::Duration::from_secs(
                crate::limits::DEFAULT_BODY_TIMEOUT_SECS,
            )),
            publish_limit: std::sync::Arc::new(crate::ratelimit::RateLimiter::new(
                crate::ratelimit::DEFAULT_PUBLISH_RATE,
                crate::ratelimit::DEFAULT_PUBLISH_BURST,
            )),
        }
    }
}
