//! Bounded under abuse: what a caller with a plain token (or none) can make
//! a production-mode server (an HS256 secret, dev mode off) hold or do.
//! Each test asserts the bound or the refusal, and that legitimate users
//! meanwhile get every event, once, in order.

mod common;

use std::time::{Duration, Instant};

use common::{read_json, Node, RedisServer, SseStream};
use herald_server::auth::Verifier;
use serde_json::{json, Value};

const SECRET: &str = "abuse test secret, comfortably longer than 32 bytes";

fn token(sub: &str) -> String {
    Verifier::hs256(SECRET.as_bytes())
        .mint(sub, 600, None, None)
        .expect("mint")
}

/// The server process's resident memory, in bytes.
fn rss_of(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.process.0.id()))
        .expect("the server's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

async fn stats(node: &Node) -> Value {
    read_json(reqwest::get(node.url("/_sse/stats")).await.expect("stats"))
        .await
        .1
}

/// Seconds the flood lasts (the report: 30 s). Shorter for a quick
/// local run: `HERALD_FLOOD_SECS=5 cargo test --test abuse`.
fn flood_secs() -> u64 {
    std::env::var("HERALD_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// The reported attack: two tokens with no claims, each looping
/// `POST /chat/send` with a 60 000-character message to new rooms (and,
/// once refused new ones, to the rooms it has), as fast as the publish rate
/// lets them. Against a 32 MiB history budget the server's RSS stays
/// within the budget plus a stated slack (what the process holds anyway,
/// plus the allocator's share), its topics within their cap, and a
/// legitimate room meanwhile delivers every message once, in order.
#[tokio::test]
async fn a_flood_of_large_events_to_new_topics_stays_within_the_memory_budget() {
    const BUDGET: u64 = 32 << 20;
    let node = Node::start(&[
        "--jwt-secret",
        SECRET,
        "--history-bytes",
        &BUDGET.to_string(),
        "--job-workers",
        "0",
    ])
    .await;
    let idle_rss = rss_of(&node);

    // A legitimate room: carol listens, dave talks, ten messages a second.
    let carol = token("carol");
    let mut room = SseStream::open_as(&node.url("/chat/stream?room=legit"), &carol).await;
    assert_eq!(room.next_event().await.event, "connected");
    assert_eq!(room.next_event().await.event, "user-joined");

    let stop = Instant::now() + Duration::from_secs(flood_secs());
    let message = "x".repeat(60_000);
    let flood = |who: &'static str, lane: u32| {
        let (url, bearer, message) = (node.url("/chat/send"), token(who), message.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut sent, mut refused, mut i) = (0u32, 0u32, lane * 50);
            while Instant::now() < stop {
                // 150 rooms: more than a caller may start in a minute.
                let body = json!({"roomId": format!("h-{who}-{}", i % 150), "message": message});
                i += 1;
                let status = client
                    .post(&url)
                    .bearer_auth(&bearer)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                match status {
                    200 => sent += 1,
                    429 => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    other => panic!("flood answered {other}"),
                }
            }
            (sent, refused)
        })
    };
    // Three requests in flight per token, as a scripted attacker would.
    let floods: Vec<_> = ["mallory", "trudy"]
        .into_iter()
        .flat_map(|who| (0..3).map(move |lane| (who, lane)))
        .map(|(who, lane)| flood(who, lane))
        .collect();

    let talker = {
        let (node_url, dave) = (node.url("/chat/send"), token("dave"));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while Instant::now() < stop {
                let body = json!({"roomId": "legit", "message": format!("m{n}")});
                let status = client
                    .post(&node_url)
                    .bearer_auth(&dave)
                    .json(&body)
                    .send()
                    .await
                    .expect("send")
                    .status();
                assert_eq!(status, 200);
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n
        })
    };

    // Sample memory while it lasts.
    let mut peak = 0;
    let mut history_peak = 0;
    let mut topics_peak = 0;
    while Instant::now() < stop {
        peak = peak.max(rss_of(&node));
        let s = stats(&node).await;
        history_peak = history_peak.max(s["historyBytes"].as_u64().unwrap_or(0));
        topics_peak = topics_peak.max(s["topicCount"].as_u64().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = talker.await.expect("talker");
    let (mut flooded, mut refused) = (0, 0);
    for f in floods {
        let (ok, no) = f.await.expect("flood");
        flooded += ok;
        refused += no;
    }
    assert!(refused > 0, "new rooms past the quota are refused");
    peak = peak.max(rss_of(&node));

    // Every message of the legitimate room, once, in order.
    for n in 0..sent {
        let e = room.next_named("message").await;
        let m: Value = serde_json::from_str(&e.data).expect("JSON");
        assert_eq!(m["message"], format!("m{n}"));
    }

    // The flood wrote far more than the budget...
    assert!(
        u64::from(flooded) * 60_000 > 2 * BUDGET,
        "the flood was too small to test anything: {flooded} messages"
    );
    // ...and the history stayed within it, the topics within their cap.
    assert!(history_peak <= BUDGET, "history held {history_peak} bytes");
    // Each flooder starts at most 120 topics at once and 2 a second after.
    let started = 2 * (120 + 2 * flood_secs());
    assert!(topics_peak <= started + 4, "{topics_peak} topics");
    // The slack: what the idle process held, plus half the budget for the
    // allocator (freed 60 KB frames are reused, not returned at once) and
    // what is in flight (request bodies, socket buffers).
    let slack = idle_rss + BUDGET / 2 + (16 << 20);
    assert!(
        peak <= BUDGET + slack,
        "RSS peaked at {} MiB (idle {} MiB, budget {} MiB)",
        peak >> 20,
        idle_rss >> 20,
        BUDGET >> 20
    );
    eprintln!(
        "flood: {flooded} messages of 60 kB, RSS idle {} MiB, peak {} MiB; history peak {} MiB, {topics_peak} topics",
        idle_rss >> 20,
        peak >> 20,
        history_peak >> 20
    );
}

/// Commands Redis has executed so far (`INFO commandstats`), `INFO` aside.
fn redis_calls(redis: &RedisServer) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// What one request cost Redis: `request`'s answer, and the commands run
/// meanwhile (the node's own background reads add at most a few).
async fn cost<F: std::future::Future<Output = (u16, Value)>>(
    redis: &RedisServer,
    request: F,
) -> ((u16, Value), u64) {
    let before = redis_calls(redis);
    let answer = request.await;
    (answer, redis_calls(redis) - before)
}

async fn post_as(node: &Node, path: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(node.url(path)).json(body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    read_json(req.send().await.expect("request")).await
}

/// Every check that needs no Redis runs before any lookup, and one
/// request's owner lookups go in one round trip: a request without a
/// token, or one past a cap, costs Redis a handful of commands at most,
/// however many job topics it names.
#[tokio::test]
async fn redis_work_per_request_is_bounded_before_any_lookup() {
    const HANDFUL: u64 = 5;
    let redis = RedisServer::start().await;
    let node = Node::start(&[
        "--jwt-secret",
        SECRET,
        "--backplane",
        &redis.url(),
        "--job-workers",
        "0",
        "--heartbeat-secs",
        "0",
        "--status-secs",
        "3600",
    ])
    .await;
    let many: Vec<String> = (0..5500).map(|i| format!("job:{i}")).collect();

    // The reported request: no token, an unknown client, 5 500 job topics.
    let nobody = json!("nobody");
    let (status, calls) = subscribe_cost(&redis, &node, None, &nobody, &many).await;
    assert_eq!(status, 404);
    assert!(calls <= HANDFUL, "{calls} Redis commands");

    // A stream asking for jobs without a token: refused before any lookup.
    let topics = many[..60].join(",");
    let (answer, calls) = cost(&redis, async {
        read_json(
            reqwest::get(node.url(&format!("/_sse/connect?topics={topics}")))
                .await
                .expect("connect"),
        )
        .await
    })
    .await;
    assert_eq!(answer.0, 401, "{}", answer.1);
    assert!(calls <= HANDFUL, "{calls} Redis commands");

    // Alice's own connection: past the topic cap, a wrong owner, each
    // refused before any lookup.
    let alice = token("alice");
    let mut stream = SseStream::open_as(&node.url("/_sse/connect"), &alice).await;
    let hi: Value = serde_json::from_str(&stream.next_named("connected").await.data).expect("JSON");
    let client = &hi["clientId"];
    let (status, calls) = subscribe_cost(&redis, &node, Some(&alice), client, &many).await;
    assert_eq!(status, 400);
    assert!(calls <= HANDFUL, "{calls} Redis commands");
    let mallory = token("mallory");
    let (status, calls) = subscribe_cost(&redis, &node, Some(&mallory), client, &many[..60]).await;
    assert_eq!(status, 403);
    assert!(calls <= HANDFUL, "{calls} Redis commands");

    // Within the cap, her own request looks its 60 jobs up together: one
    // command each, in one pipeline (and none of them is hers: 403).
    let (status, calls) = subscribe_cost(&redis, &node, Some(&alice), client, &many[..60]).await;
    assert_eq!(status, 403);
    assert!(
        (60..=60 + HANDFUL).contains(&calls),
        "{calls} Redis commands"
    );
}

/// `POST /_sse/subscribe` of `topics` to connection `client` as `bearer`:
/// its status, and the Redis commands it cost.
async fn subscribe_cost(
    redis: &RedisServer,
    node: &Node,
    bearer: Option<&str>,
    client: &Value,
    topics: &[String],
) -> (u16, u64) {
    let body = json!({"clientId": client, "topics": topics});
    let ((status, answer), calls) =
        cost(redis, post_as(node, "/_sse/subscribe", bearer, &body)).await;
    assert!(answer["error"].is_string(), "{answer}");
    (status, calls)
}

fn service(sub: &str) -> String {
    Verifier::hs256(SECRET.as_bytes())
        .mint(sub, 600, None, Some(vec!["t:*".into()]))
        .expect("mint")
}

/// Publishes `size` bytes to `topic` as `bearer`: (status, answer, its
/// `Retry-After`).
async fn publish(
    node: &Node,
    bearer: &str,
    topic: &str,
    size: usize,
) -> (u16, Value, Option<String>) {
    let resp = reqwest::Client::new()
        .post(node.url("/_sse/publish"))
        .bearer_auth(bearer)
        .json(&json!({"topic": topic, "data": "x".repeat(size)}))
        .send()
        .await
        .expect("publish");
    let (status, retry, body) = common::read_json_and_retry(resp).await;
    (status, body, retry)
}

/// The first event a resume of `topic` from just before `id` gets.
async fn first_on_resume(node: &Node, topic: &str, id: &str) -> herald_shared::wire::MessageEvent {
    let (epoch, seq) = id.rsplit_once('-').expect("an <epoch>-<seq> id");
    let before = format!("{epoch}-{}", seq.parse::<u64>().expect("seq") - 1);
    let mut stream = SseStream::open(
        &node.url(&format!("/_sse/connect?topics={topic}")),
        Some(&before),
    )
    .await;
    assert_eq!(stream.next_event().await.event, "connected");
    stream.next_event().await
}

/// The history's limits, through HTTP, on `node` started with
/// [`BUDGET_FLAGS`]: new topics past a caller's quota and past the cap
/// are 429s naming the limit, a topic keeps its bytes, the idlest topics
/// go past the bytes of all, and a resume into what went gets `reset`.
async fn the_history_budget_holds(node: &Node) {
    let (one, two, three) = (service("svc-1"), service("svc-2"), service("svc-3"));
    for i in 0..10 {
        let (status, body, _) = publish(node, &one, &format!("t:{i}"), 10).await;
        assert_eq!(status, 200, "{body}");
    }
    // A caller's quota of new topics (10 a minute here) is spent...
    let (status, body, retry) = publish(node, &one, "t:10", 10).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("10 per minute"),
        "{body}"
    );
    assert!(retry.is_some());
    // ...not its topics in use.
    assert_eq!(publish(node, &one, "t:0", 10).await.0, 200);
    // Another caller starts what the cap (20, the server's own topics
    // counted) still allows, then no more; nor does a third.
    let mut started = 10;
    let mut quiet_id = None;
    loop {
        let (status, body, retry) = publish(node, &two, &format!("t:{started}"), 10).await;
        if started == 10 {
            quiet_id = body["id"].as_str().map(str::to_owned);
        }
        if status == 429 {
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("at most 20 topics"),
                "{body}"
            );
            assert!(retry.is_some());
            break;
        }
        assert_eq!(status, 200, "{body}");
        started += 1;
        assert!(started <= 20, "the cap let {started} topics start");
    }
    assert!(started >= 17, "only {started} topics started");
    let (status, body, _) = publish(node, &three, "t:99", 10).await;
    assert_eq!(status, 429, "{body}");

    // A topic keeps its bytes (100 000 here): its oldest events go.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (status, body, _) = publish(node, &one, "t:0", 20_000).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let reset = first_on_resume(node, "t:0", &ids[0]).await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert!(reset.data.contains("history-gap"), "{reset:?}");

    // Past the bytes of all topics (200 000), the topics idle longest go
    // whole (those started first and quiet since, then t:0) until a tenth
    // of the budget is free.
    let mut busy_id = String::new();
    for i in 1..3 {
        for _ in 0..5 {
            let (status, body, _) = publish(node, &one, &format!("t:{i}"), 20_000).await;
            assert_eq!(status, 200, "{body}");
            busy_id = body["id"].as_str().expect("id").to_owned();
        }
    }
    let quiet_id = quiet_id.expect("t:10 started");
    let reset = first_on_resume(node, "t:10", &quiet_id).await;
    assert_eq!(
        reset.event, "reset",
        "the idlest topic's history went: {reset:?}"
    );
    let kept = first_on_resume(node, "t:2", &busy_id).await;
    assert_eq!(
        kept.event, "message",
        "a busy topic keeps its history: {kept:?}"
    );
    assert_eq!(kept.last_event_id, busy_id);

    // Both numbers are reported, within their limits.
    tokio::time::sleep(Duration::from_millis(1500)).await; // a sweep (1 s heartbeats)
    let s = stats(node).await;
    let (topics, bytes) = (s["topicCount"].as_u64(), s["historyBytes"].as_u64());
    assert!(topics.is_some_and(|t| (1..=20).contains(&t)), "{s}");
    assert!(bytes.is_some_and(|b| b > 0 && b <= 200_000), "{s}");
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("herald_history_bytes "), "{metrics}");
    assert!(metrics.contains("herald_topics "), "{metrics}");
}

/// `Node` flags for [`the_history_budget_holds`].
const BUDGET_FLAGS: [&str; 16] = [
    "--jwt-secret",
    SECRET,
    "--history-bytes",
    "200000",
    "--history-topic-bytes",
    "100000",
    "--max-log-topics",
    "20",
    "--topic-creations-per-minute",
    "10",
    "--heartbeat-secs",
    "1",
    "--job-workers",
    "0",
    "--status-secs",
    "3600",
];

#[tokio::test]
async fn the_history_budget_holds_in_memory() {
    let node = Node::start(&BUDGET_FLAGS).await;
    the_history_budget_holds(&node).await;
}

#[tokio::test]
async fn the_history_budget_holds_on_redis() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut flags = BUDGET_FLAGS.to_vec();
    flags.extend(["--backplane", &url]);
    let node = Node::start(&flags).await;
    the_history_budget_holds(&node).await;
}

/// Sockets that never send a request are capped per address: past the
/// cap they are closed at once (not after the header timeout), and the
/// address is served again as soon as its silent sockets go.
#[tokio::test]
async fn silent_sockets_are_capped_per_address() {
    use tokio::io::AsyncReadExt;
    let options = herald_server::net::ServeOptions {
        max_pending_per_ip: 20,
        ..Default::default()
    };
    let server =
        common::TestServer::start_with_options(common::quiet_config(), None, options, |b| {
            herald_server::state::AppState::with_auth(b, Verifier::hs256(SECRET.as_bytes()))
        })
        .await;
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    // The ten past the cap are closed by the server at once.
    let reads = silent.iter_mut().map(|socket| async move {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("the server said something to a silent socket"),
            Err(_) => false, // still open, waiting for a request
        }
    });
    let closed = futures::future::join_all(reads).await;
    assert_eq!(closed.iter().filter(|c| **c).count(), 10);
    drop(silent);
    // Once they are gone, the address is served.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match reqwest::get(server.url("/healthz")).await {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("not served again: {other:?}"),
        }
    }
}
