//! The multi-stream API's public system routes, as documented:
//! `curl http://localhost:3000/system/status` and the status stream.

mod common;

use std::time::Duration;

use common::{quiet_config, SseStream, TestServer};
use herald_server::apps::system;
use herald_shared::events::{SseEvent, SystemStatus};
use serde_json::json;

#[tokio::test]
async fn status_has_exactly_the_documented_fields() {
    let server = TestServer::start(quiet_config()).await;
    let (_stream, _) = server.connect("").await;
    let (status, body) = common::read_json(
        reqwest::get(server.url("/system/status"))
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    let mut keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["connections", "cpu", "memory", "status", "uptime"]);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["connections"], 1);
    assert!(
        body["memory"].as_str().is_some_and(|m| m.ends_with("MB")),
        "{body}"
    );
}

#[tokio::test]
async fn the_status_stream_carries_status_events_and_no_broadcasts() {
    let server = TestServer::start(quiet_config()).await;
    system::spawn_publisher(&server.broker, Duration::from_millis(50));
    let mut stream = SseStream::open(&server.url("/system/status/stream"), None).await;
    stream.next_named("connected").await;
    server.publish(json!({"data": "a broadcast"})).await;
    for _ in 0..3 {
        let e = stream.next_event().await;
        assert_eq!(e.event, "status", "unexpected {e:?}");
        let s = SystemStatus::from_data(&e.data).expect("a SystemStatus");
        assert!(s.timestamp.is_some());
        assert!(!e.last_event_id.is_empty(), "status events are resumable");
    }
}

#[tokio::test]
async fn status_reports_the_publishers_cpu_reading() {
    let server = TestServer::start(quiet_config()).await;
    system::spawn_publisher(&server.broker, Duration::from_millis(30));
    // Two ticks make the first interval reading.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, body) = common::read_json(
        reqwest::get(server.url("/system/status"))
            .await
            .expect("get"),
    )
    .await;
    let cpu = body["cpu"].as_str().expect("cpu");
    assert!(
        cpu.ends_with('%') && cpu.trim_end_matches('%').parse::<f64>().is_ok(),
        "{body}"
    );
}

const SECRET: &[u8] = b"system test secret, comfortably longer than 32 bytes";

fn token(publish: Option<&[&str]>) -> String {
    let publish = publish.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
    herald_server::auth::Verifier::hs256(SECRET)
        .mint("ops", 600, None, publish)
        .expect("mint")
}

/// Seed 002 lists a `maintenance` event ("Maintenance mode notification")
/// on the status stream: an operator's token sends it.
#[tokio::test]
async fn seed002_maintenance_events_reach_the_status_stream() {
    let server = TestServer::start_with_state(quiet_config(), None, |b| {
        herald_server::state::AppState::with_auth(b, herald_server::auth::Verifier::hs256(SECRET))
    })
    .await;
    let mut stream = SseStream::open(&server.url("/system/status/stream"), None).await;
    stream.next_named("connected").await;
    let send = |bearer: Option<String>, body: serde_json::Value| {
        let mut req = reqwest::Client::new()
            .post(server.url("/system/maintenance"))
            .json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { common::read_json(req.send().await.expect("post")).await }
    };
    let message = json!({"message": "Down for maintenance at 22:00 UTC"});
    assert_eq!(send(None, message.clone()).await.0, 401);
    assert_eq!(send(Some(token(None)), message.clone()).await.0, 403);
    let operator = Some(token(Some(&["system:*"])));
    assert_eq!(send(operator.clone(), json!({"message": " "})).await.0, 400);
    let (status, body) = send(operator, message).await;
    assert_eq!(status, 200, "{body}");

    let e = stream.next_named("maintenance").await;
    assert_eq!(e.last_event_id, body["id"].as_str().expect("id"));
    let m = herald_shared::events::Maintenance::from_data(&e.data).expect("Maintenance");
    assert_eq!(m.message, "Down for maintenance at 22:00 UTC");
    assert!(!m.timestamp.is_empty());
    // Code can say it too.
    system::announce_maintenance(&server.broker, "back up")
        .await
        .expect("announce");
    assert_eq!(
        herald_shared::events::Maintenance::from_data(&stream.next_named("maintenance").await.data)
            .expect("Maintenance")
            .message,
        "back up"
    );
}

#[tokio::test]
async fn a_single_nodes_status_events_name_it_as_its_own_cluster() {
    let server = TestServer::start(herald_server::broker::BrokerConfig {
        node_id: Some("solo".into()),
        ..quiet_config()
    })
    .await;
    system::spawn_publisher(&server.broker, Duration::from_millis(30));
    let mut stream = SseStream::open(&server.url("/system/status/stream"), None).await;
    stream.next_named("connected").await;
    let s = SystemStatus::from_data(&stream.next_named("status").await.data).expect("status");
    assert_eq!(s.node.as_deref(), Some("solo"));
    let nodes = s.nodes.expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].node.as_str(), nodes[0].connections),
        ("solo", s.connections)
    );
    assert_eq!(s.status, "healthy");
}
