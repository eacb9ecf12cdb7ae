//! A subscriber's event stream, read one of two ways ([`Reader`]).
//!
//! The raw reader: one task per subscriber reads its socket, undoes the
//! chunked framing and hands the bytes to the parser; no HTTP client
//! library in between, so no second task and no channel hop per read. With
//! 10 000 subscribers on the same two cores as the server, the generator
//! must cost as little per event as possible, or it, not the server, sets
//! the figures.
//!
//! The hyper reader: a hyper HTTP/1 client connection per subscriber (its
//! connection task plus the reading task, a body frame per read), as a
//! typical Rust client reads. It is slower, so the server's socket buffers
//! fill and its writes go partial — closer to what a browser on a real
//! network makes a server do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read per `read` call.
const READ_SIZE: usize = 16 * 1024;

/// How subscribers read their streams (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reader {
    Raw,
    Hyper,
}

impl Reader {
    pub fn name(self) -> &'static str {
        match self {
            Reader::Raw => "raw",
            Reader::Hyper => "hyper",
        }
    }
}

/// An open event stream, after a `200`.
pub struct EventStream {
    source: Source,
    out: Vec<u8>,
    /// Body bytes that arrived with the head, not yet handed out.
    primed: bool,
    ended: bool,
}

enum Source {
    Raw {
        tcp: TcpStream,
        read: Vec<u8>,
        /// `None`: the body runs until the connection closes.
        chunks: Option<Dechunker>,
    },
    Hyper {
        body: Incoming,
        /// Kept so the connection stays open while the body is read.
        _sender: SendRequest<Empty<Bytes>>,
    },
}

/// Binds a socket to `from` and connects it to `addr`.
async fn connect(addr: SocketAddr, from: IpAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

impl EventStream {
    /// Connects from `from` and asks for `path` as an `EventSource` does.
    pub async fn open(addr: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Self> {
        Self::open_with(Reader::Raw, addr, from, path).await
    }

    /// [`open`](Self::open), read the `reader` way.
    pub async fn open_with(
        reader: Reader,
        addr: SocketAddr,
        from: IpAddr,
        path: &str,
    ) -> anyhow::Result<Self> {
        match reader {
            Reader::Raw => Self::open_raw(addr, from, path).await,
            Reader::Hyper => Self::open_hyper(addr, from, path).await,
        }
    }

    async fn open_hyper(addr: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Self> {
        let tcp = connect(addr, from).await?;
        let (mut sender, conn) = handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let request = Request::get(path)
            .header("host", addr.to_string())
            .header("accept", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        if response.status() != 200 {
            bail!("stream refused: {}", response.status());
        }
        Ok(EventStream {
            source: Source::Hyper {
                body: response.into_body(),
                _sender: sender,
            },
            out: Vec::new(),
            primed: false,
            ended: false,
        })
    }

    async fn open_raw(addr: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Self> {
        let mut tcp = connect(addr, from).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;

        let mut head = Vec::with_capacity(1024);
        let end = loop {
            if let Some(at) = find(&head, b"\r\n\r\n") {
                break at + 4;
            }
            if head.len() > MAX_HEAD {
                bail!("response head over {MAX_HEAD} bytes");
            }
            if tcp.read_buf(&mut head).await? == 0 {
                bail!("closed before the response head");
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let status = text.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            bail!(
                "stream refused: {}",
                text.lines().next().unwrap_or_default()
            );
        }
        let mut stream = EventStream {
            source: Source::Raw {
                tcp,
                read: Vec::new(),
                chunks: text
                    .contains("\r\ntransfer-encoding: chunked\r\n")
                    .then(Dechunker::default),
            },
            out: Vec::new(),
            primed: false,
            ended: false,
        };
        let rest = head.split_off(end);
        if let Source::Raw { chunks, .. } = &mut stream.source {
            stream.ended = unframe(chunks, &rest, &mut stream.out)?;
        }
        stream.primed = !stream.out.is_empty();
        Ok(stream)
    }

    /// The next body bytes, or `None` at the body's end, on an error, or
    /// after `idle` without any.
    pub async fn next_data(&mut self, idle: Duration) -> Option<&[u8]> {
        if self.primed {
            self.primed = false;
            return Some(&self.out);
        }
        self.out.clear();
        while self.out.is_empty() {
            if self.ended {
                return None;
            }
            match &mut self.source {
                Source::Raw { tcp, read, chunks } => {
                    read.resize(READ_SIZE, 0);
                    let n = match tokio::time::timeout(idle, tcp.read(read)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return None,
                    };
                    self.ended = unframe(chunks, &read[..n], &mut self.out).ok()?;
                }
                Source::Hyper { body, .. } => {
                    match tokio::time::timeout(idle, body.frame()).await {
                        Ok(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                self.out.extend_from_slice(&data);
                            }
                        }
                        Ok(None) => self.ended = true,
                        _ => return None,
                    }
                }
            }
        }
        Some(&self.out)
    }
}

/// Body bytes in `input` appended to `out`; true once the body ended.
fn unframe(
    chunks: &mut Option<Dechunker>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> anyhow::Result<bool> {
    match chunks {
        Some(d) => d.feed(input, out),
        None => {
            out.extend_from_slice(input);
            Ok(false)
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Undoes HTTP/1.1 chunked framing, fed in pieces of any size.
///
/// ```
/// use herald_bench::stream::Dechunker;
/// let mut d = Dechunker::default();
/// let mut out = Vec::new();
/// assert!(!d.feed(b"5\r\nhel", &mut out).unwrap());
/// assert!(d.feed(b"lo\r\n0\r\n\r\n", &mut out).unwrap());
/// assert_eq!(out, b"hello");
/// ```
#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Done,
}

impl Dechunker {
    /// Appends the data in `input` to `out`; true once the last chunk came.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size =
                            self.size.checked_mul(16).context("chunk size overflows")? + digit;
                    }
                    b';' | b' ' | b'\t' => self.state = State::Extension,
                    b'\r' => self.state = State::SizeLf,
                    _ => bail!("bad chunk size byte {b:#x}"),
                },
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        bail!("chunk size line not ended by CRLF");
                    }
                    self.state = if self.size == 0 {
                        State::Done
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (self.size as usize).min(input.len() - i);
                    out.extend_from_slice(&input[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        bail!("chunk data not followed by CRLF");
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        bail!("chunk data not followed by CRLF");
                    }
                    self.state = State::Size;
                }
                State::Done => return Ok(true),
            }
            i += 1;
        }
        Ok(self.state == State::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_gives_the_same_body() {
        let wire = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\n\r\n";
        for split in 0..=wire.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            let first = d.feed(&wire[..split], &mut out).unwrap();
            let done = d.feed(&wire[split..], &mut out).unwrap();
            assert!(done || first, "split at {split}");
            assert_eq!(out, b"Wikipedia in \r\nchunks.", "split at {split}");
        }
    }

    #[test]
    fn bad_framing_is_an_error() {
        let mut out = Vec::new();
        assert!(Dechunker::default().feed(b"zz\r\n", &mut out).is_err());
        assert!(Dechunker::default().feed(b"2\r\nabX", &mut out).is_err());
    }
}
