//! The browser layer in real headless Chromium (wasm-bindgen-test), against
//! a real Herald server started by `scripts/test.sh` with heartbeats off:
//!
//! ```sh
//! herald-server --addr 127.0.0.1:3200 --heartbeat-secs 0 &
//! HERALD_TEST_URL=http://127.0.0.1:3200 cargo test -p herald-client --target wasm32-unknown-unknown
//! ```
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use herald_client::{SSEClient, SseConfig, SseError, SseState};
use herald_shared::events::{Alert, AlertLevel, Connected};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn server() -> &'static str {
    option_env!("HERALD_TEST_URL").unwrap_or("http://127.0.0.1:3200")
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

async fn publish(body: serde_json::Value) {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.to_string().into());
    let headers = web_sys::Headers::new().expect("headers");
    headers
        .set("Content-Type", "application/json")
        .expect("set");
    init.set_headers(&headers);
    let window = web_sys::window().expect("window");
    let resp = JsFuture::from(
        window.fetch_with_str_and_init(&format!("{}/_sse/publish", server()), &init),
    )
    .await
    .expect("fetch");
    let resp: web_sys::Response = resp.dyn_into().expect("response");
    assert_eq!(resp.status(), 200, "publish refused");
}

/// A client plus everything it reported.
struct Probe {
    client: SSEClient,
    states: Rc<RefCell<Vec<SseState>>>,
    errors: Rc<RefCell<Vec<SseError>>>,
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
        .on_error(move |err| e.borrow_mut().push(err.clone()))
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

fn stream(query: &str) -> SseConfig {
    SseConfig::new(format!("{}/_sse/connect{query}", server())).jitter(0.0)
}

#[wasm_bindgen_test]
async fn states_are_reported_once_each_in_order() {
    let p = probe(stream(""));
    p.client.connect();
    p.connected().await;
    p.client.disconnect();
    assert_eq!(
        *p.states.borrow(),
        [
            SseState::Connecting,
            SseState::Connected,
            SseState::Disconnected
        ]
    );
}

#[wasm_bindgen_test]
async fn any_event_name_reaches_its_handler() {
    let p = probe(stream(""));
    let seen = Rc::new(RefCell::new(Vec::new()));
    for name in ["alert", "progress", "x-custom"] {
        let s = seen.clone();
        p.client
            .on_named(name, move |m| {
                s.borrow_mut().push((m.event.clone(), m.data.clone()))
            })
            .forget();
    }
    let s = seen.clone();
    p.client
        .on_message(move |m| s.borrow_mut().push(("onmessage".into(), m.data.clone())))
        .forget();
    p.client.connect();
    let id = p.connected().await;
    for (event, data) in [("alert", "a"), ("progress", "p"), ("x-custom", "c")] {
        publish(serde_json::json!({"target": {"clientId": id}, "event": event, "data": data}))
            .await;
    }
    publish(serde_json::json!({"target": {"clientId": id}, "data": "plain"})).await;
    wait_for("four events", || seen.borrow().len() == 4).await;
    assert_eq!(
        *seen.borrow(),
        [
            ("alert".to_string(), "a".to_string()),
            ("progress".into(), "p".into()),
            ("x-custom".into(), "c".into()),
            ("onmessage".into(), "plain".into())
        ]
    );
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn typed_handlers_decode_and_report_bad_payloads() {
    let p = probe(stream(""));
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
            .any(|e| matches!(e, SseError::Decode { event, .. } if event == "alert")),
        "decode failure not reported: {:?}",
        p.errors.borrow()
    );
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn dropping_a_handle_removes_its_handler() {
    let p = probe(stream(""));
    let kept = Rc::new(RefCell::new(0));
    let dropped = Rc::new(RefCell::new(0));
    let k = kept.clone();
    p.client
        .on_named("poke", move |_| *k.borrow_mut() += 1)
        .forget();
    let d = dropped.clone();
    let handle = p.client.on_named("poke", move |_| *d.borrow_mut() += 1);
    p.client.connect();
    let id = p.connected().await;
    publish(serde_json::json!({"target": {"clientId": id}, "event": "poke", "data": "1"})).await;
    wait_for("first poke", || *kept.borrow() == 1).await;
    handle.unsubscribe();
    publish(serde_json::json!({"target": {"clientId": id}, "event": "poke", "data": "2"})).await;
    wait_for("second poke", || *kept.borrow() == 2).await;
    assert_eq!(*dropped.borrow(), 1);
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn reconnecting_resumes_from_the_last_event_id() {
    let p = probe(stream("?topics=resume-test"));
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    p.client
        .on_named("tick", move |m| g.borrow_mut().push(m.data.clone()))
        .forget();
    p.client.connect();
    p.connected().await;
    publish(serde_json::json!({"topic": "resume-test", "event": "tick", "data": "1"})).await;
    wait_for("tick 1", || got.borrow().len() == 1).await;
    p.client.disconnect();
    publish(serde_json::json!({"topic": "resume-test", "event": "tick", "data": "2"})).await;
    publish(serde_json::json!({"topic": "resume-test", "event": "tick", "data": "3"})).await;
    *p.client_id.borrow_mut() = None;
    p.client.connect();
    p.connected().await;
    wait_for("ticks 2 and 3", || got.borrow().len() == 3).await;
    assert_eq!(*got.borrow(), ["1", "2", "3"]);
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn exhausted_retries_end_in_error_and_stop_trying() {
    // Nothing listens on port 9: every attempt fails fast.
    let p = probe(
        SseConfig::new("http://127.0.0.1:9/_sse/connect")
            .reconnect_delay(30)
            .max_retries(2)
            .jitter(0.0),
    );
    p.client.connect();
    wait_for("error state", || p.client.state() == SseState::Error).await;
    let failures = p.errors.borrow().len();
    assert_eq!(failures, 3, "one attempt plus two retries");
    sleep(400).await;
    assert_eq!(
        p.errors.borrow().len(),
        failures,
        "it kept trying after giving up"
    );
    assert_eq!(*p.states.borrow(), [SseState::Connecting, SseState::Error]);
}

#[wasm_bindgen_test]
async fn heartbeat_silence_is_detected_and_the_client_reconnects() {
    // This server sends no heartbeats; the client expects one every 150 ms.
    let p = probe(
        stream("")
            .heartbeat_interval(150)
            .missed_heartbeats_limit(2),
    );
    p.client.connect();
    p.connected().await;
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
    p.client.disconnect();
}

#[wasm_bindgen_test]
async fn shared_streams_use_one_connection_and_subscribe_topics_on_it() {
    use herald_client::SSEManager;
    let manager = SSEManager::default();
    let url = format!("{}/_sse/connect", server());
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
