//! Entity events of the multi-stream API's `/realtime/stream`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::named_as;

/// `{entityType, entityId, action, data, timestamp}`, shared by the four
/// entity event names below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityEvent {
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub timestamp: String,
}

named_as!(
    /// An entity changed.
    EntityUpdate(EntityEvent) = "update"
);
named_as!(
    /// An entity was created.
    EntityCreate(EntityEvent) = "create"
);
named_as!(
    /// An entity was deleted.
    EntityDelete(EntityEvent) = "delete"
);
named_as!(
    /// An entity's status changed.
    EntityStatusChange(EntityEvent) = "status-change"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    #[test]
    fn entity_shapes() {
        let e = EntityEvent {
            entity_type: "user".into(),
            entity_id: "user123".into(),
            action: "updated".into(),
            data: json!({"status": "online"}),
            timestamp: "2025-01-24T10:00:00Z".into(),
        };
        let expected = json!({
            "entityType": "user", "entityId": "user123", "action": "updated",
            "data": {"status": "online"}, "timestamp": "2025-01-24T10:00:00Z"
        });
        assert_shape(&EntityUpdate(e.clone()), expected.clone());
        assert_shape(&EntityCreate(e.clone()), expected.clone());
        assert_shape(&EntityDelete(e.clone()), expected.clone());
        assert_shape(&EntityStatusChange(e), expected);
    }
}
