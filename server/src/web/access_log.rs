//! The access log: one line per request, with tokens redacted.
//!
//! `EventSource` cannot send headers, so tokens travel in query strings
//! (`?token=`); logging a URI as-is would write credentials to disk. Every
//! URI goes through [`auth::redact_query`](crate::auth::redact_query) first.

use std::time::Instant;

use axum::extract::Request;
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;

/// Logs method, redacted URI, status and time to response headers.
pub async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = loggable(request.uri());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %uri,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The URI as it may appear in logs.
///
/// ```
/// use axum::http::Uri;
/// use herald_server::web::access_log::loggable;
/// let uri: Uri = "/notifications/stream?token=eyJhbGciOi.secret&room=a".parse().unwrap();
/// assert_eq!(loggable(&uri), "/notifications/stream?token=REDACTED&room=a");
/// ```
pub fn loggable(uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), crate::auth::redact_query(q)),
        None => uri.path().to_owned(),
    }
}
