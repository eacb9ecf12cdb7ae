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

/// Prefixes of the topics every connection is put on implicitly. Asking
/// for one explicitly would let a client read another's targeted events.
pub const RESERVED_PREFIXES: [&str; 3] = ["client:", "user:", "session:"];

/// Checks a topic a client asks for: valid, and not one of the implicit
/// per-client, per-user or per-session topics.
pub fn validate_requested_topic(topic: &str) -> Result<(), BrokerError> {
    validate_topic(topic)?;
    if RESERVED_PREFIXES.iter().any(|p| topic.starts_with(p)) {
        return Err(BrokerError::ReservedTopic(topic.to_owned()));
    }
    Ok(())
}
