//! Job progress, replaying its documentation: a job created over HTTP, its
//! stream (`connected`, `initial_status`, `job_update` per step, then the
//! stream ends), a failing job's `failedReason`, the caller's all-jobs
//! stream, the polling route, and the owner checks (403, 404, 401).

mod common;

use std::time::Duration;

use common::{quiet_config, read_json, SseStream, TestServer};
use herald_server::auth::Verifier;
use herald_server::jobs::{JobQueue, JobSettings};
use herald_server::state::AppState;
use herald_shared::wire::Frame;
use serde_json::{json, Value};

const SECRET: &[u8] = b"jobs test secret, comfortably longer than 32 bytes";

async fn server(step: Duration) -> TestServer {
    TestServer::start_with_state(quiet_config(), None, move |b| AppState {
        jobs: JobQueue::new(
            b.clone(),
            JobSettings {
                workers: 2,
                step,
                ..JobSettings::default()
            },
        ),
        ..AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await
}

fn jwt(sub: &str) -> String {
    Verifier::hs256(SECRET)
        .mint(sub, 600, None, None)
        .expect("mint")
}

async fn create(server: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 202, "{body}");
    body
}

/// Every message of a stream until the server ends it (unnamed events only).
async fn messages(server: &TestServer, path: &str, token: &str) -> Vec<Value> {
    let mut s = SseStream::request(
        reqwest::Client::new()
            .get(server.url(path))
            .bearer_auth(token),
    )
    .await;
    let mut out = Vec::new();
    while let Some(frame) = s.next_frame().await {
        if let Frame::Event(e) = frame {
            if e.event == "message" {
                out.push(serde_json::from_str(&e.data).expect("JSON"));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_jobs_stream_goes_from_connected_to_completed_and_ends() {
    let server = server(Duration::from_millis(30)).await;
    let alice = jwt("alice");
    let job = create(
        &server,
        &alice,
        "/api/v1/characters",
        json!({"name": "Character Name"}),
    )
    .await;
    let id = job["jobId"].as_str().expect("jobId").to_owned();
    assert_eq!(job["streamUrl"], format!("/api/v1/sse/jobs/character/{id}"));

    let got = messages(&server, &format!("/api/v1/sse/jobs/character/{id}"), &alice).await;
    assert_eq!(
        got[0],
        json!({"type": "connected", "jobId": id, "message": "Connected to job status stream"})
    );
    assert_eq!(got[1]["type"], "initial_status");
    let updates = &got[2..];
    assert!(updates
        .iter()
        .all(|m| m["type"] == "job_update" && m["jobId"] == id.as_str()));
    // Progress only grows, and the last message is the completion.
    let progress: Vec<u64> = std::iter::once(&got[1])
        .chain(updates)
        .map(|m| m["progress"].as_u64().expect("progress"))
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    let last = got.last().expect("messages");
    assert_eq!(last["status"], "completed");
    assert_eq!(last["progress"], 100);
    assert_eq!(last["result"]["name"], "Character Name");
    assert!(last["result"]["characterId"].is_string());
    assert!(last["completedAt"].is_string());

    // A finished job's stream says how it ended, and ends.
    let again = messages(&server, &format!("/api/v1/sse/jobs/character/{id}"), &alice).await;
    assert_eq!(again.len(), 2);
    assert_eq!(again[1]["type"], "initial_status");
    assert_eq!(again[1]["status"], "completed");

    // Polling sees the same.
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/characters/jobs/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("poll");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "completed");
    assert_eq!(body["data"]["jobId"], id.as_str());
}

#[tokio::test]
async fn a_failing_job_reports_its_reason_and_ends() {
    let server = server(Duration::from_millis(20)).await;
    let alice = jwt("alice");
    let job = create(
        &server,
        &alice,
        "/api/v1/media",
        json!({"prompt": "a cat", "fail": true}),
    )
    .await;
    let id = job["jobId"].as_str().expect("jobId");
    let got = messages(&server, &format!("/api/v1/sse/jobs/media/{id}"), &alice).await;
    let last = got.last().expect("messages");
    assert_eq!(last["type"], "job_update");
    assert_eq!(last["status"], "failed");
    let reason = last["failedReason"].as_str().expect("failedReason");
    assert_eq!(last["result"]["error"], reason);
}

#[tokio::test]
async fn a_stream_opened_mid_job_starts_from_its_current_state_without_gaps() {
    let server = server(Duration::from_millis(150)).await;
    let alice = jwt("alice");
    let job = create(
        &server,
        &alice,
        "/api/v1/characters",
        json!({"name": "Ada"}),
    )
    .await;
    let id = job["jobId"].as_str().expect("jobId");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = messages(&server, &format!("/api/v1/sse/jobs/character/{id}"), &alice).await;
    let initial = &got[1];
    assert_eq!(initial["status"], "active");
    assert!(
        initial["progress"].as_u64().expect("progress") >= 20,
        "{initial}"
    );
    // Every step after the initial state arrives once, in order.
    let after: Vec<u64> = got[2..]
        .iter()
        .map(|m| m["progress"].as_u64().expect("progress"))
        .collect();
    let start = initial["progress"].as_u64().expect("progress");
    let expected: Vec<u64> = [0, 20, 40, 60, 80, 100]
        .into_iter()
        .filter(|p| *p > start)
        .collect();
    assert_eq!(after, expected);
}

#[tokio::test]
async fn my_jobs_streams_every_job_of_the_caller_only() {
    let server = server(Duration::from_millis(20)).await;
    let alice = jwt("alice");
    let mut mine = SseStream::request(
        reqwest::Client::new()
            .get(server.url("/api/v1/sse/jobs/my"))
            .bearer_auth(&alice),
    )
    .await;
    let first = mine.next_event().await;
    assert_eq!(
        serde_json::from_str::<Value>(&first.data).expect("JSON")["type"],
        "connected"
    );
    let a = create(&server, &alice, "/api/v1/characters", json!({"name": "A"})).await;
    create(
        &server,
        &jwt("bob"),
        "/api/v1/characters",
        json!({"name": "B"}),
    )
    .await;
    let mut completed = false;
    while !completed {
        let m: Value = serde_json::from_str(&mine.next_event().await.data).expect("JSON");
        assert_eq!(m["jobId"], a["jobId"], "only alice's jobs");
        completed = m["status"] == "completed";
    }
}

/// What others published on `jobs:alice` before her stream opened (a
/// token whose publish claim names the topic may) is history, not news: a
/// fresh stream goes live after it, and numbers on from there.
#[tokio::test]
async fn a_fresh_my_jobs_stream_does_not_replay_what_came_before_it() {
    let server = server(Duration::from_millis(20)).await;
    let publisher = Verifier::hs256(SECRET)
        .mint("ops", 600, None, Some(vec!["jobs:*".to_owned()]))
        .expect("mint");
    let publish = |n: u32| {
        let (server, publisher) = (&server, &publisher);
        async move {
            let resp = reqwest::Client::new()
                .post(server.url("/_sse/publish"))
                .bearer_auth(publisher)
                .json(&json!({"topic": "jobs:alice", "event": "note", "data": n.to_string()}))
                .send()
                .await
                .expect("publish");
            let (status, body) = read_json(resp).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    publish(1).await;
    publish(2).await;
    let mut mine = SseStream::request(
        reqwest::Client::new()
            .get(server.url("/api/v1/sse/jobs/my"))
            .bearer_auth(jwt("alice")),
    )
    .await;
    let first = mine.next_event().await;
    assert_eq!(
        serde_json::from_str::<Value>(&first.data).expect("JSON")["type"],
        "connected"
    );
    publish(3).await;
    let note = mine.next_named("note").await;
    assert_eq!(note.data, "3", "1 and 2 came before the stream");
}

#[tokio::test]
async fn only_the_owner_may_follow_a_job() {
    let server = server(Duration::from_millis(200)).await;
    let alice = jwt("alice");
    let job = create(&server, &alice, "/api/v1/characters", json!({"name": "A"})).await;
    let id = job["jobId"].as_str().expect("jobId");
    let client = reqwest::Client::new();
    let cases = [
        (
            format!("/api/v1/sse/jobs/character/{id}"),
            Some(jwt("mallory")),
            403,
        ),
        (
            format!("/api/v1/characters/jobs/{id}"),
            Some(jwt("mallory")),
            403,
        ),
        (format!("/api/v1/sse/jobs/character/{id}"), None, 401),
        (
            format!("/api/v1/sse/jobs/media/{id}"),
            Some(alice.clone()),
            404,
        ),
        (
            "/api/v1/sse/jobs/character/nope".to_owned(),
            Some(alice.clone()),
            404,
        ),
        (
            format!("/api/v1/sse/jobs/video/{id}"),
            Some(alice.clone()),
            404,
        ),
    ];
    for (path, token, expected) in cases {
        let mut req = client.get(server.url(&path));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let (status, body) = read_json(req.send().await.expect("get")).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    // Creating needs a token and a valid body.
    let resp = client
        .post(server.url("/api/v1/characters"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 401);
    for body in [json!({"name": ""}), json!({"nom": "x"}), json!({"name": 3})] {
        let resp = client
            .post(server.url("/api/v1/characters"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 400, "{body}");
    }
}

/// Seed 003: a job's stream carries that job's messages only. Unnamed events
/// sent to the owner meanwhile (e.g. by a notifier) are not job messages and
/// must not arrive here.
#[tokio::test]
async fn seed003_job_stream_carries_job_messages_only() {
    use herald_shared::wire::Event;
    let server = server(Duration::from_millis(40)).await;
    let alice = jwt("alice");
    let job = create(&server, &alice, "/api/v1/characters", json!({"name": "A"})).await;
    let id = job["jobId"].as_str().expect("jobId").to_owned();
    let path = format!("/api/v1/sse/jobs/character/{id}");
    let broker = server.broker.clone();
    let noise = tokio::spawn(async move {
        for i in 0..20 {
            let _ = broker
                .publish("user:alice", Event::data(format!(r#"{{"note":{i}}}"#)))
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let got = messages(&server, &path, &alice).await;
    noise.await.expect("noise");
    assert!(got.iter().all(|m| m["jobId"] == id.as_str()), "{got:?}");
    assert_eq!(got.last().expect("messages")["status"], "completed");
}
