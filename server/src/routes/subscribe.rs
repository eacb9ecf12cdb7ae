//! `POST /_sse/subscribe` and `POST /_sse/unsubscribe` `{clientId, topics, secret}`.
//!
//! Only the connection's owner may change its subscriptions: it proves it
//! with the per-connection secret from its `connected` event (in the body,
//! or the `X-Herald-Secret` header), or with a token for the connection's
//! user. Unknown client → 404, neither proof → 403. A topic the
//! connection's own principal may not read (the topic policy) is 401/403
//! too, exactly as it would be at `/_sse/connect`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::broker::claims::constant_time_eq;
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscribeBody {
    client_id: String,
    topics: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
}

fn authorise(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &SubscribeBody,
) -> Result<(), ApiError> {
    let client = state
        .broker
        .client(&body.client_id)
        .ok_or_else(|| ApiError::not_found(format!("unknown client {:?}", body.client_id)))?;
    let given = body
        .secret
        .as_deref()
        .or_else(|| headers.get("x-herald-secret").and_then(|v| v.to_str().ok()))
        .unwrap_or_default();
    let same_user = match (&caller.claims, client.user_id()) {
        (Some(claims), Some(owner)) => claims.sub == owner,
        _ => false,
    };
    if same_user || constant_time_eq(given.as_bytes(), client.secret.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::forbidden("not the owner of this connection"))
    }
}

/// GoSPA's answer: `{success, topics}` with the topics of the request,
/// plus Herald's `held`, every topic the connection is on now.
fn answer(body: SubscribeBody, held: Vec<String>) -> Json<Value> {
    Json(json!({ "success": true, "topics": body.topics, "held": held }))
}

/// Ownership first (no lookup needed), then the broker's own checks.
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<SubscribeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    authorise(&state, &caller, &headers, &body)?;
    let held = state
        .broker
        .subscribe(&body.client_id, &body.topics)
        .await?;
    Ok(answer(body, held))
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<SubscribeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    authorise(&state, &caller, &headers, &body)?;
    let held = state.broker.unsubscribe(&body.client_id, &body.topics)?;
    Ok(answer(body, held))
}
