//! `GET /_sse/connect?clientId=&sessionId=&topics=a,b&lastEventId=&secret=` — the stream.
//!
//! Anonymous connections are allowed. With a token (Bearer header, cookie,
//! or `?token=`), the connection is also on `user:<sub>`; a bad token is a
//! 401. Every topic asked for goes through the broker's topic policy (401
//! when it needs a token, 403 when it is not the caller's). The session is
//! the token's, else this server's signed session cookie's, else a new one
//! (set as that cookie); a `sessionId` that is not one of those is a 403.
//! A `clientId` on record is continued by its owner (same user, same
//! session, or its `secret` as `?secret=` or `X-Herald-Secret`), refused
//! with a 409 for anyone else.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::broker::ConnectOptions;
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;
use crate::web::headers::{allow_origin, offered_secret, set_cookie};
use crate::web::{sse_response, LastEventId};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectQuery {
    client_id: Option<String>,
    session_id: Option<String>,
    /// Comma-separated extra topics.
    topics: Option<String>,
    /// The client id's secret, for clients that cannot send headers.
    secret: Option<String>,
}

/// Opens a stream: `connected` first, then missed history, then live events.
pub async fn connect(
    State(state): State<AppState>,
    // Anonymous is allowed; a bad token is a 401, never silently anonymous.
    caller: Caller,
    headers: HeaderMap,
    LastEventId(last_event_id): LastEventId,
    query: Result<Query<ConnectQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let topics: Vec<String> = q
        .topics
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (principal, new_session) = caller.stream_principal(&state, q.session_id)?;
    let sub = state
        .broker
        .connect(ConnectOptions {
            client_id: q.client_id.filter(|s| !s.is_empty()),
            secret: offered_secret(&headers, q.secret),
            principal,
            peer: caller.peer,
            topics,
            last_event_id,
            ..ConnectOptions::default()
        })
        .await?;
    let mut response = sse_response(sub);
    allow_origin(&state, &mut response);
    set_cookie(&mut response, new_session);
    Ok(response.into_response())
}
