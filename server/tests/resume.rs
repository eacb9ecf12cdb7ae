//! One resume rule on every stream route: a client that drops mid-stream
//! and comes back with the id of the last event it saw — as the
//! `lastEventId` query parameter (a new `EventSource`, what the client
//! runtime opens) or the `Last-Event-ID` header (an `EventSource`
//! reconnecting by itself) — gets every event published while it was away,
//! once, in order, then live ones. Counted by the sequence number each
//! event carries.

mod common;

use std::time::Duration;

use common::{open_config, read_json, SseStream, TestServer};
use herald_server::auth::Verifier;
use herald_server::jobs::{JobQueue, JobSettings};
use herald_server::state::AppState;
use serde_json::{json, Value};

const SECRET: &[u8] = b"resume test secret, comfortably longer than 32 bytes";
/// The documented demo token (dev mode): user `test123`.
const DEMO: &str = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";

/// A dev-mode server (the demo token, open publishing), jobs of 5 × 60 ms.
async fn server() -> TestServer {
    TestServer::start_with_state(open_config(), None, |b| AppState {
        jobs: JobQueue::new(
            b.clone(),
            JobSettings {
                workers: 2,
                step: Duration::from_millis(60),
                ..JobSettings::default()
            },
        ),
        publish_limit: std::sync::Arc::new(herald_server::ratelimit::RateLimiter::unlimited()),
        ..AppState::with_auth(b, Verifier::hs256(SECRET).dev_mode(true))
    })
    .await
}

async fn post_as(server: &TestServer, bearer: &str, path: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .expect("post");
    let (status, body) = read_json(resp).await;
    assert!(status < 300, "{path}: {status} {body}");
}

/// The number an event carries as `#<n>#`, if any.
fn number_in(data: &str) -> Option<u32> {
    let start = data.find('#')? + 1;
    let len = data[start..].find('#')?;
    data[start..start + len].parse().ok()
}

/// Reads until `n` numbered events arrived; returns them and the last id.
async fn numbered(s: &mut SseStream, n: usize) -> (Vec<u32>, String) {
    let mut got = Vec::new();
    let mut last = String::new();
    while got.len() < n {
        let e = s.next_event().await;
        if let Some(i) = number_in(&e.data) {
            got.push(i);
            last = e.last_event_id;
        }
    }
    (got, last)
}

/// How a route family is opened and fed.
struct Family {
    stream: &'static str,
    send: &'static str,
    body: fn(u32) -> Value,
    /// Topics the sender's `publish` claim must cover, for topics only
    /// their app or such a token publishes to; `None`: the demo user sends.
    publish_claim: Option<&'static str>,
}

/// Drop mid-stream, miss three events, come back with the last id.
async fn resumes(server: &TestServer, family: &Family, by_header: bool) {
    let url = |extra: &str| {
        let sep = if family.stream.contains('?') {
            '&'
        } else {
            '?'
        };
        server.url(&format!("{}{sep}token={DEMO}{extra}", family.stream))
    };
    let bearer = match family.publish_claim {
        Some(claim) => Verifier::hs256(SECRET)
            .mint("publisher", 600, None, Some(vec![claim.to_owned()]))
            .expect("mint"),
        None => DEMO.to_owned(),
    };
    let post = |path, body| post_as(server, &bearer, path, body);
    let mut first = SseStream::open(&url(""), None).await;
    // Live before counting: a first event (0) has come through.
    post(family.send, (family.body)(0)).await;
    let (zero, _) = numbered(&mut first, 1).await;
    assert_eq!(zero, [0], "{}", family.stream);
    for i in 1..=3 {
        post(family.send, (family.body)(i)).await;
    }
    let (got, last) = numbered(&mut first, 3).await;
    assert_eq!(got, [1, 2, 3], "{}", family.stream);
    drop(first);
    for i in 4..=6 {
        post(family.send, (family.body)(i)).await;
    }
    let mut back = if by_header {
        SseStream::open(&url(""), Some(&last)).await
    } else {
        SseStream::open(&url(&format!("&lastEventId={last}")), None).await
    };
    let (missed, _) = numbered(&mut back, 3).await;
    assert_eq!(
        missed,
        [4, 5, 6],
        "{}: lost, doubled or reordered",
        family.stream
    );
    post(family.send, (family.body)(7)).await;
    let (live, _) = numbered(&mut back, 1).await;
    assert_eq!(live, [7], "{}: a duplicate came first", family.stream);
}

#[tokio::test]
async fn every_route_family_resumes_from_the_query_and_the_header() {
    let families = [
        Family {
            stream: "/sse",
            send: "/update",
            body: |i| json!({"type": "custom_tick", "data": {"n": format!("#{i}#")}}),
            publish_claim: None,
        },
        Family {
            stream: "/api/sse",
            send: "/api/sse/send",
            body: |i| json!({"type": "tick", "data": {"n": format!("#{i}#")}}),
            publish_claim: None,
        },
        Family {
            stream: "/notifications/stream",
            send: "/notifications/send",
            body: |i| json!({"title": "t", "message": format!("#{i}#")}),
            publish_claim: None,
        },
        Family {
            stream: "/realtime/stream",
            send: "/realtime/update",
            body: |i| json!({"entityType": "e", "entityId": format!("#{i}#"), "action": "updated"}),
            publish_claim: None,
        },
        Family {
            stream: "/chat/stream?room=resume",
            send: "/chat/send",
            body: |i| json!({"roomId": "resume", "message": format!("#{i}#")}),
            publish_claim: None,
        },
        // Every room the user may read: a wildcard, `chat:*`.
        Family {
            stream: "/chat/stream",
            send: "/chat/send",
            body: |i| json!({"roomId": "anywhere", "message": format!("#{i}#")}),
            publish_claim: None,
        },
        // The demo user's jobs topic, fed by a token that may publish there.
        Family {
            stream: "/api/v1/sse/jobs/my",
            send: "/_sse/publish",
            body: |i| json!({"topic": "jobs:test123", "event": "note", "data": format!("#{i}#")}),
            publish_claim: Some("jobs:*"),
        },
        Family {
            stream: "/_sse/connect?topics=resume",
            send: "/_sse/publish",
            body: |i| json!({"topic": "resume", "data": format!("#{i}#")}),
            publish_claim: None,
        },
    ];
    let server = server().await;
    for family in &families {
        resumes(&server, family, false).await;
        resumes(&server, family, true).await;
    }
}

#[tokio::test]
async fn the_status_stream_resumes_too() {
    let server = server().await;
    herald_server::apps::system::spawn_publisher(&server.broker, Duration::from_millis(30));
    let mut s = SseStream::open(&server.url("/system/status/stream"), None).await;
    s.next_named("connected").await;
    let first = s.next_named("status").await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("/system/status/stream?lastEventId={}", first.last_event_id);
    let mut back = SseStream::open(&server.url(&url), None).await;
    back.next_named("connected").await;
    // Every status published while away (the only publisher here), in
    // order, none skipped.
    let seq = |id: &str| -> u64 { id.split_once('-').expect("id").1.parse().expect("seq") };
    let mut last = seq(&first.last_event_id);
    for _ in 0..4 {
        let e = back.next_named("status").await;
        let now = seq(&e.last_event_id);
        assert_eq!(now, last + 1, "skipped or repeated");
        last = now;
    }
}

async fn create_job(server: &TestServer) -> String {
    common::create_job(&server.url("/api/v1/characters"), DEMO, "Resumed").await
}

/// The job updates of a stream until it ends: (progress, status, id).
async fn updates(s: &mut SseStream) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for e in s.read_to_end().await {
        let m: Value = serde_json::from_str(&e.data).expect("JSON");
        if m["type"] == "job_update" {
            out.push((
                m["progress"].as_u64().expect("progress"),
                m["status"].as_str().expect("status").to_owned(),
                e.last_event_id,
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_job_stream_resumes_and_a_finished_one_answers_204() {
    let server = server().await;
    let id = create_job(&server).await;
    let path = format!("/api/v1/sse/jobs/character/{id}?token={DEMO}");
    let mut s = SseStream::open(&server.url(&path), None).await;
    // connected, then initial_status carrying the id of the state it shows.
    let hello = s.next_event().await;
    assert!(hello.data.contains("\"connected\""), "{}", hello.data);
    let initial = s.next_event().await;
    assert!(initial.data.contains("initial_status"), "{}", initial.data);
    assert!(!initial.last_event_id.is_empty());
    // One update, then away while the job runs.
    let first = loop {
        let e = s.next_event().await;
        if e.data.contains("job_update") {
            break e;
        }
    };
    drop(s);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let resumed = format!("{path}&lastEventId={}", first.last_event_id);
    let mut back = SseStream::open(&server.url(&resumed), None).await;
    let rest = updates(&mut back).await;
    let progress: Vec<u64> = rest.iter().map(|(p, _, _)| *p).collect();
    let first_progress = serde_json::from_str::<Value>(&first.data).expect("JSON")["progress"]
        .as_u64()
        .expect("progress");
    // Every later step once, in order, ending at 100.
    let all: Vec<u64> = [0, 0, 20, 40, 60, 80, 100].into();
    let from = all
        .iter()
        .position(|p| *p == first_progress)
        .expect("a known step");
    assert_eq!(progress, all[from + 1..], "{rest:?}");
    assert_eq!(rest.last().map(|(_, s, _)| s.as_str()), Some("completed"));

    // Asked again with the final update's id: nothing more to say.
    let final_id = &rest.last().expect("final").2;
    let resp = reqwest::Client::new()
        .get(server.url(&format!("{path}&lastEventId={final_id}")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 204);
    // Asked without an id: the final state, with that id, and the end.
    let mut again = SseStream::open(&server.url(&path), None).await;
    let events = again.read_to_end().await;
    let last = events.last().expect("initial_status");
    assert!(last.data.contains("completed"), "{}", last.data);
    assert_eq!(&last.last_event_id, final_id);
}
