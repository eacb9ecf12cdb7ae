//! `GET /_sse/stats` and `GET /healthz`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::broker::StatsSnapshot;

/// `{"clientCount": ..., "topicCount": ..., "eventsPublished": ..., ...}`.
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
