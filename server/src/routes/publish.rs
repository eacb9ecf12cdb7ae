//! `POST /_sse/publish` `{topic?, target?, event?, data, id?}` — publish over HTTP.
//!
//! Needs a token whose `publish` claim covers the destination topic (403
//! otherwise, also for a token without one); without a token, 401 unless
//! the server publishes openly (`--anonymous-publish`, or dev mode), which
//! opens every topic but the apps' own (see `broker::policy`).
//!
//! `topic` names a topic; `target` (`{clientId?, userId?, sessionId?}`)
//! addresses a client, user or session; neither means everyone (`all`).
//! Several at once (a topic and a target, or a target naming a client, a
//! user and a session, as seed 001's example does) send one event to
//! every connection on any of them, each connection once.
//! `data` that is a JSON string is sent as-is; any other JSON value is sent
//! as its JSON text. The broker assigns the event id (resume relies on it);
//! a publisher's `id` is an idempotency key: a retry with the same `id` to
//! the same destination answers with the first event's id and is not
//! delivered twice.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use herald_shared::wire::Event;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;
use crate::web::caller::{Caller, Publishing};
use crate::web::error::ApiError;
use crate::web::target::{destinations, Target};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishBody {
    topic: Option<String>,
    target: Option<Target>,
    event: Option<String>,
    data: Value,
    /// Idempotency key.
    id: Option<String>,
}

/// Resolves `topic` / `target` to the topics the event goes to.
fn destination(body: &PublishBody) -> Vec<String> {
    let mut named: Vec<String> = body.topic.iter().cloned().collect();
    named.extend(body.target.as_ref().map(Target::topics).unwrap_or_default());
    destinations(named)
}

pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    // Who is asking comes first: an unauthenticated caller learns nothing
    // about the body it sent.
    caller.admit_publish(&state)?;
    let Json(body) = body?;
    let topics = destination(&body);
    let data = match &body.data {
        Value::String(s) => s.clone(),
        Value::Null => return Err(ApiError::bad_request("data is required")),
        other => other.to_string(),
    };
    let mut event = Event::data(data);
    event.event = body.event.clone();
    event.id = body.id.clone();
    let to: Vec<&str> = topics.iter().map(String::as_str).collect();
    let id = caller.publish(&state, Publishing::Raw, &to, event).await?;
    // `topic` names the destination when there is one (as before); a send
    // to several lists them all.
    let answer = match topics.as_slice() {
        [one] => json!({ "success": true, "id": id.to_string(), "topic": one }),
        _ => json!({ "success": true, "id": id.to_string(), "topics": topics }),
    };
    Ok(Json(answer))
}
