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

/// Liveness: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
