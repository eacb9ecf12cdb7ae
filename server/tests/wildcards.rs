//! Wildcard subscriptions (`chat:*`) over real HTTP, on a production-mode
//! server: every topic under the prefix that the caller may read (the same
//! policy as for single topics, per topic), each event once (also on a
//! connection that holds a topic by name too), history and `Last-Event-ID`
//! resume across the matched topics in id order, and seed 002's
//! `/chat/stream` without `room`.

mod common;

use std::time::Duration;

use common::{quiet_config, read_json, SseStream, TestServer};
use herald_server::auth::Verifier;
use herald_server::state::AppState;
use herald_shared::wire::Event;
use serde_json::{json, Value};

const SECRET: &[u8] = b"wildcard test secret, comfortably longer than 32 bytes";
const QUIET: Duration = Duration::from_millis(200);

async fn production() -> TestServer {
    TestServer::start_with_state(quiet_config(), None, |b| {
        AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await
}

fn token(sub: &str, subscribe: Option<&[&str]>) -> String {
    let list = subscribe.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
    Verifier::hs256(SECRET)
        .mint(sub, 600, list, None)
        .expect("mint")
}

/// `/_sse/connect<query>` as `bearer`, after its `connected` event.
async fn connect(
    server: &TestServer,
    query: &str,
    bearer: &str,
    last_event_id: Option<&str>,
) -> (SseStream, Value) {
    let auth = format!("Bearer {bearer}");
    server
        .connect_as(query, last_event_id, &[("authorization", &auth)])
        .await
}

/// Publishes `data` to `topic` from code; returns its id.
async fn publish(server: &TestServer, topic: &str, data: &str) -> String {
    server
        .broker
        .publish(topic, Event::data(data))
        .await
        .expect("publish")
        .to_string()
}

/// The next `n` unnamed events: `(id, data)`.
async fn messages(stream: &mut SseStream, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = stream.next_event().await;
        if e.event == "message" {
            out.push((e.last_event_id, e.data));
        }
    }
    out
}

#[tokio::test]
async fn a_wildcard_receives_every_topic_under_its_prefix_once() {
    let server = production().await;
    let alice = token("alice", None);
    let (mut wild, hello) = connect(&server, "?topics=chat:*", &alice, None).await;
    assert!(hello["topics"]
        .as_array()
        .expect("topics")
        .contains(&json!("chat:*")));
    // Holding a room by name too: still each event once.
    let (mut both, _) = connect(&server, "?topics=chat:general,chat:*", &alice, None).await;

    let a = publish(&server, "chat:general", "a").await;
    let b = publish(&server, "chat:random", "b").await;
    publish(&server, "news", "not chat").await;
    publish(&server, "chatter", "not under chat:").await;
    let c = publish(&server, "chat:general", "c").await;
    let want = vec![
        (a, "a".to_owned()),
        (b, "b".to_owned()),
        (c, "c".to_owned()),
    ];
    assert_eq!(messages(&mut wild, 3).await, want);
    assert_eq!(messages(&mut both, 3).await, want);
    wild.expect_silence(QUIET).await;
    both.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_wildcard_is_filtered_by_the_topic_policy_per_topic() {
    let server = production().await;
    // Not a single byte of another user's jobs.
    let (mut alices_jobs, _) =
        connect(&server, "?topics=jobs:*", &token("alice", None), None).await;
    publish(&server, "jobs:bob", "bob's secret").await;
    let mine = publish(&server, "jobs:alice", "alice's").await;
    assert_eq!(
        messages(&mut alices_jobs, 1).await,
        [(mine, "alice's".to_owned())]
    );
    alices_jobs.expect_silence(QUIET).await;

    // A token's `subscribe` claim narrows a wildcard as it narrows a topic.
    let narrow = token("carol", Some(&["chat:general"]));
    let (mut general_only, _) = connect(&server, "?topics=chat:*", &narrow, None).await;
    publish(&server, "chat:staff", "not for carol").await;
    let hi = publish(&server, "chat:general", "hi").await;
    assert_eq!(
        messages(&mut general_only, 1).await,
        [(hi, "hi".to_owned())]
    );
    general_only.expect_silence(QUIET).await;
}

#[tokio::test]
async fn wildcards_are_refused_where_single_topics_would_be() {
    let server = production().await;
    let alice = token("alice", None);
    for (query, bearer, status, needle) in [
        // The chat namespace needs a token, under a wildcard too.
        ("?topics=chat:*", None, 401, "needs a token"),
        // Assigned topics are never asked for.
        ("?topics=user:*", Some(&alice), 403, "reserved"),
        ("?topics=client:a*", Some(&alice), 403, "reserved"),
        // Not subscriptions at all.
        ("?topics=*", Some(&alice), 400, "prefix"),
        ("?topics=a*b", Some(&alice), 400, "allowed characters"),
        ("?topics=**", Some(&alice), 400, "wildcard"),
    ] {
        let mut req = reqwest::Client::new()
            .get(server.url(&format!("/_sse/connect{query}")))
            .header("accept", "text/event-stream");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let (got, body) = read_json(req.send().await.expect("request")).await;
        assert_eq!(got, status, "{query}: {body}");
        let error = body["error"].as_str().expect("error");
        assert!(
            error.contains(needle),
            "{query}: {error:?} should say {needle:?}"
        );
    }
}

#[tokio::test]
async fn a_wildcard_resumes_across_its_topics_in_id_order() {
    let server = production().await;
    let alice = token("alice", None);
    let (mut first, _) = connect(&server, "?topics=chat:*", &alice, None).await;
    let seen = publish(&server, "chat:general", "seen").await;
    assert_eq!(messages(&mut first, 1).await[0].0, seen);
    drop(first);

    // Missed while away, on several rooms, one of them new.
    let mut missed = Vec::new();
    for (room, data) in [
        ("chat:random", "1"),
        ("chat:general", "2"),
        ("chat:new", "3"),
    ] {
        missed.push((publish(&server, room, data).await, data.to_owned()));
        publish(&server, "news", "elsewhere").await;
    }
    let (mut back, _) = connect(&server, "?topics=chat:*", &alice, Some(&seen)).await;
    assert_eq!(messages(&mut back, 3).await, missed);
    let live = publish(&server, "chat:later", "live").await;
    assert_eq!(messages(&mut back, 1).await, [(live, "live".to_owned())]);
    back.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscribe_adds_a_wildcard_to_a_live_connection() {
    let server = production().await;
    let alice = token("alice", None);
    let (mut s, hello) = connect(&server, "", &alice, None).await;
    let resp = reqwest::Client::new()
        .post(server.url("/_sse/subscribe"))
        .json(&json!({"clientId": hello["clientId"], "topics": ["chat:*"], "secret": hello["secret"]}))
        .send()
        .await
        .expect("subscribe");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["topics"], json!(["chat:*"]));
    let id = publish(&server, "chat:any", "x").await;
    assert_eq!(messages(&mut s, 1).await, [(id, "x".to_owned())]);
}

/// Seed 002: "Streams chat messages for specified rooms or all accessible
/// rooms" — `room` is optional.
#[tokio::test]
async fn seed002_chat_stream_without_room_follows_all_accessible_rooms() {
    let server = production().await;
    let alice = token("alice", None);
    let bob = token("bob", None);
    let mut all = SseStream::open(&server.url(&format!("/chat/stream?token={alice}")), None).await;
    all.next_named("connected").await;

    let mut ids = Vec::new();
    for room in ["general", "random"] {
        let resp = reqwest::Client::new()
            .post(server.url("/chat/send"))
            .bearer_auth(&bob)
            .json(&json!({"roomId": room, "message": format!("hi {room}")}))
            .send()
            .await
            .expect("send");
        let (status, body) = read_json(resp).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    for (id, room) in ids.iter().zip(["general", "random"]) {
        let m = all.next_named("message").await;
        let data: Value = serde_json::from_str(&m.data).expect("JSON");
        assert_eq!(
            (data["id"].as_str(), data["roomId"].as_str()),
            (Some(id.as_str()), Some(room))
        );
    }
    // A room name is a name: no wildcards through `room=`.
    let resp = reqwest::Client::new()
        .get(server.url("/chat/stream?room=gen*"))
        .bearer_auth(&alice)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("request");
    assert_eq!(read_json(resp).await.0, 400);
}
