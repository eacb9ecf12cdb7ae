//! Event streams written without hyper.
//!
//! hyper gives every connection an 8 KiB read buffer and an 8 KiB buffer
//! for response headers, and keeps both for the connection's life. For a
//! page load that is nothing; for 15 000 open event streams, each idle
//! most of the time, it is most of the server's memory. So the accept loop
//! reads each connection's first request head itself, and when it is a
//! `GET` that asks for `text/event-stream` (as every `EventSource` does),
//! runs the app's router on it. A broker stream's head and events are
//! then written by the flusher ([`writer_of`], `super::flusher`); any other
//! response is written here: the head, then the body with chunked
//! framing, each chunk one vectored write, nothing buffered between the
//! body and the socket. Every other request, and whatever the connection
//! sends after the stream, goes to hyper.
//!
//! Behaviour matches hyper's where a client could tell: same status line
//! and headers (plus `date` and the framing header hyper would add), the
//! peer's close ends the stream at once, a write that makes no progress
//! for the idle timeout ends the connection (as [`super::IdleGuard`] does
//! under hyper).

use std::io::{self, IoSlice, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::response::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::direct::DirectStream;
use super::socket::{chunk_size_line, peer_closed, writable_within};
use crate::broker::Subscription;

/// The longest request head read here; a longer one goes to hyper, which
/// answers it (414 or 431).
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed here; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// What a connection's first request turned out to be.
#[derive(Debug)]
pub(super) enum First {
    /// The peer closed, or sent no complete head in time.
    Gone,
    /// Not an event stream: hyper serves the connection, these bytes first.
    Other(Vec<u8>),
    /// An event-stream request, and the bytes that followed its head.
    Stream(Box<Request<Body>>, Vec<u8>),
}

/// Reads the first request head of `stream`, for at most `timeout` (as
/// hyper's header-read timeout would).
pub(super) async fn read_first(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Option<Duration>,
) -> First {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut buf = Vec::with_capacity(1024);
    loop {
        let read = stream.read_buf(&mut buf);
        let read = match deadline {
            Some(at) => match tokio::time::timeout_at(at, read).await {
                Ok(r) => r,
                Err(_) => return First::Gone,
            },
            None => read.await,
        };
        match read {
            Ok(0) | Err(_) => return First::Gone,
            Ok(_) => {}
        }
        match parse(&buf, peer) {
            Parsed::Partial if buf.len() < MAX_HEAD => {
                if buf.len() == buf.capacity() {
                    buf.reserve(buf.len());
                }
            }
            Parsed::Partial | Parsed::Other => return First::Other(buf),
            Parsed::Stream(request, len) => {
                let rest = buf[len..].to_vec();
                return First::Stream(request, rest);
            }
        }
    }
}

enum Parsed {
    Partial,
    Other,
    /// The request and the length of its head.
    Stream(Box<Request<Body>>, usize),
}

fn parse(buf: &[u8], peer: SocketAddr) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if head.method != Some("GET") || head.version != Some(1) {
        return Parsed::Other;
    }
    let mut wants_stream = false;
    for h in head.headers.iter() {
        let is = |name: &str| h.name.eq_ignore_ascii_case(name);
        if is("accept") && contains(h.value, b"text/event-stream") {
            wants_stream = true;
        }
        // A body or a protocol switch: hyper's business.
        let bodyless_length = is("content-length") && h.value == b"0";
        if (is("content-length") && !bodyless_length) || is("transfer-encoding") || is("upgrade") {
            return Parsed::Other;
        }
    }
    if !wants_stream {
        return Parsed::Other;
    }
    let Some(path) = head.path else {
        return Parsed::Other;
    };
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.version_mut() = Version::HTTP_11;
    match path.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return Parsed::Other,
    }
    for h in head.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        request.headers_mut().append(name, value);
    }
    request.extensions_mut().insert(ConnectInfo(peer));
    Parsed::Stream(Box::new(request), len)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length,
    Chunked,
}

/// What the connection does after a response.
#[derive(Debug)]
pub(super) enum After {
    /// Serve further requests (with hyper).
    KeepAlive(TcpStream),
    Close,
}

/// What writing a response needs besides the socket.
pub(super) struct Writer<'a> {
    /// Write idle timeout.
    pub idle: Option<Duration>,
    pub stopping: &'a CancellationToken,
}

/// Who writes a response.
pub(super) enum Writes {
    /// A broker stream: the flusher (`super::flusher`) writes its head,
    /// serialized here, then its subscription.
    Flusher(Vec<u8>, Subscription),
    /// Anything else: [`respond`].
    Here(Response<Body>),
}

/// Sorts a response by who writes it ([`Writes`]).
///
/// Not async on purpose: everything an async fn is given stays in its
/// future for the future's whole life, and a stream's task lives for
/// hours. Measured on 15 000 idle streams: writing the head in an async
/// `respond` that then awaited the flusher kept a 1.7 KiB future per
/// stream (the response, its parts, the write's state).
pub(super) fn writer_of(mut response: Response<Body>) -> Writes {
    let Some(sub) = response
        .extensions_mut()
        .remove::<DirectStream>()
        .and_then(|d| d.take())
    else {
        return Writes::Here(response);
    };
    let (parts, body) = response.into_parts();
    let (head, _) = head(&parts, &body);
    Writes::Flusher(head, sub)
}

/// The status line and headers of a response, and how its body is framed.
fn head(parts: &Parts, body: &Body) -> (Vec<u8>, Framing) {
    let status = parts.status;
    let mut head = Vec::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        let _ = write!(
            head,
            "date: {}\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        );
    }
    let framing = if status.is_informational()
        || status == axum::http::StatusCode::NO_CONTENT
        || status == axum::http::StatusCode::NOT_MODIFIED
    {
        Framing::None
    } else if parts.headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if let Some(len) = body.size_hint().exact() {
        let _ = write!(head, "content-length: {len}\r\n");
        Framing::Length
    } else {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    head.extend_from_slice(b"\r\n");
    (head, framing)
}

/// Writes a response that is not a broker stream (see [`writer_of`]) to
/// `stream`. Bytes the client sends meanwhile are appended to `rest`.
pub(super) async fn respond(
    stream: TcpStream,
    response: Response<Body>,
    writer: Writer<'_>,
    rest: &mut Vec<u8>,
) -> io::Result<After> {
    let Writer {
        idle,
        stopping: shutdown,
    } = writer;
    let (parts, body) = response.into_parts();
    let (head, framing) = head(&parts, &body);
    write_all(&stream, &mut [IoSlice::new(&head)], idle).await?;
    drop(head);

    let keep_alive = !parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    // The stream may stay open for hours: keep nothing it does not need.
    drop(parts);
    let after = |stream, keep_alive: bool| match keep_alive && !shutdown.is_cancelled() {
        true => After::KeepAlive(stream),
        false => After::Close,
    };
    if framing == Framing::None {
        return Ok(after(stream, keep_alive));
    }
    // Boxed: only a body that is being written needs this state.
    let ended = Box::pin(write_body(&stream, body, framing, idle, rest, shutdown)).await?;
    if !ended {
        return Ok(After::Close);
    }
    Ok(after(stream, keep_alive))
}

/// Writes `body` with `framing` until it ends (true) or the peer leaves
/// (false).
async fn write_body(
    stream: &TcpStream,
    mut body: Body,
    framing: Framing,
    idle: Option<Duration>,
    rest: &mut Vec<u8>,
    shutdown: &CancellationToken,
) -> io::Result<bool> {
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    match framing {
                        Framing::Chunked => {
                            let mut size = [0u8; 20];
                            let mut bufs = [
                                IoSlice::new(chunk_size_line(data.len(), &mut size)),
                                IoSlice::new(&data),
                                IoSlice::new(b"\r\n"),
                            ];
                            write_all(stream, &mut bufs, idle).await?;
                        }
                        _ => write_all(stream, &mut [IoSlice::new(&data)], idle).await?,
                    }
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => break,
            },
            () = peer_closed(stream, rest) => return Ok(false),
            // Shutting down: end the stream as if its body had ended.
            () = shutdown.cancelled() => break,
        }
    }
    if framing == Framing::Chunked {
        write_all(stream, &mut [IoSlice::new(b"0\r\n\r\n")], idle).await?;
    }
    Ok(true)
}

/// Writes every byte of `bufs`, failing with `TimedOut` when the socket
/// accepts nothing for `idle`.
async fn write_all(
    stream: &TcpStream,
    mut bufs: &mut [IoSlice<'_>],
    idle: Option<Duration>,
) -> io::Result<()> {
    while !bufs.is_empty() {
        match stream.try_write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                writable_within(stream, idle).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn an_event_source_request_is_ours() {
        let head = b"GET /_sse/connect?topics=a HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 1-2\r\n\r\nGET";
        let Parsed::Stream(req, len) = parse(head, peer()) else {
            panic!("not parsed as a stream")
        };
        assert_eq!(len, head.len() - 3);
        assert_eq!(req.uri(), "/_sse/connect?topics=a");
        assert_eq!(req.headers()["last-event-id"], "1-2");
        assert!(req.extensions().get::<ConnectInfo<SocketAddr>>().is_some());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /_sse/publish HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /s HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n",
            b"GET /s HTTP/1.1\r\nAccept: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /s HTTP/1.1\r\nAccept: text/event-stream\r\nUpgrade: websocket\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert!(matches!(parse(head, peer()), Parsed::Other), "{head:?}");
        }
        assert!(matches!(
            parse(b"GET /s HTTP/1.1\r\nAcc", peer()),
            Parsed::Partial
        ));
    }

    #[test]
    fn accept_is_matched_in_any_case_and_list() {
        let head = b"GET /s HTTP/1.1\r\naccept: text/html, Text/Event-Stream;q=0.9\r\n\r\n";
        assert!(matches!(parse(head, peer()), Parsed::Stream(..)));
    }
}
