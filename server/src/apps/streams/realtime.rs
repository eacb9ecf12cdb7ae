//! `GET /realtime/stream` and `POST /realtime/update`.
//!
//! An update `{entityType, entityId, action, data}` goes to every realtime
//! stream (topic [`TOPIC`]) as one of the documented events, chosen by its
//! action: `create`/`created` → `create`, `delete`/`deleted` → `delete`,
//! `status-change`/`status_changed`/`status` → `status-change`, anything
//! else (`updated`, ...) → `update`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use herald_shared::events::EntityEvent;
use herald_shared::wire::Event;
use serde::Deserialize;
use serde_json::Value;

use crate::broker::names;
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;

/// The topic every realtime stream reads.
pub const TOPIC: &str = names::REALTIME;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/realtime/stream", super::topic_stream(TOPIC, false))
        .route("/realtime/update", post(update))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateBody {
    entity_type: String,
    entity_id: String,
    action: String,
    #[serde(default)]
    data: Value,
}

/// The event name for an action.
///
/// ```
/// use herald_server::apps::streams::realtime::event_name;
/// assert_eq!(event_name("created"), "create");
/// assert_eq!(event_name("updated"), "update");
/// assert_eq!(event_name("status"), "status-change");
/// ```
pub fn event_name(action: &str) -> &'static str {
    match action {
        "create" | "created" => "create",
        "delete" | "deleted" => "delete",
        "status-change" | "status_change" | "status_changed" | "status" => "status-change",
        _ => "update",
    }
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    super::publisher(&state, &caller)?;
    let Json(body) = body?;
    if body.entity_type.is_empty() || body.entity_id.is_empty() {
        return Err(ApiError::bad_request(
            "entityType and entityId must not be empty",
        ));
    }
    let name = event_name(&body.action);
    let entity = EntityEvent {
        entity_type: body.entity_type,
        entity_id: body.entity_id,
        action: body.action,
        data: body.data,
        timestamp: crate::clock::now_rfc3339(),
    };
    let data = serde_json::to_string(&entity).map_err(ApiError::encoding)?;
    let id = crate::random::token(8);
    let answer = super::publish(&state, &caller, TOPIC, &id, Event::data(data).event(name)).await?;
    Ok(Json(answer))
}
