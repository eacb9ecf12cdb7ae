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
