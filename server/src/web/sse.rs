//! Event-stream responses: every stream route answers with one.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::broker::Subscription;
use crate::net::DirectStream;

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
