//! Where a reconnecting client resumes: one rule for every stream route.
//!
//! A browser's `EventSource` that reconnects by itself sends the id of the
//! last event it saw as the `Last-Event-ID` header; a client runtime that
//! opens a new `EventSource` cannot set headers, so it sends the same id as
//! the `lastEventId` query parameter. Every stream reads both, through this
//! extractor, so no route silently drops a resume.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The id a stream resumes after, if the client sent one.
///
/// ```
/// use axum::extract::FromRequestParts;
/// use herald_server::web::LastEventId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let read = |req: axum::http::Request<()>| async move {
///     let (mut parts, ()) = req.into_parts();
///     LastEventId::from_request_parts(&mut parts, &()).await.unwrap().0
/// };
/// let header = axum::http::Request::get("/s?lastEventId=q-1").header("last-event-id", "h-2").body(()).unwrap();
/// assert_eq!(read(header).await.as_deref(), Some("h-2"), "the header first");
/// let query = axum::http::Request::get("/s?topics=a&lastEventId=q-1").body(()).unwrap();
/// assert_eq!(read(query).await.as_deref(), Some("q-1"));
/// let none = axum::http::Request::get("/s?lastEventId=").body(()).unwrap();
/// assert_eq!(read(none).await, None);
/// # });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastEventId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let header = parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let query = || {
            serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query()?)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "lastEventId")
                .map(|(_, v)| v)
        };
        Ok(LastEventId(
            header
                .filter(|v| !v.is_empty())
                .or_else(query)
                .filter(|v| !v.is_empty()),
        ))
    }
}
