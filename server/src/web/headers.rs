//! Headers the stream routes read and set.

use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::state::AppState;

/// A client id's secret as a reconnecting client offers it: the
/// `X-Herald-Secret` header, else `secret` from the query.
pub fn offered_secret(headers: &axum::http::HeaderMap, query: Option<String>) -> Option<String> {
    headers
        .get("x-herald-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query)
        .filter(|s| !s.is_empty())
}

/// Sets `Access-Control-Allow-Origin` on a stream as configured
/// (`--cors-origin`): also for requests without an `Origin` header, which
/// the CORS layer leaves alone (curl, the documented header sets).
pub fn allow_origin(state: &AppState, response: &mut Response) {
    if let Some(v) = state
        .cors_origin
        .as_deref()
        .and_then(|o| HeaderValue::from_str(o).ok())
    {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// Adds a `Set-Cookie` (a session just issued) to a response.
pub fn set_cookie(response: &mut Response, cookie: Option<String>) {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}
