//! Who is on a topic: the connections that asked for it by name.
//!
//! A connection is *present* on the topics it requested (`?topics=`,
//! `/_sse/subscribe`, an app's room): not on the ones every connection is
//! assigned (`all`, its own `client:`/`user:`/`session:`), and not on a
//! wildcard's topics (following `chat:*` is not being in every room).
//!
//! Each node is the authority on its own connections. A single node asks
//! its hub; with a shared backplane each node also records its members
//! there (`Backplane::join`/`leave`), each record leased: renewed while
//! the node lives, gone within the lease once it dies.

use super::client::ClientState;
use super::names;

/// One connection present on a topic (what `GET /_sse/presence` shows of
/// it is `herald_shared::presence::PresentMember`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client_id: String,
    /// The verified user, if any.
    pub user_id: Option<String>,
    /// The node holding the connection (`--node-id`).
    pub node: String,
    /// When the connection opened, in ms since the Unix epoch.
    pub since: u64,
    /// This connection among those that continue the same client id
    /// (kept by the server, not shown).
    pub serial: String,
}

impl Member {
    pub(crate) fn of(client: &ClientState, node: &str) -> Self {
        Member {
            client_id: client.id.to_string(),
            user_id: client.user_id().map(str::to_owned),
            node: node.to_owned(),
            since: client.since_ms,
            serial: client.serial.clone(),
        }
    }
}

/// Whether `client` is present on `topic` (see the module docs).
pub(crate) fn counts(client: &ClientState, topic: &str) -> bool {
    names::wildcard_prefix(topic).is_none() && !client.is_assigned(topic)
}

/// Oldest connection first (ties in a millisecond by client id, serial).
pub(crate) fn oldest_first(members: &mut [Member]) {
    members.sort_by(|a, b| {
        (a.since, &a.client_id, &a.serial).cmp(&(b.since, &b.client_id, &b.serial))
    });
}
