//! The answer of `GET /_sse/presence?topic=`: who is connected to a topic,
//! on every node. The server writes it and a client reads it
//! (`herald_client::http::presence`), so the two cannot drift.
//!
//! ```
//! use herald_shared::presence::TopicPresence;
//!
//! let body = r#"{"topic":"room:lobby","count":1,"users":1,
//!     "members":[{"clientId":"c1","userId":"alice","node":"n1","since":1764662400000}]}"#;
//! let presence: TopicPresence = serde_json::from_str(body).unwrap();
//! assert_eq!(presence.members[0].user_id.as_deref(), Some("alice"));
//! assert_eq!(presence.members[0].client_id.as_deref(), Some("c1"));
//! ```

use serde::{Deserialize, Serialize};

/// Who is on `topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPresence {
    pub topic: String,
    /// Connections present.
    pub count: usize,
    /// Distinct signed-in users among them.
    pub users: usize,
    /// Oldest connection first: the asker's own, and the others where the
    /// topic shows its members to the asker.
    pub members: Vec<PresentMember>,
}

/// One connection present on a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresentMember {
    /// Only for the asker's own connections: a client id is never shown
    /// to anyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The verified user, if any.
    pub user_id: Option<String>,
    /// The node holding the connection.
    pub node: String,
    /// When the connection opened, in ms since the Unix epoch.
    pub since: u64,
}
