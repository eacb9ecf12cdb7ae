//! Events about the connection itself.

use serde::{Deserialize, Serialize};

use super::SseEvent;

/// First event of every Herald stream: who you are and what you are on.
///
/// `secret` proves ownership of the connection to `/_sse/subscribe` and
/// `/_sse/unsubscribe`; it is only ever sent to the connection it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    /// The server's reconnect delay in ms. The `retry:` field says the same
    /// to the browser, but `EventSource` never shows it to scripts, so a
    /// client runtime that manages its own reconnects reads it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
    /// How this server sends heartbeats, so a client watching for silence
    /// knows what to expect (and that comments never reach an `EventSource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatInfo>,
}

/// The server's heartbeats, as `connected` announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatInfo {
    /// Milliseconds between heartbeats; 0 when there are none.
    pub interval_ms: u64,
    /// Sent as `event: heartbeat` (seen by every client) rather than as a
    /// comment (seen only by clients that parse the stream themselves).
    pub visible: bool,
}

impl SseEvent for Connected {
    const NAME: &'static str = "connected";
}

/// A heartbeat sent as an event (rather than a comment) for clients that
/// cannot see comments, such as a browser's `EventSource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub timestamp: String,
}

impl SseEvent for Heartbeat {
    const NAME: &'static str = "heartbeat";
}

/// Why the server could not resume a stream from the client's last event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetReason {
    /// History no longer reaches back to the requested id: events were missed.
    HistoryGap,
    /// The id comes from another broker epoch (a restart, or another cluster).
    UnknownEpoch,
    /// The id could not be parsed at all.
    InvalidId,
    /// The id is past anything the log has numbered (not one of its ids,
    /// or the log lost its tail): everything it holds follows.
    AheadOfLog,
    /// In a sharded log: the id does not name the shard of some of the
    /// stream's topics (its stream did not read them when it was written):
    /// everything the log holds of those topics follows.
    ShardNotInId,
}

/// Sent before any replay when the missed events cannot all be delivered:
/// the app should reload its state instead of trusting the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reset {
    pub reason: ResetReason,
    /// The id the client asked to resume from.
    pub last_event_id: String,
}

impl SseEvent for Reset {
    const NAME: &'static str = "reset";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    #[test]
    fn connected_shape() {
        let c = Connected {
            client_id: "c1".into(),
            secret: Some("s".into()),
            user_id: None,
            session_id: Some("sess".into()),
            topics: vec!["all".into()],
            retry: Some(1000),
            heartbeat: Some(HeartbeatInfo {
                interval_ms: 30_000,
                visible: false,
            }),
        };
        assert_shape(
            &c,
            json!({"clientId": "c1", "secret": "s", "sessionId": "sess", "topics": ["all"], "retry": 1000,
                   "heartbeat": {"intervalMs": 30000, "visible": false}}),
        );
        // GoSPA's minimal form decodes too.
        let minimal = Connected::from_data(r#"{"clientId":"x"}"#).expect("decodes");
        assert_eq!(minimal.client_id, "x");
    }

    #[test]
    fn heartbeat_and_reset_shapes() {
        assert_shape(
            &Heartbeat {
                timestamp: "2025-01-24T10:00:00Z".into(),
            },
            json!({"timestamp": "2025-01-24T10:00:00Z"}),
        );
        assert_shape(
            &Reset {
                reason: ResetReason::HistoryGap,
                last_event_id: "e1-5".into(),
            },
            json!({"reason": "history-gap", "lastEventId": "e1-5"}),
        );
        assert_shape(
            &Reset {
                reason: ResetReason::ShardNotInId,
                last_event_id: "3.7.8.2:5".into(),
            },
            json!({"reason": "shard-not-in-id", "lastEventId": "3.7.8.2:5"}),
        );
    }
}
