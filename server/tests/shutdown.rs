//! The real `herald-server` binary: SIGTERM ends streams cleanly with a
//! `retry:` hint (so clients come back, possibly to another node) and exits.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::SseStream;
use herald_shared::wire::Frame;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn sigterm_closes_streams_with_a_retry_hint_and_exits() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_herald-server"))
            .args([
                "--addr",
                &addr,
                "--retry-ms",
                "1234",
                "--heartbeat-secs",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald-server"),
    );
    let health = format!("http://{addr}/healthz");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reqwest::get(&health).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "server never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut stream = SseStream::open(&format!("http://{addr}/_sse/connect"), None).await;
    stream.next_named("connected").await;

    let pid = server.0.id().to_string();
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
        if let Some(status) = server.0.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
