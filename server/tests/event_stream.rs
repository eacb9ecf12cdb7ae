//! Event-stream requests (`Accept: text/event-stream`) are answered
//! without hyper: the same response a hyper-served stream gets, the
//! connection still usable afterwards, a closed peer noticed at once.
//! Spoken over raw TCP so every byte on the wire is seen.

mod common;

use std::time::Duration;

use common::{quiet_config, TestServer};
use herald_shared::wire::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(tcp: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) -> String {
    let found = |seen: &[u8]| String::from_utf8_lossy(seen).contains(needle);
    while !found(seen) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {needle:?}; got {:?}",
                    String::from_utf8_lossy(seen)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(seen).into_owned()
}

fn head_of(response: &str) -> Vec<String> {
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
    // Dates differ by the second, and each stream gets its own session:
    // only their presence matters.
    for line in &mut lines {
        if line.starts_with("date: ") {
            *line = "date: <now>".to_owned();
        }
        if line.starts_with("set-cookie: herald_session=") {
            *line = "set-cookie: herald_session=<new session>".to_owned();
        }
    }
    lines.sort();
    lines
}

async fn open(server: &TestServer, client: &str, accept: bool) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let accept = if accept {
        "Accept: text/event-stream\r\n"
    } else {
        ""
    };
    tcp.write_all(
        format!("GET /_sse/connect?clientId={client} HTTP/1.1\r\nHost: t\r\n{accept}\r\n")
            .as_bytes(),
    )
    .await
    .expect("request");
    let mut seen = Vec::new();
    let text = read_until(&mut tcp, &mut seen, "event: connected").await;
    (tcp, text)
}

/// A stream request the route refuses (a client id with a newline): the
/// socket and the whole 400 response.
async fn refused_stream(server: &TestServer) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(
        b"GET /_sse/connect?clientId=bad%0Aid HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .expect("request");
    let mut seen = Vec::new();
    let text = read_until(&mut tcp, &mut seen, "}").await;
    (tcp, text)
}

#[tokio::test]
async fn both_paths_answer_a_stream_with_the_same_head() {
    let server = TestServer::start(quiet_config()).await;
    let (_a, ours) = open(&server, "ours", true).await;
    let (_b, hypers) = open(&server, "hypers", false).await;
    assert_eq!(head_of(&ours), head_of(&hypers));
    assert!(head_of(&ours).contains(&"transfer-encoding: chunked".to_owned()));
    assert!(head_of(&ours).contains(&"content-type: text/event-stream".to_owned()));
}

#[tokio::test]
async fn a_stream_the_broker_ends_is_terminated_cleanly() {
    let server = TestServer::start(quiet_config()).await;
    let (mut tcp, _) = open(&server, "ended", true).await;
    server
        .broker
        .send("ended", Event::data("last"))
        .await
        .expect("send");
    let mut seen = Vec::new();
    read_until(&mut tcp, &mut seen, "data: last").await;
    assert!(server.broker.disconnect("ended"));
    // The chunked body's terminator, then the server closes (the client,
    // an EventSource, reconnects on a new connection anyway).
    read_until(&mut tcp, &mut seen, "0\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("not closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected a close, got {:?}", &buf[..n]);
}

#[tokio::test]
async fn after_an_error_response_the_connection_serves_more_requests() {
    let server = TestServer::start(quiet_config()).await;
    let (mut tcp, _) = refused_stream(&server).await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("second request");
    let mut next = Vec::new();
    let text = read_until(&mut tcp, &mut next, "\"status\"").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[tokio::test]
async fn an_error_on_a_stream_request_is_a_complete_json_response() {
    let server = TestServer::start(quiet_config()).await;
    let (_tcp, text) = refused_stream(&server).await;
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", body.len())),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("json body");
    assert!(json["error"].is_string(), "{json}");
}

#[tokio::test]
async fn a_peer_that_closes_is_disconnected_at_once() {
    let server = TestServer::start(quiet_config()).await;
    let (tcp, _) = open(&server, "leaver", true).await;
    server.wait_for_clients(1).await;
    drop(tcp);
    tokio::time::timeout(WAIT, server.wait_for_clients(0))
        .await
        .expect("the closed connection was never noticed");
}
