//! System status (the multi-stream API's public part):
//! `GET /system/status` → `{status, uptime, connections, memory, cpu}`, and
//! `GET /system/status/stream`, an event stream of `status` events.
//!
//! A background task publishes a `status` event to the topic
//! `system:status` every interval; the stream is a connection to that topic
//! (without the `all` broadcast topic), so history, resume and heartbeats
//! work as for every other stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use herald_shared::events::SystemStatus;

use crate::broker::{names, ConnectOptions, SSEBroker};
use crate::routes::caller::Caller;
use crate::routes::{error::ApiError, sse_response, AppState, LastEventId};

/// The topic status events are published to.
pub const TOPIC: &str = names::SYSTEM_STATUS;

/// The publisher's latest CPU reading (`f64` bits): CPU use is measured over
/// an interval, so one reading, taken on the publisher's ticks, serves the
/// stream and `GET /system/status` alike. NaN until the second tick.
static LATEST_CPU: AtomicU64 = AtomicU64::new(u64::MAX);

/// `/system/status` and `/system/status/stream`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/system/status", get(status))
        .route("/system/status/stream", get(stream))
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Json<SystemStatus> {
    Json(snapshot(&state.broker, false))
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

/// Publishes a `status` event every `every` until the broker is gone.
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
            let mut status = snapshot(&broker, true);
            let published = broker.stats().events_published;
            let now = Instant::now();
            if let Some((then, before)) = last.replace((now, published)) {
                let secs = now.duration_since(then).as_secs_f64();
                status.events_per_second =
                    (secs > 0.0).then(|| (published.saturating_sub(before)) as f64 / secs);
            }
            if let Err(e) = broker.publish_typed(TOPIC, &status).await {
                tracing::warn!(error = %e, "could not publish system status");
            }
        }
    })
}

fn snapshot(broker: &SSEBroker, stamped: bool) -> SystemStatus {
    let cpu = f64::from_bits(LATEST_CPU.load(Ordering::Relaxed));
    SystemStatus {
        status: "healthy".to_owned(),
        uptime: broker.uptime().as_secs(),
        connections: broker.client_count() as u64,
        memory: resident_memory()
            .map_or_else(|| "n/a".to_owned(), |b| format!("{}MB", b / (1024 * 1024))),
        cpu: if cpu.is_finite() {
            format!("{cpu:.0}%")
        } else {
            "n/a".to_owned()
        },
        timestamp: stamped.then(crate::clock::now_rfc3339),
        events_per_second: None,
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
