//! The accept loop: HTTP/1.1 over the guarded listener, with the timeouts
//! `axum::serve` does not expose.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout is off
//! and a client may trickle a request's headers one byte a minute
//! (slowloris), holding a connection and its buffers forever. This loop
//! gives hyper a timer and a header-read timeout, tells every request the
//! peer's address (`ConnectInfo<SocketAddr>`, for per-IP rate limits), and
//! drains connections on shutdown for a bounded grace period.
//!
//! It speaks HTTP/1.1 only: browsers use HTTP/2 only over TLS, which a
//! proxy in front of Herald terminates.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use super::GuardedListener;

/// Connection-level settings of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers, counted from
    /// its first byte (and between keep-alive requests). `None` disables.
    pub header_read_timeout: Option<Duration>,
    /// After `shutdown` resolves, how long open connections get to finish.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Some(Duration::from_secs(10)),
            grace: Duration::from_secs(5),
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
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!("shutdown grace period over; exiting with connections still open");
        }
    }
    Ok(())
}
