//! The broker over the `Backplane` seam: custom backplanes exercise what the
//! in-memory one cannot show (a race with replay, an unavailable log).

mod common;

use std::sync::Arc;
use std::time::Duration;

use herald_server::broker::{
    Append, AppendError, Appended, Backplane, BackplaneError, BoxFuture, BrokerConfig, Claimed,
    ClientClaim, ConnectOptions, Epoch, HistoryLimits, Matched, MemoryBackplane, Page, Position,
    Replay, SSEBroker, Sink,
};
use herald_server::router::router;
use herald_server::state::AppState;
use herald_shared::wire::{Event, Parser};
use serde_json::json;

/// A log where, every time a client asks for its history, another publisher
/// gets an event in first: it is delivered live *and* is in the replay.
struct RacyReplay(MemoryBackplane);

impl Backplane for RacyReplay {
    fn name(&self) -> &'static str {
        "racy"
    }
    fn epoch(&self) -> Epoch {
        self.0.epoch()
    }
    fn attach(&self, sink: Arc<dyn Sink>) {
        self.0.attach(sink)
    }
    fn append<'a>(&'a self, event: Append<'a>) -> BoxFuture<'a, Result<Appended, AppendError>> {
        self.0.append(event)
    }
    fn replay<'a>(
        &'a self,
        topic: &'a str,
        page: Page,
    ) -> BoxFuture<'a, Result<Replay, BackplaneError>> {
        Box::pin(async move {
            if topic == "feed" {
                let raced = Event::data("raced").encode().expect("valid");
                let appended = self.0.append(Append::new(&[topic], raced)).await;
                appended.map_err(|e| BackplaneError(e.to_string()))?;
            }
            self.0.replay(topic, page).await
        })
    }
    fn topics_under<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Matched, BackplaneError>> {
        self.0.topics_under(prefix, limit)
    }
    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>> {
        self.0.head()
    }
    fn claim_client<'a>(
        &'a self,
        id: &'a str,
        claim: ClientClaim<'a>,
    ) -> BoxFuture<'a, Result<Claimed, BackplaneError>> {
        self.0.claim_client(id, claim)
    }
    fn release_client(&self, id: &str, holder: &str, keep_for: Duration) {
        self.0.release_client(id, holder, keep_for)
    }
}

async fn data_of(sub: &mut herald_server::broker::Subscription) -> Vec<String> {
    let mut out = Vec::new();
    let mut frames = Vec::new();
    sub.drain_ready(&mut frames, 100, usize::MAX);
    for f in frames {
        for frame in Parser::parse_all(&f) {
            if let herald_shared::Frame::Event(e) = frame {
                if e.event == "message" {
                    out.push(e.data);
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn an_event_appended_during_replay_arrives_exactly_once_in_order() {
    let broker = SSEBroker::with_backplane(
        BrokerConfig::default(),
        Arc::new(RacyReplay(MemoryBackplane::new(HistoryLimits::default()))),
    );
    let first = broker
        .publish("feed", Event::data("before"))
        .await
        .expect("publish");
    let missed = broker
        .publish("feed", Event::data("missed"))
        .await
        .expect("publish");
    assert!(missed.seq > first.seq);
    let mut sub = broker
        .connect(ConnectOptions {
            topics: vec!["feed".into()],
            last_event_id: Some(first.to_string()),
            ..ConnectOptions::default()
        })
        .await
        .expect("connect");
    broker
        .publish("feed", Event::data("after"))
        .await
        .expect("publish");
    assert_eq!(data_of(&mut sub).await, ["missed", "raced", "after"]);
}

/// A log whose server is down.
struct Down;

impl Backplane for Down {
    fn name(&self) -> &'static str {
        "down"
    }
    fn epoch(&self) -> Epoch {
        Epoch(1)
    }
    fn attach(&self, _sink: Arc<dyn Sink>) {}
    fn append<'a>(&'a self, _: Append<'a>) -> BoxFuture<'a, Result<Appended, AppendError>> {
        Box::pin(async { Err(BackplaneError("connection refused".into()).into()) })
    }
    fn replay<'a>(&'a self, _: &'a str, _: Page) -> BoxFuture<'a, Result<Replay, BackplaneError>> {
        Box::pin(async { Err(BackplaneError("connection refused".into())) })
    }
    fn topics_under<'a>(
        &'a self,
        _: &'a str,
        _: usize,
    ) -> BoxFuture<'a, Result<Matched, BackplaneError>> {
        Box::pin(async { Err(BackplaneError("connection refused".into())) })
    }
    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>> {
        Box::pin(async { Err(BackplaneError("connection refused".into())) })
    }
    fn claim_client<'a>(
        &'a self,
        _: &'a str,
        _: ClientClaim<'a>,
    ) -> BoxFuture<'a, Result<Claimed, BackplaneError>> {
        Box::pin(async { Err(BackplaneError("connection refused".into())) })
    }
    fn release_client(&self, _: &str, _: &str, _: Duration) {}
}

#[tokio::test]
async fn an_unavailable_backplane_is_a_503_with_a_json_error() {
    let config = BrokerConfig {
        open_publishing: true,
        ..BrokerConfig::default()
    };
    let broker = SSEBroker::with_backplane(config, Arc::new(Down));
    let app = router(AppState::new(broker.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let (status, body) = common::post_json(
        &format!("http://{addr}/_sse/publish"),
        &json!({"data": "x"}),
    )
    .await;
    assert_eq!(status, 503);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "{body}"
    );

    // Live streams still open (no history needed) and the client is not leaked on a failed resume.
    let resp = reqwest::get(format!("http://{addr}/_sse/connect"))
        .await
        .expect("connect");
    assert_eq!(resp.status(), 200);
    drop(resp);
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/_sse/connect?clientId=r"))
        .header("Last-Event-ID", "00000001-5")
        .send()
        .await
        .expect("connect");
    let (status, body) = common::read_json(resp).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        broker.client("r").is_none(),
        "a failed connect must not leave the client registered"
    );
}
