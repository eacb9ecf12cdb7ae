//! What every handler can reach: [`AppState`], and how the server's
//! configuration becomes one ([`AppState::from_config`]).

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{BackplaneError, SSEBroker};
use crate::config::{Config, ConfigError, DEFAULT_CORS_ORIGIN};
use crate::jobs::{JobError, JobQueue, RedisStore};
use crate::limits::{self, ConnectionCap};
use crate::ratelimit::{self, RateLimiter};

/// How long a node waits for Redis at start: nodes and Redis often start
/// together (a compose file, a test), and a node should not lose that race.
const REDIS_START_WAIT: Duration = Duration::from_secs(15);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub broker: SSEBroker,
    /// Verifies tokens.
    pub auth: Arc<crate::auth::Verifier>,
    /// `Access-Control-Allow-Origin` for the streams (`*` by default).
    pub cors_origin: Option<String>,
    /// Largest request body accepted (64 KiB).
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, whole (10 s); `None`
    /// waits forever. A body trickled a byte at a time would otherwise
    /// hold its connection and its handler as long as the client likes.
    pub body_timeout: Option<Duration>,
    /// Publish rate limit per user (or per IP when anonymous).
    pub publish_limit: Arc<RateLimiter>,
    /// The job-progress app's queue.
    pub jobs: JobQueue,
    /// Seed 002's connection limit for its four streams.
    pub streams_cap: Arc<ConnectionCap>,
    /// Renders `/metrics` (`None`: no Prometheus recorder installed, 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("connecting to the Redis backplane at {url}: {source}")]
    Backplane { url: String, source: BackplaneError },
    #[error("connecting the job queue to Redis at {url}: {source}")]
    Jobs { url: String, source: JobError },
}

impl AppState {
    /// State with a random HS256 secret (tokens minted elsewhere won't verify).
    pub fn new(broker: SSEBroker) -> Self {
        let secret: [u8; 32] = rand::random();
        Self::with_auth(broker, crate::auth::Verifier::hs256(&secret))
    }

    /// State with every default and this verifier (the tests' start).
    pub fn with_auth(broker: SSEBroker, auth: crate::auth::Verifier) -> Self {
        AppState {
            jobs: JobQueue::new(broker.clone(), Default::default()),
            metrics: None,
            streams_cap: ConnectionCap::new(limits::DEFAULT_STREAMS_MAX_CONNECTIONS),
            broker,
            auth: Arc::new(auth),
            cors_origin: Some(DEFAULT_CORS_ORIGIN.to_owned()),
            max_body_bytes: limits::DEFAULT_MAX_BODY_BYTES,
            body_timeout: Some(Duration::from_secs(limits::DEFAULT_BODY_TIMEOUT_SECS)),
            publish_limit: Arc::new(RateLimiter::new(
                ratelimit::DEFAULT_PUBLISH_RATE,
                ratelimit::DEFAULT_PUBLISH_BURST,
            )),
        }
    }

    /// Everything `config` asks for: the broker on its backplane (connected,
    /// its heartbeats and expiry running), the token verifier, the job
    /// queue (its workers started) and the limits. No metrics recorder:
    /// installing one is the process's business (`main`).
    pub async fn from_config(config: &Config) -> Result<Self, StartError> {
        let auth = config.verifier()?;
        let broker = connect_broker(config).await?;
        let jobs = job_queue(config, &broker).await?;
        if config.auth.dev {
            tracing::warn!(
                "dev mode: demo tokens and declared session ids accepted, anyone may publish to open topics; never use it in production"
            );
        }
        Ok(AppState {
            jobs,
            metrics: None,
            streams_cap: ConnectionCap::new(config.limits.streams_max_connections),
            broker,
            auth: Arc::new(auth),
            cors_origin: config.cors_origin(),
            max_body_bytes: config.serve.max_body_bytes,
            body_timeout: config.body_timeout(),
            publish_limit: Arc::new(RateLimiter::new(
                config.limits.publish_rate,
                config.limits.publish_burst,
            )),
        })
    }
}

/// The broker on the configured backplane, its maintenance (heartbeats,
/// expiry) running.
pub async fn connect_broker(config: &Config) -> Result<SSEBroker, StartError> {
    let broker = match config.redis() {
        None => SSEBroker::new(config.broker()),
        Some(options) => {
            let url = options.url.clone();
            let backplane =
                crate::broker::RedisBackplane::connect_within(options, REDIS_START_WAIT)
                    .await
                    .map_err(|source| StartError::Backplane {
                        url: url.clone(),
                        source,
                    })?;
            tracing::info!(%url, "using the Redis backplane");
            SSEBroker::with_backplane(config.broker(), Arc::new(backplane))
        }
    };
    broker.spawn_maintenance();
    Ok(broker)
}

/// The job queue: in this process, or in the backplane's Redis, where
/// jobs come from every node and the workers wait for them from the start.
pub async fn job_queue(config: &Config, broker: &SSEBroker) -> Result<JobQueue, StartError> {
    let Some(options) = config.redis() else {
        if config.jobs.job_workers == 0 {
            tracing::warn!("--job-workers 0 without Redis: nothing will run the demo jobs");
        }
        return Ok(JobQueue::new(broker.clone(), config.job_settings()));
    };
    let store = RedisStore::connect(&options.url, &options.prefix, config.job_visibility())
        .await
        .map_err(|source| StartError::Jobs {
            url: options.url.clone(),
            source,
        })?;
    let queue = JobQueue::with_store(broker.clone(), config.job_settings(), Arc::new(store));
    queue.start_workers();
    Ok(queue)
}
