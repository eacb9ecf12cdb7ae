//! GoSPA's `/_sse` routes over the broker (`SetupSSE(app, broker, "/_sse",
//! nil)`), plus `/healthz` and `/metrics`: thin handlers, each a call
//! into the broker.

mod connect;
mod presence;
mod publish;
mod stats;
mod subscribe;

pub use stats::install_prometheus;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// `/_sse/connect`, `/_sse/subscribe`, `/_sse/unsubscribe`,
/// `/_sse/publish`, `/_sse/presence`, `/_sse/stats`, `/healthz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/_sse/connect", get(connect::connect))
        .route("/_sse/subscribe", post(subscribe::subscribe))
        .route("/_sse/unsubscribe", post(subscribe::unsubscribe))
        .route("/_sse/publish", post(publish::publish))
        .route("/_sse/presence", get(presence::presence))
        .route("/_sse/stats", get(stats::stats))
        .route("/healthz", get(stats::healthz))
        .route("/metrics", get(stats::metrics))
        .with_state(state)
}
