//! Limits at the connection and request level, over real HTTP (and raw TCP
//! where an HTTP client would refuse to misbehave): publish rate limits,
//! slowloris header trickling, huge request lines, empty bodies, and who
//! may take over or re-subscribe a connection. Each case checks the server
//! keeps serving afterwards.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{open_config, quiet_config, read_json, TestServer};
use herald_server::auth::Verifier;
use herald_server::net::ServeOptions;
use herald_server::ratelimit::RateLimiter;
use herald_server::state::AppState;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &[u8] = b"limits test secret, comfortably longer than 32 bytes";

fn verifier() -> Verifier {
    Verifier::hs256(SECRET)
}

fn token(sub: &str) -> String {
    verifier().mint(sub, 600, None, None).expect("mint")
}

/// A server verifying `verifier()` tokens, anonymous publishing open, and
/// a publish limit of 1/s with bursts of 3.
async fn rate_limited_server() -> TestServer {
    TestServer::start_with_state(open_config(), None, |b| AppState {
        publish_limit: Arc::new(RateLimiter::new(1.0, 3)),
        ..AppState::with_auth(b, verifier())
    })
    .await
}

async fn publish(server: &TestServer, bearer: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(server.url("/_sse/publish"))
        .json(&json!({"data": "x"}));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    common::read_json_and_retry(req.send().await.expect("publish")).await
}

#[tokio::test]
async fn publishing_over_the_rate_is_429_with_retry_after_per_caller() {
    let server = rate_limited_server().await;
    let alice = token("alice");
    for _ in 0..3 {
        assert_eq!(publish(&server, Some(&alice)).await.0, 200);
    }
    let (status, retry, body) = publish(&server, Some(&alice)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body["error"].as_str().expect("error").contains("rate"));

    // Another user, and anonymous callers (bucketed by IP), are unaffected.
    assert_eq!(publish(&server, Some(&token("bob"))).await.0, 200);
    for _ in 0..3 {
        assert_eq!(publish(&server, None).await.0, 200);
    }
    assert_eq!(publish(&server, None).await.0, 429);

    // The bucket refills: one token a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(publish(&server, Some(&alice)).await.0, 200);
}

/// Writes `bytes` on a raw connection and returns whatever comes back
/// until the server closes it (or `wait` passes).
async fn raw_exchange(server: &TestServer, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(wait, tcp.read_to_end(&mut got))
        .await
        .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn a_client_trickling_headers_is_cut_off_by_the_header_timeout() {
    let server = TestServer::start_with_options(
        open_config(),
        None,
        ServeOptions {
            header_read_timeout: Some(Duration::from_millis(500)),
            ..ServeOptions::default()
        },
        AppState::new,
    )
    .await;
    // Half a request, then silence: the server must hang up on its own.
    let started = tokio::time::Instant::now();
    let (_, closed) = raw_exchange(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "the half-sent request was never cut off");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A connection that sends nothing at all is released too.
    let (_, closed) = raw_exchange(&server, b"", Duration::from_secs(5)).await;
    assert!(closed, "a silent connection was never cut off");
    // Whole requests are unaffected.
    let (status, _) = common::post_json(&server.url("/_sse/publish"), &json!({"data": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn huge_request_targets_are_414() {
    let server = TestServer::start(quiet_config()).await;
    // 100 KB: refused by the HTTP parser itself, before any route runs, so
    // the answer is hyper's bare 414 and the connection is closed.
    let line = format!(
        "GET /_sse/connect?topics={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let (answer, closed) = raw_exchange(&server, line.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(closed);
    // Over the routes' own 8 KiB limit: a JSON 414 naming the limit.
    let resp = reqwest::get(server.url(&format!("/_sse/connect?topics={}", "a".repeat(20 * 1024))))
        .await
        .expect("request");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 414);
    assert!(body["error"].as_str().expect("error").contains("8192"));
    let (status, _) = common::post_json(&server.url("/_sse/publish"), &json!({"data": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_empty_body_is_a_400() {
    let server = TestServer::start(quiet_config()).await;
    let resp = reqwest::Client::new()
        .post(server.url("/_sse/publish"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("publish");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string());
}

/// Opens `/_sse/connect` with `query` and `bearer`; returns the status.
async fn connect_status(server: &TestServer, query: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(server.url(&format!("/_sse/connect{query}")));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("connect");
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    read_json(resp).await
}

#[tokio::test]
async fn only_the_same_user_may_take_over_a_client_id() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let alice = token("alice");
    let mut req = reqwest::Client::new().get(server.url("/_sse/connect?clientId=tab-1"));
    req = req.bearer_auth(&alice);
    let first = req.send().await.expect("connect");
    assert_eq!(first.status(), 200);
    server.wait_for_clients(1).await;

    let (status, body) = connect_status(&server, "?clientId=tab-1", Some(&token("mallory"))).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().expect("error").contains("in use"));
    let (status, _) = connect_status(&server, "?clientId=tab-1", None).await;
    assert_eq!(status, 409, "anonymous must not take a user's id");
    assert_eq!(
        server.broker.client("tab-1").expect("kept").user_id(),
        Some("alice")
    );

    // Alice reconnecting with her id replaces her own stale connection.
    let (status, _) = connect_status(&server, "?clientId=tab-1", Some(&alice)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_token_for_the_connections_user_may_change_its_topics() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let alice = token("alice");
    let stream = reqwest::Client::new()
        .get(server.url("/_sse/connect?clientId=a1"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("connect");
    assert_eq!(stream.status(), 200);
    server.wait_for_clients(1).await;

    let change = |bearer: String| {
        let url = server.url("/_sse/subscribe");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(bearer)
                .json(&json!({"clientId": "a1", "topics": ["news"]}))
                .send()
                .await
                .expect("subscribe");
            read_json(resp).await
        }
    };
    let (status, body) = change(token("mallory")).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = change(alice.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["held"]
        .as_array()
        .expect("held")
        .contains(&json!("news")));
}
