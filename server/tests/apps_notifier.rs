//! The targeted notifier, replaying its documentation: `GET /api/sse` with
//! optional ids, `POST /api/sse/send` with and without a target, the
//! `SSENotifier` facade, the 30 s / 60 s defaults, and the error cases.

mod common;

use clap::Parser;
use common::{open_config, post_json, quiet_config, read_json, SseStream, TestServer};
use herald_server::apps::notifier::SSENotifier;
use herald_server::auth::Verifier;
use herald_server::state::AppState;
use serde_json::{json, Value};

const SECRET: &[u8] = b"notifier test secret, comfortably longer than 32 bytes";

/// A dev-mode server: self-declared user ids and anonymous sends, as the
/// notifier's documentation uses them.
async fn dev_server() -> TestServer {
    TestServer::start_with_state(open_config(), None, |b| {
        AppState::with_auth(b, Verifier::hs256(SECRET).dev_mode(true))
    })
    .await
}

async fn open(server: &TestServer, query: &str) -> (SseStream, Value) {
    let mut s = SseStream::open(&server.url(&format!("/api/sse{query}")), None).await;
    let connected = s.next_named("connected").await;
    (s, serde_json::from_str(&connected.data).expect("JSON"))
}

#[tokio::test]
async fn documented_sends_reach_their_targets_as_named_events() {
    let server = dev_server().await;
    let (mut mine, hello) = open(&server, "?clientId=client_123").await;
    assert_eq!(hello["clientId"], "client_123");
    let (mut user, _) = open(&server, "?userId=user_456").await;
    let (mut session, _) = open(&server, "?sessionId=session_789").await;
    let (mut bystander, _) = open(&server, "").await;

    let send = |target: Value| {
        let url = server.url("/api/sse/send");
        async move {
            post_json(
                &url,
                &json!({"type": "notification", "data": {"message": "Hello!"}, "target": target}),
            )
            .await
        }
    };
    for (target, stream) in [
        (json!({"clientId": "client_123"}), &mut mine),
        (json!({"userId": "user_456"}), &mut user),
        (json!({"sessionId": "session_789"}), &mut session),
    ] {
        let (status, body) = send(target).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        let e = stream.next_named("notification").await;
        assert_eq!(
            serde_json::from_str::<Value>(&e.data).expect("JSON"),
            json!({"message": "Hello!"})
        );
        assert_eq!(
            Some(e.last_event_id.clone()),
            body["id"].as_str().map(str::to_owned)
        );
    }
    bystander
        .expect_silence(std::time::Duration::from_millis(200))
        .await;

    // No target: a broadcast to everyone.
    let (status, _) = post_json(
        &server.url("/api/sse/send"),
        &json!({"type": "system-announcement", "data": {"message": "Maintenance in 5 minutes"}}),
    )
    .await;
    assert_eq!(status, 200);
    for s in [&mut mine, &mut user, &mut session, &mut bystander] {
        s.next_named("system-announcement").await;
    }
}

#[tokio::test]
async fn the_notifier_facade_sends_from_backend_code() {
    let server = dev_server().await;
    let (mut user, _) = open(&server, "?userId=user123").await;
    let (mut client, _) = open(&server, "?clientId=client456").await;
    let notifier = SSENotifier::new(server.broker.clone());
    notifier
        .notify_user(
            "user123",
            "new-message",
            &json!({"message": "You have a new message!"}),
        )
        .await
        .expect("sent");
    notifier
        .notify_client(
            "client456",
            "status-update",
            &json!({"status": "processing", "progress": 75}),
        )
        .await
        .expect("sent");
    notifier
        .broadcast(
            "system-announcement",
            &json!({"message": "System maintenance in 5 minutes"}),
        )
        .await
        .expect("sent");
    let e = user.next_named("new-message").await;
    assert_eq!(
        serde_json::from_str::<Value>(&e.data).expect("JSON")["message"],
        "You have a new message!"
    );
    let e = client.next_named("status-update").await;
    assert_eq!(
        serde_json::from_str::<Value>(&e.data).expect("JSON")["progress"],
        75
    );
    user.next_named("system-announcement").await;
    client.next_named("system-announcement").await;
}

#[tokio::test]
async fn defaults_are_30s_heartbeats_and_a_60s_write_timeout() {
    let config = herald_server::config::Config::parse_from(["herald-server"]);
    assert_eq!(
        config.broker().heartbeat_interval,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        config.idle_timeout(),
        Some(std::time::Duration::from_secs(60))
    );
}

#[tokio::test]
async fn identity_and_bad_sends_get_clear_errors() {
    // Outside dev mode a self-declared userId is refused; a token decides.
    let server = TestServer::start_with_auth(quiet_config(), Verifier::hs256(SECRET)).await;
    let resp = reqwest::get(server.url("/api/sse?userId=someone"))
        .await
        .expect("get");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 401, "{body}");
    let alice = Verifier::hs256(SECRET)
        .mint("alice", 600, None, None)
        .expect("mint");
    let resp = reqwest::Client::new()
        .get(server.url("/api/sse?userId=bob"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("get");
    assert_eq!(read_json(resp).await.0, 403);
    let mut own = SseStream::request(
        reqwest::Client::new()
            .get(server.url("/api/sse?userId=alice"))
            .bearer_auth(&alice),
    )
    .await;
    let hello: Value = serde_json::from_str(&own.next_named("connected").await.data).expect("JSON");
    assert_eq!(hello["userId"], "alice");
    // Sends need a token here.
    let (status, _) = post_json(
        &server.url("/api/sse/send"),
        &json!({"type": "x", "data": {}}),
    )
    .await;
    assert_eq!(status, 401);

    let server = dev_server().await;
    for (body, needle) in [
        (json!({"type": "", "data": {}}), "empty"),
        (json!({"type": "bad\nname", "data": {}}), "CR or LF"),
        (json!({"data": {}}), "type"),
        (
            json!({"type": "x", "data": {}, "target": {"nope": 1}}),
            "unknown field",
        ),
    ] {
        let (status, answer) = post_json(&server.url("/api/sse/send"), &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(
            error.contains(needle),
            "{error:?} should mention {needle:?}"
        );
    }
}

/// Seed 001's own send example names a client, a user and a session at
/// once: the event reaches every connection on any of them, each once.
#[tokio::test]
async fn seed001_send_example_with_all_targets() {
    let server = dev_server().await;
    let (mut client, _) = open(&server, "?clientId=client_123").await;
    let (mut user, _) = open(&server, "?userId=user_456").await;
    let (mut session, _) = open(&server, "?sessionId=session_789").await;
    // On the user's and the session's topic both: still one event.
    let (mut both, _) = open(&server, "?userId=user_456&sessionId=session_789").await;
    let (mut bystander, _) = open(&server, "").await;

    // The seed's request, as documented (its comments aside).
    let (status, answer) = post_json(
        &server.url("/api/sse/send"),
        &json!({
          "type": "notification",
          "data": { "message": "Hello!" },
          "target": {
            "clientId": "client_123",
            "userId": "user_456",
            "sessionId": "session_789"
          }
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    let id = answer["id"].as_str().expect("id");
    for stream in [&mut client, &mut user, &mut session, &mut both] {
        let e = stream.next_named("notification").await;
        assert_eq!(e.last_event_id, id);
        assert_eq!(
            serde_json::from_str::<Value>(&e.data).expect("JSON"),
            json!({"message": "Hello!"})
        );
    }
    let quiet = std::time::Duration::from_millis(200);
    both.expect_silence(quiet).await;
    bystander.expect_silence(quiet).await;
    assert_eq!(server.broker.stats().events_delivered, 4);

    // Resuming on both topics replays it once too.
    let mut again = SseStream::open(
        &server.url("/api/sse?userId=user_456&sessionId=session_789"),
        Some(&format!("{}-0", server.broker.epoch().0)),
    )
    .await;
    again.next_named("connected").await;
    assert_eq!(again.next_named("notification").await.last_event_id, id);
    again.expect_silence(quiet).await;
}
