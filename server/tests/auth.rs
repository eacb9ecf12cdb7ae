//! Authentication and limits over real HTTP: tokens from every place they
//! may come from, 401 with `WWW-Authenticate`, 403 for topics a token does
//! not allow, 429 with `Retry-After` at the connection limits, 413 for
//! oversized bodies. Each case also checks the server keeps serving.

mod common;

use common::{quiet_config, read_json, TestServer};
use herald_server::auth::{Claims, Verifier};
use herald_server::broker::BrokerConfig;
use serde_json::json;

const SECRET: &[u8] = b"auth test secret, comfortably longer than 32 bytes";

fn verifier() -> Verifier {
    Verifier::hs256(SECRET)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn token(sub: &str, subscribe: Option<Vec<&str>>) -> String {
    verifier()
        .mint(
            sub,
            600,
            subscribe.map(|v| v.into_iter().map(str::to_owned).collect()),
            None,
        )
        .expect("mint")
}

/// GET `path` with optional extra header; returns (status, headers, JSON body or Null).
async fn get(
    server: &TestServer,
    path: &str,
    header: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut req = reqwest::Client::new().get(server.url(path));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if status == 200 {
        return (status, headers, serde_json::Value::Null); // a stream: do not read it
    }
    let (_, body) = read_json(resp).await;
    (status, headers, body)
}

/// A backend's token: may publish anywhere (`publish: ["*"]`).
fn service_token() -> String {
    verifier()
        .mint("service", 600, None, Some(vec!["*".into()]))
        .expect("mint")
}

/// The server still accepts a publish (as a service token on servers that
/// verify with `verifier()`, anonymously on open test servers).
async fn still_serving(server: &TestServer, authed: bool) {
    let bearer = authed.then(service_token);
    let (status, _, body) =
        publish_as(server, bearer.as_deref(), json!({"data": "still here"})).await;
    assert_eq!(status, 200, "{body}");
}

async fn publish_as(
    server: &TestServer,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(server.url("/_sse/publish"))
        .json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("publish");
    let headers = resp.headers().clone();
    let (status, body) = read_json(resp).await;
    (status, headers, body)
}

#[tokio::test]
async fn publishing_needs_a_token_whose_publish_claim_matches() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let (status, headers, body) = publish_as(&server, None, json!({"data": "x"})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    // Even a malformed body is answered 401 first: nothing leaks before auth.
    let resp = reqwest::Client::new()
        .post(server.url("/_sse/publish"))
        .body("{broken")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);

    let rooms_only = verifier()
        .mint("svc", 600, None, Some(vec!["room:*".into()]))
        .expect("mint");
    let (status, _, body) = publish_as(
        &server,
        Some(&rooms_only),
        json!({"target": {"userId": "alice"}, "data": "x"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("user:alice")),
        "{body}"
    );
    let (status, _, body) = publish_as(
        &server,
        Some(&rooms_only),
        json!({"topic": "room:1", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = publish_as(&server, Some("garbage"), json!({"data": "x"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_valid_token_from_any_source_puts_the_connection_on_its_user_topic() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let t = token("alice", None);
    for (query, header) in [
        (format!("?token={t}"), None),
        (format!("?access_token={t}"), None),
        (
            String::new(),
            Some(("authorization", format!("Bearer {t}"))),
        ),
        (String::new(), Some(("cookie", format!("herald_token={t}")))),
    ] {
        let mut req = reqwest::Client::new().get(server.url(&format!("/_sse/connect{query}")));
        if let Some((k, v)) = &header {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("connect");
        assert_eq!(resp.status(), 200, "{query} {header:?}");
        drop(resp);
    }
    let (mut stream, connected) = server.connect(&format!("?token={t}")).await;
    assert_eq!(connected["userId"], "alice");
    assert!(connected["topics"]
        .as_array()
        .expect("topics")
        .contains(&json!("user:alice")));
    let backend = service_token();
    let body = json!({"target": {"userId": "alice"}, "data": "for alice"});
    let (status, _, _) = publish_as(&server, Some(&backend), body).await;
    assert_eq!(status, 200);
    assert_eq!(stream.next_event().await.data, "for alice");
}

#[tokio::test]
async fn bad_tokens_are_401_with_www_authenticate_and_never_anonymous() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let expired = verifier()
        .mint_claims_hs256(&Claims {
            sub: "alice".into(),
            name: None,
            roles: vec![],
            session_id: None,
            subscribe: None,
            publish: None,
            exp: now() - 120,
            nbf: None,
        })
        .expect("mint");
    let foreign = Verifier::hs256(b"another secret, equally long and unrelated!")
        .mint("alice", 600, None, None)
        .expect("mint");
    let demo = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";
    for (name, tok, needle) in [
        ("expired", expired.as_str(), "expired"),
        ("wrong key", foreign.as_str(), "invalid"),
        ("garbage", "not.a.jwt", "invalid"),
        ("demo token outside dev mode", demo, "invalid"),
    ] {
        let (status, headers, body) =
            get(&server, &format!("/_sse/connect?token={tok}"), None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{name}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{name}: {body}"
        );
    }
    assert_eq!(server.broker.client_count(), 0);
    still_serving(&server, true).await;
}

#[tokio::test]
async fn the_demo_token_works_in_dev_mode() {
    let server = TestServer::start_with_auth(quiet_config(), verifier().dev_mode(true)).await;
    let demo = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";
    let (_stream, connected) = server.connect(&format!("?token={demo}")).await;
    assert_eq!(connected["userId"], "test123");
}

#[tokio::test]
async fn a_token_without_the_topic_claim_gets_403_at_connect_and_subscribe() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let t = token("bob", Some(vec!["room:*"]));
    let (status, _, body) = get(
        &server,
        &format!("/_sse/connect?token={t}&topics=admin"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("admin")),
        "{body}"
    );

    let (_stream, connected) = server
        .connect(&format!("?token={t}&topics=room:blue"))
        .await;
    let secret = connected["secret"].as_str().expect("secret");
    let id = connected["clientId"].as_str().expect("id");
    let (status, body) = common::post_json(
        &server.url("/_sse/subscribe"),
        &json!({"clientId": id, "topics": ["admin"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = common::post_json(
        &server.url("/_sse/subscribe"),
        &json!({"clientId": id, "topics": ["room:red"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 200);
    still_serving(&server, true).await;
}

#[tokio::test]
async fn the_sixth_connection_of_a_user_is_429_with_retry_after() {
    let server = TestServer::start_with_auth(quiet_config(), verifier()).await;
    let t = token("carol", None);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(server.connect(&format!("?token={t}")).await);
    }
    let (status, headers, body) = get(&server, &format!("/_sse/connect?token={t}"), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "5");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("user")),
        "{body}"
    );
    // Another user is unaffected; a freed slot can be used again.
    let (_other, _) = server
        .connect(&format!("?token={}", token("dave", None)))
        .await;
    drop(open.pop());
    server.wait_for_clients_after_broadcast(6).await;
    let (_again, c) = server.connect(&format!("?token={t}")).await;
    assert_eq!(c["userId"], "carol");
    assert_eq!(server.broker.stats().connections_refused, 1);
}

#[tokio::test]
async fn the_global_limit_is_429_too() {
    let server = TestServer::start(BrokerConfig {
        max_connections: 2,
        ..quiet_config()
    })
    .await;
    let _a = server.connect("").await;
    let _b = server.connect("").await;
    let (status, headers, body) = get(&server, "/_sse/connect", None).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("server")),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let server = TestServer::start(quiet_config()).await;
    let big = json!({"data": "x".repeat(70 * 1024)});
    let (status, body) = server.publish(big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].is_string());
    still_serving(&server, false).await;
}

#[test]
fn a_short_hs256_secret_is_warned_about_at_start() {
    use std::io::{BufRead, BufReader};
    let port = common::free_port();
    let mut child = common::Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_herald-server"))
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--jwt-secret",
                "short",
            ])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start herald-server"),
    );
    let out = child.0.stdout.take().expect("stdout");
    // Everything said at start comes before "herald listening".
    let start: Vec<String> = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.contains("herald listening"))
        .collect();
    let warned = start
        .iter()
        .any(|line| line.contains("shorter than 32 bytes"));
    child.kill();
    assert!(warned, "no warning about a 5-byte secret");
}
