//! The targeted notifier: `GET /api/sse?clientId=&userId=&sessionId=` opens
//! a stream; `POST /api/sse/send` `{type, data, target?}` sends the named
//! event `type` (data: the JSON of `data`) to a client, a user, a session,
//! or everyone when there is no target. [`SSENotifier`] is the same for
//! backend code and webhook handlers.
//!
//! Targets are the broker's topics `client:<id>`, `user:<id>`,
//! `session:<id>` and `all`. Heartbeats (30 s) and the connection timeout
//! (60 s without a successful write) are the server's own defaults.
//!
//! A `userId` is an identity, so it comes from a token: with one, a
//! `userId` parameter must match it (403 otherwise); without one, `userId`
//! is accepted only in dev mode, where the notifier's documented
//! self-declared ids are what the demo uses (401 otherwise). Sessions and
//! client ids are proven the same way as on `/_sse/connect`: a
//! `sessionId` is the token's or this server's session cookie's (a new
//! session is issued otherwise; naming another is a 403), and a
//! `clientId` on record continues only for its owner (409 otherwise).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shared::wire::Event;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::broker::{names, BrokerError, ConnectOptions, EventId, SSEBroker};
use crate::state::AppState;
use crate::web::caller::{Caller, Publishing};
use crate::web::error::ApiError;
use crate::web::sse_response;
use crate::web::target::{destinations, Target};
use crate::web::LastEventId;

/// `/api/sse` and `/api/sse/send`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/sse", get(stream))
        .route("/api/sse/send", post(send))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamQuery {
    client_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    /// The client id's secret, for clients that cannot send headers.
    secret: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    LastEventId(last_event_id): LastEventId,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let asked = non_empty(q.user_id);
    let user_id = match (&caller.claims, asked) {
        (Some(c), Some(asked)) if asked != c.sub => {
            return Err(ApiError::forbidden(format!(
                "userId {asked:?} is not this token's user"
            )))
        }
        (Some(c), _) => Some(c.sub.clone()),
        (None, Some(_)) if !state.auth.is_dev() => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a userId needs a token for that user (self-declared ids only in dev mode)",
            ))
        }
        (None, asked) => asked,
    };
    let (mut principal, new_session) = caller.stream_principal(&state, q.session_id)?;
    principal.user_id = user_id;
    let sub = state
        .broker
        .connect(ConnectOptions {
            client_id: non_empty(q.client_id),
            secret: crate::web::headers::offered_secret(&headers, q.secret),
            principal,
            peer: caller.peer,
            last_event_id,
            ..ConnectOptions::default()
        })
        .await?;
    let mut response = sse_response(sub);
    crate::web::headers::set_cookie(&mut response, new_session);
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    target: Option<Target>,
}

/// `{type, data, target?}` → `{success: true, id}`.
async fn send(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.admit_publish(&state)?;
    let Json(body) = body?;
    let topics = destinations(body.target.as_ref().map(Target::topics).unwrap_or_default());
    let event = named(&body.kind, &body.data)?;
    let to: Vec<&str> = topics.iter().map(String::as_str).collect();
    let id = caller.publish(&state, Publishing::Raw, &to, event).await?;
    Ok(Json(json!({ "success": true, "id": id.to_string() })))
}

/// The event `kind` carrying `data` as JSON.
fn named(kind: &str, data: &impl Serialize) -> Result<Event, ApiError> {
    if kind.is_empty() {
        return Err(ApiError::bad_request("\"type\" must not be empty"));
    }
    let data = serde_json::to_string(data).map_err(ApiError::encoding)?;
    Ok(Event::data(data).event(kind))
}

/// The notifier facade for backend code: each call is one publish of the
/// named event `kind` with `data` serialised as JSON.
///
/// ```
/// use herald_server::apps::notifier::SSENotifier;
/// use herald_server::broker::{BrokerConfig, SSEBroker};
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let notifier = SSENotifier::new(SSEBroker::new(BrokerConfig::default()));
/// notifier
///     .notify_user("user123", "new-message", &json!({"message": "You have a new message!"}))
///     .await
///     .unwrap();
/// notifier.broadcast("system-announcement", &json!({"message": "Maintenance in 5 minutes"})).await.unwrap();
/// notifier.notify_client("client456", "status-update", &json!({"status": "processing", "progress": 75})).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SSENotifier {
    broker: SSEBroker,
}

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("event data is not serialisable: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl SSENotifier {
    pub fn new(broker: SSEBroker) -> Self {
        SSENotifier { broker }
    }

    /// To every connection of a user.
    pub async fn notify_user(
        &self,
        user_id: &str,
        kind: &str,
        data: &impl Serialize,
    ) -> Result<EventId, NotifyError> {
        self.publish(&names::user(user_id), kind, data).await
    }

    /// To one connection.
    pub async fn notify_client(
        &self,
        client_id: &str,
        kind: &str,
        data: &impl Serialize,
    ) -> Result<EventId, NotifyError> {
        self.publish(&names::client(client_id), kind, data).await
    }

    /// To every connection of a session.
    pub async fn notify_session(
        &self,
        session_id: &str,
        kind: &str,
        data: &impl Serialize,
    ) -> Result<EventId, NotifyError> {
        self.publish(&names::session(session_id), kind, data).await
    }

    /// To everyone.
    pub async fn broadcast(
        &self,
        kind: &str,
        data: &impl Serialize,
    ) -> Result<EventId, NotifyError> {
        self.publish(names::ALL, kind, data).await
    }

    async fn publish(
        &self,
        topic: &str,
        kind: &str,
        data: &impl Serialize,
    ) -> Result<EventId, NotifyError> {
        let event = Event::data(serde_json::to_string(data)?).event(kind);
        Ok(self.broker.publish(topic, event).await?)
    }
}
