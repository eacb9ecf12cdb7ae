//! The browser layer in real headless Chromium (wasm-bindgen-test), against
//! real Herald servers started by `scripts/test.sh` in dev mode (the
//! documented demo tokens work, anyone may publish to open topics): one
//! with heartbeats off, one with them every 2 s:
//!
//! ```sh
//! herald-server --addr 127.0.0.1:3217 --heartbeat-secs 0 --dev --job-step-ms 100 &
//! herald-server --addr 127.0.0.1:3218 --heartbeat-secs 2 --dev &
//! HERALD_TEST_URL=http://127.0.0.1:3217 HERALD_TEST_BEAT_URL=http://127.0.0.1:3218 \
//!   WASM_BINDGEN_TEST_TIMEOUT=300 cargo test -p herald-client --target wasm32-unknown-unknown
//! ```
//!
//! Every test that can runs with both transports (`EventSource` and fetch).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use herald_client::{SSEClient, SseConfig, SseError, SseState, Transport};
use herald_shared::events::{Alert, AlertLevel, Connected};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const BOTH: [Transport; 2] = [Transport::EventSource, Transport::Fetch];

fn server() -> &'static str {
    option_env!("HERALD_TEST_URL").unwrap_or("http://127.0.0.1:3217")
}

async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = web_sys::window()
            .expect("window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Polls `cond` every 20 ms for up to 5 s.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..250 {
        if cond() {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for {what}");
}

/// The documented demo token (dev mode) of user `id`.
fn demo_token(id: &str) -> String {
    web_sys::window()
        .expect("window")
        .btoa(&format!("{id}:{id}:{id}@test.invalid:user"))
        .expect("btoa")
}

/// POSTs JSON to `path` (with a token if given); returns (status, body).
async fn post(
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.to_string().into());
    let headers = web_sys::Headers::new().expect("headers");
    headers
        .set("Content-Type", "application/json")
        .expect("set");
    if let Some(t) = token {
        headers
            .set("Authorization", &format!("Bearer {t}"))
            .expect("set");
    }
    init.set_headers(&headers);
    let window = web_sys::window().expect("window");
    let resp =
        JsFuture::from(window.fetch_with_str_and_init(&format!("{}{path}", server()), &init))
            .await
            .expect("fetch");
    let resp: web_sys::Response = resp.dyn_into().expect("response");
    let text = JsFuture::from(resp.text().expect("text"))
        .await
        .expect("body")
        .as_string()
        .unwrap_or_default();
    (
        resp.status(),
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

async fn publish(body: serde_json::Value) {
    let (status, answer) = post("/_sse/publish", None, body).await;
    assert_eq!(status, 200, "publish refused: {answer}");
}

/// A client plus everything it reported.
struct Probe {
    client: SSEClient,
    states: Rc<RefCell<Vec<SseState>>>,
    errors: Rc<RefCell<Vec<(SseError, u32)>>>,
    client_id: Rc<RefCell<Option<String>>>,
}

fn probe(config: SseConfig) -> Probe {
    let client = SSEClient::new(config);
    let states = Rc::new(RefCell::new(Vec::new()));
    let errors = Rc::new(RefCell::new(Vec::new()));
    let client_id = Rc::new(RefCell::new(None));
    let s = states.clone();
    client
        .on_state_change(move |st| s.borrow_mut().push(*st))
        .forget();
    let e = errors.clone();
    client
        .on_error(move |err, attempt| e.borrow_mut().push((err.clone(), attempt)))
        .forget();
    let id = client_id.clone();
    client
        .on::<Connected>(move |c| *id.borrow_mut() = Some(c.client_id))
        .forget();
    Probe {
        client,
        states,
        errors,
        client_id,
    }
}

impl Probe {
    async fn connected(&self) -> String {
        wait_for("connected", || {
            self.client_id.borrow().is_some() && self.client.state() == SseState::Connected
        })
        .await;
        self.client_id.borrow().clone().expect("id")
    }
}

fn at(path: &str) -> String {
    format!("{}{path}", server())
}

fn stream(query: &str, transport: Transport) -> SseConfig {
    SseConfig::new(at(&format!("/_sse/connect{query}")))
        .jitter(0.0)
        .transport(transport)
}

#[wasm_bindgen_test]
async fn states_are_reported_once_each_in_order() {
    for transport in BOTH {
        let p = probe(stream("", transport));
        p.client.connect();
        p.connected().await;
        p.client.disconnect();
        assert_eq!(
            *p.states.borrow(),
            [
                SseState::Connecting,
                SseState::Connected,
                SseState::Disconnected
            ],
            "{transport:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn any_event_name_reaches_its_handler_and_the_wildcard_sees_all() {
    for transport in BOTH {
        let p = probe(stream("", transport));
        let seen = Rc::new(RefCell::new(Vec::new()));
        for name in ["alert", "progress", "x-custom"] {
            let s = seen.clone();
            p.client
                .on_named(name, move |m| {
                    s.borrow_mut().push((m.event.clone(), m.value.clone()))
                })
                .forget();
        }
        let s = seen.clone();
        p.client
            .on_message(move |m| s.borrow_mut().push(("onmessage".into(), m.value.clone())))
            .forget();
        let every = Rc::new(RefCell::new(Vec::new()));
        let e = every.clone();
        p.client
            .on_named("*", move |m| e.borrow_mut().push(m.event.clone()))
            .forget();
        p.client.connect();
        let id = p.connected().await;
        for (event, data) in [
            (
                "alert",
                serde_json::json!({"level": "info", "message": "a"}),
            ),
            ("progress", serde_json::json!("p")),
            ("x-custom", serde_json::json!([1, 2])),
        ] {
            publish(serde_json::json!({"target": {"clientId": id}, "event": event, "data": data}))
                .await;
        }
        publish(serde_json::json!({"target": {"clientId": id}, "data": "plain"})).await;
        wait_for("four events", || seen.borrow().len() == 4).await;
        // Data arrives parsed as JSON, and as the text itself when it is not.
        assert_eq!(
            *seen.borrow(),
            [
                (
                    "alert".to_string(),
                    serde_json::json!({"level": "info", "message": "a"})
                ),
                ("progress".into(), serde_json::json!("p")),
                ("x-custom".into(), serde_json::json!([1, 2])),
                ("onmessage".into(), serde_json::json!("plain"))
            ],
            "{transport:?}"
        );
        let every = every.borrow();
        assert!(every.contains(&"connected".to_owned()), "{every:?}");
        assert!(
            ["alert", "progress", "x-custom", "message"]
                .iter()
                .all(|n| every.contains(&(*n).to_owned())),
            "{every:?}"
        );
        p.client.disconnect();
    }
}

#[wasm_bindgen_test]
async fn typed_handlers_decode_and_report_bad_payloads() {
    let p = probe(stream("", Transport::EventSource));
    let alerts = Rc::new(RefCell::new(Vec::new()));
    let a = alerts.clone();
    p.client
        .on::<Alert>(move |alert| a.borrow_mut().push(alert))
        .forget();
    p.client.connect();
    let id = p.connected().await;
    publish(serde_json::json!({"target": {"clientId": id}, "event": "alert", "data": {"level": "bogus"}})).await;
    publish(serde_json::json!({"target": {"clientId": id}, "event": "alert", "data": {"level": "warning", "message": "disk"}})).await;
    wait_for("the good alert", || alerts.borrow().len() == 1).await;
    assert_eq!(
        alerts.borrow()[0],
        Alert {
            level: AlertLevel::Warning,
            message: "disk".into()
        }
    );
    assert!(
        p.errors
            .borrow()
            .iter()
            .any(|(e, _)| matches!(e, SseError::Decode { event, .. } if event == "alert")),
        "decode failure not reported: {:?}",
        p.errors.borrow()
    );
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn unsubscribing_a_handle_removes_its_handler_and_dropping_it_keeps_it() {
    let p = probe(stream("", Transport::EventSource));
    let kept = Rc::new(RefCell::new(0));
    let dropped = Rc::new(RefCell::new(0));
    let k = kept.clone();
    p.client
        .on_named("poke", move |_| *k.borrow_mut() += 1)
        .forget();
    let d = dropped.clone();
    let handle = p.client.on_named("poke", move |_| *d.borrow_mut() += 1);
    let kept_too = Rc::new(RefCell::new(0));
    let t = kept_too.clone();
    let _ = p.client.on_named("poke", move |_| *t.borrow_mut() += 1);
    p.client.connect();
    let id = p.connected().await;
    publish(serde_json::json!({"target": {"clientId": id}, "event": "poke", "data": "1"})).await;
    wait_for("first poke", || *kept.borrow() == 1).await;
    handle.unsubscribe();
    publish(serde_json::json!({"target": {"clientId": id}, "event": "poke", "data": "2"})).await;
    wait_for("second poke", || *kept.borrow() == 2).await;
    assert_eq!(*dropped.borrow(), 1);
    assert_eq!(*kept_too.borrow(), 2, "`let _ =` keeps a handler");
    p.client.disconnect();
}

/// How one route family is read and fed.
struct Family {
    name: &'static str,
    /// The stream's path, with the demo token where it needs one.
    stream: fn(&str) -> String,
    send: &'static str,
    body: fn(u32) -> serde_json::Value,
    /// The name its events arrive under (an `EventSource` hears only the
    /// names it listens to).
    event: &'static str,
}

/// The `#<n>#` an event carries, if any.
fn number_in(data: &str) -> Option<u32> {
    let start = data.find('#')? + 1;
    let len = data[start..].find('#')?;
    data[start..start + len].parse().ok()
}

/// Connects, receives 0..=3, goes away, misses 4..=6, comes back: holds
/// 0..=7 exactly once each, in order.
async fn resume_family(family: &Family, transport: Transport) {
    let token = demo_token(&format!("resume-{}", family.name));
    let p = probe(
        SseConfig::new(at(&(family.stream)(&token)))
            .jitter(0.0)
            .transport(transport),
    );
    let got = Rc::new(RefCell::new(Vec::new()));
    let live = Rc::new(RefCell::new(false));
    let (g, l) = (got.clone(), live.clone());
    p.client
        .on_named(family.event, move |m| match number_in(&m.data) {
            Some(0) => *l.borrow_mut() = true,
            Some(n) => g.borrow_mut().push(n),
            None => {}
        })
        .forget();
    p.client.connect();
    wait_for("open", || p.client.state() == SseState::Connected).await;
    // Live before counting: send 0 until one comes through.
    for _ in 0..100 {
        let (status, body) = post(family.send, Some(&token), (family.body)(0)).await;
        assert!(status < 300, "{}: {status} {body}", family.name);
        sleep(30).await;
        if *live.borrow() {
            break;
        }
    }
    let send = |n: u32| {
        let token = token.clone();
        async move {
            let (status, body) = post(family.send, Some(&token), (family.body)(n)).await;
            assert!(status < 300, "{}: {status} {body}", family.name);
        }
    };
    for n in 1..=3 {
        send(n).await;
    }
    wait_for(
        &format!("1..=3 ({} over {transport:?})", family.name),
        || got.borrow().len() == 3,
    )
    .await;
    p.client.disconnect();
    for n in 4..=6 {
        send(n).await;
    }
    p.client.connect();
    wait_for(
        &format!("4..=6 on return ({} over {transport:?})", family.name),
        || got.borrow().len() == 6,
    )
    .await;
    send(7).await;
    wait_for("7", || got.borrow().len() >= 7).await;
    sleep(100).await;
    assert_eq!(
        *got.borrow(),
        [1, 2, 3, 4, 5, 6, 7],
        "{} over {transport:?}: lost, doubled or reordered",
        family.name
    );
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn every_route_family_resumes_after_a_drop_with_both_transports() {
    let families = [
        Family {
            name: "plain broadcast",
            stream: |_| "/sse".to_owned(),
            send: "/update",
            body: |n| serde_json::json!({"type": "tick", "data": {"n": format!("#{n}#")}}),
            event: "message",
        },
        Family {
            name: "notifier",
            stream: |t| format!("/api/sse?token={t}"),
            send: "/api/sse/send",
            body: |n| serde_json::json!({"type": "tick", "data": {"n": format!("#{n}#")}}),
            event: "tick",
        },
        Family {
            name: "multi-stream",
            stream: |t| format!("/realtime/stream?token={t}"),
            send: "/realtime/update",
            body: |n| serde_json::json!({"entityType": "e", "entityId": format!("#{n}#"), "action": "updated"}),
            event: "update",
        },
        Family {
            name: "gospa",
            stream: |_| "/_sse/connect?topics=browser-resume".to_owned(),
            send: "/_sse/publish",
            body: |n| serde_json::json!({"topic": "browser-resume", "data": format!("#{n}#")}),
            event: "message",
        },
    ];
    for transport in BOTH {
        for family in &families {
            resume_family(family, transport).await;
        }
    }
}

/// Starts a job as `token`'s user; returns its id.
async fn start_job(token: &str) -> String {
    let (status, body) = post(
        "/api/v1/characters",
        Some(token),
        serde_json::json!({"name": "B"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["jobId"].as_str().expect("jobId").to_owned()
}

/// Polls the job until it is completed.
async fn wait_job_done(token: &str, id: &str) {
    let window = web_sys::window().expect("window");
    for _ in 0..250 {
        let init = web_sys::RequestInit::new();
        let headers = web_sys::Headers::new().expect("headers");
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .expect("set");
        init.set_headers(&headers);
        let url = at(&format!("/api/v1/characters/jobs/{id}"));
        let resp = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
            .await
            .expect("fetch");
        let resp: web_sys::Response = resp.dyn_into().expect("response");
        let body = JsFuture::from(resp.json().expect("json"))
            .await
            .expect("body");
        let status = js_sys::Reflect::get(&body, &"data".into())
            .and_then(|d| js_sys::Reflect::get(&d, &"status".into()))
            .ok()
            .and_then(|s| s.as_string());
        if status.as_deref() == Some("completed") {
            return;
        }
        sleep(20).await;
    }
    panic!("job {id} never completed");
}

#[wasm_bindgen_test]
async fn a_job_stream_resumes_every_step_and_a_finished_one_says_done() {
    for transport in BOTH {
        let token = demo_token("job-resume");
        let id = start_job(&token).await;
        let p = probe(
            SseConfig::new(at(&format!(
                "/api/v1/sse/jobs/character/{id}?token={token}"
            )))
            .jitter(0.0)
            .reconnect_delay(50)
            .max_retries(3)
            .transport(transport),
        );
        let progress = Rc::new(RefCell::new(Vec::new()));
        let pr = progress.clone();
        p.client
            .on_message(move |m| {
                if m.value["type"] == "job_update" {
                    pr.borrow_mut()
                        .push(m.value["progress"].as_u64().unwrap_or(999));
                }
            })
            .forget();
        p.client.connect();
        wait_for("a first update", || !progress.borrow().is_empty()).await;
        p.client.disconnect();
        sleep(400).await; // steps go by meanwhile
        p.client.connect();
        wait_for("completed", || progress.borrow().last() == Some(&100)).await;
        // Each step once, in order (the first update may be `waiting` or `active` at 0).
        let seen = progress.borrow().clone();
        let mut expected: Vec<u64> = vec![0, 0, 20, 40, 60, 80, 100];
        while expected.len() > seen.len() {
            expected.remove(0);
        }
        assert_eq!(seen, expected, "{transport:?}");
        // The stream ended; the reconnect is told there is nothing more
        // (204): done, for good, on both transports (an EventSource's
        // refusal is learnt by asking the URL once with fetch).
        wait_for("done", || p.client.state() == SseState::Disconnected).await;
        assert!(
            p.errors
                .borrow()
                .iter()
                .all(|(e, _)| *e == SseError::Network),
            "{transport:?}: {:?}",
            p.errors.borrow()
        );
        let attempts = p.errors.borrow().len();
        sleep(300).await;
        assert_eq!(p.errors.borrow().len(), attempts, "it kept trying");
    }
}

#[wasm_bindgen_test]
async fn a_server_that_greets_and_closes_cannot_loop_forever() {
    // A finished job's stream without an id: connected, its final state,
    // the end; asked again with that state's id, 204.
    let token = demo_token("greet-close");
    let id = start_job(&token).await;
    wait_job_done(&token, &id).await;
    for transport in BOTH {
        let p = probe(
            SseConfig::new(at(&format!(
                "/api/v1/sse/jobs/character/{id}?token={token}"
            )))
            .jitter(0.0)
            .reconnect_delay(30)
            .max_retries(2)
            .transport(transport),
        );
        let opens = Rc::new(RefCell::new(0));
        let o = opens.clone();
        p.client
            .on_state_change(move |s| {
                if *s == SseState::Connected {
                    *o.borrow_mut() += 1;
                }
            })
            .forget();
        p.client.connect();
        wait_for("the end", || {
            matches!(p.client.state(), SseState::Error | SseState::Disconnected)
                && p.client.next_delay_ms().is_none()
        })
        .await;
        sleep(300).await;
        assert!(
            *opens.borrow() <= 3,
            "{transport:?}: {} opens",
            opens.borrow()
        );
        assert!(
            p.errors.borrow().len() <= 3,
            "{transport:?}: {:?}",
            p.errors.borrow()
        );
    }
}

#[wasm_bindgen_test]
async fn the_fetch_transport_reports_refusals_by_kind() {
    let fetch = |path: &str| {
        SseConfig::new(at(path))
            .jitter(0.0)
            .reconnect_delay(30)
            .transport(Transport::Fetch)
    };
    // 401: a stream that needs a token, without one. Not retried.
    let p = probe(fetch("/notifications/stream"));
    p.client.connect();
    wait_for("error", || p.client.state() == SseState::Error).await;
    assert_eq!(*p.errors.borrow(), [(SseError::Unauthorized, 1)]);

    // 403: another user's job. Not retried.
    let owner = demo_token("owner-403");
    let job = start_job(&owner).await;
    let p = probe(
        fetch(&format!("/api/v1/sse/jobs/character/{job}")).bearer(&demo_token("stranger-403")),
    );
    p.client.connect();
    wait_for("error", || p.client.state() == SseState::Error).await;
    assert_eq!(*p.errors.borrow(), [(SseError::Forbidden, 1)]);

    // 429 with Retry-After: a user's sixth stream; the retry waits for it.
    let busy = demo_token("busy-429");
    let mut open = Vec::new();
    for _ in 0..5 {
        let c = probe(fetch("/_sse/connect").bearer(&busy));
        c.client.connect();
        c.connected().await;
        open.push(c);
    }
    let p = probe(fetch("/_sse/connect").bearer(&busy));
    p.client.connect();
    wait_for("429", || !p.errors.borrow().is_empty()).await;
    assert_eq!(
        p.errors.borrow()[0],
        (
            SseError::TooManyRequests {
                retry_after_ms: Some(5000)
            },
            1
        )
    );
    assert_eq!(p.client.state(), SseState::Connecting);
    assert!(p.client.next_delay_ms().is_some_and(|d| d >= 5000));
    p.client.disconnect();
    for c in open {
        c.client.disconnect();
    }

    // Nobody listening (a server that was killed): a network failure, retried.
    let p = probe(
        SseConfig::new("http://127.0.0.1:9/_sse/connect")
            .jitter(0.0)
            .reconnect_delay(30)
            .max_retries(1)
            .transport(Transport::Fetch),
    );
    p.client.connect();
    wait_for("error", || p.client.state() == SseState::Error).await;
    assert_eq!(
        *p.errors.borrow(),
        [(SseError::Network, 1), (SseError::Network, 2)]
    );
}

#[wasm_bindgen_test]
async fn the_fetch_transport_sends_its_headers() {
    // This stream needs a token; only the Authorization header carries it.
    let token = demo_token("header-user");
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let p = probe(
        SseConfig::new(at("/notifications/stream"))
            .transport(Transport::Fetch)
            .bearer(&token),
    );
    p.client
        .on_named("notification", move |m| {
            *g.borrow_mut() = Some(m.value.clone())
        })
        .forget();
    p.client.connect();
    wait_for("open", || p.client.state() == SseState::Connected).await;
    let (status, _) = post(
        "/notifications/send",
        Some(&token),
        serde_json::json!({"title": "t", "message": "via a header"}),
    )
    .await;
    assert_eq!(status, 200);
    wait_for("the notification", || got.borrow().is_some()).await;
    assert_eq!(
        got.borrow().as_ref().expect("one")["message"],
        "via a header"
    );
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn exhausted_retries_end_in_error_and_stop_trying() {
    for transport in BOTH {
        // Nothing listens on port 9: every attempt fails fast.
        let p = probe(
            SseConfig::new("http://127.0.0.1:9/_sse/connect")
                .reconnect_delay(30)
                .max_retries(2)
                .jitter(0.0)
                .transport(transport),
        );
        p.client.connect();
        wait_for("error state", || p.client.state() == SseState::Error).await;
        let attempts: Vec<u32> = p.errors.borrow().iter().map(|(_, a)| *a).collect();
        assert_eq!(
            attempts,
            [1, 2, 3],
            "one attempt plus two retries, numbered"
        );
        sleep(400).await;
        assert_eq!(p.errors.borrow().len(), 3, "it kept trying after giving up");
        assert_eq!(*p.states.borrow(), [SseState::Connecting, SseState::Error]);
    }
}

#[wasm_bindgen_test]
async fn heartbeat_silence_is_detected_and_the_client_reconnects() {
    // `/sse` announces no heartbeats and this server sends none; the client
    // expects one every 150 ms.
    let p = probe(
        SseConfig::new(at("/sse"))
            .jitter(0.0)
            .heartbeat_interval(150)
            .missed_heartbeats_limit(2),
    );
    p.client.connect();
    wait_for("a reconnect", || {
        p.states
            .borrow()
            .iter()
            .filter(|s| **s == SseState::Connected)
            .count()
            >= 2
    })
    .await;
    assert_eq!(
        p.states.borrow()[..4],
        [
            SseState::Connecting,
            SseState::Connected,
            SseState::Connecting,
            SseState::Connected
        ]
    );
    assert!(p
        .errors
        .borrow()
        .iter()
        .any(|(e, _)| *e == SseError::HeartbeatLost));
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn a_quiet_stream_whose_server_announces_no_heartbeats_stays_open() {
    // This server runs without heartbeats and says so in `connected`.
    let p = probe(
        stream("", Transport::EventSource)
            .heartbeat_interval(150)
            .missed_heartbeats_limit(2),
    );
    p.client.connect();
    p.connected().await;
    sleep(700).await;
    assert_eq!(
        *p.states.borrow(),
        [SseState::Connecting, SseState::Connected]
    );
    p.client.disconnect();
}

/// Counts, in the page, every `EventSource` and `fetch` started.
fn count_requests() {
    let shim = r#"
        if (!window.__herald_requests) {
            window.__herald_requests = 0;
            window.__herald_sources = [];
            const Source = window.EventSource;
            window.EventSource = function (url, init) {
                window.__herald_requests++;
                const es = new Source(url, init);
                window.__herald_sources.push(es);
                return es;
            };
            window.EventSource.prototype = Source.prototype;
            const fetch = window.fetch.bind(window);
            window.fetch = function (input, init) {
                if (String(input).includes("/_sse/connect")) window.__herald_requests++;
                return fetch(input, init);
            };
        }
    "#;
    js_sys::eval(shim).expect("shim");
}

fn requests() -> f64 {
    js_sys::eval("window.__herald_requests")
        .expect("count")
        .as_f64()
        .unwrap_or(0.0)
}

fn open_sources() -> f64 {
    js_sys::eval("window.__herald_sources.filter(s => s.readyState !== 2).length")
        .expect("sources")
        .as_f64()
        .unwrap_or(0.0)
}

#[wasm_bindgen_test]
async fn a_dropped_client_closes_its_connection_and_makes_no_more_requests() {
    count_requests();
    for transport in BOTH {
        // Connected, then every handle dropped without `disconnect`.
        let p = probe(stream("?topics=drop-test", transport));
        p.client.connect();
        p.connected().await;
        let before = requests();
        drop(p);
        sleep(100).await;
        assert_eq!(open_sources(), 0.0, "{transport:?}: a source is still open");
        publish(serde_json::json!({"topic": "drop-test", "data": "after the drop"})).await;
        sleep(400).await;
        assert_eq!(
            requests(),
            before,
            "{transport:?}: a request after the drop"
        );

        // Failing and retrying every 50 ms, then dropped: the retries stop.
        let p = probe(
            SseConfig::new("http://127.0.0.1:9/_sse/connect")
                .reconnect_delay(50)
                .max_retries(0)
                .jitter(0.0)
                .transport(transport),
        );
        p.client.connect();
        wait_for("a retry", || p.errors.borrow().len() >= 2).await;
        drop(p);
        let before = requests();
        sleep(400).await;
        assert_eq!(
            requests(),
            before,
            "{transport:?}: retries outlived the client"
        );
    }
}

#[wasm_bindgen_test]
async fn shared_streams_use_one_connection_and_subscribe_topics_on_it() {
    use herald_client::SSEManager;
    let manager = SSEManager::default();
    let url = at("/_sse/connect");
    let mut chat = manager.share(&url);
    let mut jobs = manager.share(&url);
    assert_eq!(manager.shared_leases(&url), 2);

    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let _h = chat
        .client()
        .on_named("m", move |m| g.borrow_mut().push(m.data.clone()));
    wait_for("shared connection", || {
        chat.client().state() == SseState::Connected
    })
    .await;
    // Let the `connected` event (our identity for /_sse/subscribe) arrive.
    sleep(100).await;
    chat.subscribe(&["shared:chat"]);
    jobs.subscribe(&["shared:jobs"]);
    // The subscriptions are POSTed; wait until the server has them.
    for _ in 0..100 {
        publish(serde_json::json!({"topic": "shared:chat", "event": "m", "data": "chat"})).await;
        if !got.borrow().is_empty() {
            break;
        }
        sleep(20).await;
    }
    publish(serde_json::json!({"topic": "shared:jobs", "event": "m", "data": "jobs"})).await;
    wait_for("the jobs event", || {
        got.borrow().iter().any(|d| d == "jobs")
    })
    .await;
    assert!(got.borrow().iter().any(|d| d == "chat"));

    // One lease leaves: the other keeps the connection; the last one closes it.
    let client = chat.client().clone();
    drop(chat);
    assert_eq!(client.state(), SseState::Connected);
    jobs.unsubscribe(&["shared:jobs"]);
    drop(jobs);
    assert_eq!(client.state(), SseState::Disconnected);
    assert_eq!(manager.shared_leases(&url), 0);
}

#[wasm_bindgen_test]
async fn the_gospa_manager_surface() {
    use herald_client::{connect_sse, get_sse_manager};
    let manager = get_sse_manager();
    manager.set_default_config(SseConfig::new("").jitter(0.0).max_retries(7));
    let sse = connect_sse("gospa-main", SseConfig::new(at("/_sse/connect")));
    assert_eq!(sse.config().max_retries, 7, "the manager's defaults apply");
    wait_for("connected", || sse.is_connected()).await;
    assert!(manager.has("gospa-main"));
    assert!(manager.client_names().contains(&"gospa-main".to_owned()));
    assert!(manager.disconnect("gospa-main"));
    assert_eq!(sse.state(), SseState::Disconnected);
    manager.connect("gospa-main", SseConfig::new("ignored: it exists"));
    wait_for("connected again", || sse.is_connected()).await;
    manager.disconnect_all();
    assert_eq!(sse.state(), SseState::Disconnected);
    assert!(manager.remove("gospa-main"));
    assert!(!manager.has("gospa-main"));
}

/// Takes connection `id` over from the server's side: a stream that proves
/// the id with its secret replaces it (the server closes the old one).
/// The takeover stream is aborted once the old one is gone.
async fn close_from_the_server(id: &str, secret: &str) {
    let controller = web_sys::AbortController::new().expect("controller");
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(&controller.signal()));
    let url = at(&format!("/_sse/connect?clientId={id}&secret={secret}"));
    let window = web_sys::window().expect("window");
    let _ = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    sleep(100).await;
    controller.abort();
}

#[wasm_bindgen_test]
async fn held_topics_survive_a_server_side_close_and_a_manual_reconnect() {
    for transport in BOTH {
        let topic = format!(
            "held-{}",
            if transport == Transport::Fetch {
                "f"
            } else {
                "e"
            }
        );
        let p = probe(stream("", transport).reconnect_delay(300));
        let identity = Rc::new(RefCell::new(None::<(String, String)>));
        let i = identity.clone();
        p.client
            .on::<Connected>(move |c| {
                *i.borrow_mut() = Some((c.client_id, c.secret.unwrap_or_default()))
            })
            .forget();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        p.client
            .on_named("n", move |m| g.borrow_mut().push(m.data.clone()))
            .forget();
        p.client.connect();
        p.connected().await;
        // Added at runtime, on the open stream.
        let held = p
            .client
            .subscribe_now(&[topic.as_str()])
            .await
            .expect("subscribed");
        assert!(held.contains(&topic), "{held:?}");
        let send = |n: u32| {
            publish(serde_json::json!({"topic": topic, "event": "n", "data": n.to_string()}))
        };
        send(1).await;
        wait_for("1", || got.borrow().len() == 1).await;

        // The server closes the stream; 2 and 3 are published before the
        // client is back (its retry waits 300 ms), 4 after.
        let (id, secret) = identity.borrow().clone().expect("identity");
        close_from_the_server(&id, &secret).await;
        send(2).await;
        send(3).await;
        wait_for("a new connection", || {
            identity
                .borrow()
                .as_ref()
                .is_some_and(|(now, _)| *now != id)
        })
        .await;
        send(4).await;
        wait_for("4", || got.borrow().len() >= 4).await;

        // A manual reconnect: 5 before, 6 after.
        send(5).await;
        p.client.reconnect();
        p.connected().await;
        send(6).await;
        wait_for("6", || got.borrow().len() >= 6).await;
        sleep(200).await;
        assert_eq!(
            *got.borrow(),
            ["1", "2", "3", "4", "5", "6"],
            "{transport:?}: each once, in order"
        );
        p.client.disconnect();
    }
}

#[wasm_bindgen_test]
async fn eventsource_refusals_end_as_they_do_with_fetch() {
    let es = |path: &str| {
        SseConfig::new(at(path))
            .jitter(0.0)
            .reconnect_delay(30)
            .transport(Transport::EventSource)
    };
    // 401: a stream that needs a token, without one. Not retried.
    let p = probe(es("/notifications/stream"));
    p.client.connect();
    wait_for("401", || p.client.state() == SseState::Error).await;
    assert_eq!(*p.errors.borrow(), [(SseError::Unauthorized, 1)]);
    assert_eq!(p.client.next_delay_ms(), None, "no retry is pending");

    // 403: another user's job. Not retried.
    let owner = demo_token("owner-es-403");
    let job = start_job(&owner).await;
    let stranger = demo_token("stranger-es-403");
    let p = probe(es(&format!(
        "/api/v1/sse/jobs/character/{job}?token={stranger}"
    )));
    p.client.connect();
    wait_for("403", || p.client.state() == SseState::Error).await;
    assert_eq!(*p.errors.borrow(), [(SseError::Forbidden, 1)]);

    // 204: a finished job's stream, resumed after its last update: done.
    wait_job_done(&owner, &job).await;
    let ids = Rc::new(RefCell::new(String::new()));
    let done = probe(es(&format!(
        "/api/v1/sse/jobs/character/{job}?token={owner}"
    )));
    let i = ids.clone();
    done.client
        .on_named("*", move |m| *i.borrow_mut() = m.last_event_id.clone())
        .forget();
    done.client.connect();
    // It ends after `completed`; its own reconnect is told 204.
    wait_for("the job's stream to end", || {
        done.client.state() == SseState::Disconnected
    })
    .await;
    let last = ids.borrow().clone();
    let p =
        probe(es(&format!("/api/v1/sse/jobs/character/{job}?token={owner}")).last_event_id(last));
    p.client.connect();
    wait_for("204", || p.client.state() == SseState::Disconnected).await;
    assert!(p.errors.borrow().is_empty(), "{:?}", p.errors.borrow());
    done.client.disconnect();
}

#[wasm_bindgen_test]
async fn a_header_on_an_eventsource_client_reads_with_fetch() {
    // This stream needs a token and only the header carries it: an
    // EventSource could not send it, so the client reads with fetch.
    let p = probe(
        SseConfig::new(at("/notifications/stream"))
            .transport(Transport::EventSource)
            .bearer(&demo_token("es-header")),
    );
    p.client.connect();
    p.connected().await;
    assert!(p.errors.borrow().is_empty(), "{:?}", p.errors.borrow());
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn requests_that_cannot_be_made_or_are_no_stream_end_as_they_should() {
    for transport in BOTH {
        // A URL no browser can request: one error, no retry.
        let p = probe(
            SseConfig::new("http://[bad")
                .transport(transport)
                .reconnect_delay(30),
        );
        p.client.connect();
        wait_for("error", || p.client.state() == SseState::Error).await;
        sleep(100).await;
        assert_eq!(
            p.errors.borrow().len(),
            1,
            "{transport:?}: {:?}",
            p.errors.borrow()
        );
        assert!(matches!(p.errors.borrow()[0], (SseError::Open(_), 1)));
        assert_eq!(*p.states.borrow(), [SseState::Connecting, SseState::Error]);
    }
    // A 200 that is not an event stream (JSON): said, and retried.
    let p = probe(
        SseConfig::new(at("/healthz"))
            .transport(Transport::Fetch)
            .reconnect_delay(30)
            .max_retries(1)
            .slow_retry(0),
    );
    p.client.connect();
    wait_for("error", || p.client.state() == SseState::Error).await;
    assert_eq!(
        *p.errors.borrow(),
        [(SseError::NotAStream, 1), (SseError::NotAStream, 2)]
    );
}

#[wasm_bindgen_test]
async fn a_handler_that_disconnects_stops_the_rest_of_its_chunk() {
    // Three events land in one replay; the handler of the first disconnects.
    let first = Rc::new(RefCell::new(String::new()));
    let p = probe(stream("?topics=chunk-test", Transport::Fetch));
    let f = first.clone();
    p.client
        .on_named("c", move |m| {
            if f.borrow().is_empty() {
                *f.borrow_mut() = m.last_event_id.clone();
            }
        })
        .forget();
    p.client.connect();
    p.connected().await;
    for n in 0..4 {
        publish(serde_json::json!({"topic": "chunk-test", "event": "c", "data": n.to_string()}))
            .await;
    }
    wait_for("the first event", || !first.borrow().is_empty()).await;
    p.client.disconnect();
    let from = first.borrow().clone();

    let seen = Rc::new(RefCell::new(0));
    let p = probe(stream("?topics=chunk-test", Transport::Fetch).last_event_id(from));
    let s = seen.clone();
    let weak = p.client.downgrade();
    p.client
        .on_named("c", move |_| {
            *s.borrow_mut() += 1;
            if let Some(c) = weak.upgrade() {
                c.disconnect();
            }
        })
        .forget();
    p.client.connect();
    wait_for("an event", || *seen.borrow() > 0).await;
    sleep(200).await;
    assert_eq!(
        *seen.borrow(),
        1,
        "events after the disconnect were dispatched"
    );
    assert_eq!(p.client.state(), SseState::Disconnected);
}

#[wasm_bindgen_test]
async fn past_its_fast_retries_a_client_keeps_trying_and_the_browser_coming_online_hurries_it() {
    for transport in BOTH {
        let p = probe(
            SseConfig::new("http://127.0.0.1:9/_sse/connect")
                .reconnect_delay(30)
                .max_retries(1)
                .jitter(0.0)
                .transport(transport),
        );
        let retries = Rc::new(RefCell::new(Vec::new()));
        let r = retries.clone();
        p.client
            .on_retry(move |x| r.borrow_mut().push(x.delay_ms))
            .forget();
        p.client.connect();
        wait_for("error", || p.client.state() == SseState::Error).await;
        // Said, but not given up: a slow retry is pending.
        assert_eq!(retries.borrow().last(), Some(&60_000));
        assert_eq!(p.client.next_delay_ms(), Some(60_000));
        let before = p.errors.borrow().len();
        // The browser says it is back online: a try now, not in a minute.
        js_sys::eval("window.dispatchEvent(new Event('online'))").expect("online");
        wait_for("a try", || p.errors.borrow().len() > before).await;
        assert_eq!(
            p.client.state(),
            SseState::Error,
            "{transport:?}: still down"
        );
        p.client.disconnect();
    }
}

/// A server whose heartbeats are on (every 2 s), started by
/// `scripts/test.sh` beside the main one.
fn beating_server() -> &'static str {
    option_env!("HERALD_TEST_BEAT_URL").unwrap_or("http://127.0.0.1:3218")
}

#[wasm_bindgen_test]
async fn the_announced_heartbeat_interval_keeps_a_quiet_connection() {
    for transport in BOTH {
        // The app expects a heartbeat every 500 ms (dead after 1.5 s of
        // silence); the server announces one every 2 s: the client goes by
        // the server's word, so 5 s of 2 s heartbeats keep one connection.
        let p = probe(
            SseConfig::new(format!("{}/_sse/connect", beating_server()))
                .heartbeat_interval(500)
                .missed_heartbeats_limit(3)
                .transport(transport),
        );
        p.client.connect();
        p.connected().await;
        sleep(5000).await;
        assert_eq!(
            *p.states.borrow(),
            [SseState::Connecting, SseState::Connected],
            "{transport:?}: {:?}",
            p.errors.borrow()
        );
        p.client.disconnect();
    }
}
