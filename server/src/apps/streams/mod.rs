//! The multi-stream API: authenticated streams for notifications
//! (`/notifications/*`), entity updates (`/realtime/*`) and chat rooms
//! (`/chat/*`); the public system status is [`super::system`].
//!
//! Every route needs a token (query `token=` or `Authorization: Bearer`):
//! a JWT, or in dev mode the documented base64 `id:username:email:roles`
//! demo token. Missing or bad → 401; a topic the token's `subscribe` /
//! `publish` claim does not allow → 403; the per-user (5) and the API's
//! global (1000, [`crate::limits::ConnectionCap`]) connection limits → 429. Each stream is one broker connection to its
//! API's topics, without the `all` broadcast topic (so a chat stream's
//! `message` events are chat messages and nothing else).

pub mod chat;
pub mod notifications;
pub mod realtime;

use axum::Router;
use herald_shared::wire::Event;
use serde_json::{json, Value};

use crate::auth::Claims;
use crate::broker::{ConnectOptions, Subscription};
use crate::state::AppState;
use crate::web::caller::{Caller, Publishing};
use crate::web::error::ApiError;
use crate::web::LastEventId;

/// The three authenticated APIs' routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(notifications::router(state.clone()))
        .merge(realtime::router(state.clone()))
        .merge(chat::router(state))
}

/// Connects an authenticated caller to `topics` (plus its own user and
/// session topics), resuming after `Last-Event-ID`.
async fn open(
    state: &AppState,
    caller: &Caller,
    last_event_id: LastEventId,
    topics: Vec<String>,
    with_identity: bool,
) -> Result<Subscription, ApiError> {
    caller.user()?;
    let slot = state.streams_cap.take()?;
    let mut sub = state
        .broker
        .connect(ConnectOptions {
            principal: caller.principal(),
            topics,
            no_broadcasts: true,
            no_identity_topics: !with_identity,
            last_event_id: last_event_id.0,
            ..ConnectOptions::default()
        })
        .await?;
    sub.hold(slot);
    Ok(sub)
}

/// The `GET` route of a stream of `topic` (plus the caller's own user and
/// session topics), for authenticated callers.
fn topic_stream(topic: &'static str, with_identity: bool) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(
        move |axum::extract::State(state): axum::extract::State<AppState>,
              caller: Caller,
              last_event_id: LastEventId| async move {
            let topics = vec![topic.to_owned()];
            let sub = open(&state, &caller, last_event_id, topics, with_identity).await?;
            Ok::<_, ApiError>(crate::web::sse_response(sub))
        },
    )
}

/// Publishes an app event for an authenticated caller (admitted by
/// [`publisher`]) into a topic the caller may read, within its `publish`
/// claim. Answers the documented `{success: true, id}` with the payload's
/// id, plus the event's id.
async fn publish(
    state: &AppState,
    caller: &Caller,
    topic: &str,
    id: &str,
    event: Event,
) -> Result<Value, ApiError> {
    let event_id = caller
        .publish(state, Publishing::ForCaller, &[topic], event)
        .await?;
    Ok(json!({ "success": true, "id": id, "eventId": event_id.to_string() }))
}

/// The caller's claims, after the publish admission (token + rate).
fn publisher<'a>(state: &AppState, caller: &'a Caller) -> Result<&'a Claims, ApiError> {
    let user = caller.user()?;
    caller.admit_publish(state)?;
    Ok(user)
}
