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
//!
//! What a caller is shown ([`shown_to`]) is not everything recorded: a
//! client id is what a squatter needs to take or pre-claim an id, so each
//! caller sees only its own connections' ids; members' user ids only where
//! the topic's rule says (`policy::Presence`); everyone else counts.

use std::collections::BTreeSet;

use herald_shared::presence::{PresentMember, TopicPresence};

use super::client::ClientState;
use super::names;
use super::policy::Principal;

/// One connection present on a topic (what `GET /_sse/presence` shows of
/// it is `herald_shared::presence::PresentMember`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub client_id: String,
    /// The verified user, if any.
    pub user_id: Option<String>,
    /// The verified session, if any (who may see the client id: its own).
    pub session_id: Option<String>,
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
            session_id: client.session_id().map(str::to_owned),
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

/// What `who` is shown of `topic`'s `members` (oldest first): the counts;
/// each of its own connections (same user, or same session when anonymous)
/// in full; and, when `show_users`, every other member's user id and when
/// it came, without its client id.
///
/// ```
/// use herald_server::broker::policy::Principal;
/// use herald_server::broker::{presence_shown_to, Member};
/// let member = |c: &str, u: &str| Member {
///     client_id: c.into(), user_id: Some(u.into()), session_id: None,
///     node: "n1".into(), since: 1, serial: c.into(),
/// };
/// let members = vec![member("tab-a", "alice"), member("tab-b", "bob")];
/// let alice = Principal::user("alice");
///
/// let counts = presence_shown_to("news", members.clone(), &alice, false);
/// assert_eq!((counts.count, counts.users, counts.members.len()), (2, 2, 1)); // her own only
/// assert_eq!(counts.members[0].client_id.as_deref(), Some("tab-a"));
///
/// let room = presence_shown_to("chat:lobby", members, &alice, true);
/// assert_eq!(room.members[1].user_id.as_deref(), Some("bob"));
/// assert_eq!(room.members[1].client_id, None); // never another's client id
/// ```
pub fn shown_to(
    topic: &str,
    members: Vec<Member>,
    who: &Principal,
    show_users: bool,
) -> TopicPresence {
    let users = members
        .iter()
        .filter_map(|m| m.user_id.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    let own = |m: &Member| match (&who.user_id, &m.user_id) {
        (Some(me), Some(them)) => me == them,
        (None, None) => who.session_id.is_some() && who.session_id == m.session_id,
        _ => false,
    };
    let count = members.len();
    let shown = members
        .into_iter()
        .filter_map(|m| {
            let mine = own(&m);
            (mine || show_users).then(|| PresentMember {
                client_id: mine.then_some(m.client_id),
                user_id: m.user_id,
                node: m.node,
                since: m.since,
            })
        })
        .collect();
    TopicPresence {
        topic: topic.to_owned(),
        count,
        users,
        members: shown,
    }
}
