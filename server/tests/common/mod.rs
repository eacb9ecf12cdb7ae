//! Test helpers: a real Herald server on a loopback port, and an SSE reader
//! built on reqwest plus the shared crate's parser.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use herald_server::broker::{BrokerConfig, SSEBroker};
use herald_server::net::ServeOptions;
use herald_server::router::router;
use herald_server::state::AppState;
use herald_shared::wire::{Frame, MessageEvent, Parser};
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1:<random port>, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: SSEBroker,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: BrokerConfig) -> Self {
        Self::start_with_idle_timeout(config, None).await
    }

    /// A server whose connections fail writes stalled for `idle`.
    /// Publishing is open on these servers (tests publish anonymously);
    /// `start_with_auth` gives the production policy.
    pub async fn start_with_idle_timeout(config: BrokerConfig, idle: Option<Duration>) -> Self {
        let config = BrokerConfig {
            open_publishing: true,
            ..config
        };
        Self::start_with_state(config, idle, |b| AppState {
            publish_limit: std::sync::Arc::new(herald_server::ratelimit::RateLimiter::unlimited()),
            ..AppState::new(b)
        })
        .await
    }

    /// A server whose tokens are checked by `verifier`.
    pub async fn start_with_auth(
        config: BrokerConfig,
        verifier: herald_server::auth::Verifier,
    ) -> Self {
        Self::start_with_state(config, None, move |b| AppState::with_auth(b, verifier)).await
    }

    pub async fn start_with_state(
        config: BrokerConfig,
        idle: Option<Duration>,
        make_state: impl FnOnce(SSEBroker) -> AppState,
    ) -> Self {
        Self::start_with_options(config, idle, ServeOptions::default(), make_state).await
    }

    /// The general form: write idle timeout, connection options, state.
    pub async fn start_with_options(
        config: BrokerConfig,
        idle: Option<Duration>,
        options: ServeOptions,
        make_state: impl FnOnce(SSEBroker) -> AppState,
    ) -> Self {
        Self::start_serving(SSEBroker::new(config), idle, options, make_state).await
    }

    /// A server over `broker` (e.g. one on a Redis backplane).
    pub async fn start_broker(
        broker: SSEBroker,
        make_state: impl FnOnce(SSEBroker) -> AppState,
    ) -> Self {
        Self::start_serving(broker, None, ServeOptions::default(), make_state).await
    }

    async fn start_serving(
        broker: SSEBroker,
        idle: Option<Duration>,
        options: ServeOptions,
        make_state: impl FnOnce(SSEBroker) -> AppState,
    ) -> Self {
        broker.spawn_maintenance();
        let app = router(make_state(broker.clone()));
        let listener =
            herald_server::net::GuardedListener::bind("127.0.0.1:0".parse().expect("addr"), idle)
                .await
                .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            herald_server::net::serve(listener, app, options, std::future::pending())
                .await
                .expect("serve");
        });
        TestServer { addr, broker, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Opens `/_sse/connect<query>` and returns the stream after its `connected` event.
    pub async fn connect(&self, query: &str) -> (SseStream, Value) {
        self.connect_with(query, None).await
    }

    pub async fn connect_with(
        &self,
        query: &str,
        last_event_id: Option<&str>,
    ) -> (SseStream, Value) {
        self.connect_as(query, last_event_id, &[]).await
    }

    /// `connect_with`, with extra request headers (a session `Cookie`, an
    /// `X-Herald-Secret`, an `Authorization`).
    pub async fn connect_as(
        &self,
        query: &str,
        last_event_id: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (SseStream, Value) {
        let mut req = reqwest::Client::new()
            .get(self.url(&format!("/_sse/connect{query}")))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut stream = SseStream::request(req).await;
        let connected = stream.next_named("connected").await;
        (
            stream,
            serde_json::from_str(&connected.data).expect("connected is JSON"),
        )
    }

    pub async fn publish(&self, body: Value) -> (u16, Value) {
        post_json(&self.url("/_sse/publish"), &body).await
    }

    /// Publishes `total` copies of `payload` to `topic` from code, yielding
    /// between them (readers get to run); returns their ids in order.
    pub async fn publish_burst(&self, topic: &str, payload: &str, total: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(total);
        for _ in 0..total {
            let id = self
                .broker
                .publish(topic, herald_shared::wire::Event::data(payload))
                .await
                .expect("publish");
            ids.push(id.to_string());
            tokio::task::yield_now().await;
        }
        ids
    }

    /// Polls until the broker reports `n` clients (disconnects are noticed asynchronously).
    pub async fn wait_for_clients(&self, n: usize) {
        self.wait_until_clients(n, false).await;
    }

    /// Like `wait_for_clients`, publishing meanwhile so that closed streams
    /// are noticed (a write is what discovers a dropped peer).
    pub async fn wait_for_clients_after_broadcast(&self, n: usize) {
        self.wait_until_clients(n, true).await;
    }

    async fn wait_until_clients(&self, n: usize, nudge: bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.broker.client_count() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "client count stuck at {}",
                self.broker.client_count()
            );
            if nudge {
                let _ = self
                    .broker
                    .broadcast(herald_shared::wire::Event::data("ping"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request");
    read_json(resp).await
}

/// Creates a demo job (`POST /api/v1/characters {name}`) at `url` as
/// `token`'s user; asserts the 202 and returns the job's id.
pub async fn create_job(url: &str, token: &str, name: &str) -> String {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .expect("create");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 202, "{body}");
    body["jobId"].as_str().expect("jobId").to_owned()
}

/// A JSON answer with its `Retry-After` (a 429's).
pub async fn read_json_and_retry(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, body) = read_json(resp).await;
    (status, retry, body)
}

pub async fn read_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
    )
}

/// A live event stream read with the spec-conformant parser.
pub struct SseStream {
    pub headers: reqwest::header::HeaderMap,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
    pub frames: VecDeque<Frame>,
}

impl SseStream {
    /// Opens `url` as an `EventSource` would (`Accept: text/event-stream`,
    /// which the server answers without hyper; `request` without that
    /// header goes through hyper).
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        Self::request(req).await
    }

    /// Opens `url` as an `EventSource` would, with a bearer token.
    pub async fn open_as(url: &str, bearer: &str) -> Self {
        let req = reqwest::Client::new()
            .get(url)
            .bearer_auth(bearer)
            .header("accept", "text/event-stream");
        Self::request(req).await
    }

    /// Opens the stream `req` asks for (any headers); asserts a 200.
    pub async fn request(req: reqwest::RequestBuilder) -> Self {
        let resp = req.send().await.expect("connect");
        assert_eq!(
            resp.status(),
            200,
            "stream refused: {}",
            resp.text().await.unwrap_or_default()
        );
        SseStream {
            headers: resp.headers().clone(),
            body: resp.bytes_stream().boxed(),
            parser: Parser::new(),
            frames: VecDeque::new(),
        }
    }

    /// The `herald_session=...` pair of the session this response issued,
    /// as a browser would send it back in `Cookie`.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("herald_session="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    }

    /// The next frame, or `None` when the server ended the stream.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("timed out waiting for a frame")?;
            let chunk = chunk.ok()?;
            let frames = &mut self.frames;
            self.parser.feed(&chunk, |f| frames.push_back(f));
        }
    }

    /// The next dispatched event that is not a heartbeat.
    pub async fn next_event(&mut self) -> MessageEvent {
        loop {
            match self.next_frame().await.expect("stream ended") {
                Frame::Event(e) if e.event != "heartbeat" => return e,
                _ => {}
            }
        }
    }

    pub async fn next_named(&mut self, name: &str) -> MessageEvent {
        let e = self.next_event().await;
        assert_eq!(e.event, name, "unexpected event {e:?}");
        e
    }

    /// Asserts nothing but heartbeats arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(f) = self.frames.pop_front() {
                if let Frame::Event(e) = &f {
                    assert_eq!(e.event, "heartbeat", "expected silence, got {e:?}");
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return,
                Ok(Some(Ok(chunk))) => {
                    let frames = &mut self.frames;
                    self.parser.feed(&chunk, |f| frames.push_back(f));
                }
                Ok(_) => return,
            }
        }
    }

    /// Reads until the stream's last event id (as an `EventSource` keeps
    /// it: `id:`-only frames set it too) satisfies `done`; returns it.
    /// Frames read meanwhile stay queued.
    pub async fn until_last_event_id(&mut self, done: impl Fn(&str) -> bool) -> String {
        while !done(self.parser.last_event_id()) {
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("timed out waiting for an id")
                .expect("stream open")
                .expect("readable");
            let frames = &mut self.frames;
            self.parser.feed(&chunk, |f| frames.push_back(f));
        }
        self.parser.last_event_id().to_owned()
    }

    /// Reads until the server closes the stream; returns the events seen.
    pub async fn read_to_end(&mut self) -> Vec<MessageEvent> {
        let mut out = Vec::new();
        while let Some(f) = self.next_frame().await {
            if let Frame::Event(e) = f {
                out.push(e);
            }
        }
        out
    }
}

/// A broker config with quick heartbeats off unless a test turns them on.
pub fn quiet_config() -> BrokerConfig {
    BrokerConfig {
        heartbeat_interval: Duration::ZERO,
        ..BrokerConfig::default()
    }
}

/// `quiet_config` with open publishing (`--anonymous-publish`).
pub fn open_config() -> BrokerConfig {
    BrokerConfig {
        open_publishing: true,
        ..quiet_config()
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Process(pub std::process::Child);

impl Process {
    /// Kills it now, without a chance to clean up (a crashed node).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port for a cluster node: its bus listens on port + 10 000, so
/// both must be free and below 65 536 (`free_port`'s ephemeral ports
/// often are not).
pub fn cluster_port() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    (0..1000)
        .map(|_| 20_000 + rand::random::<u16>() % 30_000)
        .find(|&p| free(p) && free(p + 10_000))
        .expect("a free port pair for a cluster node")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A real `redis-server` on a free loopback port, without persistence.
pub struct RedisServer {
    pub port: u16,
    process: Option<Process>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = RedisServer {
            port: free_port(),
            process: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server: everything it held is gone.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Starts it (again) on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (the setup script installs it) did not start");
        self.process = Some(Process(child));
        wait_for_redis(self.port).await;
    }
}

/// A real Redis Cluster on loopback: three masters (`redis-server
/// --cluster-enabled yes`, no replicas, no persistence) joined with
/// `redis-cli --cluster create`, killed and removed when dropped.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
    processes: Vec<Process>,
}

impl RedisCluster {
    /// Three masters, no replicas, each with an append-only file (a master
    /// that restarts keeps what it acknowledged), serving their slots even
    /// while another master is down (`cluster-require-full-coverage no`).
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("herald-cluster-{}", free_port()));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's files");
        let ports: Vec<u16> = (0..3).map(|_| cluster_port()).collect();
        let cluster = RedisCluster {
            processes: ports.iter().map(|&p| Self::spawn(&dir, p)).collect(),
            ports,
            dir,
        };
        for port in &cluster.ports {
            wait_for_redis(*port).await;
        }
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.nodes())
            .arg("--cluster-yes")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_whole().await;
        cluster
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Process {
        let port = port.to_string();
        let child = std::process::Command::new("redis-server")
            .current_dir(dir)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--appenddirname", &format!("aof-{port}")])
            .args(["--save", ""])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (the setup script installs it) did not start");
        Process(child)
    }

    fn nodes(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// `redis://` to the first master (a one-server URL).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// `redis+cluster://` with every master.
    pub fn cluster_url(&self) -> String {
        format!("redis+cluster://{}", self.nodes().join(","))
    }

    /// Kills master `i` (its slots are then served by nobody).
    pub fn kill(&mut self, i: usize) {
        self.processes[i].kill();
    }

    /// Starts master `i` again from its files and waits for the cluster.
    pub async fn restart(&mut self, i: usize) {
        self.processes[i] = Self::spawn(&self.dir, self.ports[i]);
        wait_for_redis(self.ports[i]).await;
        self.wait_until_whole().await;
    }

    async fn wait_until_whole(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster never formed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn is_ok(&self) -> bool {
        self.ports.iter().all(|port| {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.processes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a Redis on `port` answers `PING`.
async fn wait_for_redis(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 7];
            if tcp.write_all(b"PING\r\n").await.is_ok()
                && tcp.read_exact(&mut buf).await.is_ok()
                && &buf == b"+PONG\r\n"
            {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server did not answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `herald-server` binary on a free port, killed when dropped.
pub struct Node {
    pub addr: String,
    pub process: Process,
}

impl Node {
    /// Starts the binary with `args` and waits until `/healthz` answers.
    pub async fn start(args: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald-server"))
            .arg("--addr")
            .arg(&addr)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start herald-server");
        let node = Node {
            addr,
            process: Process(child),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while reqwest::get(node.url("/healthz")).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "server never came up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// `GET /_sse/presence?topic=` on `node`, which must answer 200.
pub async fn presence_on(node: &Node, topic: &str) -> Value {
    let resp = reqwest::get(node.url(&format!("/_sse/presence?topic={topic}")))
        .await
        .expect("presence");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `node`'s presence of `topic` until `done` holds; returns it.
pub async fn presence_until(node: &Node, topic: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = presence_on(node, topic).await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence stuck at {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
