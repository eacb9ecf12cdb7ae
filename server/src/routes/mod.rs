//! The HTTP edge: thin axum handlers over the broker.

pub mod access_log;
pub mod caller;
mod connect;
pub mod error;
pub mod publish;
mod resume;
mod stats;

pub use resume::LastEventId;

pub use stats::install_prometheus;
mod subscribe;

use std::convert::Infallible;

use futures::StreamExt;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::broker::{SSEBroker, Subscription};
use crate::net::DirectStream;

/// Publishes per second per caller, sustained (`--publish-rate`).
pub const DEFAULT_PUBLISH_RATE: f64 = 100.0;
/// Seconds a client may take to send a request body (`--body-timeout-secs`).
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;
/// Largest request body accepted (`--max-body-bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Publishes a caller may make at once (`--publish-burst`).
pub const DEFAULT_PUBLISH_BURST: u32 = 200;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub broker: SSEBroker,
    /// Verifies tokens.
    pub auth: std::sync::Arc<crate::auth::Verifier>,
    /// `Access-Control-Allow-Origin` for the streams (`*` by default).
    pub cors_origin: Option<String>,
    /// Largest request body accepted (64 KiB).
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, whole (10 s); `None`
    /// waits forever. A body trickled a byte at a time would otherwise
    /// hold its connection and its handler as long as the client likes.
    pub body_timeout: Option<std::time::Duration>,
    /// Publish rate limit per user (or per IP when anonymous).
    pub publish_limit: std::sync::Arc<crate::ratelimit::RateLimiter>,
    /// The job-progress app's queue.
    pub jobs: crate::apps::jobs::JobQueue,
    /// Seed 002's connection limit for its four streams.
    pub streams_cap: std::sync::Arc<crate::apps::streams::StreamCap>,
    /// Renders `/metrics` (`None`: no Prometheus recorder installed, 404).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl AppState {
    /// State with a random HS256 secret (tokens minted elsewhere won't verify).
    pub fn new(broker: SSEBroker) -> Self {
        let secret: [u8; 32] = rand::random();
        Self::with_auth(broker, crate::auth::Verifier::hs256(&secret))
    }

    pub fn with_auth(broker: SSEBroker, auth: crate::auth::Verifier) -> Self {
        AppState {
            jobs: crate::apps::jobs::JobQueue::new(broker.clone(), Default::default()),
            metrics: None,
            streams_cap: crate::apps::streams::StreamCap::new(
                crate::apps::streams::DEFAULT_STREAMS_MAX_CONNECTIONS,
            ),
            broker,
            auth: std::sync::Arc::new(auth),
            cors_origin: Some("*".to_owned()),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout: Some(std::time::Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS)),
            publish_limit: std::sync::Arc::new(crate::ratelimit::RateLimiter::new(
                DEFAULT_PUBLISH_RATE,
                DEFAULT_PUBLISH_BURST,
            )),
        }
    }
}

/// CORS for the broker routes: browsers on another origin may open streams
/// and call the JSON routes (preflight included) when an origin is configured.
fn cors(origin: Option<&str>) -> Option<CorsLayer> {
    let allow = match origin? {
        "*" => AllowOrigin::any(),
        one => AllowOrigin::exact(HeaderValue::from_str(one).ok()?),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-herald-secret"),
            ])
            // A client on another origin reads how long a 429 asks it to wait.
            .expose_headers([header::RETRY_AFTER]),
    )
}

/// The broker's routes (GoSPA's `/_sse` set), `/healthz`, and the routes of
/// the systems Herald replaces ([`crate::apps`]).
pub fn router(state: AppState) -> Router {
    let cors = cors(state.cors_origin.as_deref());
    let body_limit = axum::extract::DefaultBodyLimit::max(state.max_body_bytes);
    let routes = Router::new()
        .route("/_sse/connect", get(connect::connect))
        .route("/_sse/subscribe", post(subscribe::subscribe))
        .route("/_sse/unsubscribe", post(subscribe::unsubscribe))
        .route("/_sse/publish", post(publish::publish))
        .route("/_sse/stats", get(stats::stats))
        .route("/healthz", get(stats::healthz))
        .route("/metrics", get(stats::metrics))
        .with_state(state.clone())
        .merge(crate::apps::router(state.clone()))
        .layer(body_limit)
        .layer(axum::middleware::from_fn_with_state(
            state,
            read_body_in_time,
        ))
        .layer(axum::middleware::from_fn(limit_uri));
    match cors {
        Some(layer) => routes.layer(layer),
        None => routes,
    }
}

/// The longest request target (path and query) the routes accept. hyper
/// itself refuses targets over 64 KiB with a bare 414 before any route runs.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// 414 with a JSON error for request targets over [`MAX_URI_BYTES`].
async fn limit_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, error::ApiError> {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return Err(error::ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("request target is {len} bytes; the limit is {MAX_URI_BYTES}"),
        ));
    }
    Ok(next.run(request).await)
}

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

/// Reads a request's body whole within [`AppState::body_timeout`] before
/// the route sees it: 408 when it does not arrive in time, 413 when it is
/// over [`AppState::max_body_bytes`].
async fn read_body_in_time(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, error::ApiError> {
    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    let (parts, body) = request.into_parts();
    let Some(limit) = state.body_timeout.filter(|_| !body.is_end_stream()) else {
        return Ok(next
            .run(axum::extract::Request::from_parts(parts, body))
            .await);
    };
    let read = http_body_util::Limited::new(body, state.max_body_bytes).collect();
    let bytes = match tokio::time::timeout(limit, read).await {
        Err(_) => {
            return Err(error::ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error::ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over the limit of {} bytes",
                    state.max_body_bytes
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(error::ApiError::bad_request(format!(
                "reading the body: {e}"
            )))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(next
        .run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await)
}

/// How many queued frames one write may carry.
const MAX_COALESCE: usize = 64;
/// How many bytes one write may carry (beyond a first frame larger still).
const MAX_COALESCE_BYTES: usize = 64 * 1024;

/// A `text/event-stream` response that writes a subscription's frames.
/// Frames that are already queued are coalesced into one write.
///
/// The subscription is also reachable from the response's extensions as
/// a [`DirectStream`]: the accept loop takes it from there and writes it to
/// the socket without the body (`net::flusher`); hyper reads the body.
pub fn sse_response(sub: Subscription) -> Response {
    let slot = DirectStream::new(sub);
    let body = futures::stream::once({
        let slot = slot.clone();
        async move { slot.take() }
    })
    .filter_map(std::future::ready)
    .flat_map(coalesced);
    let mut response = sse_stream_response(body);
    response.extensions_mut().insert(slot);
    response
}

/// A subscription's frames, queued ones merged into one chunk per write.
pub(crate) fn coalesced(sub: Subscription) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::unfold(sub, |mut sub| async move {
        let first = sub.recv().await?;
        let mut more = Vec::new();
        sub.drain_ready(&mut more, MAX_COALESCE, MAX_COALESCE_BYTES);
        let chunk = if more.is_empty() {
            first
        } else {
            let len = first.len() + more.iter().map(Bytes::len).sum::<usize>();
            let mut buf = BytesMut::with_capacity(len);
            buf.extend_from_slice(&first);
            for frame in &more {
                buf.extend_from_slice(frame);
            }
            buf.freeze()
        };
        crate::net::count_bytes_written(chunk.len());
        Some((chunk, sub))
    })
}

/// A `text/event-stream` response writing `frames` as they come, with the
/// headers every Herald stream has (and the avatar system documents).
pub fn sse_stream_response(
    frames: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Response {
    let body = Body::from_stream(frames.map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
