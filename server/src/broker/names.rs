//! Topic names: the rules every name follows, and the one constructor of
//! each name the server itself uses. Who may read or publish a name is
//! [`super::policy`]'s business; this module only spells them.
//!
//! ```
//! use herald_server::broker::names;
//! assert_eq!(names::user("alice"), "user:alice");
//! assert_eq!(names::chat_room("general"), "chat:general");
//! assert!(names::validate_topic("room:general").is_ok());
//! assert!(names::validate_topic("bad topic").is_err());
//! ```

use super::BrokerError;

/// The longest topic name accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;

/// Every connection's broadcast topic (unless its stream opts out).
pub const ALL: &str = "all";
/// Notifications for every `/notifications/stream`.
pub const NOTIFICATIONS: &str = "notifications";
/// Entity updates for every `/realtime/stream`.
pub const REALTIME: &str = "realtime";
/// What `POST /update` broadcasts and `GET /sse` reads.
pub const AVATAR_UPDATES: &str = "avatar:updates";
/// The periodic `status` events of `/system/status/stream`.
pub const SYSTEM_STATUS: &str = "system:status";

/// One connection's own topic.
pub fn client(id: &str) -> String {
    format!("client:{id}")
}

/// Every connection of a user.
pub fn user(id: &str) -> String {
    format!("user:{id}")
}

/// Every connection of a session.
pub fn session(id: &str) -> String {
    format!("session:{id}")
}

/// A chat room.
pub fn chat_room(room: &str) -> String {
    format!("chat:{room}")
}

/// One job's updates.
pub fn job(id: &str) -> String {
    format!("job:{id}")
}

/// Every job update of one owner.
pub fn jobs_of(owner: &str) -> String {
    format!("jobs:{owner}")
}

/// Checks a topic name: 1 to 128 bytes of `A-Z a-z 0-9 - _ . : @ /`.
pub fn validate_topic(topic: &str) -> Result<(), BrokerError> {
    let fail = |rule| {
        Err(BrokerError::InvalidTopic {
            topic: topic.chars().take(MAX_TOPIC_LEN).collect(),
            rule,
        })
    };
    if topic.is_empty() {
        return fail("must not be empty");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return fail("must be at most 128 bytes");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b))
    {
        return fail("allowed characters are A-Z a-z 0-9 - _ . : @ /");
    }
    Ok(())
}

/// The prefix of a wildcard subscription (`chat:*` → `chat:`), or `None`
/// for a plain topic.
pub fn wildcard_prefix(name: &str) -> Option<&str> {
    name.strip_suffix('*')
}

/// Checks what a stream may subscribe to: a topic, or a wildcard — a
/// topic prefix followed by `*` (`chat:*`: every topic starting with
/// `chat:`). A bare `*` is refused: "everything" is not a subscription.
///
/// ```
/// use herald_server::broker::names::validate_subscription;
/// assert!(validate_subscription("chat:*").is_ok());
/// assert!(validate_subscription("news").is_ok());
/// assert!(validate_subscription("*").is_err());
/// assert!(validate_subscription("a*b").is_err());
/// ```
pub fn validate_subscription(name: &str) -> Result<(), BrokerError> {
    match wildcard_prefix(name) {
        Some("") => Err(BrokerError::InvalidTopic {
            topic: name.to_owned(),
            rule: "a wildcard needs a prefix before the *, e.g. chat:*",
        }),
        Some(prefix) => validate_topic(prefix).map_err(|_| BrokerError::InvalidTopic {
            topic: name.chars().take(MAX_TOPIC_LEN + 1).collect(),
            rule: "a wildcard is a topic prefix (A-Z a-z 0-9 - _ . : @ /) followed by one *",
        }),
        None => validate_topic(name),
    }
}

/// Checks a client id: 1 to 128 bytes of `A-Z a-z 0-9 - _ . : @`.
pub(crate) fn validate_client_id(id: &str) -> Result<(), BrokerError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidClientId(id.chars().take(128).collect()))
    }
}
