//! Chat room events of the multi-stream API's `/chat/stream`.

use serde::{Deserialize, Serialize};

use super::{named_as, SseEvent};

/// A chat message `{id, roomId, userId, username, message, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub message: String,
    pub timestamp: String,
}

impl SseEvent for ChatMessage {
    const NAME: &'static str = "message";
}

/// Someone entered or left a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub timestamp: String,
}

named_as!(
    /// A user joined a room.
    UserJoined(Presence) = "user-joined"
);
named_as!(
    /// A user left a room.
    UserLeft(Presence) = "user-left"
);

/// A typing indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
    pub is_typing: bool,
}

impl SseEvent for Typing {
    const NAME: &'static str = "typing";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    #[test]
    fn chat_shapes() {
        assert_shape(
            &ChatMessage {
                id: "m1".into(),
                room_id: "general".into(),
                user_id: "test123".into(),
                username: "testuser".into(),
                message: "Hello everyone!".into(),
                timestamp: "2025-01-24T10:00:00Z".into(),
            },
            json!({"id": "m1", "roomId": "general", "userId": "test123",
                   "username": "testuser", "message": "Hello everyone!",
                   "timestamp": "2025-01-24T10:00:00Z"}),
        );
        let p = Presence {
            room_id: "general".into(),
            user_id: "u".into(),
            username: "n".into(),
            timestamp: "t".into(),
        };
        let expected =
            json!({"roomId": "general", "userId": "u", "username": "n", "timestamp": "t"});
        assert_shape(&UserJoined(p.clone()), expected.clone());
        assert_shape(&UserLeft(p), expected);
        assert_shape(
            &Typing {
                room_id: "r".into(),
                user_id: "u".into(),
                username: "n".into(),
                is_typing: true,
            },
            json!({"roomId": "r", "userId": "u", "username": "n", "isTyping": true}),
        );
    }
}
