//! Who is calling: the token's claims (if any) and the peer's address,
//! extracted once per request for every route that needs them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;

use herald_shared::wire::Event;

use super::error::ApiError;
use crate::auth::{Claims, Session};
use crate::broker::policy::{Principal, Publisher};
use crate::broker::{BrokerError, EventId};
use crate::state::AppState;

/// How a route publishes for its caller (see [`Publisher`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publishing {
    /// Raw events the caller composed (`/_sse/publish`, `/api/sse/send`,
    /// `/update`): the caller's `publish` claim must cover the topic.
    Raw,
    /// An app's own event for its caller, the caller's identity stamped in
    /// (`/chat/send`, `/notifications/send`): into topics the caller reads.
    ForCaller,
}

/// The caller of a route. Extracting it verifies the token: a bad token is a
/// 401 (never silently anonymous); no token is `claims: None`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Option<Claims>,
    /// The session this server's signed cookie proves to this caller
    /// (issued to its user, or to anonymous callers, and not expired).
    pub cookie_session: Option<Session>,
    /// The TCP peer (absent when the app runs without `net::serve`).
    pub peer: Option<IpAddr>,
    /// Whether the request came over HTTPS (through a proxy that says so).
    pub https: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state.auth.authenticate(&parts.headers, parts.uri.query())?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let https = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        let user = claims.as_ref().map(|c| c.sub.as_str());
        Ok(Caller {
            cookie_session: state.auth.session_from(&parts.headers, user),
            claims,
            peer,
            https,
        })
    }
}

impl Caller {
    /// The token's user, or a 401 naming what the route needs.
    pub fn user(&self) -> Result<&Claims, ApiError> {
        self.claims.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this route needs a token (Authorization: Bearer, or ?token=)",
            )
        })
    }

    /// Who the caller is, as verified (anonymous without a token); its
    /// session from the token, else from this server's cookie.
    pub fn principal(&self) -> Principal {
        let mut principal = self
            .claims
            .as_ref()
            .map(Claims::principal)
            .unwrap_or_default();
        if principal.session_id.is_none() {
            principal.session_id = self.cookie_session.as_ref().map(|s| s.id.clone());
        }
        principal.peer = self.peer;
        principal
    }

    /// Who a stream that carries sessions (`/_sse/connect`, `/api/sse`)
    /// runs as: [`principal`](Self::principal), with a session issued now
    /// when it has none, or its cookie re-issued when it is aging (the
    /// `Set-Cookie` value to send is returned). A `sessionId` the caller
    /// declares must be that session (403 otherwise): a declared id
    /// proves nothing, or anyone could read anyone's session. Dev mode
    /// trusts it, as the demo's pages declare theirs.
    pub fn stream_principal(
        &self,
        state: &AppState,
        declared: Option<String>,
    ) -> Result<(Principal, Option<String>), ApiError> {
        let mut principal = self.principal();
        let token_session = self.claims.as_ref().and_then(|c| c.session_id.as_ref());
        match declared.filter(|d| !d.is_empty()) {
            Some(d) if principal.session_id.as_ref() == Some(&d) => Ok((principal, None)),
            Some(d) if state.auth.is_dev() && token_session.is_none() => {
                principal.session_id = Some(d);
                Ok((principal, None))
            }
            Some(d) => Err(BrokerError::SessionNotProven(d).into()),
            None if token_session.is_some() => Ok((principal, None)),
            None => {
                let (sessions, now) = (state.auth.sessions(), crate::clock::unix_secs());
                let user = self.claims.as_ref().map(|c| c.sub.as_str());
                let cookie = match &self.cookie_session {
                    Some(s) if s.aging => Some(sessions.set_cookie(&s.id, user, self.https, now)),
                    Some(_) => None,
                    None => {
                        let (sid, cookie) = sessions.issue(user, self.https, now);
                        principal.session_id = Some(sid);
                        Some(cookie)
                    }
                };
                Ok((principal, cookie))
            }
        }
    }

    /// Admits a publish: a token is needed unless the server publishes
    /// openly (`--anonymous-publish`, dev mode), and each publish takes one
    /// token from the caller's rate-limit bucket (429 with `Retry-After`
    /// when empty). Asked before the body is read: an unauthenticated
    /// caller learns nothing about what it sent.
    pub fn admit_publish(&self, state: &AppState) -> Result<(), ApiError> {
        self.admit_publishes(state, 1)
    }

    /// [`admit_publish`](Self::admit_publish) for `n` publishes at once.
    pub fn admit_publishes(&self, state: &AppState, n: u32) -> Result<(), ApiError> {
        if self.claims.is_none() && !state.broker.policy().is_open_publishing() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "publishing needs a token (Authorization: Bearer) with a publish claim",
            ));
        }
        state
            .publish_limit
            .check_n(&self.caller_key(), n)
            .map_err(|wait| ApiError {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "publish rate limit exceeded; slow down",
                )
            })
    }

    /// Whose limits this caller draws on ([`Principal::caller_key`]),
    /// without making the whole principal.
    fn caller_key(&self) -> String {
        let user = self.claims.as_ref().map(|c| c.sub.as_str());
        crate::broker::policy::caller_key(user, self.peer)
    }

    /// Publishes `event` to `topics` (one event, each connection once) as
    /// `how` says, after the topic policy's check of each; the caller was
    /// admitted first ([`admit_publish`](Self::admit_publish)).
    pub async fn publish(
        &self,
        state: &AppState,
        how: Publishing,
        topics: &[&str],
        event: Event,
    ) -> Result<EventId, ApiError> {
        let me = self.principal();
        let who = match how {
            Publishing::Raw => Publisher::Caller(&me),
            Publishing::ForCaller => Publisher::OnBehalfOf(&me),
        };
        Ok(state.broker.publish_to_as(who, topics, event).await?)
    }
}
