//! Counters the broker keeps for `/_sse/stats` and for tests.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Monotonic counters, updated without locks.
#[derive(Debug, Default)]
pub struct Stats {
    published: AtomicU64,
    delivered: AtomicU64,
    evictions: AtomicU64,
    connections_total: AtomicU64,
    refused: AtomicU64,
}

impl Stats {
    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Relaxed);
    }
    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
    }
    pub(crate) fn evicted(&self) {
        self.evictions.fetch_add(1, Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }
    pub(crate) fn connected(&self) {
        self.connections_total.fetch_add(1, Relaxed);
    }
}

/// A snapshot, in the JSON shape of `GET /_sse/stats` (GoSPA's `clientCount`
/// plus Herald's own counters).
///
/// ```
/// use herald_server::broker::{BrokerConfig, SSEBroker};
/// let stats = SSEBroker::new(BrokerConfig::default()).stats();
/// let json = serde_json::to_value(&stats).unwrap();
/// assert_eq!(json["clientCount"], 0);
/// assert_eq!(json["evictions"], 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub client_count: usize,
    /// Topics with history.
    pub topic_count: usize,
    /// Bytes of history kept, all topics together.
    pub history_bytes: usize,
    pub events_published: u64,
    pub events_delivered: u64,
    pub evictions: u64,
    pub connections_total: u64,
    /// Connections refused by the connection limits.
    pub connections_refused: u64,
    pub uptime_secs: u64,
}

impl Stats {
    pub(crate) fn snapshot(
        &self,
        client_count: usize,
        usage: super::Usage,
        uptime_secs: u64,
    ) -> StatsSnapshot {
        StatsSnapshot {
            client_count,
            topic_count: usage.topics,
            history_bytes: usage.bytes,
            events_published: self.published.load(Relaxed),
            events_delivered: self.delivered.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            connections_refused: self.refused.load(Relaxed),
            uptime_secs,
        }
    }
}
