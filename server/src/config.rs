//! Command-line flags and environment variables. Every setting has a default,
//! so `herald-server` with no arguments serves the demo on 127.0.0.1:3000.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::broker::config as broker_defaults;
use crate::broker::policy::Rule;
use crate::broker::{BrokerConfig, HeartbeatStyle};
use crate::{auth, jobs, limits, net, ratelimit};

/// Where the server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// `Access-Control-Allow-Origin` on streams unless configured otherwise.
pub const DEFAULT_CORS_ORIGIN: &str = "*";
/// Seconds between `status` events on `/system/status/stream`.
pub const DEFAULT_STATUS_SECS: f64 = 5.0;

/// Below this an HS256 secret is weak (RFC 7518 §3.2: at least the hash's size).
const MIN_SECRET_BYTES: usize = 32;

fn parse_rule(text: &str) -> Result<Rule, String> {
    Rule::parse(text).map_err(|e| e.to_string())
}

/// How heartbeats are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeartbeatFlag {
    /// `event: heartbeat` with a timestamp (visible to EventSource listeners).
    Event,
    /// `: heartbeat` comment (invisible to EventSource, keeps proxies open).
    Comment,
}

/// When session cookies are `Secure` ([`auth::CookieSecure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CookieSecureFlag {
    Auto,
    Always,
    Never,
}

/// Which algorithm a configured public key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    Rs256,
    Es256,
}

/// Subcommands (without one, the server runs).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print an HS256 token signed with HERALD_JWT_SECRET (for development).
    Token(TokenArgs),
    /// Run job workers only, no web server: they take jobs from the Redis
    /// of --backplane (required) and publish their progress through it, as
    /// seed 003's separate worker processes do. --job-workers of them.
    Worker,
}

/// `herald-server token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Topic patterns the token may subscribe to (repeatable; none = no limit).
    #[arg(long)]
    pub subscribe: Vec<String>,
    /// Topic patterns the token may publish to (repeatable; none: it
    /// publishes nothing over HTTP).
    #[arg(long)]
    pub publish: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
}

// The flags come in groups, one per part they configure; each default is
// the owning module's constant, written once there.

/// Herald: a Server-Sent Events broker and its demo app.
#[derive(Debug, Clone, Parser)]
#[command(name = "herald-server", version, about)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeFlags,
    #[command(flatten)]
    pub auth: AuthFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
    #[command(flatten)]
    pub streams: StreamFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    pub jobs: JobFlags,
}

/// Where and how connections are served (`crate::net`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Serving")]
pub struct ServeFlags {
    /// Address to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Threads writing event streams to their sockets (0: half the cores,
    /// at least one; the rest serve requests and publishing).
    #[arg(long, env = "HERALD_FLUSHERS", default_value_t = 0)]
    pub flushers: usize,

    /// Seconds a client may take to send a request's headers (slowloris
    /// defence); 0 disables the limit.
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_SECS", default_value_t = net::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_secs: u64,

    /// Connections one address may hold open before sending a request
    /// (each waits up to the header timeout); more are closed at once. 0
    /// for no limit.
    #[arg(long, env = "HERALD_MAX_PENDING_PER_IP", default_value_t = net::DEFAULT_MAX_PENDING_PER_IP)]
    pub max_pending_per_ip: usize,

    /// Seconds a write may stall (the peer stopped reading) before the
    /// connection is closed; 0 disables the limit.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECS", default_value_t = net::DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,

    /// Seconds to wait for streams to drain on shutdown.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE_SECS", default_value_t = net::DEFAULT_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// `Access-Control-Allow-Origin` on streams; empty to send none.
    #[arg(long, env = "HERALD_CORS_ORIGIN", default_value = DEFAULT_CORS_ORIGIN)]
    pub cors_origin: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = limits::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send a request body; 0 waits forever.
    #[arg(long, env = "HERALD_BODY_TIMEOUT_SECS", default_value_t = limits::DEFAULT_BODY_TIMEOUT_SECS)]
    pub body_timeout_secs: u64,
}

/// Who callers are and what they may read and publish (`crate::auth`,
/// `crate::broker::policy`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication and topic policy")]
pub struct AuthFlags {
    /// HS256 secret for tokens. Without it (and without a public key) the
    /// server generates one at start, so only tokens it mints itself verify.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM public key file for RS256/ES256 tokens (instead of a secret).
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Algorithm of --jwt-public-key.
    #[arg(long, env = "HERALD_JWT_ALGORITHM", value_enum, default_value_t = KeyAlgorithm::Rs256)]
    pub jwt_algorithm: KeyAlgorithm,

    /// Accept only tokens whose `aud` claim is this.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Accept only tokens whose `iss` claim is this.
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Key for signing session cookies, shared by every node (by default
    /// derived from the HS256 secret; needed with --jwt-public-key).
    #[arg(long, env = "HERALD_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,

    /// Cookie a token may come in.
    #[arg(long, env = "HERALD_AUTH_COOKIE", default_value = auth::DEFAULT_COOKIE)]
    pub auth_cookie: String,

    /// Seconds a session cookie proves its session; past half of it a
    /// stream that uses it gets it re-issued.
    #[arg(long, env = "HERALD_SESSION_TTL_SECS", default_value_t = auth::DEFAULT_SESSION_TTL_SECS)]
    pub session_ttl_secs: u64,

    /// When session cookies carry `Secure`: auto (the request came over
    /// HTTPS, as `X-Forwarded-Proto: https` says), always (behind a TLS
    /// proxy that does not say so), never.
    #[arg(long, env = "HERALD_COOKIE_SECURE", value_enum, default_value_t = CookieSecureFlag::Auto)]
    pub cookie_secure: CookieSecureFlag,

    /// Development mode: also accept the documented base64 demo tokens.
    #[arg(long, env = "HERALD_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,

    /// Publish to open topics without a token or publish claim (dev mode
    /// implies it). The apps' topics stay theirs.
    #[arg(long, env = "HERALD_ANONYMOUS_PUBLISH", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub anonymous_publish: bool,

    /// A topic rule, added to the built-in table (repeatable; `;` between
    /// rules in the environment variable): `PATTERN=READ[/PUBLISH]`, PATTERN
    /// a topic or a prefix ending in `*`, READ one of anyone,
    /// authenticated, owner, `role:<name>`, nobody; PUBLISH claim or app.
    /// Example: `--topic-rule 'tenant:*=owner/app'`.
    #[arg(long = "topic-rule", env = "HERALD_TOPIC_RULES", value_delimiter = ';', value_parser = parse_rule)]
    pub topic_rules: Vec<Rule>,
}

/// How much any one caller, and everyone together, may hold or send.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitFlags {
    /// Open connections allowed in all.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = broker_defaults::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Open connections allowed per user.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_USER", default_value_t = broker_defaults::DEFAULT_MAX_CONNECTIONS_PER_USER)]
    pub max_connections_per_user: usize,

    /// Open anonymous connections allowed per source address; 0 for no
    /// limit (behind a proxy every client has the proxy's address).
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_IP", default_value_t = broker_defaults::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// Topics one connection may ask for (besides the ones the server
    /// puts it on).
    #[arg(long, env = "HERALD_MAX_TOPICS", default_value_t = broker_defaults::DEFAULT_MAX_TOPICS)]
    pub max_topics: usize,

    /// Open streams of the multi-stream API (notifications, realtime,
    /// chat, system status) per node; its documented "global connection
    /// limit". 0 for no limit of its own.
    #[arg(long, env = "HERALD_STREAMS_MAX_CONNECTIONS", default_value_t = limits::DEFAULT_STREAMS_MAX_CONNECTIONS)]
    pub streams_max_connections: usize,

    /// Publishes per second per caller (per user, or per IP when
    /// anonymous) over HTTP; 0 disables the limit.
    #[arg(long, env = "HERALD_PUBLISH_RATE", default_value_t = ratelimit::DEFAULT_PUBLISH_RATE)]
    pub publish_rate: f64,

    /// Publishes a caller may make in a burst before the rate applies.
    #[arg(long, env = "HERALD_PUBLISH_BURST", default_value_t = ratelimit::DEFAULT_PUBLISH_BURST)]
    pub publish_burst: u32,

    /// Topics with history kept at once (every topic a publish starts
    /// counts until its history expires); a publish that would start one
    /// more gets 429.
    #[arg(long, env = "HERALD_MAX_LOG_TOPICS", default_value_t = broker_defaults::DEFAULT_MAX_LOG_TOPICS)]
    pub max_log_topics: usize,

    /// Topics one caller (a user, or an anonymous address) may start per
    /// minute by publishing, in bursts of as many; 0 for no limit. A
    /// service that sends to many new users needs more.
    #[arg(long, env = "HERALD_TOPIC_CREATIONS_PER_MINUTE", default_value_t = broker_defaults::DEFAULT_TOPIC_CREATIONS_PER_MINUTE)]
    pub topic_creations_per_minute: u32,
}

/// What every stream carries besides events: heartbeats, the retry hint,
/// history for resume, and how far behind a reader may fall.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Streams")]
pub struct StreamFlags {
    /// Seconds between heartbeats; 0 disables them.
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", default_value_t = broker_defaults::DEFAULT_HEARTBEAT_SECS as f64)]
    pub heartbeat_secs: f64,

    /// Heartbeat style.
    #[arg(long, env = "HERALD_HEARTBEAT_STYLE", value_enum, default_value_t = HeartbeatFlag::Event)]
    pub heartbeat_style: HeartbeatFlag,

    /// Frames a client may have queued before it is disconnected as too slow.
    #[arg(long, env = "HERALD_BUFFER_SIZE", default_value_t = broker_defaults::DEFAULT_EVENT_BUFFER)]
    pub buffer_size: usize,

    /// Events kept per topic for Last-Event-ID resume.
    #[arg(long, env = "HERALD_HISTORY_SIZE", default_value_t = broker_defaults::DEFAULT_HISTORY_SIZE)]
    pub history_size: usize,

    /// Seconds an event stays resumable.
    #[arg(long, env = "HERALD_HISTORY_SECS", default_value_t = broker_defaults::DEFAULT_HISTORY_SECS)]
    pub history_secs: u64,

    /// Bytes of history kept for all topics together; past it the
    /// history of the topics idle longest goes first (a client resuming
    /// into it gets `reset`).
    #[arg(long, env = "HERALD_HISTORY_BYTES", default_value_t = broker_defaults::DEFAULT_HISTORY_BYTES)]
    pub history_bytes: usize,

    /// Bytes of history kept per topic; its oldest events go first.
    #[arg(long, env = "HERALD_HISTORY_TOPIC_BYTES", default_value_t = broker_defaults::DEFAULT_HISTORY_TOPIC_BYTES)]
    pub history_topic_bytes: usize,

    /// `retry:` hint sent to clients, in milliseconds.
    #[arg(long, env = "HERALD_RETRY_MS", default_value_t = broker_defaults::DEFAULT_RETRY_MS)]
    pub retry_ms: u64,
}

/// Several nodes on one shared log.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterFlags {
    /// The shared log of several nodes: `redis://host:port[/db]` (one
    /// Redis), `redis+cluster://host:port,host:port,…` (a Redis Cluster),
    /// or `memory` (the default) for one node on its own.
    #[arg(long = "backplane", env = "HERALD_REDIS_URL", default_value = "memory")]
    pub backplane: String,

    /// Prefix of every Redis key (several clusters can share one Redis).
    #[arg(long, env = "HERALD_REDIS_PREFIX", default_value = crate::broker::DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,

    /// On one Redis, the feed streams every node reads (fan-out only). On
    /// a Redis Cluster, the log's shards (at most 64), spread over its
    /// masters: fixed for the log's life, since stream positions name them.
    #[arg(long, env = "HERALD_REDIS_SHARDS", default_value_t = crate::broker::DEFAULT_REDIS_SHARDS)]
    pub redis_shards: usize,

    /// This node's name in the cluster's status readings (default: drawn
    /// at start, `node-<8 hex>`).
    #[arg(long, env = "HERALD_NODE_ID")]
    pub node_id: Option<String>,

    /// With Redis: seconds this node's records (connection counts, held
    /// client ids, presence) outlive it; renewed every third of it. A dead
    /// node's connections stop counting, and leave presence, within it.
    #[arg(long, env = "HERALD_NODE_LEASE_SECS", default_value_t = crate::broker::DEFAULT_LEASE.as_secs_f64())]
    pub node_lease_secs: f64,

    /// Seconds between `status` events on `/system/status/stream`.
    #[arg(long, env = "HERALD_STATUS_SECS", default_value_t = DEFAULT_STATUS_SECS)]
    pub status_secs: f64,
}

/// The demo job queue (`crate::jobs`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Jobs")]
pub struct JobFlags {
    /// Job workers in this process (0: none here; with Redis, worker
    /// processes or other nodes run the jobs).
    #[arg(long, env = "HERALD_JOB_WORKERS", default_value_t = jobs::DEFAULT_WORKERS)]
    pub job_workers: usize,

    /// Milliseconds per progress step of the demo job workers.
    #[arg(long, env = "HERALD_JOB_STEP_MS", default_value_t = jobs::DEFAULT_STEP_MS)]
    pub job_step_ms: u64,

    /// With Redis: seconds a job's worker may go without a sign of life
    /// (it gives one every step) before another worker takes the job over.
    #[arg(long, env = "HERALD_JOB_VISIBILITY_SECS", default_value_t = jobs::DEFAULT_VISIBILITY.as_secs_f64())]
    pub job_visibility_secs: f64,

    /// Unfinished demo jobs one user may have.
    #[arg(long, env = "HERALD_MAX_JOBS_PER_USER", default_value_t = jobs::DEFAULT_MAX_JOBS_PER_USER)]
    pub max_jobs_per_user: usize,

    /// Unfinished demo jobs in all.
    #[arg(long, env = "HERALD_MAX_JOBS", default_value_t = jobs::DEFAULT_MAX_JOBS)]
    pub max_jobs: usize,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the JWT public key {}: {source}", .path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
}

impl Config {
    /// The token verifier this configuration asks for.
    pub fn verifier(&self) -> Result<auth::Verifier, ConfigError> {
        use auth::Verifier;
        let a = &self.auth;
        let verifier = if let Some(path) = &a.jwt_public_key {
            let pem = std::fs::read(path).map_err(|source| ConfigError::ReadKey {
                path: path.clone(),
                source,
            })?;
            match a.jwt_algorithm {
                KeyAlgorithm::Rs256 => Verifier::rs256(&pem)?,
                KeyAlgorithm::Es256 => Verifier::es256(&pem)?,
            }
        } else if let Some(secret) = a.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_BYTES {
                tracing::warn!(
                    bytes = secret.len(),
                    "HERALD_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes: an HS256 secret that short can be guessed offline from any token"
                );
            }
            Verifier::hs256(secret.as_bytes())
        } else {
            tracing::warn!("no HERALD_JWT_SECRET or public key configured: generated a random secret for this run");
            let secret: [u8; 32] = rand::random();
            Verifier::hs256(&secret)
        };
        let secure = match a.cookie_secure {
            CookieSecureFlag::Auto => auth::CookieSecure::Auto,
            CookieSecureFlag::Always => auth::CookieSecure::Always,
            CookieSecureFlag::Never => auth::CookieSecure::Never,
        };
        let mut verifier = verifier
            .dev_mode(a.dev)
            .cookie_name(a.auth_cookie.clone())
            .session_rules(Duration::from_secs(a.session_ttl_secs), secure);
        if let Some(key) = a.session_secret.as_deref().filter(|s| !s.is_empty()) {
            verifier = verifier.session_key(auth::SessionKey::derive(key.as_bytes()));
        } else if a.jwt_public_key.is_some() {
            tracing::warn!("no HERALD_SESSION_SECRET: session cookies are signed with a key of this process only (set one shared by every node)");
        }
        if let Some(aud) = a.jwt_audience.as_deref().filter(|s| !s.is_empty()) {
            verifier = verifier.audience(aud);
        }
        if let Some(iss) = a.jwt_issuer.as_deref().filter(|s| !s.is_empty()) {
            verifier = verifier.issuer(iss);
        }
        Ok(verifier)
    }

    /// The write idle timeout, if enabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        secs_unless_zero(self.serve.idle_timeout_secs)
    }

    /// How long a request body may take, if limited.
    pub fn body_timeout(&self) -> Option<Duration> {
        secs_unless_zero(self.serve.body_timeout_secs)
    }

    /// `Access-Control-Allow-Origin` for the streams, if any.
    pub fn cors_origin(&self) -> Option<String> {
        Some(self.serve.cors_origin.clone()).filter(|o| !o.is_empty())
    }

    /// How often the status stream reports.
    pub fn status_every(&self) -> Duration {
        Duration::from_secs_f64(self.cluster.status_secs.max(0.1))
    }

    /// The Redis options, when `--backplane` names a Redis.
    pub fn redis(&self) -> Option<crate::broker::RedisOptions> {
        let url = self.cluster.backplane.trim();
        if url.is_empty() || url == "memory" {
            return None;
        }
        let mut options = crate::broker::RedisOptions::new(url);
        options.prefix = self.cluster.redis_prefix.clone();
        options.shards = self.cluster.redis_shards.max(1);
        options.history = self.history();
        // Renewed every third of it: a few tenths of a second at least.
        options.lease = Duration::from_secs_f64(self.cluster.node_lease_secs.max(0.3));
        Some(options)
    }

    /// How much history each topic keeps, on either backplane.
    fn history(&self) -> crate::broker::HistoryLimits {
        crate::broker::HistoryLimits {
            max_events: self.streams.history_size,
            max_age: Duration::from_secs(self.streams.history_secs),
            topic_bytes: self.streams.history_topic_bytes,
            total_bytes: self.streams.history_bytes,
            max_topics: self.limits.max_log_topics,
        }
    }

    /// The job queue's settings.
    pub fn job_settings(&self) -> jobs::JobSettings {
        jobs::JobSettings {
            workers: self.jobs.job_workers,
            step: Duration::from_millis(self.jobs.job_step_ms),
            max_per_user: self.jobs.max_jobs_per_user,
            max_unfinished: self.jobs.max_jobs,
        }
    }

    /// How long a Redis job's worker may stay silent.
    pub fn job_visibility(&self) -> Duration {
        Duration::from_secs_f64(self.jobs.job_visibility_secs.max(0.001))
    }

    /// How connections are served.
    pub fn serve_options(&self) -> net::ServeOptions {
        net::ServeOptions {
            header_read_timeout: secs_unless_zero(self.serve.header_timeout_secs),
            grace: Duration::from_secs(self.serve.shutdown_grace_secs),
            flushers: self.serve.flushers,
            max_pending_per_ip: self.serve.max_pending_per_ip,
        }
    }

    /// The broker part of the configuration.
    pub fn broker(&self) -> BrokerConfig {
        let (s, l, history) = (&self.streams, &self.limits, self.history());
        BrokerConfig {
            event_buffer_size: s.buffer_size.max(1),
            heartbeat_interval: Duration::from_secs_f64(s.heartbeat_secs.max(0.0)),
            heartbeat_style: match s.heartbeat_style {
                HeartbeatFlag::Event => HeartbeatStyle::Event,
                HeartbeatFlag::Comment => HeartbeatStyle::Comment,
            },
            history,
            topic_creations_per_minute: l.topic_creations_per_minute,
            retry_hint_ms: s.retry_ms,
            max_connections: l.max_connections,
            max_connections_per_user: l.max_connections_per_user,
            max_connections_per_ip: l.max_connections_per_ip,
            max_topics: l.max_topics,
            topic_rules: self.auth.topic_rules.clone(),
            open_publishing: self.auth.anonymous_publish || self.auth.dev,
            node_id: self.cluster.node_id.clone(),
            ..BrokerConfig::default()
        }
    }
}

fn secs_unless_zero(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}
