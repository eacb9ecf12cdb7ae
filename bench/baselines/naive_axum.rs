//! The naive baseline: what an SSE server looks like in most tutorials.
//! One `tokio::sync::broadcast` channel, `axum::response::Sse` per
//! subscriber (each formats every event itself), `POST /publish` with a raw
//! body. `naive-axum 127.0.0.1:3300`.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::Router;
use futures::Stream;
use tokio::sync::broadcast;

async fn subscribe(
    State(tx): State<broadcast::Sender<String>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = tx.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(data) => return Some((Ok(Event::default().data(data)), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn publish(State(tx): State<broadcast::Sender<String>>, body: String) -> &'static str {
    let _ = tx.send(body);
    "ok"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3300".into());
    let (tx, _) = broadcast::channel(1024);
    let app = Router::new()
        .route("/sse", get(subscribe))
        .route("/publish", post(publish))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
