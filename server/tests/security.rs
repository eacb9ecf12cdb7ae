//! Attacks on a production-mode server (an HS256 secret set, dev mode off,
//! no anonymous publishing), one test each, over real HTTP. Each asserts
//! the refusal (status and JSON error) and that the protected bytes never
//! reached the attacker, while the legitimate readers get everything, once,
//! in order.

mod common;

use std::time::Duration;

use common::{quiet_config, read_json, SseStream, TestServer};
use herald_server::auth::Verifier;
use herald_server::jobs::{JobQueue, JobSettings};
use herald_server::state::AppState;
use herald_shared::wire::Frame;
use serde_json::{json, Value};

const SECRET: &[u8] = b"security test secret, comfortably longer than 32 bytes";

/// A production-mode server whose demo jobs take 5 × 40 ms, two at a time
/// per user.
async fn production() -> TestServer {
    TestServer::start_with_state(quiet_config(), None, |b| AppState {
        jobs: JobQueue::new(
            b.clone(),
            JobSettings {
                workers: 2,
                step: Duration::from_millis(40),
                max_per_user: 2,
                ..JobSettings::default()
            },
        ),
        ..AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await
}

/// A token for `sub` with the given claims.
fn token(sub: &str, subscribe: Option<&[&str]>, publish: Option<&[&str]>) -> String {
    let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
    Verifier::hs256(SECRET)
        .mint(sub, 600, list(subscribe), list(publish))
        .expect("mint")
}

fn user(sub: &str) -> String {
    token(sub, None, None)
}

/// GETs `path` as an `EventSource` would; a refusal's (status, body).
async fn refused(server: &TestServer, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    match &auth {
        Some(auth) => refused_with(server, path, &[("authorization", auth)]).await,
        None => refused_with(server, path, &[]).await,
    }
}

async fn refused_with(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .get(server.url(path))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    assert_ne!(resp.status(), 200, "{path} was served");
    read_json(resp).await
}

/// A backend allowed to publish anywhere.
fn service() -> String {
    token("backend", None, Some(&["*"]))
}

/// `<epoch>-0`: "I have seen nothing of this log", the widest replay.
fn from_the_start(an_id: &str) -> String {
    let (epoch, _) = an_id.split_once('-').expect("an event id");
    format!("{epoch}-0")
}

async fn post(server: &TestServer, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(server.url(path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    read_json(req.send().await.expect("request")).await
}

/// Opens a stream with a token (or none) and reads its first event.
async fn open(server: &TestServer, path: &str, bearer: Option<&str>) -> (SseStream, Value) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    match &auth {
        Some(auth) => open_with(server, path, &[("authorization", auth)]).await,
        None => open_with(server, path, &[]).await,
    }
}

/// Opens a stream with extra headers and reads its first event.
async fn open_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (SseStream, Value) {
    let mut req = reqwest::Client::new()
        .get(server.url(path))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut s = SseStream::request(req).await;
    let first = s.next_event().await;
    let data = serde_json::from_str(&first.data).unwrap_or(Value::Null);
    (s, data)
}

/// Everything `s` receives within `d`, as text (event names and data).
async fn everything_within(s: &mut SseStream, d: Duration) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, s.next_frame()).await {
        if let Frame::Event(e) = frame {
            seen.push_str(&format!("{}: {}\n", e.event, e.data));
        }
    }
    seen
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().expect("a JSON error")
}

#[tokio::test]
async fn the_side_doors_to_app_topics_are_shut() {
    let server = production().await;
    let alice = user("alice");
    let mallory = user("mallory");

    // Mallory keeps a plain stream open the whole time: nothing of alice's
    // may ever appear on it.
    let (mut mallory_stream, hello) = open(&server, "/_sse/connect", Some(&mallory)).await;
    let (mut anonymous_stream, anon_hello) = open(&server, "/_sse/connect", None).await;
    // Alice follows her jobs as the app documents.
    let (mut alice_jobs, _) = open(&server, "/api/v1/sse/jobs/my", Some(&alice)).await;

    let (status, job) = post(
        &server,
        "/api/v1/characters",
        Some(&alice),
        json!({"name": "ALICE-SECRET-CHARACTER"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["jobId"].as_str().expect("jobId").to_owned();

    // Without a token, the apps' topics need one: 401, on connect...
    for topic in [
        "jobs:alice",
        "chat:general",
        "notifications",
        "realtime",
        &format!("job:{job_id}"),
    ] {
        let (status, body) = refused(&server, &format!("/_sse/connect?topics={topic}"), None).await;
        assert_eq!(status, 401, "{topic}: {body}");
        assert!(error_of(&body).contains(topic), "{body}");
    }
    // ... with several at once, as the review tried ...
    let (status, _) = refused(
        &server,
        "/_sse/connect?topics=jobs:alice,chat:general,notifications,realtime",
        None,
    )
    .await;
    assert_eq!(status, 401);
    // ... and on subscribe.
    let (status, body) = post(
        &server,
        "/_sse/subscribe",
        None,
        json!({"clientId": anon_hello["clientId"], "secret": anon_hello["secret"], "topics": ["chat:general"]}),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // Another user gets 403 for alice's topics, on connect and subscribe.
    for topic in ["jobs:alice".to_owned(), format!("job:{job_id}")] {
        let (status, body) = refused(
            &server,
            &format!("/_sse/connect?topics={topic}"),
            Some(&mallory),
        )
        .await;
        assert_eq!(status, 403, "{topic}: {body}");
        let (status, body) = post(
            &server,
            "/_sse/subscribe",
            Some(&mallory),
            json!({"clientId": hello["clientId"], "secret": hello["secret"], "topics": [topic]}),
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    // The assigned topics are never requested, whoever asks.
    let (status, _) = refused(&server, "/_sse/connect?topics=user:alice", Some(&mallory)).await;
    assert_eq!(status, 403);

    // Alice gets her job from waiting to completed, each step once, in order.
    let mut progress = Vec::new();
    loop {
        let e = alice_jobs.next_event().await;
        let m: Value = serde_json::from_str(&e.data).expect("JSON");
        if m["type"] == "job_update" && m["jobId"] == job_id.as_str() {
            progress.push(m["progress"].as_u64().expect("progress"));
            if m["status"] == "completed" {
                assert!(m.to_string().contains("ALICE-SECRET-CHARACTER"));
                break;
            }
        }
    }
    assert_eq!(progress, [0, 0, 20, 40, 60, 80, 100]);

    // Nothing of it reached the others.
    for s in [&mut mallory_stream, &mut anonymous_stream] {
        let seen = everything_within(s, Duration::from_millis(200)).await;
        assert!(
            !seen.contains("ALICE-SECRET") && !seen.contains(&job_id),
            "{seen}"
        );
    }
}

#[tokio::test]
async fn a_token_without_a_publish_claim_publishes_nothing() {
    let server = production().await;
    let alice = user("alice");
    let bob = user("bob");
    let mallory = user("mallory");

    let (mut alice_jobs, _) = open(&server, "/api/v1/sse/jobs/my", Some(&alice)).await;
    let (mut bob_chat, _) = open(&server, "/chat/stream?room=general", Some(&bob)).await;
    let (mut anyone, _) = open(&server, "/_sse/connect", None).await;

    let attacks = [
        json!({"topic": "jobs:alice", "data": {"type": "job_update", "data": {"jobId": "FORGED", "status": "completed"}}}),
        json!({"topic": "chat:general", "event": "message", "data": {"userId": "alice", "message": "FORGED"}}),
        json!({"topic": "news", "data": "FORGED"}),
        json!({"target": {"userId": "alice"}, "data": "FORGED"}),
        json!({"data": "FORGED"}),
    ];
    for body in &attacks {
        let (status, answer) = post(&server, "/_sse/publish", Some(&mallory), body.clone()).await;
        assert_eq!(status, 403, "{body}: {answer}");
        assert!(error_of(&answer).contains("publish"), "{answer}");
    }
    // The notifier's send is the same publish.
    let (status, _) = post(
        &server,
        "/api/sse/send",
        Some(&mallory),
        json!({"type": "notification", "data": {"message": "FORGED"}, "target": {"userId": "alice"}}),
    )
    .await;
    assert_eq!(status, 403);

    // The server's own lifecycle events are published by nobody, not even
    // a token allowed to publish everywhere.
    let root = token("ops", None, Some(&["*"]));
    for name in ["connected", "reset", "heartbeat", "ping", "error", "open"] {
        let forged = json!({
            "event": name,
            "data": {"clientId": "victim", "secret": "FORGED", "retry": 1},
        });
        let (status, answer) = post(&server, "/_sse/publish", Some(&root), forged).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(error_of(&answer).contains("reserved"), "{answer}");
    }

    // A token whose claim names the topic may publish there.
    let jobs_service = token("jobs-service", None, Some(&["jobs:*"]));
    let (status, answer) = post(
        &server,
        "/_sse/publish",
        Some(&jobs_service),
        json!({"topic": "jobs:alice", "data": {"type": "note", "data": {"n": "LEGIT"}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // And bob's chat still works through the app, stamped with his name.
    let (status, _) = post(
        &server,
        "/chat/send",
        Some(&bob),
        json!({"roomId": "general", "message": "hello from bob"}),
    )
    .await;
    assert_eq!(status, 200);

    let alice_saw = everything_within(&mut alice_jobs, Duration::from_millis(300)).await;
    assert!(alice_saw.contains("LEGIT"), "{alice_saw}");
    let bob_saw = everything_within(&mut bob_chat, Duration::from_millis(300)).await;
    assert!(bob_saw.contains("hello from bob"), "{bob_saw}");
    let anyone_saw = everything_within(&mut anyone, Duration::from_millis(100)).await;
    for seen in [&alice_saw, &bob_saw, &anyone_saw] {
        assert!(!seen.contains("FORGED"), "{seen}");
    }
}

#[tokio::test]
async fn a_declared_session_proves_nothing() {
    let server = production().await;
    // The victim's browser: a session this server issued, in a cookie.
    let (mut victim, hello) = open(&server, "/_sse/connect", None).await;
    let session = hello["sessionId"].as_str().expect("a session").to_owned();
    let cookie = victim.session_cookie().expect("a session cookie");

    // Naming it is refused on both routes that take one, token or not.
    for path in [
        format!("/_sse/connect?sessionId={session}"),
        format!("/api/sse?clientId=x&sessionId={session}"),
    ] {
        for bearer in [None, Some(user("mallory"))] {
            let (status, body) = refused(&server, &path, bearer.as_deref()).await;
            assert_eq!(status, 403, "{path}: {body}");
            assert!(error_of(&body).contains("sessionId"), "{body}");
        }
    }
    // A forged cookie is no session: the caller gets a new one of its own.
    let forged = format!("herald_session={session}.{}", "0".repeat(64));
    let (mut attacker, theirs) = open_with(&server, "/_sse/connect", &[("cookie", &forged)]).await;
    assert_ne!(theirs["sessionId"], session.as_str());

    let (status, _) = post(
        &server,
        "/_sse/publish",
        Some(&service()),
        json!({"target": {"sessionId": session}, "data": "SESSION-PRIVATE"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(victim.next_event().await.data, "SESSION-PRIVATE");
    let seen = everything_within(&mut attacker, Duration::from_millis(200)).await;
    assert!(!seen.contains("SESSION-PRIVATE"), "{seen}");

    // Seed 001's `?clientId&sessionId` keeps working for its owner: the
    // browser that holds the session names it.
    let path = format!("/api/sse?clientId=mine&sessionId={session}");
    let (mut notifier, hello) = open_with(&server, &path, &[("cookie", &cookie)]).await;
    assert_eq!(hello["sessionId"], session.as_str());
    post(
        &server,
        "/api/sse/send",
        Some(&service()),
        json!({"type": "notification", "data": {"message": "hi"}, "target": {"sessionId": session}}),
    )
    .await;
    assert_eq!(
        notifier.next_named("notification").await.data,
        r#"{"message":"hi"}"#
    );
}

#[tokio::test]
async fn a_client_id_is_taken_over_only_with_proof() {
    let server = production().await;
    let (mut victim, hello) = open(&server, "/_sse/connect?clientId=tab-1", None).await;
    let cookie = victim.session_cookie().expect("a session cookie");
    let secret = hello["secret"].as_str().expect("secret").to_owned();
    let send = |data: &'static str| {
        let server = &server;
        async move {
            let body = json!({"target": {"clientId": "tab-1"}, "data": data});
            let (status, answer) = post(server, "/_sse/publish", Some(&service()), body).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    send("BEFORE").await;
    let before = victim.next_event().await.last_event_id;

    // While the victim is connected, nobody else gets its id.
    for (path, bearer) in [
        ("/_sse/connect?clientId=tab-1", None),
        ("/api/sse?clientId=tab-1", None),
        ("/_sse/connect?clientId=tab-1", Some(user("mallory"))),
    ] {
        let (status, body) = refused(&server, path, bearer.as_deref()).await;
        assert_eq!(status, 409, "{path}: {body}");
        assert!(error_of(&body).contains("in use"), "{body}");
    }
    // Nor once it dropped, with its history in reach.
    drop(victim);
    server.wait_for_clients(0).await;
    send("WHILE-AWAY").await;
    let widest = from_the_start(&before);
    let (status, body) = refused_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[("last-event-id", &widest)],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(!body.to_string().contains("WHILE-AWAY"));
    let wrong = refused_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[("x-herald-secret", "guess")],
    )
    .await;
    assert_eq!(wrong.0, 409);

    // Its browser comes back (the session cookie) and resumes, same secret.
    let (mut back, again) = open_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[("cookie", &cookie), ("last-event-id", &before)],
    )
    .await;
    assert_eq!(again["secret"], secret.as_str());
    assert_eq!(back.next_event().await.data, "WHILE-AWAY");
    drop(back);
    server.wait_for_clients(0).await;
    // Or anything holding its secret (curl, the query form too).
    let (_curl, _) = open_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[("x-herald-secret", &secret)],
    )
    .await;
    let (_query, _) = open(
        &server,
        &format!("/_sse/connect?clientId=tab-1&secret={secret}"),
        None,
    )
    .await;

    // A user's id: the same user continues it from anywhere, nobody else.
    let (_alice, _) = open(
        &server,
        "/_sse/connect?clientId=alice-tab",
        Some(&user("alice")),
    )
    .await;
    let (status, _) = refused(
        &server,
        "/_sse/connect?clientId=alice-tab",
        Some(&user("mallory")),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = refused(&server, "/_sse/connect?clientId=alice-tab", None).await;
    assert_eq!(status, 409);
    let (_alice_again, _) = open(
        &server,
        "/_sse/connect?clientId=alice-tab",
        Some(&user("alice")),
    )
    .await;
}

/// The reported attack: an anonymous connect hands mallory session cookie
/// C, and C ends up in alice's browser (a sibling subdomain, plain http, a
/// shared machine). Alice connects as `tab-1` with her token (and C, which
/// her browser sends); mallory then asks for `tab-1` with his token and C.
/// He must get a 409 and none of her bytes: a cookie proves its session
/// only to whom it was issued, and a signed-in user's client id is
/// continued only by that user or its secret.
#[tokio::test]
async fn a_planted_session_cookie_borrows_no_identity() {
    let server = production().await;
    let (planted, _) = open(&server, "/_sse/connect", None).await;
    let c = planted.session_cookie().expect("mallory's session cookie");
    drop(planted);

    let alice = user("alice");
    let (mut alices, hello) = open_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("cookie", &c),
        ],
    )
    .await;
    let secret = hello["secret"].as_str().expect("secret").to_owned();
    // C is not hers: she got a session of her own.
    let hers = alices.session_cookie().expect("a new session for alice");
    assert_ne!(hers, c);

    for (who, headers) in [
        (
            "mallory's token + C",
            vec![
                ("authorization", format!("Bearer {}", user("mallory"))),
                ("cookie", c.clone()),
            ],
        ),
        ("C alone", vec![("cookie", c.clone())]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Seed 001's stream asks the same question of the same claim.
        for path in ["/_sse/connect?clientId=tab-1", "/api/sse?clientId=tab-1"] {
            let (status, body) = refused_with(&server, path, &headers).await;
            assert_eq!(status, 409, "{who} on {path}: {body}");
            assert!(!body.to_string().contains(&secret), "{who}: {body}");
        }
    }
    // Alice's stream is still hers and still flows.
    let (status, answer) = post(
        &server,
        "/_sse/publish",
        Some(&service()),
        json!({"target": {"clientId": "tab-1"}, "data": "for alice"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(alices.next_event().await.data, "for alice");
    // Her own cookie, with her token, continues her id; without the token
    // it proves nothing for her account.
    let (status, _) = refused_with(
        &server,
        "/_sse/connect?clientId=tab-1",
        &[("cookie", &hers)],
    )
    .await;
    assert_eq!(status, 409);
}

/// Session cookies end (`--session-ttl-secs`) and are re-issued as they
/// age; one issued to a user proves nothing to another.
#[tokio::test]
async fn session_cookies_end_age_and_belong_to_their_user() {
    // Cookies count whole seconds: a lifetime of 6 s, and waits that stay
    // clear of the second boundaries either side.
    let verifier = Verifier::hs256(SECRET).session_rules(
        Duration::from_secs(6),
        herald_server::auth::CookieSecure::Always,
    );
    let server = TestServer::start_with_state(quiet_config(), None, move |b| {
        AppState::with_auth(b, verifier)
    })
    .await;
    let (first, hello) = open(&server, "/_sse/connect?clientId=tab-9", None).await;
    let set_cookie = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_owned();
    assert!(
        set_cookie.contains("Max-Age=6") && set_cookie.ends_with("; Secure"),
        "{set_cookie}"
    );
    let cookie = first.session_cookie().expect("a cookie");
    let sid = hello["sessionId"].as_str().expect("sessionId").to_owned();
    drop(first);
    server.wait_for_clients(0).await;

    // Within its life the browser continues its id; past half of it the
    // same session comes back with a new life.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (again, hello) = open_with(
        &server,
        "/_sse/connect?clientId=tab-9",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(hello["sessionId"], sid.as_str());
    let renewed = again.session_cookie().expect("re-issued while aging");
    assert_ne!(renewed, cookie);
    drop(again);
    server.wait_for_clients(0).await;

    // Past its life the old cookie proves nothing: a new session, and the
    // id it held stays its owner's.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (status, body) = refused_with(
        &server,
        "/_sse/connect?clientId=tab-9",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (fresh, hello) = open_with(&server, "/_sse/connect", &[("cookie", &cookie)]).await;
    assert_ne!(hello["sessionId"], sid.as_str());
    assert!(fresh.session_cookie().is_some());
    // The renewed one still works.
    let (_, hello) = open_with(
        &server,
        "/_sse/connect?clientId=tab-9",
        &[("cookie", &renewed)],
    )
    .await;
    assert_eq!(hello["sessionId"], sid.as_str());

    // Alice's cookie, presented by bob: bob gets a session of his own.
    let (alices, hello) = open(&server, "/_sse/connect", Some(&user("alice"))).await;
    let (alice_cookie, alice_sid) = (
        alices.session_cookie().expect("cookie"),
        hello["sessionId"].clone(),
    );
    let (_, hello) = open_with(
        &server,
        "/_sse/connect",
        &[
            ("authorization", &format!("Bearer {}", user("bob"))),
            ("cookie", &alice_cookie),
        ],
    )
    .await;
    assert_ne!(hello["sessionId"], alice_sid);
}

/// An idempotency key is its publisher's: another publisher's event with
/// the same key is its own event, and a retry is recognised on every topic
/// of the event, not only its first.
#[tokio::test]
async fn idempotency_keys_are_scoped_to_their_publisher() {
    let server = production().await;
    let (mut reader, _) = open(
        &server,
        "/_sse/connect?topics=orders,audit",
        Some(&user("bob")),
    )
    .await;
    let (one, two) = (
        token("shop", None, Some(&["*"])),
        token("rival", None, Some(&["*"])),
    );
    let send = |bearer: String, body: Value| {
        let server = &server;
        async move {
            let (status, answer) = post(server, "/_sse/publish", Some(&bearer), body).await;
            assert_eq!(status, 200, "{answer}");
            answer["id"].as_str().expect("id").to_owned()
        }
    };
    let first = send(
        one.clone(),
        json!({"target": {"userId": "bob"}, "data": "order 7", "id": "k-7"}),
    )
    .await;
    // The rival sends first with the shop's next key: it suppresses nothing.
    let rivals = send(
        two.clone(),
        json!({"topic": "orders", "data": "rival", "id": "k-8"}),
    )
    .await;
    let eighth = send(
        one.clone(),
        json!({"topic": "orders", "data": "order 8", "id": "k-8"}),
    )
    .await;
    assert_ne!(rivals, eighth);
    // A retry of k-7 that now also names another topic first is the same event.
    let retry = send(
        one.clone(),
        json!({"topic": "audit", "target": {"userId": "bob"}, "data": "order 7", "id": "k-7"}),
    )
    .await;
    assert_eq!(retry, first);
    let seen: Vec<String> = [
        reader.next_event().await,
        reader.next_event().await,
        reader.next_event().await,
    ]
    .into_iter()
    .map(|e| e.data)
    .collect();
    assert_eq!(seen, ["order 7", "rival", "order 8"]);
    reader.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_newcomer_to_a_released_id_never_sees_its_past() {
    // History and the id's keep period: 2 s.
    let server = TestServer::start_with_auth(
        herald_server::broker::BrokerConfig {
            history: herald_server::broker::HistoryLimits {
                max_age: Duration::from_secs(2),
                ..Default::default()
            },
            ..quiet_config()
        },
        Verifier::hs256(SECRET),
    )
    .await;
    let (mut owner, _) = open(&server, "/_sse/connect?clientId=tab-2", None).await;
    post(
        &server,
        "/_sse/publish",
        Some(&service()),
        json!({"target": {"clientId": "tab-2"}, "data": "FIRST"}),
    )
    .await;
    let first = owner.next_event().await.last_event_id;
    drop(owner);
    server.wait_for_clients(0).await;
    let released = tokio::time::Instant::now();

    // Sent late in the keep period: still in history after the id is free.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    post(
        &server,
        "/_sse/publish",
        Some(&service()),
        json!({"target": {"clientId": "tab-2"}, "data": "LATE"}),
    )
    .await;
    tokio::time::sleep_until(released + Duration::from_millis(2600)).await;

    let widest = from_the_start(&first);
    let (mut newcomer, _) = open_with(
        &server,
        "/_sse/connect?clientId=tab-2",
        &[("last-event-id", &widest)],
    )
    .await;
    let seen = everything_within(&mut newcomer, Duration::from_millis(300)).await;
    assert!(!seen.contains("LATE") && !seen.contains("FIRST"), "{seen}");
}

/// A production-mode server with `config` and a publish rate of its own.
async fn production_with(
    config: herald_server::broker::BrokerConfig,
    rate: Option<(f64, u32)>,
) -> TestServer {
    TestServer::start_with_state(config, None, move |b| {
        let state = AppState::with_auth(b, Verifier::hs256(SECRET));
        match rate {
            Some((rate, burst)) => AppState {
                publish_limit: std::sync::Arc::new(herald_server::ratelimit::RateLimiter::new(
                    rate, burst,
                )),
                ..state
            },
            None => state,
        }
    })
    .await
}

#[tokio::test]
async fn topics_per_connection_are_capped() {
    let server = production_with(
        herald_server::broker::BrokerConfig {
            max_topics: 3,
            ..quiet_config()
        },
        None,
    )
    .await;
    let (status, body) = refused(&server, "/_sse/connect?topics=a,b,c,d", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("limit 3"), "{body}");
    // Repeats are one topic.
    let (_s, hello) = open(&server, "/_sse/connect?topics=a,a,b,b", None).await;
    let subscribe = |topics: Value| {
        post(
            &server,
            "/_sse/subscribe",
            None,
            json!({"clientId": hello["clientId"], "secret": hello["secret"], "topics": topics}),
        )
    };
    assert_eq!(subscribe(json!(["c", "a"])).await.0, 200);
    let (status, body) = subscribe(json!(["d"])).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("limit 3"), "{body}");

    // Chat rooms: repeats joined once, and the same cap.
    let bob = user("bob");
    let (mut chat, _) = open(&server, "/chat/stream?room=r1,r1,r2,r1", Some(&bob)).await;
    let seen = everything_within(&mut chat, Duration::from_millis(300)).await;
    assert_eq!(seen.matches("user-joined").count(), 2, "{seen}");
    let (status, body) = refused(&server, "/chat/stream?room=r1,r2,r3,r4", Some(&bob)).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn chat_presence_counts_against_the_publish_rate() {
    // One publish a second, bursts of four: a stream in one room costs
    // two (its join now, its leave later).
    let server = production_with(quiet_config(), Some((1.0, 4))).await;
    let mallory = user("mallory");
    let (mut watcher, _) = open(&server, "/chat/stream?room=general", Some(&user("bob"))).await;
    // A reconnect loop: two streams use mallory's burst, the third waits.
    let mut loops = Vec::new();
    for _ in 0..2 {
        loops.push(open(&server, "/chat/stream?room=general", Some(&mallory)).await);
    }
    let (status, body) = refused(&server, "/chat/stream?room=general", Some(&mallory)).await;
    assert_eq!(status, 429, "{body}");
    // So is a message: presence and messages share one budget.
    let (status, _) = post(
        &server,
        "/chat/send",
        Some(&mallory),
        json!({"roomId": "general", "message": "spam"}),
    )
    .await;
    assert_eq!(status, 429);
    let seen = everything_within(&mut watcher, Duration::from_millis(300)).await;
    // Bob's own join and mallory's two; nothing of the refused ones.
    assert_eq!(seen.matches("user-joined").count(), 3, "{seen}");
    assert!(!seen.contains("spam"), "{seen}");
}

#[tokio::test]
async fn anonymous_streams_are_limited_per_address() {
    let server = production_with(
        herald_server::broker::BrokerConfig {
            max_connections_per_ip: 3,
            ..quiet_config()
        },
        None,
    )
    .await;
    // Three anonymous streams from this address, on three routes.
    let first = open(&server, "/_sse/connect", None).await;
    let _second = SseStream::open(&server.url("/sse"), None).await;
    let _third = SseStream::open(&server.url("/system/status/stream"), None).await;
    for path in ["/_sse/connect", "/sse", "/api/sse"] {
        let (status, body) = refused(&server, path, None).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert!(error_of(&body).contains("address"), "{body}");
    }
    // A user counts per user, not per address.
    let _alice = open(&server, "/_sse/connect", Some(&user("alice"))).await;
    // A closed stream frees its slot.
    drop(first);
    server.wait_for_clients(3).await;
    let _again = open(&server, "/_sse/connect", None).await;
}

#[tokio::test]
async fn jobs_are_bounded_per_user() {
    let server = production().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let create = |token: String| {
        let server = &server;
        async move {
            post(
                server,
                "/api/v1/media",
                Some(&token),
                json!({"prompt": "a lighthouse"}),
            )
            .await
        }
    };
    assert_eq!(create(alice.clone()).await.0, 202);
    assert_eq!(create(alice.clone()).await.0, 202);
    let (status, body) = create(alice.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert!(error_of(&body).contains("limit 2"), "{body}");
    // Others are not starved.
    assert_eq!(create(bob).await.0, 202);
    // Once alice's jobs finish, she may queue again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = create(alice.clone()).await;
        if status == 202 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_evicted_subscriber_is_gone_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Stalled writes time out only after a minute: whatever releases the
    // stalled clients below within seconds is the eviction itself.
    let server = TestServer::start_with_options(
        herald_server::broker::BrokerConfig {
            event_buffer_size: 32,
            ..quiet_config()
        },
        Some(Duration::from_secs(60)),
        herald_server::net::ServeOptions::default(),
        |b| AppState::with_auth(b, Verifier::hs256(SECRET)),
    )
    .await;
    let (mut fast, _) = open(&server, "/_sse/connect?topics=hot", None).await;
    // Twenty clients that read their greeting, then never again, with
    // receive buffers of 4 KiB.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut tcp = socket.connect(server.addr).await.expect("connect");
        let head = format!(
            "GET /_sse/connect?clientId=stalled-{i}&topics=hot HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("request");
        stalled.push(tcp);
    }
    server.wait_for_clients(21).await;

    // More than the kernel buffers of a stalled connection take.
    let payload = "x".repeat(64 * 1024);
    let total = 200;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < total {
            got.push(fast.next_event().await.last_event_id);
        }
        (got, fast)
    });
    let ids = server.publish_burst("hot", &payload, total).await;
    let (got, _fast) = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the fast reader stalled")
        .expect("join");
    assert_eq!(got, ids, "the fast reader lost or reordered events");

    // Released at once: registrations, slots and sockets, counted once each
    // although every one of them was on four topics and more events came.
    let released = tokio::time::timeout(Duration::from_secs(3), server.wait_for_clients(1)).await;
    assert!(
        released.is_ok(),
        "evicted clients still registered: {} clients, {} evictions",
        server.broker.client_count(),
        server.broker.stats().evictions
    );
    for _ in 0..20 {
        server
            .broker
            .broadcast(herald_shared::wire::Event::data("more"))
            .await
            .expect("publish");
    }
    assert_eq!(server.broker.stats().evictions, 20);
    for mut tcp in stalled {
        // Whatever was buffered, then the end (a close or a reset).
        let mut sink = vec![0u8; 64 * 1024];
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match tcp.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an evicted client's socket is still open");
    }
}

/// Resident memory of a process, from `/proc` (Linux), in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test]
async fn a_resume_that_is_never_read_pins_little_memory() {
    use tokio::io::AsyncWriteExt;
    if !cfg!(target_os = "linux") {
        return;
    }
    let secret = std::str::from_utf8(SECRET).expect("utf8");
    let node = common::Node::start(&["--jwt-secret", secret, "--publish-rate", "0"]).await;
    // 300 events of 32 KiB in history: 9.4 MiB.
    let big = "x".repeat(32 * 1024);
    let client = reqwest::Client::new();
    let mut first = None;
    for _ in 0..300 {
        let resp = client
            .post(node.url("/_sse/publish"))
            .bearer_auth(service())
            .json(&json!({"topic": "big", "data": big}))
            .send()
            .await
            .expect("publish");
        let (status, body) = read_json(resp).await;
        assert_eq!(status, 200, "{body}");
        first.get_or_insert(body["id"].as_str().expect("id").to_owned());
    }
    let widest = from_the_start(first.as_deref().expect("an id"));
    let pid = node.process.0.id();
    let before = rss_of(pid);

    // Thirty clients resume from the start and never read a byte, with
    // 4 KiB receive buffers.
    let mut idle = Vec::new();
    for _ in 0..30 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut tcp = socket
            .connect(node.addr.parse().expect("addr"))
            .await
            .expect("connect");
        let head = format!(
            "GET /_sse/connect?topics=big HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: {widest}\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("request");
        idle.push(tcp);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = reqwest::get(node.url("/_sse/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON");
        if stats["clientCount"] == 30 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every stream write what its socket takes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_of(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} KiB → {} KiB: +{} KiB for 30 stalled resumes of 9.4 MiB each",
        before / 1024,
        after / 1024,
        grown / 1024
    );
    // Queued whole, each would hold its history and the megabytes of a
    // first write the socket could not take: hundreds of MiB.
    assert!(grown < 32 * 1024 * 1024, "+{} KiB", grown / 1024);
    drop(idle);
}

#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with_state(quiet_config(), None, |b| AppState {
        body_timeout: Some(Duration::from_millis(500)),
        ..AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /_sse/publish HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        service()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(2).any(|w| w == b"}\"") || answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the trickled body was never cut off");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#"{"error":"#), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server keeps serving.
    let (status, _) = post(
        &server,
        "/_sse/publish",
        Some(&service()),
        json!({"data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tokens_in_any_spelling_are_read_and_any_bearer_case_works() {
    let server = production().await;
    let alice = user("alice");
    // `tok%65n` is `token` once decoded: accepted (so logs must hide it too).
    let (_s, hello) = open(&server, &format!("/_sse/connect?tok%65n={alice}"), None).await;
    assert_eq!(hello["userId"], "alice");
    assert_eq!(
        herald_server::auth::redact_query(&format!("tok%65n={alice}&topics=a")),
        "tok%65n=REDACTED&topics=a"
    );
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {alice}");
        let (_s, hello) = open_with(&server, "/_sse/connect", &[("authorization", &auth)]).await;
        assert_eq!(hello["userId"], "alice", "{scheme}");
    }
}

#[tokio::test]
async fn the_plain_broadcast_stream_honours_the_configured_origin() {
    let server = TestServer::start_with_state(quiet_config(), None, |b| AppState {
        cors_origin: Some("https://app.example".into()),
        ..AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await;
    for path in ["/sse", "/_sse/connect"] {
        let s = SseStream::open(&server.url(path), None).await;
        assert_eq!(
            s.headers["access-control-allow-origin"], "https://app.example",
            "{path}"
        );
    }
}

#[tokio::test]
async fn legitimate_readers_get_everything_in_order_while_the_attacks_run() {
    let server = production().await;
    let (mut reader, hello) =
        open(&server, "/_sse/connect?topics=news", Some(&user("reader"))).await;
    let victim_session = hello["sessionId"].as_str().expect("session").to_owned();
    let publisher = {
        let url = server.url("/_sse/publish");
        let token = token("newsroom", None, Some(&["news"]));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 1..=200 {
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"topic": "news", "data": i.to_string()}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(resp.status(), 200);
            }
        })
    };
    let attacker = {
        let base = format!("http://{}", server.addr);
        let mallory = user("mallory");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut refused = 0;
            for _ in 0..40 {
                let attempts = [
                    client
                        .post(format!("{base}/_sse/publish"))
                        .bearer_auth(&mallory)
                        .json(&json!({"topic": "news", "data": "FORGED"})),
                    client
                        .post(format!("{base}/_sse/publish"))
                        .json(&json!({"topic": "news", "event": "connected", "data": "FORGED"})),
                    client
                        .get(format!("{base}/_sse/connect?sessionId={victim_session}"))
                        .header("accept", "text/event-stream"),
                    client
                        .get(format!(
                            "{base}/_sse/connect?topics=jobs:reader,chat:general"
                        ))
                        .header("accept", "text/event-stream"),
                ];
                for attempt in attempts {
                    let status = attempt.send().await.expect("attack").status();
                    assert!(status.is_client_error(), "{status}");
                    refused += 1;
                }
            }
            refused
        })
    };
    let mut got = Vec::new();
    while got.len() < 200 {
        let e = reader.next_event().await;
        assert_ne!(e.event, "connected", "a forged lifecycle event arrived");
        got.push(e.data.parse::<u32>().expect("only the newsroom's numbers"));
    }
    assert_eq!(got, (1..=200).collect::<Vec<_>>());
    publisher.await.expect("publisher");
    assert_eq!(attacker.await.expect("attacker"), 160);
    reader.expect_silence(Duration::from_millis(200)).await;
}
