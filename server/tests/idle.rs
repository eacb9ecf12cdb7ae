//! A client that opens a stream and never reads is released: the broker
//! evicts it when its queue fills, which ends a stream Herald writes itself
//! at once; a stream hyper serves (no `Accept: text/event-stream`) is
//! closed by the write idle timeout, as hyper would otherwise hold it open
//! forever.

mod common;

use std::time::Duration;

use common::{quiet_config, TestServer};
use herald_server::broker::BrokerConfig;
use herald_shared::wire::Event;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_after_the_idle_timeout() {
    // As an EventSource asks (answered without hyper), and without the
    // Accept header (served by hyper behind `IdleGuard`).
    stalled_client_is_released("Accept: text/event-stream\r\n").await;
    stalled_client_is_released("").await;
}

async fn stalled_client_is_released(accept: &str) {
    let server = TestServer::start_with_idle_timeout(
        BrokerConfig {
            event_buffer_size: 4,
            ..quiet_config()
        },
        Some(Duration::from_millis(500)),
    )
    .await;

    // A raw socket with a small receive buffer that will never be read.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = socket.connect(server.addr).await.expect("connect");
    stalled
        .write_all(
            format!("GET /_sse/connect?clientId=frozen HTTP/1.1\r\nHost: test\r\n{accept}\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    server.wait_for_clients(1).await;

    // Fill every buffer between us and it.
    let big = "x".repeat(64 * 1024);
    for _ in 0..200 {
        server
            .broker
            .broadcast(Event::data(big.clone()))
            .await
            .expect("publish");
        if server.broker.stats().evictions > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        server.broker.stats().evictions > 0,
        "the stalled client was never evicted"
    );

    // The idle timeout releases the connection although the peer never reads.
    tokio::time::timeout(Duration::from_secs(5), server.wait_for_clients(0))
        .await
        .expect("the stalled connection was never released");
    assert!(server.broker.client("frozen").is_none());
    drop(stalled);
}
