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
use herald_shared::wire::Event;
use serde_json::{json, Value};

use crate::broker::{names, ConnectOptions};
use crate::state::AppState;
use crate::web::caller::{Caller, Publishing};
use crate::web::error::ApiError;
use crate::web::sse_response;
use crate::web::LastEventId;

/// The topic `/update` publishes to and `/sse` reads.
pub const TOPIC: &str = names::AVATAR_UPDATES;

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
    crate::web::headers::allow_origin(&state, &mut response);
    Ok(response)
}

/// `{type: string, data: object, ...}` → 200 `{success: true, id}`.
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admit_publish(&state)?;
    let Json(body) = body?;
    let update = parse(body)?;
    // Unnamed, as documented: `data: {"type":...,"data":...}`.
    let event = Event::data(update.to_string());
    // The app's own route: whoever may read the updates may send one
    // (seed 000 documents no roles), within a token's publish claim.
    let id = caller
        .publish(&state, Publishing::ForCaller, &[TOPIC], event)
        .await?;
    Ok(Json(json!({ "success": true, "id": id.to_string() })))
}

/// Checks an update's shape as seed 000 documents it — `type` a
/// non-empty string, `data` an object — and passes it on as it came: other
/// fields and the contents of `data` are the publisher's business (the
/// documented update types are examples, not a schema).
fn parse(body: Value) -> Result<Value, ApiError> {
    let Value::Object(fields) = &body else {
        return Err(ApiError::bad_request(
            "expected a JSON object {\"type\": string, \"data\": object}",
        ));
    };
    match fields.get("type") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => return Err(ApiError::bad_request("\"type\" must be a non-empty string")),
    }
    match fields.get("data") {
        Some(Value::Object(_)) => Ok(body),
        _ => Err(ApiError::bad_request("\"data\" must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let documented =
            json!({"type": "avatar_state_change", "data": {"avatar_id": "a", "state": "talking"}});
        assert_eq!(parse(documented.clone()).expect("valid"), documented);
        for ok in [
            json!({"type": "custom_kind", "data": {}}),
            json!({"type": "x", "data": {}, "extra": 1}),
            json!({"type": "avatar_state_change", "data": {"state": "no avatar id"}}),
        ] {
            assert_eq!(
                parse(ok.clone()).expect("valid"),
                ok,
                "passed on as it came"
            );
        }
        for bad in [
            json!([1]),
            json!({"type": "x"}),
            json!({"type": "x", "data": "not an object"}),
            json!({"type": "", "data": {}}),
            json!({"type": 3, "data": {}}),
        ] {
            assert_eq!(parse(bad).expect_err("invalid").status, 400);
        }
    }
}
