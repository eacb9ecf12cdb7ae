//! The real `herald-server` binary: SIGTERM ends streams cleanly with a
//! `retry:` hint (so clients come back, possibly to another node) and exits.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Node, SseStream};
use herald_shared::wire::Frame;

#[tokio::test]
async fn sigterm_closes_streams_with_a_retry_hint_and_exits() {
    let mut node = Node::start(&["--retry-ms", "1234", "--heartbeat-secs", "0"]).await;
    let addr = node.addr.clone();

    let mut stream = SseStream::open(&format!("http://{addr}/_sse/connect"), None).await;
    stream.next_named("connected").await;

    let pid = node.process.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());

    // The stream ends (it does not hang), and its last word is a retry hint.
    let mut last_retry = None;
    while let Some(frame) = stream.next_frame().await {
        if let Frame::Retry(ms) = frame {
            last_retry = Some(ms);
        }
    }
    assert_eq!(last_retry, Some(1234));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = node.process.0.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
