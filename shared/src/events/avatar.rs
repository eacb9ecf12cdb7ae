//! The plain broadcast system's `{type, data}` envelope and its avatar updates.
//! These are unnamed `data:` events: its clients read them in `onmessage`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SseEvent;

/// The untyped envelope `{"type": String, "data": Value}` of `POST /update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
}

impl SseEvent for Envelope {
    const NAME: &'static str = "message";
}

/// The avatar updates of the plain broadcast system, typed. Fields beyond
/// `avatar_id` (and `state`) are kept in `extra`, so nothing a publisher sent
/// is lost in a decode/encode cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum AvatarUpdate {
    AvatarStateChange(AvatarState),
    AvatarCreated(AvatarData),
    AvatarDeleted(AvatarData),
    VoiceUpdated(AvatarData),
}

impl SseEvent for AvatarUpdate {
    const NAME: &'static str = "message";
}

/// `{avatar_id, state, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvatarState {
    pub avatar_id: String,
    pub state: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{avatar_id, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvatarData {
    pub avatar_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    #[test]
    fn documented_update_is_both_an_envelope_and_a_typed_update() {
        let doc = json!({"type": "avatar_state_change", "data": {"avatar_id": "avatar_123", "state": "talking"}});
        assert_shape(
            &Envelope {
                kind: "avatar_state_change".into(),
                data: doc["data"].clone(),
            },
            doc.clone(),
        );
        assert_shape(
            &AvatarUpdate::AvatarStateChange(AvatarState {
                avatar_id: "avatar_123".into(),
                state: "talking".into(),
                extra: Map::new(),
            }),
            doc,
        );
    }

    #[test]
    fn other_avatar_updates_keep_their_fields() {
        let mut extra = Map::new();
        extra.insert("voice".into(), json!("alto"));
        for (kind, update) in [
            (
                "avatar_created",
                AvatarUpdate::AvatarCreated(AvatarData {
                    avatar_id: "a".into(),
                    extra: extra.clone(),
                }),
            ),
            (
                "avatar_deleted",
                AvatarUpdate::AvatarDeleted(AvatarData {
                    avatar_id: "a".into(),
                    extra: extra.clone(),
                }),
            ),
            (
                "voice_updated",
                AvatarUpdate::VoiceUpdated(AvatarData {
                    avatar_id: "a".into(),
                    extra: extra.clone(),
                }),
            ),
        ] {
            assert_shape(
                &update,
                json!({"type": kind, "data": {"avatar_id": "a", "voice": "alto"}}),
            );
        }
    }
}
