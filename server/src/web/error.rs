//! Every error a route returns is JSON `{"error": "..."}` with a 4xx/5xx status.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::broker::BrokerError;

/// An error answer: a status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// An event the server built could not be encoded: the server's fault,
    /// so 500 wherever it happens (as [`BrokerError::Serialize`]).
    pub fn encoding(e: serde_json::Error) -> Self {
        BrokerError::Serialize(e.to_string()).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::UnknownClient(_) => ApiError::not_found(e.to_string()),
            BrokerError::NeedsToken(_) => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()),
            BrokerError::ReservedTopic(_)
            | BrokerError::TopicNotAllowed(_)
            | BrokerError::ReadDenied { .. }
            | BrokerError::PublishDenied { .. }
            | BrokerError::SessionNotProven(_) => ApiError::forbidden(e.to_string()),
            BrokerError::ClientIdInUse(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            BrokerError::TooManyConnections { .. } => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            BrokerError::TopicCap { .. } => ApiError {
                retry_after: Some(60),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            BrokerError::TopicCreations {
                retry_after_secs, ..
            } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            BrokerError::Serialize(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            BrokerError::Backplane(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            // Listed one by one: a new variant must choose its status.
            BrokerError::InvalidTopic { .. }
            | BrokerError::InvalidClientId(_)
            | BrokerError::ReservedEventName(_)
            | BrokerError::TooManyTopics { .. }
            | BrokerError::Destinations { .. }
            | BrokerError::Encode(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// axum's own JSON rejections, in our shape and with their proper status
/// (400 malformed, 415 wrong content type, 413 too large, 422 wrong shape → 400).
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.body_text())
    }
}

/// A full connection cap: 429, come back in a few seconds.
impl From<crate::limits::Full> for ApiError {
    fn from(e: crate::limits::Full) -> Self {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}
