//! A subscriber's event stream over a raw TCP socket.
//!
//! One task per subscriber reads its socket, undoes the chunked framing and
//! hands the bytes to the parser: no HTTP client library in between, so
//! no second task and no channel hop per read. With 10 000 subscribers on
//! the same two cores as the server, the generator must cost as little per
//! event as possible, or it, not the server, sets the figures.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read per `read` call.
const READ_SIZE: usize = 16 * 1024;

/// An open event stream, after a `200`.
pub struct EventStream {
    tcp: TcpStream,
    read: Vec<u8>,
    out: Vec<u8>,
    /// `None`: the body runs until the connection closes.
    chunks: Option<Dechunker>,
    /// Body bytes that arrived with the head, not yet handed out.
    primed: bool,
    ended: bool,
}

impl EventStream {
    /// Connects from `from` and asks for `path` as an `EventSource` does.
    pub async fn open(addr: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut tcp = socket.connect(addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
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
            tcp,
            read: Vec::new(),
            out: Vec::new(),
            chunks: text
                .contains("\r\ntransfer-encoding: chunked\r\n")
                .then(Dechunker::default),
            primed: false,
            ended: false,
        };
        let rest = head.split_off(end);
        stream.ended = stream.unframe(&rest)?;
        stream.primed = !stream.out.is_empty();
        Ok(stream)
    }

    /// Body bytes in `input` appended to `out`; true once the body ended.
    fn unframe(&mut self, input: &[u8]) -> anyhow::Result<bool> {
        match &mut self.chunks {
            Some(d) => d.feed(input, &mut self.out),
            None => {
                self.out.extend_from_slice(input);
                Ok(false)
            }
        }
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
            self.read.resize(READ_SIZE, 0);
            let n = match tokio::time::timeout(idle, self.tcp.read(&mut self.read)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return None,
            };
            let read = std::mem::take(&mut self.read);
            let ended = self.unframe(&read[..n]);
            self.read = read;
            self.ended = ended.ok()?;
        }
        Some(&self.out)
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
