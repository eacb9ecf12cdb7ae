//! The accept loop: HTTP/1.1 over the guarded listener, with the timeouts
//! `axum::serve` does not expose.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout is off
//! and a client may trickle a request's headers one byte a minute
//! (slowloris), holding a connection and its buffers forever. This loop
//! reads each connection's first request head itself, within the
//! header-read timeout; an event-stream request is answered without hyper
//! ([`super::event_stream`]: no per-connection buffers while the stream is
//! open), anything else is served by hyper, which gets a timer and the same
//! timeout for later requests. Every request learns the peer's address
//! (`ConnectInfo<SocketAddr>`, for per-IP rate limits), and on shutdown
//! connections are drained for a bounded grace period.
//!
//! It speaks HTTP/1.1 only: browsers use HTTP/2 only over TLS, which a
//! proxy in front of Herald terminates.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::event_stream::{self, After, First, Writer, Writes};
use super::flusher::Flusher;
use super::{GuardedListener, IdleGuard, Rewind};

/// Seconds a client may take to send a request's headers.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Seconds open connections get to finish after shutdown begins.
pub const DEFAULT_GRACE_SECS: u64 = 5;
/// Seconds a write may stall before its connection is closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Connections one address may hold open before sending a request.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 128;

/// Connection-level settings of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers, counted from
    /// its first byte (and between keep-alive requests). `None` disables.
    pub header_read_timeout: Option<Duration>,
    /// After `shutdown` resolves, how long open connections get to finish.
    pub grace: Duration,
    /// Flusher threads writing event streams (`net::flusher`); 0 picks
    /// half the cores, at least one. On two cores one flusher beat two:
    /// longer passes batch more, and the other core is left to publishing.
    pub flushers: usize,
    /// Connections one address may hold before their first request head
    /// has arrived (each waits up to the header timeout); more are closed
    /// at once. 0 for no limit.
    pub max_pending_per_ip: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS)),
            grace: Duration::from_secs(DEFAULT_GRACE_SECS),
            flushers: 0,
            max_pending_per_ip: DEFAULT_MAX_PENDING_PER_IP,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `options.grace` for open connections.
///
/// ```
/// use herald_server::net::{serve, GuardedListener, ServeOptions};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let listener = GuardedListener::bind("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let app = axum::Router::new().route(
///     "/",
///     axum::routing::get(|axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>| async move {
///         peer.ip().to_string()
///     }),
/// );
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(serve(listener, app, ServeOptions::default(), async {
///     let _ = stopped.await;
/// }));
/// let body = reqwest::get(format!("http://{addr}/")).await.unwrap().text().await.unwrap();
/// assert_eq!(body, "127.0.0.1");
/// stop.send(()).unwrap();
/// server.await.unwrap().unwrap();
/// # });
/// ```
pub async fn serve(
    mut listener: GuardedListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let shared = Arc::new(Shared {
        app,
        http,
        header_read_timeout: options.header_read_timeout,
        idle_timeout: listener.idle_timeout(),
        stopping: CancellationToken::new(),
        flusher: Flusher::start(options.flushers)?,
        pending: Pending::new(options.max_pending_per_ip),
    });
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept_tcp() => accepted,
            () = &mut shutdown => break,
        };
        let Some(waiting) = shared.pending.admit(peer.ip()) else {
            // Closed at once: this address holds its share of sockets
            // that have said nothing yet.
            PENDING_REFUSED.increment(1);
            continue;
        };
        let connection = Connection {
            peer,
            shared: shared.clone(),
        };
        connections.spawn(connection.run(stream, waiting));
    }
    drop(listener);
    shared.stopping.cancel();
    connections.close();
    tokio::select! {
        () = connections.wait() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!("shutdown grace period over; exiting with connections still open");
        }
    }
    Ok(())
}

/// What every connection of one server shares.
struct Shared {
    app: Router,
    http: http1::Builder,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    stopping: CancellationToken,
    flusher: Flusher,
    pending: Arc<Pending>,
}

/// Connections per address that have not sent a complete request head.
struct Pending {
    limit: usize,
    by_ip: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One connection waiting for its first request head; dropping it (the
/// head arrived, or the connection ended) frees its place.
struct Waiting {
    pending: Arc<Pending>,
    ip: IpAddr,
}

impl Pending {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Pending {
            limit,
            by_ip: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// A place for one more waiting connection from `ip`, if it has one.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Waiting> {
        let mut by_ip = crate::sync::lock(&self.by_ip);
        let held = by_ip.entry(ip).or_insert(0);
        if self.limit > 0 && *held >= self.limit {
            return None;
        }
        *held += 1;
        PENDING.increment(1.0);
        Some(Waiting {
            pending: self.clone(),
            ip,
        })
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut by_ip = crate::sync::lock(&self.pending.by_ip);
        if let std::collections::hash_map::Entry::Occupied(mut held) = by_ip.entry(self.ip) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
        PENDING.decrement(1.0);
    }
}

/// Connections waiting for their first request head, and those refused
/// because their address held too many.
static PENDING: std::sync::LazyLock<metrics::Gauge> =
    std::sync::LazyLock::new(|| metrics::gauge!("herald_connections_pending"));
static PENDING_REFUSED: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("herald_connections_pending_refused_total"));

/// One accepted connection. Small on purpose: its task lives as long as
/// the connection, so per-server settings are shared, not copied.
struct Connection {
    peer: SocketAddr,
    shared: Arc<Shared>,
}

impl Connection {
    async fn run(self, mut stream: TcpStream, waiting: Waiting) {
        let peer = self.peer;
        let shared = &*self.shared;
        let read = Box::pin(event_stream::read_first(
            &mut stream,
            peer,
            shared.header_read_timeout,
        ))
        .await;
        drop(waiting);
        let already_read = match read {
            First::Gone => return,
            First::Other(bytes) => bytes,
            First::Stream(request, mut rest) => {
                // Boxed, like the hyper half below: the task keeps only what
                // the long-lived stream needs, not the largest future it
                // ever awaited (for 15 000 streams that is megabytes).
                let response = match Box::pin(shared.app.clone().oneshot(unbox(request))).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let response = match event_stream::writer_of(response) {
                    Writes::Flusher(head, sub) => {
                        let idle = shared.idle_timeout;
                        let streamed =
                            shared
                                .flusher
                                .stream(stream, sub, head, idle, &shared.stopping);
                        if let Err(e) = Box::pin(streamed).await {
                            tracing::debug!(%peer, error = %e, "event stream ended with an error");
                        }
                        return;
                    }
                    Writes::Here(response) => response,
                };
                let writer = Writer {
                    idle: shared.idle_timeout,
                    stopping: &shared.stopping,
                };
                match Box::pin(event_stream::respond(stream, response, writer, &mut rest)).await {
                    Ok(After::KeepAlive(kept)) => {
                        stream = kept;
                        rest
                    }
                    Ok(After::Close) => return,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "event stream ended with an error");
                        return;
                    }
                }
            }
        };
        if shared.stopping.is_cancelled() {
            return;
        }
        Box::pin(self.serve_with_hyper(stream, already_read)).await;
    }

    /// Serves the rest of the connection with hyper, `already_read` first.
    async fn serve_with_hyper(self, stream: TcpStream, already_read: Vec<u8>) {
        let peer = self.peer;
        let shared = &*self.shared;
        let service = shared
            .app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let io = Rewind::new(IdleGuard::new(stream, shared.idle_timeout), already_read);
        let connection = shared
            .http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::pin!(connection);
        let result = tokio::select! {
            r = connection.as_mut() => r,
            () = shared.stopping.cancelled() => {
                // Finish the request in flight, then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// The value in `boxed`, whose allocation is freed now: `*boxed` in place
/// would keep it until the end of the enclosing scope (here, the stream's
/// life).
#[allow(clippy::boxed_local)] // consuming the box is the point
fn unbox<T>(boxed: Box<T>) -> T {
    *boxed
}
