//! Small socket operations shared by the two stream writers (the
//! per-connection path in [`super::event_stream`] and the [`super::flusher`]):
//! chunk framing, waiting for writability, noticing the peer's close.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Bytes a client may send while its stream is open (it should send none;
/// a pipelined request is kept for hyper).
const MAX_PIPELINED: usize = 16 * 1024;

/// Resolves when the peer has closed (or sent more than a pipelined
/// request's worth while its stream is open); keeps what it sent.
pub(super) async fn peer_closed(stream: &TcpStream, rest: &mut Vec<u8>) {
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        let mut buf = [0u8; 512];
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                rest.extend_from_slice(&buf[..n]);
                if rest.len() > MAX_PIPELINED {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Waits until `stream` takes writes again; `TimedOut` after `idle`.
pub(super) async fn writable_within(stream: &TcpStream, idle: Option<Duration>) -> io::Result<()> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, stream.writable())
            .await
            .map_err(|_| super::write_idle_timeout())?,
        None => stream.writable().await,
    }
}

/// `"{len:x}\r\n"`, a chunk's size line, into `buf` without allocating.
pub(super) fn chunk_size_line(len: usize, buf: &mut [u8; 20]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = 0;
    let mut rest = len;
    loop {
        digits += 1;
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    let mut n = len;
    for i in (0..digits).rev() {
        buf[i] = HEX[n & 0xf];
        n >>= 4;
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    &buf[..digits + 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        let mut buf = [0u8; 20];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(26, &mut buf), b"1a\r\n");
        assert_eq!(chunk_size_line(4096, &mut buf), b"1000\r\n");
        assert_eq!(
            chunk_size_line(usize::MAX, &mut buf),
            format!("{:x}\r\n", usize::MAX).as_bytes()
        );
    }
}
