//! Command-line flags and environment variables. Every setting has a default,
//! so `herald-server` with no arguments serves the demo on 127.0.0.1:3000.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::broker::{BrokerConfig, HeartbeatStyle};

/// How heartbeats are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeartbeatFlag {
    /// `event: heartbeat` with a timestamp (visible to EventSource listeners).
    Event,
    /// `: heartbeat` comment (invisible to EventSource, keeps proxies open).
    Comment,
}

/// Herald: a Server-Sent Events broker and its demo app.
#[derive(Debug, Clone, Parser)]
#[command(name = "herald-server", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Seconds between heartbeats; 0 disables them.
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", default_value_t = 30.0)]
    pub heartbeat_secs: f64,

    /// Heartbeat style.
    #[arg(long, env = "HERALD_HEARTBEAT_STYLE", value_enum, default_value_t = HeartbeatFlag::Event)]
    pub heartbeat_style: HeartbeatFlag,

    /// Frames a client may have queued before it is disconnected as too slow.
    #[arg(long, env = "HERALD_BUFFER_SIZE", default_value_t = 100)]
    pub buffer_size: usize,

    /// Events kept per topic for Last-Event-ID resume.
    #[arg(long, env = "HERALD_HISTORY_SIZE", default_value_t = 1000)]
    pub history_size: usize,

    /// Seconds an event stays resumable.
    #[arg(long, env = "HERALD_HISTORY_SECS", default_value_t = 300)]
    pub history_secs: u64,

    /// `retry:` hint sent to clients, in milliseconds.
    #[arg(long, env = "HERALD_RETRY_MS", default_value_t = 1000)]
    pub retry_ms: u64,

    /// `Access-Control-Allow-Origin` on streams; empty to send none.
    #[arg(long, env = "HERALD_CORS_ORIGIN", default_value = "*")]
    pub cors_origin: String,

    /// Seconds a write may stall (the peer stopped reading) before the
    /// connection is closed; 0 disables the limit.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds between `status` events on `/system/status/stream`.
    #[arg(long, env = "HERALD_STATUS_SECS", default_value_t = 5.0)]
    pub status_secs: f64,

    /// Seconds to wait for streams to drain on shutdown.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    /// The write idle timeout, if enabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    /// The broker part of the configuration.
    pub fn broker(&self) -> BrokerConfig {
        BrokerConfig {
            event_buffer_size: self.buffer_size.max(1),
            heartbeat_interval: Duration::from_secs_f64(self.heartbeat_secs.max(0.0)),
            heartbeat_style: match self.heartbeat_style {
                HeartbeatFlag::Event => HeartbeatStyle::Event,
                HeartbeatFlag::Comment => HeartbeatStyle::Comment,
            },
            history_size: self.history_size,
            history_max_age: Duration::from_secs(self.history_secs),
            retry_hint_ms: self.retry_ms,
            ..BrokerConfig::default()
        }
    }
}
