//! `GET /chat/stream?room=`, `POST /chat/send` and `POST /chat/typing`.
//!
//! A room is the topic `chat:<room>`; `room` may list several rooms
//! (`room=general,random`). Opening a stream announces `user-joined` to
//! its rooms and closing it (for any reason: the tab went away, the broker
//! evicted it) announces `user-left`. Without `room` the stream follows
//! every room the caller may read, as seed 002 documents ("all accessible
//! rooms"): a wildcard subscription to `chat:*`, filtered per room by the
//! topic policy (a token's `subscribe` claim narrows it), including rooms
//! that appear later; it joins no room, so it announces no presence.
//! `message` and `typing` carry the sender's id and name from its token.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shared::events::{ChatMessage, Presence, SseEvent, Typing, UserJoined, UserLeft};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Claims;
use crate::broker::policy::Publisher;
use crate::broker::SSEBroker;
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;
use crate::web::sse_response;
use crate::web::LastEventId;

use crate::broker::names::{self, chat_room as room_topic};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/chat/stream", get(stream))
        .route("/chat/send", post(send))
        .route("/chat/typing", post(typing))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    room: Option<String>,
}

async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    last_event_id: LastEventId,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let Query(q) = query?;
    let Some(listed) = q.room.as_deref() else {
        // Every room this caller may read, as they come and go.
        let topics = vec![room_topic("*")];
        let sub = super::open(&state, &caller, last_event_id, topics, false).await?;
        return Ok(sse_response(sub));
    };
    let mut rooms: Vec<String> = Vec::new();
    for room in listed.split(',') {
        let room = room.trim();
        if !room.is_empty() && !rooms.iter().any(|r| r == room) {
            room_of(room)?;
            rooms.push(room.to_owned());
        }
    }
    if rooms.is_empty() {
        return Err(ApiError::bad_request("room must name at least one room"));
    }
    let limit = state.broker.config().max_topics;
    if rooms.len() > limit {
        return Err(crate::broker::BrokerError::TooManyTopics { limit }.into());
    }
    // Each room hears this stream join and, later, leave: publishes that
    // count against the caller's rate like any other, so a reconnect loop
    // cannot flood a room with presence.
    let presence_events = u32::try_from(rooms.len() * 2).unwrap_or(u32::MAX);
    caller.admit_publishes(&state, presence_events)?;
    let topics = rooms.iter().map(|r| room_topic(r)).collect();
    // A room's events only: nothing sent to the user arrives as a message.
    let sub = super::open(&state, &caller, last_event_id, topics, false).await?;
    // Joined once the stream exists, so the joiner sees its own entry too.
    // A room that starts here is one the caller started.
    let me = caller.principal();
    for room in &rooms {
        let joined = UserJoined(presence(user, room)).to_event();
        let joined = joined.map_err(ApiError::encoding)?;
        state
            .broker
            .publish_as(Publisher::App(&me), &room_topic(room), joined)
            .await?;
    }
    let mut sub = sub;
    sub.hold(Leaving {
        broker: state.broker.clone(),
        user: user.clone(),
        rooms,
    });
    Ok(sse_response(sub))
}

/// The topic of room `room`: a name, not empty (`chat:` is no room), no
/// wildcard.
fn room_of(room: &str) -> Result<String, ApiError> {
    if room.is_empty() {
        return Err(ApiError::bad_request("roomId must name a room"));
    }
    let topic = room_topic(room);
    names::validate_topic(&topic)?;
    Ok(topic)
}

fn presence(user: &Claims, room: &str) -> Presence {
    Presence {
        room_id: room.to_owned(),
        user_id: user.sub.clone(),
        username: user.display_name().to_owned(),
        timestamp: crate::clock::now_rfc3339(),
    }
}

/// Announces `user-left` to its rooms when the stream it rides on is dropped.
struct Leaving {
    broker: SSEBroker,
    user: Claims,
    rooms: Vec<String>,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let broker = self.broker.clone();
        let left: Vec<(String, UserLeft)> = self
            .rooms
            .iter()
            .map(|room| (room_topic(room), UserLeft(presence(&self.user, room))))
            .collect();
        runtime.spawn(async move {
            for (topic, event) in left {
                if let Err(e) = broker.publish_typed(&topic, &event).await {
                    tracing::warn!(%topic, error = %e, "could not announce user-left");
                }
            }
        });
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendBody {
    room_id: String,
    message: String,
}

async fn send(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let user = super::publisher(&state, &caller)?;
    let Json(body) = body?;
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    let message = ChatMessage {
        id: crate::random::token(8),
        room_id: body.room_id,
        user_id: user.sub.clone(),
        username: user.display_name().to_owned(),
        message: body.message,
        timestamp: crate::clock::now_rfc3339(),
    };
    let topic = room_of(&message.room_id)?;
    let event = message.to_event().map_err(ApiError::encoding)?;
    Ok(Json(
        super::publish(&state, &caller, &topic, &message.id, event).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TypingBody {
    room_id: String,
    #[serde(default = "yes")]
    is_typing: bool,
}

fn yes() -> bool {
    true
}

async fn typing(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<TypingBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let user = super::publisher(&state, &caller)?;
    let Json(body) = body?;
    let typing = Typing {
        room_id: body.room_id,
        user_id: user.sub.clone(),
        username: user.display_name().to_owned(),
        is_typing: body.is_typing,
    };
    let topic = room_of(&typing.room_id)?;
    let event = typing.to_event().map_err(ApiError::encoding)?;
    let id = crate::random::token(8);
    Ok(Json(
        super::publish(&state, &caller, &topic, &id, event).await?,
    ))
}
