//! The Redis backplane against a real `redis-server` (started per test on a
//! free port, no persistence): two nodes share one ordered log, a client
//! fails over from a killed node to another without a gap or a duplicate, a
//! Redis restart loses nothing published once it is back (publishers get
//! 503 while it is down), and a user's connection limit holds across nodes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    post_json, presence_on, presence_until, quiet_config, read_json, Node, RedisServer, SseStream,
    TestServer,
};
use herald_server::auth::Verifier;
use herald_server::broker::{BrokerConfig, RedisBackplane, RedisOptions, SSEBroker};
use herald_server::state::AppState;
use herald_shared::wire::Frame;
use serde_json::{json, Value};

const SECRET: &str = "redis test secret, comfortably longer than 32 bytes";

/// An in-process node on the Redis at `url`.
async fn node(url: &str, config: BrokerConfig) -> TestServer {
    let backplane = RedisBackplane::connect(RedisOptions::new(url))
        .await
        .expect("redis reachable");
    let config = BrokerConfig {
        open_publishing: true,
        ..config
    };
    let broker = SSEBroker::with_backplane(config, Arc::new(backplane));
    TestServer::start_broker(broker, |b| AppState {
        publish_limit: Arc::new(herald_server::ratelimit::RateLimiter::unlimited()),
        ..AppState::with_auth(b, Verifier::hs256(SECRET.as_bytes()))
    })
    .await
}

async fn health_of(server: &TestServer) -> Value {
    reqwest::get(server.url("/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("JSON")
}

/// Reads data events (skipping heartbeats and control events) until `n` arrived.
async fn read_data(stream: &mut SseStream, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = stream.next_event().await;
        if e.event == "message" {
            out.push((e.last_event_id.clone(), e.data.clone()));
        }
    }
    out
}

#[tokio::test]
async fn a_subscriber_on_one_node_gets_what_another_node_publishes_in_order() {
    let redis = RedisServer::start().await;
    let a = node(&redis.url(), quiet_config()).await;
    let b = node(&redis.url(), quiet_config()).await;
    let (mut on_b, _) = b.connect("?topics=news").await;

    for i in 1..=50 {
        let (status, body) = a
            .publish(json!({"topic": "news", "data": i.to_string()}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let got = read_data(&mut on_b, 50).await;
    let data: Vec<String> = got.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(data, (1..=50).map(|i| i.to_string()).collect::<Vec<_>>());

    // Ids are the Redis stream entry ids, global: a client resumes on
    // either node from an id the other one gave it.
    let (tenth_id, _) = &got[9];
    let (mut resumed_on_a, _) = a.connect_with("?topics=news", Some(tenth_id)).await;
    let again = read_data(&mut resumed_on_a, 40).await;
    assert_eq!(again, got[10..].to_vec());

    // A retried publish (same idempotency key) is one event, on any node.
    let (_, first) = a
        .publish(json!({"topic": "news", "data": "once", "id": "k-1"}))
        .await;
    let (_, retry) = b
        .publish(json!({"topic": "news", "data": "once", "id": "k-1"}))
        .await;
    assert_eq!(first["id"], retry["id"]);
    assert_eq!(read_data(&mut on_b, 1).await[0].1, "once");
    on_b.expect_silence(Duration::from_millis(300)).await;

    let health = health_of(&b).await;
    assert_eq!(
        health,
        json!({"status": "ok", "backplane": {"name": "redis", "ok": true}})
    );
}

#[tokio::test]
async fn a_client_fails_over_to_another_node_without_gap_or_duplicate() {
    let redis = RedisServer::start().await;
    let args = [
        "--backplane",
        &redis.url(),
        "--anonymous-publish",
        "--heartbeat-secs",
        "0.2",
    ];
    let mut a = Node::start(&args).await;
    let b = Node::start(&args).await;
    const N: usize = 200;

    let mut on_a = SseStream::open(&a.url("/_sse/connect?topics=feed"), None).await;
    on_a.next_named("connected").await;
    // Publish 1..N through node B while the client is on A, then on B.
    let publish_url = b.url("/_sse/publish");
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            let (status, body) = post_json(
                &publish_url,
                &json!({"topic": "feed", "data": i.to_string()}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut got = read_data(&mut on_a, 30).await;
    a.process.kill(); // node A dies mid-stream
    while on_a.next_frame().await.is_some() {}
    let last_id = got.last().expect("events").0.clone();

    let mut on_b = SseStream::open(&b.url("/_sse/connect?topics=feed"), Some(&last_id)).await;
    loop {
        match on_b.next_frame().await.expect("stream open") {
            Frame::Event(e) if e.event == "reset" => panic!("unexpected reset: {}", e.data),
            Frame::Event(e) if e.event == "message" => {
                got.push((e.last_event_id.clone(), e.data.clone()));
                if got.len() == N {
                    break;
                }
            }
            _ => {}
        }
    }
    publisher.await.expect("publisher");
    let data: Vec<String> = got.into_iter().map(|(_, d)| d).collect();
    assert_eq!(data, (1..=N).map(|i| i.to_string()).collect::<Vec<_>>());
    on_b.expect_silence(Duration::from_millis(300)).await;
}

/// Publishes until accepted; returns how many attempts were refused (503).
async fn publish_until_accepted(server: &TestServer, data: &str) -> usize {
    let mut refused = 0;
    loop {
        let (status, body) = server.publish(json!({"topic": "t", "data": data})).await;
        match status {
            200 => return refused,
            503 => {
                assert!(
                    body["error"].as_str().expect("error").contains("redis"),
                    "{body}"
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_published_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let config = BrokerConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..BrokerConfig::default()
    };
    let server = node(&redis.url(), config).await;
    let (mut stream, _) = server.connect("?topics=t").await;
    for i in 1..=10 {
        publish_until_accepted(&server, &i.to_string()).await;
    }
    let first = read_data(&mut stream, 10).await;
    let mut last_id = first.last().expect("events").0.clone();
    let mut got: Vec<String> = first.into_iter().map(|(_, d)| d).collect();

    redis.stop();
    // While Redis is down: publishes are 503 with a clear error, /healthz
    // says degraded, and the open stream keeps heartbeating.
    let (status, body) = server.publish(json!({"topic": "t", "data": "lost"})).await;
    assert_eq!(status, 503, "{body}");
    let health = health_of(&server).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["backplane"]["error"].is_string());
    let mut beats = 0;
    while beats < 3 {
        match stream.next_frame().await.expect("the stream stays open") {
            Frame::Event(e) if e.event == "heartbeat" => beats += 1,
            _ => {}
        }
    }

    redis.restart().await;
    // Once it is back every accepted event arrives, once, in order. The
    // node notices that Redis lost its log and closes its streams; the
    // client resumes with its last id (a `reset`, then the new log).
    for i in 11..=30 {
        publish_until_accepted(&server, &i.to_string()).await;
    }
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while got.len() < 30 {
        assert!(tokio::time::Instant::now() < deadline, "only got {got:?}");
        match stream.next_frame().await {
            Some(Frame::Event(e)) if e.event == "message" => {
                last_id = e.last_event_id.clone();
                got.push(e.data.clone());
            }
            Some(_) => {}
            None => {
                // Closed by the node: come back like EventSource does.
                stream =
                    SseStream::open(&server.url("/_sse/connect?topics=t"), Some(&last_id)).await;
            }
        }
    }
    assert_eq!(got, (1..=30).map(|i| i.to_string()).collect::<Vec<_>>());
    stream.expect_silence(Duration::from_millis(300)).await;
    let health = health_of(&server).await;
    assert_eq!(health["status"], "ok", "{health}");
}

#[tokio::test]
async fn a_users_connection_limit_holds_across_nodes() {
    let redis = RedisServer::start().await;
    let a = node(&redis.url(), quiet_config()).await;
    let b = node(&redis.url(), quiet_config()).await;
    let token = Verifier::hs256(SECRET.as_bytes())
        .mint("alice", 600, None, None)
        .expect("mint");
    let open = |server: &TestServer| {
        let req = reqwest::Client::new()
            .get(server.url("/_sse/connect"))
            .bearer_auth(&token);
        async move { req.send().await.expect("connect") }
    };
    let mut held = Vec::new();
    for server in [&a, &a, &a, &b, &b] {
        let resp = open(server).await;
        assert_eq!(resp.status(), 200);
        held.push(resp);
    }
    for server in [&a, &b] {
        let (status, body) = read_json(open(server).await).await;
        assert_eq!(status, 429, "{body}");
    }
    // One closes on A: B admits one more.
    drop(held.remove(0));
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        // A write is what discovers the closed connection.
        let _ = a
            .broker
            .broadcast(herald_shared::wire::Event::data("nudge"))
            .await;
        let resp = open(&b).await;
        if resp.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the released slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_id_is_its_owners_on_every_node() {
    let redis = RedisServer::start().await;
    let a = node(&redis.url(), quiet_config()).await;
    let b = node(&redis.url(), quiet_config()).await;
    let (on_a, hello) = a.connect("?clientId=tab-9").await;
    let cookie = on_a.session_cookie().expect("a session");

    // Another browser on the other node: refused while the id is held...
    let take = |headers: Vec<(&'static str, String)>| {
        let url = b.url("/_sse/connect?clientId=tab-9");
        async move {
            let mut req = reqwest::Client::new()
                .get(url)
                .header("accept", "text/event-stream");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.expect("connect")
        }
    };
    assert_eq!(take(vec![]).await.status(), 409);
    // ... and after its owner left.
    drop(on_a);
    a.wait_for_clients(0).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the release reaches Redis
    assert_eq!(take(vec![]).await.status(), 409);

    // The owner's browser (its session cookie, signed with the key every
    // node derives from the shared secret) continues it on the other node.
    let (_on_b, again) = b
        .connect_as("?clientId=tab-9", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(again["secret"], hello["secret"]);
    assert_eq!(again["sessionId"], hello["sessionId"]);
}

/// One event for several topics through Redis: a connection on node B that
/// is on two of them gets it once, live and when it resumes.
#[tokio::test]
async fn an_event_for_several_topics_reaches_each_connection_once_across_nodes() {
    let redis = RedisServer::start().await;
    let a = node(&redis.url(), quiet_config()).await;
    let b = node(&redis.url(), quiet_config()).await;
    let (mut on_both, hello) = b.connect("?topics=news,sport").await;
    let (mut on_sport, _) = b.connect("?topics=sport").await;
    let me = hello["clientId"].as_str().expect("clientId").to_owned();

    let (status, body) = a
        .publish(json!({"topic": "news", "target": {"clientId": me}, "data": "one"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.publish(json!({"topic": "sport", "data": "two"})).await;
    assert_eq!(status, 200, "{body}");
    let got = read_data(&mut on_both, 2).await;
    assert_eq!(
        got.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(read_data(&mut on_sport, 1).await[0].1, "two");
    on_both.expect_silence(Duration::from_millis(300)).await;

    // The same client resumes on node A from the start: "one" is in the
    // history of both its topics, and is replayed once.
    let secret = hello["secret"].as_str().expect("secret");
    drop(on_both);
    let first = format!("{}-0", b.broker.epoch().0);
    let query = format!("?clientId={me}&secret={secret}&topics=news,sport");
    let (mut resumed, _) = a.connect_with(&query, Some(&first)).await;
    let again = read_data(&mut resumed, 2).await;
    assert_eq!(again, got, "the same ids, once each");
    resumed.expect_silence(Duration::from_millis(300)).await;
}

/// A wildcard on node B follows topics published on node A, live and on
/// resume (Redis lists the topics under the prefix).
#[tokio::test]
async fn a_wildcard_follows_and_resumes_topics_published_on_another_node() {
    let redis = RedisServer::start().await;
    let a = node(&redis.url(), quiet_config()).await;
    let b = node(&redis.url(), quiet_config()).await;
    let (mut wild, _) = b.connect("?topics=room:*").await;
    let (status, body) = a.publish(json!({"topic": "room:a", "data": "live"})).await;
    assert_eq!(status, 200, "{body}");
    let (seen, data) = read_data(&mut wild, 1).await.remove(0);
    assert_eq!(data, "live");
    drop(wild);

    let mut missed = Vec::new();
    for (topic, data) in [
        ("room:b", "1"),
        ("elsewhere", "x"),
        ("room:a", "2"),
        ("room:c", "3"),
    ] {
        let (status, body) = a.publish(json!({"topic": topic, "data": data})).await;
        assert_eq!(status, 200, "{body}");
        if topic.starts_with("room:") {
            missed.push((body["id"].as_str().expect("id").to_owned(), data.to_owned()));
        }
    }
    let (mut back, _) = b.connect_with("?topics=room:*", Some(&seen)).await;
    assert_eq!(read_data(&mut back, 3).await, missed);
    back.expect_silence(Duration::from_millis(300)).await;
}

async fn next_status(stream: &mut SseStream) -> herald_shared::events::SystemStatus {
    use herald_shared::events::SseEvent;
    let e = stream.next_named("status").await;
    herald_shared::events::SystemStatus::from_data(&e.data).expect("status")
}

/// Seed 002's status stream on a cluster: one summary of every node (not
/// the nodes' readings in turn), published by one node; each node's own
/// `GET /system/status` says `degraded` while Redis is down, as `/healthz`.
#[tokio::test]
async fn the_status_stream_sums_up_every_node() {
    use herald_shared::events::SystemStatus;
    let mut redis = RedisServer::start().await;
    let with_id = |id: &str| BrokerConfig {
        node_id: Some(id.to_owned()),
        ..quiet_config()
    };
    let a = node(&redis.url(), with_id("node-a")).await;
    let b = node(&redis.url(), with_id("node-b")).await;
    for n in [&a, &b] {
        herald_server::apps::system::spawn_publisher(&n.broker, Duration::from_millis(50));
    }
    let _on_b = (b.connect("").await, b.connect("").await);
    let mut stream = SseStream::open(&b.url("/system/status/stream"), None).await;
    stream.next_named("connected").await;

    // Until both nodes have reported their reading after the connections
    // above were made, a summary may know less.
    let settled = |s: &SystemStatus| {
        s.nodes
            .as_ref()
            .is_some_and(|n| n.len() == 2 && n[1].connections == 3)
    };
    while !settled(&next_status(&mut stream).await) {}
    // From then on, every summary.
    let mut summaries = Vec::new();
    for _ in 0..4 {
        summaries.push(next_status(&mut stream).await);
    }
    for s in &summaries {
        assert_eq!(
            s.node.as_deref(),
            Some("node-a"),
            "one publisher: the lowest id"
        );
        let nodes = s.nodes.as_ref().expect("nodes");
        let ids: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(ids, ["node-a", "node-b"]);
        assert_eq!(
            s.connections,
            nodes.iter().map(|n| n.connections).sum::<u64>()
        );
        assert_eq!(
            nodes[1].connections, 3,
            "node b: two connections and the status stream"
        );
        assert_eq!(s.status, "healthy");
    }

    redis.stop();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (_, status) =
            read_json(reqwest::get(a.url("/system/status")).await.expect("get")).await;
        if status["status"] == "degraded" {
            assert_eq!(health_of(&a).await["status"], "degraded");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Jobs on the shared engine (seed 003 with separate workers) ----------

/// `herald-server <args> worker`: a worker process, killed when dropped.
fn worker(redis: &str, step_ms: &str) -> common::Process {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args([
            "--backplane",
            redis,
            "--jwt-secret",
            SECRET,
            "--job-workers",
            "2",
            "--job-step-ms",
            step_ms,
            "--job-visibility-secs",
            "1",
            "worker",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a worker");
    common::Process(child)
}

/// Two web nodes that run no jobs themselves.
async fn web_nodes(redis: &str) -> (Node, Node) {
    let args = [
        "--backplane",
        redis,
        "--jwt-secret",
        SECRET,
        "--job-workers",
        "0",
        "--heartbeat-secs",
        "0.5",
    ];
    (Node::start(&args).await, Node::start(&args).await)
}

fn bearer(sub: &str) -> String {
    Verifier::hs256(SECRET.as_bytes())
        .mint(sub, 600, None, None)
        .expect("mint")
}

async fn create_job(node: &Node, token: &str) -> String {
    common::create_job(&node.url("/api/v1/characters"), token, "Across").await
}

/// A job stream's messages, `(id, message)`, until the server ends it;
/// `on_update` sees each `job_update` as it comes.
async fn follow_job(
    node: &Node,
    path: &str,
    token: &str,
    mut on_update: impl FnMut(&Value),
) -> Vec<(String, Value)> {
    let mut s = SseStream::request(
        reqwest::Client::new()
            .get(node.url(path))
            .bearer_auth(token),
    )
    .await;
    let mut out = Vec::new();
    while let Some(frame) = s.next_frame().await {
        if let Frame::Event(e) = frame {
            if e.event == "message" {
                let m: Value = serde_json::from_str(&e.data).expect("JSON");
                if m["type"] == "job_update" {
                    on_update(&m);
                }
                out.push((e.last_event_id, m));
            }
        }
    }
    out
}

/// Progress only grows, ids only grow, and the last message completes.
fn assert_whole(got: &[(String, Value)], id: &str) {
    assert_eq!(got[0].1["type"], "connected", "{got:?}");
    assert_eq!(got[1].1["type"], "initial_status");
    let updates: Vec<&Value> = got[2..].iter().map(|(_, m)| m).collect();
    assert!(updates
        .iter()
        .all(|m| m["type"] == "job_update" && m["jobId"] == id));
    let progress: Vec<u64> = got[1..]
        .iter()
        .map(|(_, m)| m["progress"].as_u64().expect("progress"))
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    let seqs: Vec<u64> = got[1..]
        .iter()
        .map(|(i, _)| {
            i.rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("an id")
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no update twice: {seqs:?}"
    );
    let last = &got.last().expect("messages").1;
    assert_eq!(
        (last["status"].as_str(), last["progress"].as_u64()),
        (Some("completed"), Some(100))
    );
}

/// Seed 003 with its workers as separate processes: a job created on node
/// A runs in a worker process and is streamed, polled and listed on node B.
#[tokio::test]
async fn seed003_a_job_created_on_one_node_is_followed_on_another() {
    let redis = RedisServer::start().await;
    let (a, b) = web_nodes(&redis.url()).await;
    let _worker = worker(&redis.url(), "100");
    let alice = bearer("alice");
    let mut mine = SseStream::request(
        reqwest::Client::new()
            .get(b.url("/api/v1/sse/jobs/my"))
            .bearer_auth(&alice),
    )
    .await;
    mine.next_event().await; // connected

    let id = create_job(&a, &alice).await;
    // The job's topic on `/_sse/connect` of a node that has not seen the
    // job: its owner reads it, nobody else.
    let topic_url = b.url(&format!("/_sse/connect?topics=job:{id}"));
    let resp = reqwest::Client::new()
        .get(&topic_url)
        .bearer_auth(bearer("mallory"))
        .send()
        .await
        .expect("get");
    assert_eq!(read_json(resp).await.0, 403);
    let mut topic =
        SseStream::request(reqwest::Client::new().get(&topic_url).bearer_auth(&alice)).await;
    topic.next_named("connected").await;
    let got = follow_job(
        &b,
        &format!("/api/v1/sse/jobs/character/{id}"),
        &alice,
        |_| {},
    )
    .await;
    assert_whole(&got, &id);
    let update: Value = serde_json::from_str(&topic.next_event().await.data).expect("JSON");
    assert_eq!(update["jobId"], id.as_str());
    assert_eq!(got.last().expect("done").1["result"]["name"], "Across");
    // The owner's stream on B saw it too, ending with the completion.
    loop {
        let m: Value = serde_json::from_str(&mine.next_event().await.data).expect("JSON");
        assert_eq!(m["jobId"], id.as_str());
        if m["status"] == "completed" {
            break;
        }
    }
    let resp = reqwest::Client::new()
        .get(b.url(&format!("/api/v1/characters/jobs/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("poll");
    let (status, body) = read_json(resp).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("completed"))
    );
    // Only the owner, on every node.
    let resp = reqwest::Client::new()
        .get(b.url(&format!("/api/v1/sse/jobs/character/{id}")))
        .bearer_auth(bearer("mallory"))
        .send()
        .await
        .expect("get");
    assert_eq!(read_json(resp).await.0, 403);
}

/// A worker killed mid-job: after the visibility timeout another worker
/// takes the job over and finishes it; its stream on another node sees
/// progress continue, nothing twice, and the end.
#[tokio::test]
async fn a_job_whose_worker_dies_is_finished_by_another() {
    let redis = RedisServer::start().await;
    let (a, b) = web_nodes(&redis.url()).await;
    let mut first = Some(worker(&redis.url(), "300"));
    let alice = bearer("alice");
    let id = create_job(&a, &alice).await;
    let url = redis.url();
    let mut second = None;
    let got = follow_job(
        &b,
        &format!("/api/v1/sse/jobs/character/{id}"),
        &alice,
        |m| {
            if m["progress"].as_u64() >= Some(20) {
                if let Some(mut w) = first.take() {
                    w.kill(); // mid-job, without a word
                    second = Some(worker(&url, "300"));
                }
            }
        },
    )
    .await;
    assert!(
        first.is_none() && second.is_some(),
        "the first worker was never killed"
    );
    assert_whole(&got, &id);
}

/// `GET /_sse/presence?topic=` on `node`.
#[tokio::test]
async fn presence_spans_the_cluster_and_a_dead_nodes_members_leave_within_its_lease() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let start = |id: &'static str| {
        let url = url.clone();
        async move {
            // Anyone may publish to open topics here, so anyone is shown
            // their members (without client ids, which no one but their
            // own connection is shown).
            Node::start(&[
                "--backplane",
                &url,
                "--node-id",
                id,
                "--node-lease-secs",
                "1",
                "--anonymous-publish",
            ])
            .await
        }
    };
    let (n1, n2, mut n3) = (start("n1").await, start("n2").await, start("n3").await);
    let mut streams = Vec::new();
    let mut ids = Vec::new();
    for node in [&n1, &n2, &n3] {
        let mut stream = SseStream::open(&node.url("/_sse/connect?topics=lobby"), None).await;
        let hi: Value = serde_json::from_str(&stream.next_named("connected").await.data).unwrap();
        ids.push(hi["clientId"].as_str().unwrap().to_owned());
        streams.push(stream);
    }
    let nodes_of = |body: &Value| -> Vec<String> {
        for id in &ids {
            assert!(!body.to_string().contains(id.as_str()), "{body}");
        }
        let mut v: Vec<String> = body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node"].as_str().unwrap().into())
            .collect();
        v.sort();
        v
    };

    // Every node lists every node's member.
    for node in [&n1, &n2, &n3] {
        let body = presence_until(node, "lobby", |b| b["count"] == 3).await;
        assert_eq!(nodes_of(&body), ["n1", "n2", "n3"]);
    }

    // A stream that ends leaves at once (well within the lease).
    drop(streams.remove(1));
    let body = presence_until(&n1, "lobby", |b| b["count"] == 2).await;
    assert_eq!(nodes_of(&body), ["n1", "n3"]);

    // A node that dies says nothing: its member leaves when its lease ends.
    n3.process.kill();
    let killed = std::time::Instant::now();
    let body = presence_until(&n2, "lobby", |b| b["count"] == 1).await;
    assert_eq!(nodes_of(&body), ["n1"]);
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "a 1 s lease ended after {took:?}"
    );

    // A live node's lease is renewed: its member stays lease after lease.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let body = presence_on(&n2, "lobby").await;
    assert_eq!(nodes_of(&body), ["n1"]);
    let metrics = reqwest::get(n1.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("herald_presence_records 1\n"), "{metrics}");
}
