//! The servers under test and how each is spoken to.

use std::net::SocketAddr;

/// Which server a target is (they differ in routes and publish bodies).
///
/// Herald appears three times: its own `/_sse/connect`, and two app routes
/// written by the same stream path — a chat stream (`/chat/stream`: every
/// room the user may read, with the stream's connection-cap slot held)
/// and a job stream (`/api/v1/sse/jobs/my`). They should cost the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Herald,
    HeraldChat,
    HeraldJobs,
    NaiveAxum,
    Nchan,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Herald => "herald",
            Kind::HeraldChat => "herald-chat",
            Kind::HeraldJobs => "herald-jobs",
            Kind::NaiveAxum => "naive-axum",
            Kind::Nchan => "nchan",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "herald" => Some(Kind::Herald),
            "herald-chat" => Some(Kind::HeraldChat),
            "herald-jobs" => Some(Kind::HeraldJobs),
            "naive-axum" | "naive" => Some(Kind::NaiveAxum),
            "nchan" => Some(Kind::Nchan),
            _ => None,
        }
    }

    /// Whether it is a Herald app route, which needs a token: the app's
    /// topics are read by their users and published by a publish claim.
    pub fn needs_token(self) -> bool {
        matches!(self, Kind::HeraldChat | Kind::HeraldJobs)
    }
}

/// A running server: its kind, address and (for memory/CPU readings) pid.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    /// The token of user [`BENCH_USER`] (app routes): it reads the stream
    /// and its publish claim covers [`Target::topic`]. `'static` keeps
    /// targets `Copy`; a run mints one or two (see `main.rs`).
    pub token: Option<&'static str>,
}

/// Every benchmark event lives on this channel/topic.
pub const CHANNEL: &str = "bench";

/// The user the app routes' token is for (its job stream reads
/// `jobs:bench`).
pub const BENCH_USER: &str = "bench";

impl Target {
    /// The topic events are published to.
    pub fn topic(&self) -> String {
        match self.kind {
            Kind::HeraldChat => format!("chat:{CHANNEL}"),
            Kind::HeraldJobs => format!("jobs:{BENCH_USER}"),
            _ => CHANNEL.to_owned(),
        }
    }

    /// Where subscribers connect.
    pub fn subscribe_path(&self) -> String {
        match self.kind {
            Kind::Herald => format!("/_sse/connect?topics={CHANNEL}"),
            Kind::HeraldChat => format!("/chat/stream{}", self.token_query()),
            Kind::HeraldJobs => format!("/api/v1/sse/jobs/my{}", self.token_query()),
            Kind::NaiveAxum => "/sse".to_owned(),
            Kind::Nchan => format!("/sub/{CHANNEL}"),
        }
    }

    /// Where events are published.
    pub fn publish_path(&self) -> String {
        match self.kind {
            Kind::Herald | Kind::HeraldChat | Kind::HeraldJobs => {
                format!("/_sse/publish{}", self.token_query())
            }
            Kind::NaiveAxum => "/publish".to_owned(),
            Kind::Nchan => format!("/pub/{CHANNEL}"),
        }
    }

    fn token_query(&self) -> String {
        self.token
            .map_or_else(String::new, |t| format!("?token={t}"))
    }

    /// The request body publishing `data`, and its content type.
    ///
    /// ```
    /// use herald_bench::target::{Kind, Target};
    /// let mut t = Target { kind: Kind::Herald, addr: "127.0.0.1:1".parse().unwrap(), pid: None, token: None };
    /// assert_eq!(t.publish_body("7 123").0, r#"{"data":"7 123","topic":"bench"}"#);
    /// t.kind = Kind::HeraldJobs;
    /// assert_eq!(t.publish_body("7 123").0, r#"{"data":"7 123","topic":"jobs:bench"}"#);
    /// ```
    pub fn publish_body(&self, data: &str) -> (String, &'static str) {
        match self.kind {
            Kind::Herald | Kind::HeraldChat | Kind::HeraldJobs => (
                serde_json::json!({ "topic": self.topic(), "data": data }).to_string(),
                "application/json",
            ),
            Kind::NaiveAxum | Kind::Nchan => (data.to_owned(), "text/plain"),
        }
    }
}

/// The payload of event `seq`: its number and its publish time (µs since
/// the run's clock started), parsed back by subscribers.
///
/// ```
/// use herald_bench::target::{payload, parse_payload};
/// assert_eq!(parse_payload(&payload(42, 1234)), Some((42, 1234)));
/// assert_eq!(parse_payload("heartbeat"), None);
/// ```
pub fn payload(seq: u64, micros: u64) -> String {
    format!("{seq} {micros}")
}

pub fn parse_payload(data: &str) -> Option<(u64, u64)> {
    let (seq, micros) = data.split_once(' ')?;
    Some((seq.parse().ok()?, micros.parse().ok()?))
}
