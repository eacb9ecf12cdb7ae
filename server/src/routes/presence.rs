//! `GET /_sse/presence?topic=…`: who is connected to a topic, on every node.
//!
//! Asked under the same rule as subscribing (`SSEBroker::presence_as`):
//! whoever may put a stream on
//! the topic may see who else is there (401/403 otherwise, naming the
//! rule, and nothing about the topic). A connection is present on the
//! topics it asked for by name (`broker::presence`).

use std::collections::BTreeSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use herald_shared::presence::{PresentMember, TopicPresence};
use serde::Deserialize;

use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;

/// Other parameters (`?token=`, read by [`Caller`]) are left alone.
#[derive(Debug, Deserialize)]
pub struct PresenceQuery {
    topic: String,
}

/// `{"topic", "count", "users", "members": [{clientId, userId, node, since}]}`
/// ([`TopicPresence`]).
pub async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<PresenceQuery>, QueryRejection>,
) -> Result<Json<TopicPresence>, ApiError> {
    let Query(PresenceQuery { topic }) = query?;
    let members: Vec<PresentMember> = state
        .broker
        .presence_as(&caller.principal(), &topic)
        .await?
        .into_iter()
        .map(|m| PresentMember {
            client_id: m.client_id,
            user_id: m.user_id,
            node: m.node,
            since: m.since,
        })
        .collect();
    let users: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m.user_id.as_deref())
        .collect();
    Ok(Json(TopicPresence {
        count: members.len(),
        users: users.len(),
        topic,
        members,
    }))
}
