//! System status (the multi-stream API's public part):
//! `GET /system/status` → `{status, uptime, connections, memory, cpu}` of
//! the node that answers, `GET /system/status/stream`, an event stream of
//! `status` (and `maintenance`) events, and `POST /system/maintenance`.
//!
//! `status` is `healthy`, or `degraded` while the backplane is not (as
//! `/healthz` says). Every node reads its own status each interval and
//! reports it through the backplane, which answers with every live node's
//! reading; the node with the lowest id publishes one summary to the topic
//! `system:status` — `connections`, `memory` and `cpu` in all, the worst
//! `status`, and each node's reading under `nodes` — so the stream shows
//! the cluster, not the nodes' readings in turn. A single node is its own
//! cluster. The stream is a connection to that topic (without the `all`
//! broadcast topic): history, resume and heartbeats work as everywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shared::events::{Maintenance, NodeStatus, SseEvent, SystemStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::broker::{names, ConnectOptions, SSEBroker};
use crate::state::AppState;
use crate::web::caller::{Caller, Publishing};
use crate::web::error::ApiError;
use crate::web::sse_response;
use crate::web::LastEventId;

/// The topic status events are published to.
pub const TOPIC: &str = names::SYSTEM_STATUS;

/// The publisher's latest CPU reading (`f64` bits): CPU use is measured over
/// an interval, so one reading, taken on the publisher's ticks, serves the
/// stream and `GET /system/status` alike. NaN until the second tick.
static LATEST_CPU: AtomicU64 = AtomicU64::new(u64::MAX);

/// A node's reading lives this many status intervals unless renewed: a
/// node that stops reporting leaves the summary soon after.
const READING_LIFETIMES: u32 = 3;

/// `/system/status`, `/system/status/stream` and `/system/maintenance`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/system/status", get(status))
        .route("/system/status/stream", get(stream))
        .route("/system/maintenance", post(maintenance))
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Json<SystemStatus> {
    let r = Reading::now(&state.broker, None);
    Json(SystemStatus {
        status: r.status().to_owned(),
        uptime: r.uptime,
        connections: r.connections,
        memory: memory_text(r.memory),
        cpu: cpu_text(r.cpu),
        timestamp: None,
        events_per_second: None,
        node: None,
        nodes: None,
    })
}

async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    LastEventId(last_event_id): LastEventId,
) -> Result<Response, ApiError> {
    let slot = state.streams_cap.take()?;
    let mut sub = state
        .broker
        .connect(ConnectOptions {
            principal: caller.principal(),
            peer: caller.peer,
            last_event_id,
            topics: vec![TOPIC.to_owned()],
            no_broadcasts: true,
            ..ConnectOptions::default()
        })
        .await?;
    sub.hold(slot);
    Ok(sse_response(sub))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    message: String,
}

/// `POST /system/maintenance` `{message}` → `{success, id}`: the seed's
/// `maintenance` event on the status stream. Needs a token whose `publish`
/// claim covers `system:status` (an operator's).
async fn maintenance(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admit_publish(&state)?;
    let Json(body) = body?;
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    let event = Maintenance {
        message: body.message,
        timestamp: crate::clock::now_rfc3339(),
    }
    .to_event()
    .map_err(ApiError::encoding)?;
    let id = caller
        .publish(&state, Publishing::Raw, &[TOPIC], event)
        .await?;
    Ok(Json(json!({ "success": true, "id": id.to_string() })))
}

/// Announces maintenance on the status stream, from backend code.
pub async fn announce_maintenance(
    broker: &SSEBroker,
    message: &str,
) -> Result<crate::broker::EventId, crate::broker::BrokerError> {
    let event = Maintenance {
        message: message.to_owned(),
        timestamp: crate::clock::now_rfc3339(),
    };
    broker.publish_typed(TOPIC, &event).await
}

/// One node's status at one moment, as nodes report it to each other
/// (through the backplane, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    node: String,
    healthy: bool,
    uptime: u64,
    connections: u64,
    /// Resident bytes.
    memory: Option<u64>,
    /// Percent of one core.
    cpu: Option<f64>,
    events_per_second: Option<f64>,
}

impl Reading {
    fn now(broker: &SSEBroker, events_per_second: Option<f64>) -> Self {
        let cpu = f64::from_bits(LATEST_CPU.load(Ordering::Relaxed));
        Reading {
            node: broker.node_id().to_owned(),
            healthy: broker.backplane().health().ok,
            uptime: broker.uptime().as_secs(),
            connections: broker.client_count() as u64,
            memory: resident_memory(),
            cpu: cpu.is_finite().then_some(cpu),
            events_per_second,
        }
    }

    fn status(&self) -> &'static str {
        if self.healthy {
            "healthy"
        } else {
            "degraded"
        }
    }

    fn node_status(&self) -> NodeStatus {
        NodeStatus {
            node: self.node.clone(),
            status: self.status().to_owned(),
            uptime: self.uptime,
            connections: self.connections,
            memory: memory_text(self.memory),
            cpu: cpu_text(self.cpu),
        }
    }
}

/// The cluster's `status` event from every node's reading (`publisher`'s
/// among them): sums, the worst status, the longest uptime.
fn summary(publisher: &str, mut readings: Vec<Reading>) -> SystemStatus {
    readings.sort_by(|a, b| a.node.cmp(&b.node));
    // Over the nodes that have a value (a node's first CPU reading takes
    // two ticks).
    let sum = |f: fn(&Reading) -> Option<f64>| -> Option<f64> {
        let known: Vec<f64> = readings.iter().filter_map(f).collect();
        (!known.is_empty()).then(|| known.iter().sum())
    };
    SystemStatus {
        status: if readings.iter().all(|r| r.healthy) {
            "healthy"
        } else {
            "degraded"
        }
        .to_owned(),
        uptime: readings.iter().map(|r| r.uptime).max().unwrap_or(0),
        connections: readings.iter().map(|r| r.connections).sum(),
        memory: memory_text(sum(|r| r.memory.map(|m| m as f64)).map(|m| m as u64)),
        cpu: cpu_text(sum(|r| r.cpu)),
        timestamp: Some(crate::clock::now_rfc3339()),
        events_per_second: sum(|r| r.events_per_second),
        node: Some(publisher.to_owned()),
        nodes: Some(readings.iter().map(Reading::node_status).collect()),
    }
}

fn memory_text(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), |b| format!("{}MB", b / (1024 * 1024)))
}

fn cpu_text(percent: Option<f64>) -> String {
    percent.map_or_else(|| "n/a".to_owned(), |p| format!("{p:.0}%"))
}

/// Every `every`: reads this node's status, reports it, and — on the node
/// with the lowest id among those reporting — publishes the cluster's
/// `status` event. Runs until the broker is gone.
pub fn spawn_publisher(broker: &SSEBroker, every: Duration) -> tokio::task::JoinHandle<()> {
    let broker = broker.clone();
    tokio::spawn(async move {
        let mut cpu = CpuMeter::default();
        let mut tick = tokio::time::interval(every);
        let mut last: Option<(Instant, u64)> = None;
        loop {
            tick.tick().await;
            if let Some(p) = cpu.percent() {
                LATEST_CPU.store(p.to_bits(), Ordering::Relaxed);
            }
            let published = broker.stats().events_published;
            let now = Instant::now();
            let rate = last.replace((now, published)).and_then(|(then, before)| {
                let secs = now.duration_since(then).as_secs_f64();
                (secs > 0.0).then(|| published.saturating_sub(before) as f64 / secs)
            });
            let mine = Reading::now(&broker, rate);
            let readings = report(&broker, &mine, every * READING_LIFETIMES).await;
            // The lowest id publishes: every node sees the same list, so
            // one of them does (two, briefly, while one joins or leaves).
            if readings.iter().any(|r| r.node < mine.node) {
                continue;
            }
            let status = summary(&mine.node, readings);
            if let Err(e) = broker.publish_typed(TOPIC, &status).await {
                tracing::warn!(error = %e, "could not publish system status");
            }
        }
    })
}

/// Reports `mine` and returns every live node's reading; just `mine` while
/// the backplane cannot say (this node still speaks for itself).
async fn report(broker: &SSEBroker, mine: &Reading, ttl: Duration) -> Vec<Reading> {
    let Ok(json) = serde_json::to_string(mine) else {
        return vec![mine.clone()];
    };
    match broker.backplane().report_node(&mine.node, json, ttl).await {
        Ok(all) => {
            let mut readings: Vec<Reading> = all
                .iter()
                .filter_map(|r| serde_json::from_str(r).ok())
                .filter(|r: &Reading| r.node != mine.node)
                .collect();
            readings.push(mine.clone());
            readings
        }
        Err(e) => {
            tracing::debug!(error = %e, "node status not shared");
            vec![mine.clone()]
        }
    }
}

/// Resident set size in bytes, from `/proc/self/status` (Linux).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU use of this process since the previous reading (Linux).
#[derive(Debug, Default)]
struct CpuMeter {
    last: Option<(Instant, u64)>,
}

impl CpuMeter {
    fn percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), cpu_ticks()?);
        let previous = self.last.replace(now);
        let (then, ticks) = previous?;
        let wall = now.0.duration_since(then).as_secs_f64();
        // USER_HZ is 100 on every Linux this runs on.
        let busy = (now.1.saturating_sub(ticks)) as f64 / 100.0;
        (wall > 0.0).then(|| 100.0 * busy / wall)
    }
}

/// utime + stime of this process in clock ticks, from `/proc/self/stat`.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(node: &str, healthy: bool, connections: u64) -> Reading {
        Reading {
            node: node.into(),
            healthy,
            uptime: 10,
            connections,
            memory: Some(100 * 1024 * 1024),
            cpu: Some(5.0),
            events_per_second: None,
        }
    }

    #[test]
    fn a_cluster_summary_adds_up_its_nodes() {
        let s = summary("a", vec![reading("b", false, 3), reading("a", true, 2)]);
        assert_eq!(
            (
                s.status.as_str(),
                s.connections,
                s.memory.as_str(),
                s.cpu.as_str()
            ),
            ("degraded", 5, "200MB", "10%")
        );
        let nodes = s.nodes.expect("nodes");
        assert_eq!(
            nodes
                .iter()
                .map(|n| (n.node.as_str(), n.connections))
                .collect::<Vec<_>>(),
            [("a", 2), ("b", 3)]
        );
        assert_eq!(s.node.as_deref(), Some("a"));
    }

    #[test]
    fn proc_readings_are_sane_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory().is_some_and(|b| b > 1024 * 1024));
            let mut meter = CpuMeter::default();
            assert_eq!(
                meter.percent(),
                None,
                "the first reading has nothing to compare with"
            );
            std::thread::sleep(Duration::from_millis(20));
            assert!(meter.percent().is_some_and(|p| p >= 0.0));
        }
    }
}
