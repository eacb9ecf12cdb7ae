//! The multi-stream API with auth, replaying its documentation: the
//! notifications, realtime and chat streams with the documented demo token
//! (dev mode) and with JWTs, the three send routes' curl examples and
//! `{success, id}` answers, the documented event names and payloads, and
//! the error codes (401, 403, 429, 400).

mod common;

use common::{quiet_config, read_json, SseStream, TestServer};
use herald_server::auth::Verifier;
use herald_server::state::AppState;
use serde_json::{json, Value};

const SECRET: &[u8] = b"streams test secret, comfortably longer than 32 bytes";
/// The documented demo token: base64 of `test123:testuser:test@example.com:user,admin`.
const DEMO: &str = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";

async fn server(dev: bool) -> TestServer {
    TestServer::start_with_state(quiet_config(), None, move |b| {
        AppState::with_auth(b, Verifier::hs256(SECRET).dev_mode(dev))
    })
    .await
}

fn jwt(sub: &str, subscribe: Option<Vec<&str>>) -> String {
    Verifier::hs256(SECRET)
        .mint(
            sub,
            600,
            subscribe.map(|v| v.into_iter().map(str::to_owned).collect()),
            None,
        )
        .expect("mint")
}

/// Opens `path` with `?token=` (as `EventSource` must) and reads `connected`.
async fn stream(server: &TestServer, path: &str, token: &str) -> SseStream {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = SseStream::open(&server.url(&format!("{path}{sep}token={token}")), None).await;
    s.next_named("connected").await;
    s
}

async fn send(server: &TestServer, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("send");
    read_json(resp).await
}

fn json_of(e: &herald_shared::wire::MessageEvent) -> Value {
    serde_json::from_str(&e.data).expect("JSON data")
}

#[tokio::test]
async fn notifications_with_the_demo_token_as_documented() {
    let server = server(true).await;
    let mut s = stream(&server, "/notifications/stream", DEMO).await;
    // The curl example of the documentation.
    let (status, body) = send(
        &server,
        "/notifications/send",
        DEMO,
        json!({"title": "Test Notification", "message": "Hello World!", "type": "info"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let id = body["id"].as_str().expect("id");
    let n = json_of(&s.next_named("notification").await);
    assert_eq!(n["id"], id);
    assert_eq!(n["title"], "Test Notification");
    assert_eq!(n["message"], "Hello World!");
    assert_eq!(n["type"], "info");
    assert!(n["timestamp"].as_str().expect("timestamp").ends_with('Z'));
    // Seed 002's shape has `userId` always: null for a broadcast.
    assert_eq!(n.get("userId"), Some(&Value::Null), "{n}");

    // To one user, under each documented event name: another user's own
    // topic takes a token whose publish claim covers it (a service's).
    let mut other = stream(&server, "/notifications/stream", &jwt("bob", None)).await;
    let (status, body) = send(
        &server,
        "/notifications/send",
        DEMO,
        json!({"message": "phishing", "userId": "bob"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let service = Verifier::hs256(SECRET)
        .mint("notifier", 600, None, Some(vec!["user:*".into()]))
        .expect("mint");
    for name in ["notification", "system-notification", "error-notification"] {
        let (status, _) = send(
            &server,
            "/notifications/send",
            &service,
            json!({"message": "just you", "userId": "bob", "event": name}),
        )
        .await;
        assert_eq!(status, 200);
        let n = json_of(&other.next_named(name).await);
        assert_eq!(n["userId"], "bob");
        assert_eq!(n["message"], "just you", "the refused one never arrived");
    }
    s.expect_silence(std::time::Duration::from_millis(200))
        .await;
    let (status, body) = send(
        &server,
        "/notifications/send",
        DEMO,
        json!({"message": "x", "event": "made-up"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn realtime_updates_as_documented() {
    let server = server(false).await;
    let token = jwt("alice", None);
    let mut s = stream(&server, "/realtime/stream", &token).await;
    let (status, body) = send(
        &server,
        "/realtime/update",
        &token,
        json!({"entityType": "user", "entityId": "user123", "action": "updated", "data": {"status": "online"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let u = json_of(&s.next_named("update").await);
    assert_eq!(
        (
            u["entityType"].clone(),
            u["entityId"].clone(),
            u["action"].clone(),
            u["data"].clone()
        ),
        (
            json!("user"),
            json!("user123"),
            json!("updated"),
            json!({"status": "online"})
        )
    );
    assert!(u["timestamp"].is_string());
    for (action, name) in [
        ("created", "create"),
        ("deleted", "delete"),
        ("status-change", "status-change"),
    ] {
        send(
            &server,
            "/realtime/update",
            &token,
            json!({"entityType": "order", "entityId": "o1", "action": action}),
        )
        .await;
        assert_eq!(json_of(&s.next_named(name).await)["action"], action);
    }
    let (status, _) = send(
        &server,
        "/realtime/update",
        &token,
        json!({"entityType": "x"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn chat_rooms_with_presence_messages_and_typing() {
    let server = server(true).await;
    let mut alice = stream(&server, "/chat/stream?room=general", &jwt("alice", None)).await;
    assert_eq!(
        json_of(&alice.next_named("user-joined").await)["userId"],
        "alice"
    );
    let bob_stream = stream(&server, "/chat/stream?room=general", DEMO).await;
    let joined = json_of(&alice.next_named("user-joined").await);
    assert_eq!(
        (joined["userId"].as_str(), joined["username"].as_str()),
        (Some("test123"), Some("testuser"))
    );

    // The curl example.
    let (status, body) = send(
        &server,
        "/chat/send",
        DEMO,
        json!({"roomId": "general", "message": "Hello everyone!"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = json_of(&alice.next_named("message").await);
    assert_eq!(m["id"], body["id"]);
    assert_eq!(m["roomId"], "general");
    assert_eq!(m["userId"], "test123");
    assert_eq!(m["username"], "testuser");
    assert_eq!(m["message"], "Hello everyone!");
    assert!(m["timestamp"].is_string());

    send(
        &server,
        "/chat/typing",
        DEMO,
        json!({"roomId": "general", "isTyping": true}),
    )
    .await;
    assert_eq!(json_of(&alice.next_named("typing").await)["isTyping"], true);

    // Another room is another topic.
    send(
        &server,
        "/chat/send",
        DEMO,
        json!({"roomId": "random", "message": "elsewhere"}),
    )
    .await;
    alice
        .expect_silence(std::time::Duration::from_millis(200))
        .await;

    // Closing a stream announces user-left.
    drop(bob_stream);
    let left = json_of(&alice.next_named("user-left").await);
    assert_eq!(left["userId"], "test123");

    let (status, _) = send(
        &server,
        "/chat/send",
        DEMO,
        json!({"roomId": "general", "message": "  "}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        &server,
        "/chat/send",
        DEMO,
        json!({"roomId": "bad room", "message": "x"}),
    )
    .await;
    assert_eq!(status, 400);
}

async fn status_of(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("request");
    let headers = resp.headers().clone();
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, headers, Value::Null);
    }
    let (_, body) = read_json(resp).await;
    (status, headers, body)
}

#[tokio::test]
async fn documented_error_codes() {
    let server = server(false).await;
    let client = reqwest::Client::new();
    // 401: no token, a bad token, and the demo token outside dev mode.
    for path in ["/notifications/stream", "/realtime/stream", "/chat/stream"] {
        for query in ["", "?token=garbage", &format!("?token={DEMO}")] {
            let (status, headers, body) =
                status_of(client.get(server.url(&format!("{path}{query}")))).await;
            assert_eq!(status, 401, "{path}{query}: {body}");
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert!(body["error"].is_string());
        }
    }
    for path in ["/notifications/send", "/realtime/update", "/chat/send"] {
        let (status, _, _) = status_of(client.post(server.url(path)).json(&json!({}))).await;
        assert_eq!(status, 401, "{path}");
    }
    // 400: no room, on every chat route (an empty name is no room).
    let erin = jwt("erin", None);
    for (path, body) in [
        ("/chat/send", json!({"roomId": "", "message": "hi"})),
        ("/chat/typing", json!({"roomId": "", "isTyping": true})),
        ("/chat/send", json!({"roomId": "a*", "message": "hi"})),
    ] {
        let (status, answer) = send(&server, path, &erin, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer["error"].is_string());
    }
    // 403: a room the token's subscribe claim does not allow.
    let limited = jwt("carol", Some(vec!["chat:general"]));
    let (status, _, body) =
        status_of(client.get(server.url(&format!("/chat/stream?room=secret&token={limited}"))))
            .await;
    assert_eq!(status, 403, "{body}");
    // 429: the sixth stream of one user.
    let dave = jwt("dave", None);
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(stream(&server, "/realtime/stream", &dave).await);
    }
    let (status, headers, body) =
        status_of(client.get(server.url(&format!("/notifications/stream?token={dave}")))).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    // Still serving.
    let (status, _) = send(
        &server,
        "/realtime/update",
        &jwt("erin", None),
        json!({"entityType": "x", "entityId": "1", "action": "updated"}),
    )
    .await;
    assert_eq!(status, 200);
}

/// Seed 002: a chat stream carries its rooms' events. An unnamed event sent
/// to the user (who also has a notifications stream open) must not arrive
/// on the chat stream as a `message` of the wrong shape.
#[tokio::test]
async fn seed002_chat_stream_carries_room_events_only() {
    use herald_shared::wire::Event;
    let server = server(false).await;
    let alice = jwt("alice", None);
    let mut chat = stream(&server, "/chat/stream?room=general", &alice).await;
    chat.next_named("user-joined").await;
    let mut notes = stream(&server, "/notifications/stream", &alice).await;

    server
        .broker
        .publish("user:alice", Event::data(r#"{"note":"for alice"}"#))
        .await
        .expect("publish");
    // The user's own stream gets it ...
    assert_eq!(
        json_of(&notes.next_named("message").await)["note"],
        "for alice"
    );
    // ... the chat stream's next message is the room's, not the user's.
    let (status, body) = send(
        &server,
        "/chat/send",
        &alice,
        json!({"roomId": "general", "message": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = json_of(&chat.next_named("message").await);
    assert_eq!(
        (m["id"].clone(), m["message"].clone()),
        (body["id"].clone(), json!("hi"))
    );
}

/// Seed 002's "Connection Limits": 5 per user, a global limit of 1000, a
/// 30 s heartbeat. The global limit is the API's own (its four streams),
/// shown here at 3; the idle timeout is the README's documented difference.
#[tokio::test]
async fn seed002_connection_limits_are_the_documented_defaults() {
    use clap::Parser;
    let config = herald_server::config::Config::parse_from(["herald-server"]);
    assert_eq!(config.limits.streams_max_connections, 1000);
    assert_eq!(config.limits.max_connections_per_user, 5);
    assert_eq!(
        config.broker().heartbeat_interval,
        std::time::Duration::from_secs(30)
    );

    let server = TestServer::start_with_state(quiet_config(), None, |b| AppState {
        streams_cap: herald_server::limits::ConnectionCap::new(3),
        ..AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await;
    let mut open = vec![
        stream(&server, "/notifications/stream", &jwt("a", None)).await,
        stream(&server, "/realtime/stream", &jwt("b", None)).await,
    ];
    let mut status = SseStream::open(&server.url("/system/status/stream"), None).await;
    status.next_named("connected").await;
    let client = reqwest::Client::new();
    let (code, headers, body) = status_of(client.get(server.url(&format!(
        "/chat/stream?room=general&token={}",
        jwt("c", None)
    ))))
    .await;
    assert_eq!(code, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(body["error"].as_str().expect("error").contains("limit 3"));
    // Other routes are not this API's: /_sse/connect still connects.
    let _other = server.connect("").await;
    // A stream that ends gives its place back.
    open.pop();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (code, _, _) = status_of(
            client.get(server.url(&format!("/realtime/stream?token={}", jwt("d", None)))),
        )
        .await;
        if code != 429 {
            assert_eq!(code, 200);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
