//! `GET /metrics`: Prometheus text with the broker's counters, publish
//! latency and bytes written (one test: the recorder is process-wide).

mod common;

use common::{open_config, quiet_config, TestServer};
use herald_server::routes::install_prometheus;
use herald_server::state::AppState;
use serde_json::json;

#[tokio::test]
async fn metrics_are_prometheus_text_and_404_when_off() {
    let off = TestServer::start(quiet_config()).await;
    let resp = reqwest::get(off.url("/metrics")).await.expect("get");
    assert_eq!(resp.status(), 404);

    let handle = install_prometheus().expect("recorder");
    let server = TestServer::start_with_state(open_config(), None, move |b| AppState {
        metrics: Some(handle),
        ..AppState::new(b)
    })
    .await;
    let (mut stream, _) = server.connect("?topics=m").await;
    for i in 0..3 {
        let (status, _) = server
            .publish(json!({"topic": "m", "data": i.to_string()}))
            .await;
        assert_eq!(status, 200);
        stream.next_event().await;
    }
    let resp = reqwest::get(server.url("/metrics")).await.expect("get");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("body");
    for line in [
        "herald_connections 1",
        "herald_subscriptions 4", // client:<id>, all, session:<issued>, m
        "herald_events_published_total 3",
        "herald_events_delivered_total 3",
        "herald_backplane_up 1",
        "herald_publish_duration_seconds_count 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("herald_publish_duration_seconds_bucket{le=\"0.001\"}"));
    let written: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("herald_bytes_written_total "))
        .and_then(|v| v.parse().ok())
        .expect("bytes written");
    assert!(written > 0);
}
