//! The `/_sse` routes over real HTTP on loopback.

mod common;

use std::time::Duration;

use common::{post_json, quiet_config, SseStream, TestServer};
use herald_server::broker::{BrokerConfig, HeartbeatStyle};
use herald_shared::wire::Frame;
use serde_json::json;

#[tokio::test]
async fn connect_sends_headers_retry_hint_and_connected_first() {
    let server = TestServer::start(quiet_config()).await;
    let mut stream = SseStream::open(&server.url("/_sse/connect?clientId=alice-1"), None).await;
    let h = &stream.headers;
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert_eq!(h["access-control-allow-origin"], "*");
    // A session of its own, in a cookie scripts cannot read.
    let set_cookie = h["set-cookie"].to_str().expect("ascii");
    assert!(set_cookie.starts_with("herald_session="), "{set_cookie}");
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");

    assert_eq!(stream.next_frame().await, Some(Frame::Retry(1000)));
    let connected = stream.next_named("connected").await;
    assert_eq!(
        connected.last_event_id, "",
        "connected must not move the resume point"
    );
    let body: serde_json::Value = serde_json::from_str(&connected.data).expect("json");
    assert_eq!(body["clientId"], "alice-1");
    let session = body["sessionId"].as_str().expect("a session");
    assert!(body["secret"].as_str().is_some_and(|s| s.len() == 32));
    assert_eq!(
        body["topics"],
        json!(["client:alice-1", "all", format!("session:{session}")])
    );

    // The same browser (its cookie) may name its session; no one else may.
    let cookie = stream.session_cookie().expect("cookie");
    let query = format!("?sessionId={session}");
    let (_again, again) = server
        .connect_as(&query, None, &[("cookie", &cookie)])
        .await;
    assert_eq!(again["sessionId"], session);
    let resp = reqwest::get(server.url(&format!("/_sse/connect{query}")))
        .await
        .expect("connect");
    let (status, body) = common::read_json(resp).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn cross_origin_browsers_get_exactly_one_allow_origin_and_a_preflight() {
    let server = TestServer::start(quiet_config()).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(server.url("/_sse/connect"))
        .header("origin", "http://elsewhere.test")
        .send()
        .await
        .expect("connect");
    let values: Vec<_> = resp
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(values, ["*"]);
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.url("/_sse/publish"))
        .header("origin", "http://elsewhere.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn named_and_multi_line_events_arrive_intact() {
    let server = TestServer::start(quiet_config()).await;
    let (mut stream, _) = server.connect("").await;
    let (status, body) = server
        .publish(json!({"event": "log", "data": "line 1\nline 2\r\nline 3"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let e = stream.next_named("log").await;
    assert_eq!(e.data, "line 1\nline 2\nline 3");
    assert_eq!(e.last_event_id, body["id"].as_str().expect("id"));

    server.publish(json!({"data": {"n": 1}})).await;
    let e = stream.next_named("message").await;
    assert_eq!(e.data, r#"{"n":1}"#);
}

#[tokio::test]
async fn targeted_sends_reach_only_their_target() {
    let server = TestServer::start(quiet_config()).await;
    let (mut a, hello_a) = server.connect("?clientId=a&topics=room:blue").await;
    let (mut b, hello_b) = server.connect("?clientId=b").await;
    let (sa, sb) = (&hello_a["sessionId"], &hello_b["sessionId"]);

    for (target, expect_a) in [
        (json!({"target": {"clientId": "a"}, "data": "to-a"}), true),
        (json!({"target": {"clientId": "b"}, "data": "to-b"}), false),
        (json!({"target": {"sessionId": sa}, "data": "to-sa"}), true),
        (json!({"target": {"sessionId": sb}, "data": "to-sb"}), false),
        (json!({"topic": "room:blue", "data": "to-blue"}), true),
    ] {
        let (status, _) = server.publish(target.clone()).await;
        assert_eq!(status, 200);
        let want = target["data"].as_str().expect("data");
        let got = if expect_a {
            a.next_event().await
        } else {
            b.next_event().await
        };
        assert_eq!(got.data, want);
    }
    // A final broadcast reaches both, and proves nothing else was queued before it.
    server.publish(json!({"data": "all"})).await;
    assert_eq!(a.next_event().await.data, "all");
    assert_eq!(b.next_event().await.data, "all");
}

#[tokio::test]
async fn subscribe_and_unsubscribe_at_runtime_need_the_owner_secret() {
    let server = TestServer::start(quiet_config()).await;
    let (mut stream, connected) = server.connect("?clientId=c1").await;
    let secret = connected["secret"].as_str().expect("secret").to_owned();
    let url = server.url("/_sse/subscribe");

    let (status, body) = post_json(
        &url,
        &json!({"clientId": "c1", "topics": ["news"], "secret": "wrong"}),
    )
    .await;
    assert_eq!((status, body["error"].is_string()), (403, true));
    let (status, body) = post_json(
        &url,
        &json!({"clientId": "nobody", "topics": ["news"], "secret": secret}),
    )
    .await;
    assert_eq!((status, body["error"].is_string()), (404, true));
    let (status, body) = post_json(
        &url,
        &json!({"clientId": "c1", "topics": ["bad topic!"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = post_json(
        &url,
        &json!({"clientId": "c1", "topics": ["news"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert!(body["held"]
        .as_array()
        .expect("held")
        .contains(&json!("news")));

    server
        .publish(json!({"topic": "news", "data": "first"}))
        .await;
    assert_eq!(stream.next_event().await.data, "first");

    let (status, body) = post_json(
        &server.url("/_sse/unsubscribe"),
        &json!({"clientId": "c1", "topics": ["news"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["held"]
        .as_array()
        .expect("held")
        .contains(&json!("news")));
    server
        .publish(json!({"topic": "news", "data": "second"}))
        .await;
    server.publish(json!({"data": "marker"})).await;
    assert_eq!(
        stream.next_event().await.data,
        "marker",
        "unsubscribed topic leaked"
    );
}

#[tokio::test]
async fn heartbeats_arrive_at_the_configured_interval() {
    let server = TestServer::start(BrokerConfig {
        heartbeat_interval: Duration::from_millis(100),
        ..BrokerConfig::default()
    })
    .await;
    let (mut stream, _) = server.connect("").await;
    let start = tokio::time::Instant::now();
    let mut beats = 0;
    while beats < 3 {
        if let Some(Frame::Event(e)) = stream.next_frame().await {
            if e.event == "heartbeat" {
                assert!(e.data.contains("timestamp"));
                beats += 1;
            }
        }
    }
    assert!(start.elapsed() < Duration::from_secs(2));

    let comments = TestServer::start(BrokerConfig {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_style: HeartbeatStyle::Comment,
        ..BrokerConfig::default()
    })
    .await;
    let (mut stream, _) = comments.connect("").await;
    loop {
        if let Some(Frame::Comment(c)) = stream.next_frame().await {
            assert_eq!(c, "heartbeat");
            break;
        }
    }
}

#[tokio::test]
async fn closing_the_connection_cleans_up() {
    let server = TestServer::start(quiet_config()).await;
    let (a, _) = server.connect("?topics=room:x").await;
    let (b, _) = server.connect("").await;
    assert_eq!(server.broker.client_count(), 2);
    assert_eq!(server.broker.clients_in("room:x"), 1);
    drop(a);
    drop(b);
    // The server notices on its next write: a broadcast is that write.
    server.wait_for_clients_after_broadcast(0).await;
    assert_eq!(server.broker.clients_in("room:x"), 0);
    let (_, stats) = common::read_json(
        reqwest::get(server.url("/_sse/stats"))
            .await
            .expect("stats"),
    )
    .await;
    assert_eq!(stats["clientCount"], 0);
}

#[tokio::test]
async fn last_event_id_replays_missed_events_in_order_without_duplicates() {
    let server = TestServer::start(quiet_config()).await;
    let (mut stream, _) = server.connect("?clientId=r&topics=feed").await;
    let cookie = stream.session_cookie().expect("a session");
    for i in 1..=3 {
        server
            .publish(json!({"topic": "feed", "data": format!("e{i}")}))
            .await;
    }
    let mut last = String::new();
    for i in 1..=3 {
        let e = stream.next_event().await;
        assert_eq!(e.data, format!("e{i}"));
        last = e.last_event_id;
    }
    drop(stream);
    // Missed while away: on its topic, to it directly, and to everyone.
    server.publish(json!({"topic": "feed", "data": "e4"})).await;
    server
        .publish(json!({"target": {"clientId": "r"}, "data": "e5"}))
        .await;
    server
        .publish(json!({"topic": "elsewhere", "data": "not-mine"}))
        .await;
    server.publish(json!({"data": "e6"})).await;

    // The same browser reconnects: its session cookie proves the id.
    let (mut back, _) = server
        .connect_as(
            "?clientId=r&topics=feed",
            Some(&last),
            &[("cookie", &cookie)],
        )
        .await;
    for want in ["e4", "e5", "e6"] {
        assert_eq!(back.next_event().await.data, want);
    }
    server.publish(json!({"topic": "feed", "data": "e7"})).await;
    assert_eq!(
        back.next_event().await.data,
        "e7",
        "a duplicate or stray event came first"
    );

    // The `lastEventId` query parameter works the same (EventSource polyfills).
    let (mut q, _) = server
        .connect(&format!("?clientId=r2&topics=feed&lastEventId={last}"))
        .await;
    assert_eq!(q.next_event().await.data, "e4");
}

#[tokio::test]
async fn reset_when_history_is_gone_or_the_id_is_foreign() {
    let server = TestServer::start(BrokerConfig {
        history: herald_server::broker::HistoryLimits {
            max_events: 2,
            ..Default::default()
        },
        ..quiet_config()
    })
    .await;
    let (mut stream, _) = server.connect("?topics=t").await;
    server.publish(json!({"topic": "t", "data": "1"})).await;
    let first = stream.next_event().await.last_event_id;
    for i in 2..=5 {
        server
            .publish(json!({"topic": "t", "data": i.to_string()}))
            .await;
    }
    let (mut back, _) = server.connect_with("?topics=t", Some(&first)).await;
    let reset = back.next_named("reset").await;
    let body: serde_json::Value = serde_json::from_str(&reset.data).expect("json");
    assert_eq!(body["reason"], "history-gap");
    assert_eq!(body["lastEventId"], first.as_str());
    // Then what history still has, in order.
    assert_eq!(back.next_event().await.data, "4");
    assert_eq!(back.next_event().await.data, "5");

    let (mut foreign, _) = server.connect_with("?topics=t", Some("12345-3")).await;
    let reset = foreign.next_named("reset").await;
    assert!(reset.data.contains("unknown-epoch"), "{}", reset.data);
    let (mut garbage, _) = server.connect_with("?topics=t", Some("not-an-id")).await;
    assert!(garbage
        .next_named("reset")
        .await
        .data
        .contains("invalid-id"));
}

#[tokio::test]
async fn an_id_ahead_of_the_log_is_a_reset_then_everything() {
    let server = TestServer::start(quiet_config()).await;
    let (mut stream, _) = server.connect("?topics=t").await;
    server.publish(json!({"topic": "t", "data": "1"})).await;
    let id = stream.next_event().await.last_event_id;
    let (epoch, seq) = id.split_once('-').expect("epoch-seq");
    let seq: u64 = seq.parse().expect("seq");
    // This log's epoch, a position it never reached.
    let ahead = format!("{epoch}-{}", seq + 1000);
    let (mut back, _) = server.connect_with("?topics=t", Some(&ahead)).await;
    let reset = back.next_named("reset").await;
    assert!(reset.data.contains("ahead-of-log"), "{}", reset.data);
    assert_eq!(back.next_event().await.data, "1", "then all the log holds");
    server.publish(json!({"topic": "t", "data": "2"})).await;
    assert_eq!(back.next_event().await.data, "2");
}

#[tokio::test]
async fn a_long_resume_across_topics_arrives_once_in_id_order_while_live_events_flow() {
    let server = TestServer::start(BrokerConfig {
        event_buffer_size: 1000,
        ..quiet_config()
    })
    .await;
    let (mut first, _) = server.connect("?topics=a,b,c").await;
    server.publish(json!({"topic": "a", "data": "0"})).await;
    let start = first.next_event().await.last_event_id;
    drop(first);
    // Many more than one page of history, spread over three topics.
    for i in 1..=600 {
        let topic = ["a", "b", "c"][i % 3];
        server
            .broker
            .publish(topic, herald_shared::wire::Event::data(i.to_string()))
            .await
            .expect("publish");
    }
    let (mut back, _) = server.connect_with("?topics=a,b,c", Some(&start)).await;
    // Live events while the history is still being written.
    let broker = server.broker.clone();
    let live = tokio::spawn(async move {
        for i in 601..=700 {
            let topic = ["a", "b", "c"][i % 3];
            broker
                .publish(topic, herald_shared::wire::Event::data(i.to_string()))
                .await
                .expect("publish");
            tokio::task::yield_now().await;
        }
    });
    let mut got = Vec::new();
    let mut last_seq = 0u64;
    while got.len() < 700 {
        let e = back.next_event().await;
        let seq: u64 = e
            .last_event_id
            .split_once('-')
            .expect("id")
            .1
            .parse()
            .expect("seq");
        assert!(seq > last_seq, "ids went backwards: {seq} after {last_seq}");
        last_seq = seq;
        got.push(e.data.parse::<usize>().expect("number"));
    }
    live.await.expect("publisher");
    assert_eq!(
        got,
        (1..=700).collect::<Vec<_>>(),
        "lost, doubled or reordered"
    );
}

#[tokio::test]
async fn a_stalled_reader_is_evicted_while_a_fast_reader_gets_everything() {
    let server = TestServer::start(BrokerConfig {
        event_buffer_size: 8,
        ..quiet_config()
    })
    .await;
    let (mut fast, _) = server.connect("?topics=hot").await;
    // The slow client connects and then never reads again.
    let (_stalled, _) = server.connect("?topics=hot").await;

    let payload = "x".repeat(16 * 1024);
    let total = 400;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < total {
            let e = fast.next_event().await;
            got.push(e.last_event_id);
        }
        got
    });
    let ids = server.publish_burst("hot", &payload, total).await;
    let got = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("fast reader stalled")
        .expect("join");
    assert_eq!(got, ids, "the fast reader lost or reordered events");
    assert!(
        server.broker.stats().evictions >= 1,
        "the stalled reader was never evicted"
    );
    assert_eq!(server.broker.clients_in("hot"), 1);
}

#[tokio::test]
async fn bad_publish_bodies_get_json_errors() {
    let server = TestServer::start(quiet_config()).await;
    let client = reqwest::Client::new();
    let url = server.url("/_sse/publish");
    let cases: [(&str, &str, u16); 6] = [
        ("application/json", "{not json", 400),
        ("text/plain", r#"{"data":"x"}"#, 415),
        ("application/json", "", 400),
        ("application/json", r#"{"data":"x","surprise":1}"#, 400),
        ("application/json", r#"{"data":"x","event":"a\nb"}"#, 400),
        (
            "application/json",
            r#"{"data":"x","topic":"a b","target":{"clientId":"b"}}"#,
            400,
        ),
    ];
    for (ctype, body, want) in cases {
        let resp = client
            .post(&url)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .expect("send");
        let (status, json) = common::read_json(resp).await;
        assert_eq!(status, want, "{body:?} -> {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    // Still serving.
    let (status, _) = server.publish(json!({"data": "fine"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_retried_publish_with_the_same_id_is_delivered_once() {
    let server = TestServer::start(quiet_config()).await;
    let (mut stream, _) = server.connect("?topics=orders").await;
    let body = json!({"topic": "orders", "id": "order-7-shipped", "data": "shipped"});
    let (s1, first) = server.publish(body.clone()).await;
    let (s2, retry) = server.publish(body).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        first["id"], retry["id"],
        "the retry must answer with the original id"
    );
    let (_, other) = server
        .publish(json!({"topic": "orders", "id": "order-8", "data": "next"}))
        .await;
    assert_ne!(other["id"], first["id"]);

    let e = stream.next_event().await;
    assert_eq!(
        (e.data.as_str(), e.last_event_id.as_str()),
        ("shipped", first["id"].as_str().expect("id"))
    );
    assert_eq!(
        stream.next_event().await.data,
        "next",
        "the retry was delivered twice"
    );
}

#[tokio::test]
async fn nobody_can_ask_for_another_clients_user_or_session_topic() {
    let server = TestServer::start(quiet_config()).await;
    let (mut victim, hello) = server.connect("?clientId=victim").await;
    let session = format!("session:{}", hello["sessionId"].as_str().expect("session"));
    let (_attacker, connected) = server.connect("?clientId=attacker").await;
    let secret = connected["secret"].as_str().expect("secret");

    for topic in ["client:victim", "user:alice", &session] {
        let resp = reqwest::get(server.url(&format!("/_sse/connect?topics={topic}")))
            .await
            .expect("connect");
        let (status, body) = common::read_json(resp).await;
        assert_eq!(status, 403, "{topic}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("reserved")),
            "{body}"
        );

        let (status, body) = post_json(
            &server.url("/_sse/subscribe"),
            &json!({"clientId": "attacker", "topics": [topic], "secret": secret}),
        )
        .await;
        assert_eq!(status, 403, "{topic}: {body}");
    }
    // The victim's targeted event still reaches only the victim.
    server
        .publish(json!({"target": {"clientId": "victim"}, "data": "private"}))
        .await;
    assert_eq!(victim.next_event().await.data, "private");
    assert_eq!(server.broker.clients_in("client:victim"), 1);
}

#[tokio::test]
async fn topic_and_id_rules_are_named_in_400s() {
    let server = TestServer::start(quiet_config()).await;
    let long = "t".repeat(129);
    for (body, needle) in [
        (json!({"topic": long, "data": "x"}), "at most 128"),
        (
            json!({"topic": "bad topic", "data": "x"}),
            "allowed characters",
        ),
        (json!({"topic": "", "data": "x"}), "must not be empty"),
        (json!({"data": "x", "id": "key\ninjected"}), "CR, LF or NUL"),
    ] {
        let (status, resp) = server.publish(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert!(
            resp["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body} -> {resp}"
        );
    }
    let resp = reqwest::get(server.url(&format!("/_sse/connect?topics={}", "t".repeat(129))))
        .await
        .expect("connect");
    let (status, body) = common::read_json(resp).await;
    assert_eq!(
        (
            status,
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("at most 128"))
        ),
        (400, true),
        "{body}"
    );
    let (status, _) = server.publish(json!({"data": "fine"})).await;
    assert_eq!(status, 200);
}
