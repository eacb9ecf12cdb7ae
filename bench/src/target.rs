//! The servers under test and how each is spoken to.

use std::net::SocketAddr;

/// Which server a target is (they differ in routes and publish bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Herald,
    NaiveAxum,
    Nchan,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Herald => "herald",
            Kind::NaiveAxum => "naive-axum",
            Kind::Nchan => "nchan",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "herald" => Some(Kind::Herald),
            "naive-axum" | "naive" => Some(Kind::NaiveAxum),
            "nchan" => Some(Kind::Nchan),
            _ => None,
        }
    }
}

/// A running server: its kind, address and (for memory/CPU readings) pid.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
}

/// Every benchmark event lives on this channel/topic.
pub const CHANNEL: &str = "bench";

impl Target {
    /// Where subscribers connect.
    pub fn subscribe_path(&self) -> String {
        match self.kind {
            Kind::Herald => format!("/_sse/connect?topics={CHANNEL}"),
            Kind::NaiveAxum => "/sse".to_owned(),
            Kind::Nchan => format!("/sub/{CHANNEL}"),
        }
    }

    /// Where events are published.
    pub fn publish_path(&self) -> String {
        match self.kind {
            Kind::Herald => "/_sse/publish".to_owned(),
            Kind::NaiveAxum => "/publish".to_owned(),
            Kind::Nchan => format!("/pub/{CHANNEL}"),
        }
    }

    /// The request body publishing `data`, and its content type.
    ///
    /// ```
    /// use herald_bench::target::{Kind, Target};
    /// let t = Target { kind: Kind::Herald, addr: "127.0.0.1:1".parse().unwrap(), pid: None };
    /// assert_eq!(t.publish_body("7 123").0, r#"{"data":"7 123","topic":"bench"}"#);
    /// ```
    pub fn publish_body(&self, data: &str) -> (String, &'static str) {
        match self.kind {
            Kind::Herald => (
                serde_json::json!({ "topic": CHANNEL, "data": data }).to_string(),
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
