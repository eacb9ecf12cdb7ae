//! The whole HTTP surface: every route, and the layers every request goes
//! through (CORS, the body and request-target limits).

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::limits::MAX_URI_BYTES;
use crate::state::AppState;
use crate::web::error::ApiError;

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

/// The broker's routes (GoSPA's `/_sse` set, [`crate::routes`]),
/// `/healthz` and `/metrics`, and the routes of the systems Herald replaces
/// ([`crate::apps`]), with the limits every request gets.
pub fn router(state: AppState) -> Router {
    let cors = cors(state.cors_origin.as_deref());
    let body_limit = axum::extract::DefaultBodyLimit::max(state.max_body_bytes);
    let routes = crate::routes::router(state.clone())
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

/// 414 with a JSON error for request targets over [`MAX_URI_BYTES`].
async fn limit_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("request target is {len} bytes; the limit is {MAX_URI_BYTES}"),
        ));
    }
    Ok(next.run(request).await)
}

/// Reads a request's body whole within [`AppState::body_timeout`] before
/// the route sees it: 408 when it does not arrive in time, 413 when it is
/// over [`AppState::max_body_bytes`].
async fn read_body_in_time(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
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
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over the limit of {} bytes",
                    state.max_body_bytes
                ),
            ))
        }
        Ok(Err(e)) => return Err(ApiError::bad_request(format!("reading the body: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(next
        .run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await)
}
