//! Herald on a real Redis Cluster: three `redis-server --cluster-enabled
//! yes` masters on loopback (no replicas, append-only files), joined by
//! `redis-cli --cluster create`. The log has three shards, one per master
//! (`--redis-shards 3`; the layout spreads shard tags over the slots), and
//! the tests use one topic per shard.
//!
//! What must hold: a subscriber on one node gets what another node
//! publishes on every shard, in order per topic, and resumes from the
//! position it was given (a seq per shard) on either node, by header or
//! by `?lastEventId=`; an event for topics on two shards reaches each
//! connection once, live and in a replay; a killed node's client resumes
//! on the other with every topic's sequence intact; a dead master stops
//! only its shard (its publishes answer 503, the others keep flowing) and
//! nothing it acknowledged is lost once it is back.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{post_json, Node, RedisCluster, SseStream, TestServer};
use herald_server::broker::policy::Publisher;
use herald_server::broker::{shard_of, BrokerConfig, RedisBackplane, RedisOptions, SSEBroker};
use herald_server::state::AppState;
use herald_shared::wire::{Event, Frame};
use serde_json::{json, Value};

const SHARDS: usize = 3;

/// A topic on each shard: `room-<k>` for the first `k` that lands there.
fn topics() -> [String; SHARDS] {
    std::array::from_fn(|shard| {
        (0..)
            .map(|k| format!("room-{k}"))
            .find(|t| shard_of(t, SHARDS) == shard)
            .expect("some name lands on every shard")
    })
}

/// An in-process node on the cluster, publishing open to anyone.
async fn node(cluster: &RedisCluster) -> TestServer {
    let options = RedisOptions {
        shards: SHARDS,
        ..RedisOptions::new(cluster.cluster_url())
    };
    let backplane = RedisBackplane::connect(options)
        .await
        .expect("the cluster is reachable");
    let config = BrokerConfig {
        open_publishing: true,
        ..common::quiet_config()
    };
    TestServer::start_broker(
        SSEBroker::with_backplane(config, Arc::new(backplane)),
        |b| AppState {
            publish_limit: Arc::new(herald_server::ratelimit::RateLimiter::unlimited()),
            ..AppState::new(b)
        },
    )
    .await
}

async fn health_of(server: &TestServer) -> Value {
    let health = reqwest::get(server.url("/healthz")).await.expect("healthz");
    health.json().await.expect("JSON")
}

/// Reads `n` data events: `(id, data)`.
async fn read_data(stream: &mut SseStream, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        match stream.next_frame().await.expect("stream open") {
            Frame::Event(e) if e.event == "reset" => panic!("unexpected reset: {}", e.data),
            Frame::Event(e) if e.event == "message" => out.push((e.last_event_id, e.data)),
            _ => {}
        }
    }
    out
}

/// Data `<topic>:<n>` grouped by topic, in arrival order.
fn by_topic(got: &[(String, String)]) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (_, data) in got {
        let (topic, n) = data.rsplit_once(':').expect("<topic>:<n>");
        out.entry(topic.to_owned())
            .or_default()
            .push(n.parse().expect("a number"));
    }
    out
}

/// Publishes `<topic>:<n>` for n in `range` to each topic, round robin.
async fn publish_each(
    server: &TestServer,
    topics: &[String],
    range: std::ops::RangeInclusive<u32>,
) {
    for n in range {
        for topic in topics {
            let (status, body) = server
                .publish(json!({"topic": topic, "data": format!("{topic}:{n}")}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

#[tokio::test]
async fn every_shard_reaches_another_node_in_order_and_resumes_from_its_position() {
    let cluster = RedisCluster::start().await;
    let topics = topics();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    let query = format!("?topics={}", topics.join(","));
    let (mut on_b, _) = b.connect(&query).await;

    publish_each(&a, &topics, 1..=20).await;
    let got = read_data(&mut on_b, 60).await;
    let whole: Vec<u32> = (1..=20).collect();
    for topic in &topics {
        assert_eq!(by_topic(&got)[topic], whole, "{topic}");
    }
    // The id is this node's position in each shard the stream reads
    // (here all three), versioned.
    let (last_id, _) = got.last().expect("events");
    assert!(last_id.starts_with("3."), "{last_id}");
    assert_eq!(named_shards(last_id), [0, 1, 2], "{last_id}");

    // Resuming on the other node from the 30th event's position gives
    // exactly the rest, by header and by `?lastEventId=`.
    let (mid, _) = &got[29];
    let rest = by_topic(&got[30..]);
    let (mut by_header, _) = a.connect_with(&query, Some(mid)).await;
    assert_eq!(by_topic(&read_data(&mut by_header, 30).await), rest);
    by_header.expect_silence(Duration::from_millis(300)).await;
    let (mut by_query, _) = a.connect(&format!("{query}&lastEventId={mid}")).await;
    assert_eq!(by_topic(&read_data(&mut by_query, 30).await), rest);
    by_query.expect_silence(Duration::from_millis(300)).await;

    // An event for topics on two shards: once to each connection, live
    // and in a replay from before it.
    let (mut on_first, _) = b.connect(&format!("?topics={}", topics[0])).await;
    let (mut on_last, _) = b.connect(&format!("?topics={}", topics[2])).await;
    let both = [topics[0].as_str(), topics[2].as_str()];
    a.broker
        .publish_to_as(Publisher::Server, &both, Event::data("both:1"))
        .await
        .expect("published on two shards");
    for stream in [&mut on_b, &mut on_first, &mut on_last] {
        assert_eq!(read_data(stream, 1).await[0].1, "both:1");
        stream.expect_silence(Duration::from_millis(300)).await;
    }
    let (mut replayed, _) = a.connect_with(&query, Some(last_id)).await;
    assert_eq!(read_data(&mut replayed, 1).await[0].1, "both:1");
    replayed.expect_silence(Duration::from_millis(300)).await;

    // Presence spans the nodes on the cluster too.
    let presence: Value = reqwest::get(a.url(&format!("/_sse/presence?topic={}", topics[1])))
        .await
        .expect("presence")
        .json()
        .await
        .expect("JSON");
    assert!(
        presence["count"].as_u64().is_some_and(|n| n >= 2),
        "{presence}"
    );
}

/// The shards a position names (`3.<epoch>.<shards>.<shard>:<seq>…`).
fn named_shards(id: &str) -> Vec<usize> {
    id.split('.')
        .skip(3)
        .map(|p| {
            let (shard, _) = p.split_once(':').expect("<shard>:<seq>");
            shard.parse().expect("a shard")
        })
        .collect()
}

#[tokio::test]
async fn a_streams_id_names_only_the_shards_it_reads() {
    let cluster = RedisCluster::start().await;
    let topics = topics();
    let (a, b) = (node(&cluster).await, node(&cluster).await);
    publish_each(&a, &topics, 1..=3).await;
    // A stream on one topic whose shard also holds `all` and its own
    // `client:` topic reads that shard and its session's: its ids name
    // those, and no other.
    let home = shard_of("all", SHARDS);
    let own = (0..)
        .map(|k| format!("narrow-{k}"))
        .find(|c| shard_of(&format!("client:{c}"), SHARDS) == home)
        .expect("an id on that shard");
    let (mut narrow, connected) = b
        .connect(&format!("?topics={}&clientId={own}", topics[home]))
        .await;
    publish_each(&a, &topics, 4..=4).await;
    let got = read_data(&mut narrow, 1).await;
    assert_eq!(got[0].1, format!("{}:4", topics[home]));
    let before = got[0].0.clone();
    let read: std::collections::BTreeSet<usize> = connected["topics"]
        .as_array()
        .expect("its topics")
        .iter()
        .map(|t| shard_of(t.as_str().expect("a name"), SHARDS))
        .collect();
    assert!(read.len() < SHARDS, "{connected}");
    assert_eq!(
        named_shards(&before),
        Vec::from_iter(read.clone()),
        "{before}"
    );

    // Subscribing to a topic on another shard: an `id:`-only frame names
    // it at once, so a resume before the next event misses nothing there.
    let other = (0..SHARDS).find(|s| !read.contains(s)).expect("a shard");
    let (status, body) = post_json(
        &b.url("/_sse/subscribe"),
        &json!({"clientId": own, "topics": [topics[other]], "secret": connected["secret"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = narrow
        .until_last_event_id(|id| named_shards(id).contains(&other))
        .await;
    let mut both = read.clone();
    both.insert(other);
    assert_eq!(named_shards(&after), Vec::from_iter(both), "{after}");
    drop(narrow);
    publish_each(&a, &topics, 5..=5).await;
    let query = format!("?topics={},{}", topics[home], topics[other]);
    let by_query = format!("{query}&lastEventId={after}");
    for (query, header) in [(&query, Some(after.as_str())), (&by_query, None)] {
        let (mut resumed, _) = a.connect_with(query, header).await;
        let got = by_topic(&read_data(&mut resumed, 2).await);
        assert_eq!(got[&topics[home]], [5]);
        assert_eq!(got[&topics[other]], [5]);
        resumed.expect_silence(Duration::from_millis(300)).await;
    }

    // From the id before it: that shard's topic is new to the position,
    // so a `reset` says so and everything it holds follows.
    let (mut from_before, _) = a.connect_with(&query, Some(&before)).await;
    let reset = from_before.next_named("reset").await;
    assert!(reset.data.contains("shard-not-in-id"), "{}", reset.data);
    let got = by_topic(&read_data(&mut from_before, 6).await);
    assert_eq!(got[&topics[home]], [5]);
    assert_eq!(got[&topics[other]], [1, 2, 3, 4, 5]);
    from_before.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_killed_nodes_client_resumes_on_another_with_every_topic_intact() {
    let cluster = RedisCluster::start().await;
    let topics = topics();
    let args = [
        "--backplane",
        &cluster.cluster_url(),
        "--redis-shards",
        "3",
        "--anonymous-publish",
        "--heartbeat-secs",
        "0.2",
    ];
    let mut a = Node::start(&args).await;
    let b = Node::start(&args).await;
    const N: u32 = 60;
    let query = format!("/_sse/connect?topics={}", topics.join(","));
    let mut on_a = SseStream::open(&a.url(&query), None).await;
    on_a.next_named("connected").await;

    let publish_url = b.url("/_sse/publish");
    let names = topics.clone();
    let publisher = tokio::spawn(async move {
        for n in 1..=N {
            for topic in &names {
                let body = json!({"topic": topic, "data": format!("{topic}:{n}")});
                let (status, answer) = post_json(&publish_url, &body).await;
                assert_eq!(status, 200, "{answer}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut got = read_data(&mut on_a, 40).await;
    a.process.kill(); // node A dies mid-stream
    while on_a.next_frame().await.is_some() {}
    let (last_id, _) = got.last().expect("events").clone();

    let mut on_b = SseStream::open(&b.url(&query), Some(&last_id)).await;
    got.extend(read_data(&mut on_b, 3 * N as usize - got.len()).await);
    publisher.await.expect("publisher");
    let whole: Vec<u32> = (1..=N).collect();
    for topic in &topics {
        assert_eq!(by_topic(&got)[topic], whole, "{topic}");
    }
    on_b.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_dead_master_stops_only_its_shard_and_loses_nothing_it_acknowledged() {
    let mut cluster = RedisCluster::start().await;
    let topics = topics();
    let a = node(&cluster).await;
    let query = format!("?topics={}", topics.join(","));
    let (mut live, _) = a.connect(&query).await;
    publish_each(&a, &topics, 1..=10).await;
    let before = read_data(&mut live, 30).await;

    // Shard 1's master dies: its topic's publishes answer 503 with a
    // JSON error, the other shards' keep flowing.
    cluster.kill(1);
    let (status, body) = a
        .publish(json!({"topic": topics[1], "data": "lost?"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let health = health_of(&a).await;
    assert_eq!(health["backplane"]["ok"], false, "{health}");
    let error = health["backplane"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("log shards [1] of 3"), "{health}");
    publish_each(&a, &[topics[0].clone(), topics[2].clone()], 11..=15).await;
    let during = by_topic(&read_data(&mut live, 10).await);
    assert_eq!(during[&topics[0]], [11, 12, 13, 14, 15]);
    assert_eq!(during[&topics[2]], [11, 12, 13, 14, 15]);

    // Back from its append-only file: publishes work again, and what it
    // acknowledged before it died is all there for a resume.
    cluster.restart(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = a
            .publish(json!({"topic": topics[1], "data": format!("{}:11", topics[1])}))
            .await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "shard 1 never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        read_data(&mut live, 1).await[0].1,
        format!("{}:11", topics[1])
    );
    assert_eq!(health_of(&a).await["backplane"]["ok"], true);
    let (first_id, _) = &before[0];
    let (mut resumed, _) = a.connect_with(&query, Some(first_id)).await;
    let replayed = by_topic(&read_data(&mut resumed, 29 + 10 + 1).await);
    let first = before[0].1.rsplit_once(':').map(|(t, _)| t.to_owned());
    for topic in &topics {
        let from = if Some(topic) == first.as_ref() { 2 } else { 1 };
        let upto = if *topic == topics[1] { 11 } else { 15 };
        assert_eq!(
            replayed[topic],
            (from..=upto).collect::<Vec<u32>>(),
            "{topic}"
        );
    }
    resumed.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_cluster_node_behind_a_one_server_url_is_refused_with_a_clear_error() {
    let cluster = RedisCluster::start().await;
    assert_refused(RedisOptions::new(cluster.url()), "redis+cluster://").await;
    // The server says so and exits at once (no waiting for Redis to start).
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_herald-server"))
            .args(["--addr", "127.0.0.1:0", "--backplane", &cluster.url()])
            .output(),
    )
    .await
    .expect("the server exits")
    .expect("the server ran");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redis+cluster://"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// The job engine on the cluster (its store under one hash tag): a job
/// created on node A runs in a worker process and its stream on node B
/// reaches `completed`, every update once; resuming from a mid-job
/// position gives the rest.
#[tokio::test]
async fn a_job_runs_on_the_cluster_and_its_stream_resumes() {
    const SECRET: &str = "cluster test secret, comfortably longer than 32 bytes";
    let cluster = RedisCluster::start().await;
    let url = cluster.cluster_url();
    let web = [
        "--backplane",
        &url,
        "--jwt-secret",
        SECRET,
        "--job-workers",
        "0",
    ];
    let (a, b) = (Node::start(&web).await, Node::start(&web).await);
    let worker = std::process::Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["--backplane", &url, "--jwt-secret", SECRET])
        .args(["--job-workers", "2", "--job-step-ms", "50", "worker"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a worker");
    let _worker = common::Process(worker);
    let alice = herald_server::auth::Verifier::hs256(SECRET.as_bytes())
        .mint("alice", 600, None, None)
        .expect("mint");
    let id = common::create_job(&a.url("/api/v1/characters"), &alice, "Sharded").await;

    let path = format!("/api/v1/sse/jobs/character/{id}");
    let follow = |last_event_id: Option<String>| {
        let mut req = reqwest::Client::new().get(b.url(&path)).bearer_auth(&alice);
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last);
        }
        async move {
            let mut stream = SseStream::request(req).await;
            let mut got: Vec<(String, Value)> = Vec::new();
            while let Some(frame) = stream.next_frame().await {
                if let Frame::Event(e) = frame {
                    if e.event == "message" {
                        got.push((
                            e.last_event_id,
                            serde_json::from_str(&e.data).expect("JSON"),
                        ));
                    }
                }
            }
            got
        }
    };
    let got = follow(None).await;
    let updates: Vec<&(String, Value)> = got
        .iter()
        .filter(|(_, m)| m["type"] == "job_update")
        .collect();
    let progress: Vec<u64> = updates
        .iter()
        .filter_map(|(_, m)| m["progress"].as_u64())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "once each, in order: {progress:?}"
    );
    let last = &got.last().expect("messages").1;
    assert_eq!(last["status"], "completed", "{got:?}");

    // From the position of a mid-job update: exactly the later ones.
    let mid = updates.len() / 2;
    let rest = follow(Some(updates[mid].0.clone())).await;
    let rest: Vec<u64> = rest
        .iter()
        .filter(|(_, m)| m["type"] == "job_update")
        .filter_map(|(_, m)| m["progress"].as_u64())
        .collect();
    assert_eq!(
        rest,
        progress[mid + 1..],
        "the updates after the position, once"
    );
}

/// A master that comes back without its data (here: emptied in place)
/// must not hand out numbers its shard already used: that shard's
/// publishes are refused with a 503 saying so, the other shards go on,
/// and a node that starts now refuses to, naming the disagreement.
#[tokio::test]
async fn a_shard_that_lost_its_data_is_refused_not_renumbered() {
    let cluster = RedisCluster::start().await;
    let topics = topics();
    let a = node(&cluster).await;
    publish_each(&a, &topics, 1..=3).await;
    let flushed = std::process::Command::new("redis-cli")
        .args(["-p", &cluster.ports[1].to_string(), "FLUSHALL"])
        .output()
        .expect("redis-cli");
    assert!(flushed.status.success());

    let (status, body) = a
        .publish(json!({"topic": topics[1], "data": "renumbered?"}))
        .await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("lost its log"), "{body}");
    publish_each(&a, &[topics[0].clone(), topics[2].clone()], 4..=4).await;
    let health = health_of(&a).await;
    assert!(
        health["backplane"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("log shards [1] of 3")),
        "{health}"
    );

    let options = RedisOptions {
        shards: SHARDS,
        ..RedisOptions::new(cluster.cluster_url())
    };
    assert_refused(options, "disagree on its epoch").await;
}

/// Asserts that a backplane on `options` is refused, saying `why`.
async fn assert_refused(options: RedisOptions, why: &str) {
    let refused = RedisBackplane::connect(options)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains(why), "{refused}");
}

/// Presence on the cluster: a member on node B is listed by node A, is
/// kept past several leases (its renewals reach the cluster), and leaves
/// within its lease once B dies.
#[tokio::test]
async fn presence_is_renewed_on_the_cluster_and_a_dead_nodes_member_leaves() {
    let cluster = RedisCluster::start().await;
    let url = cluster.cluster_url();
    let args = ["--backplane", url.as_str(), "--node-lease-secs", "1"];
    let a = Node::start(&args).await;
    let mut b = Node::start(&args).await;
    let topic = &topics()[1];
    let mut on_b = SseStream::open(&b.url(&format!("/_sse/connect?topics={topic}")), None).await;
    on_b.next_named("connected").await;
    common::presence_until(&a, topic, |p| p["count"] == 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(common::presence_on(&a, topic).await["count"], 1, "renewed");

    b.process.kill();
    let died = std::time::Instant::now();
    common::presence_until(&a, topic, |p| p["count"] == 0).await;
    assert!(
        died.elapsed() < Duration::from_secs(3),
        "took {:?}",
        died.elapsed()
    );
}
