//! The plain broadcast system (avatar app), replaying its documentation:
//! `GET /sse` with the documented headers, `POST /update` as in the curl
//! example, unnamed `data: {"type":...,"data":...}` events to every client,
//! and the error cases (not an object, wrong types, unknown fields).

mod common;

use common::{post_json, quiet_config, TestServer};
use herald_shared::wire::Frame;
use serde_json::{json, Value};

#[tokio::test]
async fn the_documented_curl_update_reaches_every_sse_client_as_an_unnamed_event() {
    let server = TestServer::start(quiet_config()).await;
    let mut a = common::SseStream::open(&server.url("/sse"), None).await;
    let mut b = common::SseStream::open(&server.url("/sse"), None).await;
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("connection", "keep-alive"),
        ("access-control-allow-origin", "*"),
    ] {
        assert_eq!(a.headers[name], value, "{name}");
    }
    server.wait_for_clients(2).await;

    // The curl example of the documentation, verbatim.
    let update = json!({
        "type": "avatar_state_change",
        "data": {"avatar_id": "avatar_123", "state": "talking"}
    });
    let (status, body) = post_json(&server.url("/update"), &update).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);

    for stream in [&mut a, &mut b] {
        // No greeting: the first event is the update, unnamed (`onmessage`).
        let event = stream.next_event().await;
        assert_eq!(event.event, "message");
        let data: Value = serde_json::from_str(&event.data).expect("JSON");
        assert_eq!(data, update);
    }
    // The other documented types pass through the same way.
    for kind in ["avatar_created", "avatar_deleted", "voice_updated"] {
        let update = json!({"type": kind, "data": {"avatar_id": "avatar_9", "voice": "alto"}});
        assert_eq!(post_json(&server.url("/update"), &update).await.0, 200);
        let data: Value = serde_json::from_str(&a.next_event().await.data).expect("JSON");
        assert_eq!(data, update);
    }
}

#[tokio::test]
async fn sse_clients_get_only_updates_and_other_streams_no_updates() {
    let server = TestServer::start(quiet_config()).await;
    let mut avatar = common::SseStream::open(&server.url("/sse"), None).await;
    let (mut broker_client, _) = server.connect("").await;
    server.wait_for_clients(2).await;
    // A broadcast on the broker's `all` topic is not an avatar update...
    server.publish(json!({"data": "for everyone else"})).await;
    // ...and an avatar update is not on `all`.
    let update = json!({"type": "avatar_created", "data": {"avatar_id": "a1"}});
    post_json(&server.url("/update"), &update).await;
    let first = avatar.next_event().await;
    assert_eq!(
        serde_json::from_str::<Value>(&first.data).expect("JSON"),
        update
    );
    assert_eq!(broker_client.next_event().await.data, "for everyone else");
    broker_client
        .expect_silence(std::time::Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn bad_updates_are_400_and_nothing_is_broadcast() {
    let server = TestServer::start(quiet_config()).await;
    let mut avatar = common::SseStream::open(&server.url("/sse"), None).await;
    server.wait_for_clients(1).await;
    for (body, needle) in [
        (json!({"type": "avatar_created"}), "data"),
        (
            json!({"type": "avatar_created", "data": "not an object"}),
            "data",
        ),
        (json!({"type": 7, "data": {}}), "type"),
        (json!(["not", "an", "object"]), "object"),
    ] {
        let (status, answer) = post_json(&server.url("/update"), &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(
            error.contains(needle),
            "{error:?} should mention {needle:?}"
        );
    }
    let resp = reqwest::Client::new()
        .post(server.url("/update"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    // Nothing above reached the stream; a valid update still does.
    let ok = json!({"type": "voice_updated", "data": {"avatar_id": "a"}});
    assert_eq!(post_json(&server.url("/update"), &ok).await.0, 200);
    loop {
        match avatar.next_frame().await.expect("open") {
            Frame::Event(e) => {
                assert_eq!(serde_json::from_str::<Value>(&e.data).expect("JSON"), ok);
                break;
            }
            _ => continue,
        }
    }
}

/// Seed 000 documents `{type: string, data: object}` and nothing more:
/// other fields, and any `data` object, are the publisher's business.
#[tokio::test]
async fn seed000_updates_with_extra_fields_or_other_data_pass_through() {
    let server = TestServer::start(quiet_config()).await;
    let mut avatar = common::SseStream::open(&server.url("/sse"), None).await;
    server.wait_for_clients(1).await;
    for update in [
        json!({"type": "avatar_state_change", "data": {"state": "talking"}}),
        json!({"type": "avatar_created", "data": {}, "source": "studio"}),
        json!({"type": "scene_changed", "data": {"scene": 3}}),
    ] {
        let (status, body) = post_json(&server.url("/update"), &update).await;
        assert_eq!(status, 200, "{update} → {body}");
        let data: Value = serde_json::from_str(&avatar.next_event().await.data).expect("JSON");
        assert_eq!(data, update, "broadcast as it came");
    }
}

#[tokio::test]
async fn updates_need_a_token_unless_anonymous_publishing_is_on() {
    let server =
        TestServer::start_with_auth(quiet_config(), herald_server::auth::Verifier::hs256(b"k"))
            .await;
    let (status, body) = post_json(
        &server.url("/update"),
        &json!({"type": "avatar_created", "data": {"avatar_id": "a"}}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
}
