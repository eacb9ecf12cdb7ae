//! The listener: accepted sockets get `TCP_NODELAY` (events should leave
//! at once, not wait for Nagle) and an idle timeout on writes.
//!
//! An event stream is idle in the harmful sense when the server cannot
//! write to it: the peer stopped reading (a frozen tab, a slowloris client)
//! while the kernel's buffers filled up. The broker already evicts such a
//! client from its topics, but hyper keeps the half-written connection open
//! for as long as the write is pending. [`IdleGuard`] fails a write that has
//! made no progress for the configured time, so the connection and
//! everything it holds are released.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

mod direct;
mod event_stream;
mod flusher;
mod rewind;
mod serve;
mod socket;

pub use direct::{count_bytes_written, DirectStream};
pub use rewind::Rewind;
pub use serve::{
    serve, ServeOptions, DEFAULT_GRACE_SECS, DEFAULT_HEADER_TIMEOUT_SECS,
    DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_MAX_PENDING_PER_IP,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A TCP listener for `axum::serve` whose connections are [`IdleGuard`]ed.
///
/// ```
/// use std::time::Duration;
/// use herald_server::net::GuardedListener;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let listener = GuardedListener::bind("127.0.0.1:0".parse().unwrap(), Some(Duration::from_secs(60)))
///     .await
///     .unwrap();
/// let addr = listener.local_addr().unwrap();
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
/// tokio::spawn(async move { axum::serve(listener, app).await });
/// let body = reqwest::get(format!("http://{addr}/")).await.unwrap().text().await.unwrap();
/// assert_eq!(body, "ok");
/// # });
/// ```
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    idle_timeout: Option<Duration>,
}

impl GuardedListener {
    /// Binds `addr`; `idle_timeout: None` never times writes out.
    pub async fn bind(addr: SocketAddr, idle_timeout: Option<Duration>) -> io::Result<Self> {
        Ok(GuardedListener {
            inner: TcpListener::bind(addr).await?,
            idle_timeout,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next connection, unwrapped (the accept loop guards it itself).
    /// Accept errors (out of file descriptors, a connection reset before
    /// it was taken) are logged and retried, as `axum::serve` does.
    pub(crate) async fn accept_tcp(&mut self) -> (TcpStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "could not set TCP_NODELAY");
        }
        (stream, addr)
    }

    /// The write idle timeout this listener's connections get.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = IdleGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = self.accept_tcp().await;
        (IdleGuard::new(stream, self.idle_timeout), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The error a stalled write ends with, on every path.
pub(crate) fn write_idle_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "peer stopped reading: write idle timeout",
    )
}

/// Wraps a connection: a write that stays pending for longer than the limit
/// fails with `TimedOut`. Reads pass through untouched.
#[derive(Debug)]
pub struct IdleGuard<T> {
    io: T,
    limit: Option<Duration>,
    /// Armed when a write first returns `Pending`; cleared by any progress.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<T> IdleGuard<T> {
    pub fn new(io: T, limit: Option<Duration>) -> Self {
        IdleGuard {
            io,
            limit,
            stalled_since: None,
        }
    }

    /// Turns a pending write into an error once the limit has passed.
    fn on_pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(write_idle_timeout())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn on_ready<R>(&mut self, r: io::Result<R>) -> Poll<io::Result<R>> {
        self.stalled_since = None;
        Poll::Ready(r)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(r) => self.on_ready(r),
            Poll::Pending => self.on_pending(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => self.on_ready(r),
            Poll::Pending => self.on_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(r) => self.on_ready(r),
            Poll::Pending => self.on_pending(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
