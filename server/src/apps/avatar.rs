//! The plain broadcast system (the avatar app): `GET /sse` streams every
//! update as an unnamed event `data: {"type": ..., "data": ...}`, and
//! `POST /update` `{type, data}` broadcasts one to every `/sse` client.
//!
//! The stream is a broker connection to the topic [`TOPIC`] that starts with
//! nothing but the `retry:` hint (the documented stream has no greeting),
//! carries no other broadcasts, and gets the usual headers
//! (`Content-Type: text/event-stream`, `Cache-Control: no-cache`,
//! `Connection: keep-alive`, and `Access-Control-Allow-Origin` as
//! `--cors-origin` says: `*` by default, as documented). A client
//! that fails is dropped by the broker alone; the others never notice.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shared::events::{AvatarUpdate, Envelope, SseEvent};
use serde_json::{json, Value};

use crate::broker::{names, ConnectOptions};
use crate::routes::caller::{Caller, Publishing};
use crate::routes::{error::ApiError, sse_response, AppState, LastEventId};

/// The topic `/update` publishes to and `/sse` reads.
pub const TOPIC: &str = names::AVATAR_UPDATES;

/// The update types the shared crate types (others are passed through).
const KNOWN: [&str; 4] = [
    "avatar_state_change",
    "avatar_created",
    "avatar_deleted",
    "voice_updated",
];

/// `/sse` and `/update`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/sse", get(stream))
        .route("/update", post(update))
        .with_state(state)
}

async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    LastEventId(last_event_id): LastEventId,
) -> Result<Response, ApiError> {
    let sub = state
        .broker
        .connect(ConnectOptions {
            principal: caller.principal(),
            peer: caller.peer,
            topics: vec![TOPIC.to_owned()],
            no_broadcasts: true,
            greeting: Some(Vec::new()),
            last_event_id,
            ..ConnectOptions::default()
        })
        .await?;
    let mut response = sse_response(sub);
    crate::routes::allow_origin(&state, &mut response);
    Ok(response)
}

/// `{type: string, data: object}` → 200 `{success: true, id}`.
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admit_publish(&state)?;
    let Json(body) = body?;
    let update = parse(body)?;
    let event = update
        .to_event()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The app's own route: whoever may read the updates may send one
    // (seed 000 documents no roles), within a token's publish claim.
    let id = caller
        .publish(&state, Publishing::ForCaller, TOPIC, event)
        .await?;
    Ok(Json(json!({ "success": true, "id": id.to_string() })))
}

/// Checks an update's shape: `type` a non-empty string, `data` an object,
/// nothing else; the known types must also fit their typed form.
fn parse(body: Value) -> Result<Envelope, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "expected a JSON object {\"type\": string, \"data\": object}",
        ));
    };
    if let Some(extra) = fields.keys().find(|k| *k != "type" && *k != "data") {
        return Err(ApiError::bad_request(format!(
            "unknown field {extra:?}: expected only \"type\" and \"data\""
        )));
    }
    let kind = match fields.remove("type") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => return Err(ApiError::bad_request("\"type\" must be a non-empty string")),
    };
    let data = match fields.remove("data") {
        Some(data @ Value::Object(_)) => data,
        _ => return Err(ApiError::bad_request("\"data\" must be a JSON object")),
    };
    let envelope = Envelope { kind, data };
    if KNOWN.contains(&envelope.kind.as_str()) {
        let as_json =
            serde_json::to_value(&envelope).map_err(|e| ApiError::bad_request(e.to_string()))?;
        serde_json::from_value::<AvatarUpdate>(as_json)
            .map_err(|e| ApiError::bad_request(format!("invalid {} data: {e}", envelope.kind)))?;
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let ok = parse(
            json!({"type": "avatar_state_change", "data": {"avatar_id": "a", "state": "talking"}}),
        );
        assert_eq!(ok.expect("valid").kind, "avatar_state_change");
        assert!(parse(json!({"type": "custom_kind", "data": {}})).is_ok());
        for bad in [
            json!([1]),
            json!({"type": "x"}),
            json!({"type": "x", "data": "not an object"}),
            json!({"type": "", "data": {}}),
            json!({"type": 3, "data": {}}),
            json!({"type": "x", "data": {}, "extra": 1}),
            json!({"type": "avatar_state_change", "data": {"state": "no avatar id"}}),
        ] {
            assert_eq!(parse(bad).expect_err("invalid").status, 400);
        }
    }
}
