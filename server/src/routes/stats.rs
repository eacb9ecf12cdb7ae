//! `GET /_sse/stats`, `GET /healthz` and `GET /metrics` (Prometheus).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::broker::StatsSnapshot;
use crate::state::AppState;

/// `{"clientCount": ..., "topicCount": ..., "historyBytes": ..., "eventsPublished": ..., ...}`.
pub async fn stats(State(state): State<AppState>) -> Json<StatsSnapshot> {
    Json(state.broker.stats())
}

/// Liveness: the process answers, and the state of its backplane.
///
/// `{"status": "ok" | "degraded", "backplane": {"name", "ok", "error"?}}`,
/// always 200: with the backplane down a node still holds its streams and
/// heartbeats, so a load balancer should keep it; `degraded` says that
/// publishing and resuming fail until the backplane is back.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let backplane = state.broker.backplane().health();
    let status = if backplane.ok { "ok" } else { "degraded" };
    Json(json!({ "status": status, "backplane": backplane }))
}

/// Installs the Prometheus recorder for this process (once, in `main`,
/// inside the runtime) and returns the handle `/metrics` renders. Publish
/// latency is a histogram with buckets from 50 µs to 1 s.
///
/// Histogram samples wait in the recorder until drained: by a scrape of
/// `/metrics`, or by the upkeep task this starts. Without it a server
/// nobody scrapes keeps every publish's latency sample (8 bytes each,
/// forever).
pub fn install_prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("herald_publish_duration_seconds".to_owned()),
            &[
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
            ],
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| e.to_string())?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Prometheus text: the broker's counters and gauges as of now, plus what
/// is recorded as it happens (publish latency, bytes written, replays).
pub async fn metrics(
    State(state): State<AppState>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), crate::web::error::ApiError> {
    let Some(handle) = &state.metrics else {
        return Err(crate::web::error::ApiError::not_found(
            "metrics are not enabled on this server",
        ));
    };
    let s = state.broker.stats();
    metrics::gauge!("herald_connections").set(s.client_count as f64);
    metrics::gauge!("herald_subscriptions").set(state.broker.subscription_count() as f64);
    metrics::gauge!("herald_topics").set(s.topic_count as f64);
    metrics::gauge!("herald_history_bytes").set(s.history_bytes as f64);
    metrics::counter!("herald_events_published_total").absolute(s.events_published);
    metrics::counter!("herald_events_delivered_total").absolute(s.events_delivered);
    metrics::counter!("herald_evictions_total").absolute(s.evictions);
    metrics::counter!("herald_connections_total").absolute(s.connections_total);
    metrics::counter!("herald_connections_refused_total").absolute(s.connections_refused);
    let ok = state.broker.backplane().health().ok;
    metrics::gauge!("herald_backplane_up").set(if ok { 1.0 } else { 0.0 });
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    ))
}
