//! `GET /notifications/stream` and `POST /notifications/send`.
//!
//! The stream carries the caller's own notifications (topic `user:<sub>`)
//! and those sent to every notification stream (topic [`TOPIC`]).
//! A send `{title, message, type, userId?, event?}` goes to `userId` when
//! given, else to every stream; `event` picks the documented event name
//! (`notification`, default; `system-notification`; `error-notification`).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use herald_shared::events::Notification;
use herald_shared::wire::Event;
use serde::Deserialize;
use serde_json::Value;

use crate::broker::names;
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;

/// The topic of notifications for every notification stream.
pub const TOPIC: &str = names::NOTIFICATIONS;

/// The documented notification event names.
const NAMES: [&str; 3] = ["notification", "system-notification", "error-notification"];

pub fn router(state: AppState) -> Router {
    Router::new()
        // With the user's own topic: a notification to the user comes here.
        .route("/notifications/stream", super::topic_stream(TOPIC, true))
        .route("/notifications/send", post(send))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    #[serde(default)]
    title: String,
    message: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    user_id: Option<String>,
    event: Option<String>,
}

async fn send(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    super::publisher(&state, &caller)?;
    let Json(body) = body?;
    let name = body.event.as_deref().unwrap_or("notification");
    if !NAMES.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "event must be one of {NAMES:?}"
        )));
    }
    let topic = match &body.user_id {
        Some(user) => names::user(user),
        None => TOPIC.to_owned(),
    };
    let mut n = Notification::new(body.message).title(body.title);
    if let Some(kind) = body.kind {
        n = n.kind(kind);
    }
    n.id = crate::random::token(8);
    n.timestamp = crate::clock::now_rfc3339();
    n.user_id = body.user_id;
    let data = serde_json::to_string(&n).map_err(ApiError::encoding)?;
    let id = n.id.clone();
    let answer =
        super::publish(&state, &caller, &topic, &id, Event::data(data).event(name)).await?;
    Ok(Json(answer))
}
