//! Who is calling: the token's claims (if any) and the peer's address,
//! extracted once per request for every route that needs them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::{error::ApiError, AppState};
use crate::auth::Claims;

/// The caller of a route. Extracting it verifies the token: a bad token is a
/// 401 (never silently anonymous); no token is `claims: None`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Option<Claims>,
    /// The TCP peer (absent when the app runs without `net::serve`).
    pub peer: Option<IpAddr>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state.auth.authenticate(&parts.headers, parts.uri.query())?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Caller { claims, peer })
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

    /// Admits a publish: a token is needed unless anonymous publishing is
    /// on, and each publish takes one token from the caller's rate-limit
    /// bucket (429 with `Retry-After` when empty).
    pub fn admit_publish(&self, state: &AppState) -> Result<(), ApiError> {
        if self.claims.is_none() && !state.anonymous_publish {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "publishing needs a token (Authorization: Bearer) with a publish claim",
            ));
        }
        state
            .publish_limit
            .check(&self.rate_key())
            .map_err(|wait| ApiError {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "publish rate limit exceeded; slow down",
                )
            })
    }

    /// The token's `publish` claim must match `topic` (403 otherwise);
    /// anonymous callers were admitted (or not) by
    /// [`admit_publish`](Self::admit_publish).
    pub fn check_publish_claim(&self, topic: &str) -> Result<(), ApiError> {
        match &self.claims {
            Some(c) if !c.may_publish(topic) => Err(ApiError::forbidden(format!(
                "this token does not allow publishing to {topic:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whose bucket a publish draws from: the user when there is a token,
    /// the peer's IP otherwise.
    fn rate_key(&self) -> String {
        match (&self.claims, self.peer) {
            (Some(c), _) => format!("user:{}", c.sub),
            (None, Some(ip)) => format!("ip:{ip}"),
            (None, None) => "anonymous".to_owned(),
        }
    }
}
