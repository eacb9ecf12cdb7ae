//! The APIs of the systems Herald replaces, as thin route modules over the
//! one broker: each turns its documented routes into publishes and
//! connections on topics, and owns no fan-out of its own.
//!
//! | module | system | routes |
//! |---|---|---|
//! | [`avatar`] | plain broadcast | `GET /sse`, `POST /update` |
//! | [`notifier`] | targeted notifier | `GET /api/sse`, `POST /api/sse/send`, [`notifier::SSENotifier`] |
//! | [`streams`] | multi-stream API | `/notifications/*`, `/realtime/*`, `/chat/*` |
//! | [`system`] | multi-stream API (public part) | `/system/status`, `/system/status/stream` |
//! | [`jobs`] | job progress | `/api/v1/sse/jobs/*`, `/api/v1/characters`, `/api/v1/media` |
//!
//! GoSPA's routes are the broker's own `/_sse` routes ([`crate::routes`]).

pub mod avatar;
pub mod jobs;
pub mod notifier;
pub mod streams;
pub mod system;

use axum::Router;

use crate::state::AppState;

/// Every app's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(avatar::router(state.clone()))
        .merge(notifier::router(state.clone()))
        .merge(streams::router(state.clone()))
        .merge(system::router(state.clone()))
        .merge(jobs::router(state))
}
