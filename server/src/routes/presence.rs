//! `GET /_sse/presence?topic=…`: who is connected to a topic, on every node.
//!
//! Asked under the same rule as subscribing (`SSEBroker::presence_as`):
//! whoever may put a stream on the topic may ask (401/403 otherwise,
//! naming the rule, and nothing about the topic), and is shown counts,
//! its own connections, and members' user ids only where the topic's rule
//! shows them (a chat room's readers, or those who may publish there);
//! never another connection's client id. A connection is present on the
//! topics it asked for by name (`broker::presence`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use herald_shared::presence::TopicPresence;
use serde::Deserialize;

use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;

/// Other parameters (`?token=`, read by [`Caller`]) are left alone.
#[derive(Debug, Deserialize)]
pub struct PresenceQuery {
    topic: String,
}

/// `{"topic", "count", "users", "members": [{clientId?, userId, node, since}]}`
/// ([`TopicPresence`]), as the broker shows it to this caller.
pub async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<PresenceQuery>, QueryRejection>,
) -> Result<Json<TopicPresence>, ApiError> {
    let Query(PresenceQuery { topic }) = query?;
    let shown = state
        .broker
        .presence_as(&caller.principal(), &topic)
        .await?;
    Ok(Json(shown))
}
