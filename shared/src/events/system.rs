//! System events of the multi-stream API's public `/system/status/stream`.

use serde::{Deserialize, Serialize};

use super::SseEvent;

/// `{status, uptime, connections, memory, cpu, timestamp}`; also the body of
/// `GET /system/status`, which has no timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// `healthy`, `degraded`, ...
    pub status: String,
    /// Seconds since the server started.
    pub uptime: u64,
    /// Open streams on this node.
    pub connections: u64,
    /// Resident memory, human readable (`"125MB"`).
    pub memory: String,
    /// CPU use, human readable (`"15%"`).
    pub cpu: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Events published per second since the previous status event (Herald's
    /// addition, on stream events only).
    #[serde(
        rename = "eventsPerSecond",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub events_per_second: Option<f64>,
    /// The node that published this reading (Herald's addition, on stream
    /// events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// With several nodes the stream's event sums them up (`connections`
    /// in all, the worst `status`); here is each node's own reading
    /// (Herald's addition, on stream events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeStatus>>,
}

/// One node's reading in a cluster's `status` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub status: String,
    pub uptime: u64,
    pub connections: u64,
    pub memory: String,
    pub cpu: String,
}

impl SseEvent for SystemStatus {
    const NAME: &'static str = "status";
}

/// A maintenance announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub message: String,
    #[serde(default)]
    pub timestamp: String,
}

impl SseEvent for Maintenance {
    const NAME: &'static str = "maintenance";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    #[test]
    fn status_shapes() {
        let mut s = SystemStatus {
            status: "healthy".into(),
            uptime: 3600,
            connections: 42,
            memory: "125MB".into(),
            cpu: "15%".into(),
            timestamp: None,
            events_per_second: None,
            node: None,
            nodes: None,
        };
        // The documented `GET /system/status` response, exactly.
        assert_shape(
            &s,
            json!({"status": "healthy", "uptime": 3600, "connections": 42, "memory": "125MB", "cpu": "15%"}),
        );
        s.timestamp = Some("2025-01-24T10:00:00Z".into());
        assert_shape(
            &s,
            json!({"status": "healthy", "uptime": 3600, "connections": 42, "memory": "125MB",
                   "cpu": "15%", "timestamp": "2025-01-24T10:00:00Z"}),
        );
        assert_shape(
            &Maintenance {
                message: "down at 5".into(),
                timestamp: "t".into(),
            },
            json!({"message": "down at 5", "timestamp": "t"}),
        );
    }
}
