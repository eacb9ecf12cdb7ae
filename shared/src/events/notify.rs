//! Notifications, state updates, alerts and progress: the vocabulary of
//! GoSPA's `SSEHelper` and of the multi-stream API's notification stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{named_as, SseEvent};

/// A user-facing notification: `{id, title, message, type, timestamp, userId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub message: String,
    /// `info`, `success`, `warning`, `error`, or an app's own kind.
    #[serde(rename = "type", default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub timestamp: String,
    /// The user it was sent to; `null` for one sent to every notification
    /// stream (seed 002's shape always has the key).
    #[serde(default)]
    pub user_id: Option<String>,
}

impl Notification {
    /// A notification with just a message (kind `info`); the sender fills in
    /// the id and timestamp when they are left empty.
    ///
    /// ```
    /// use herald_shared::events::Notification;
    /// let n = Notification::new("Hello!");
    /// assert_eq!((n.message.as_str(), n.kind.as_str()), ("Hello!", "info"));
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Notification {
            id: String::new(),
            title: String::new(),
            message: message.into(),
            kind: default_kind(),
            timestamp: String::new(),
            user_id: None,
        }
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the kind (`info`, `success`, `warning`, `error`, ...).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }
}

fn default_kind() -> String {
    "info".to_owned()
}

impl SseEvent for Notification {
    const NAME: &'static str = "notification";
}

named_as!(
    /// A system-wide announcement, same shape as [`Notification`].
    SystemNotification(Notification) = "system-notification"
);
named_as!(
    /// An error or warning for the user, same shape as [`Notification`].
    ErrorNotification(Notification) = "error-notification"
);

/// A state update `{key, value}` (GoSPA's `helper.Update(client, "count", 42)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub key: String,
    pub value: Value,
}

impl SseEvent for Update {
    const NAME: &'static str = "update";
}

/// How serious an [`Alert`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Info,
    Success,
    Warning,
    Error,
}

/// An alert `{level, message}` (GoSPA's `helper.Alert(client, "warning", "Low disk space")`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub level: AlertLevel,
    pub message: String,
}

impl SseEvent for Alert {
    const NAME: &'static str = "alert";
}

/// Progress `{progress, message}` in percent, 0 to 100.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub progress: u8,
    #[serde(default)]
    pub message: String,
}

impl SseEvent for Progress {
    const NAME: &'static str = "progress";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    fn sample() -> Notification {
        Notification {
            id: "n1".into(),
            title: "Test Notification".into(),
            message: "Hello World!".into(),
            kind: "info".into(),
            timestamp: "2025-01-24T10:00:00Z".into(),
            user_id: Some("test123".into()),
        }
    }

    #[test]
    fn notification_shapes() {
        let expected = json!({
            "id": "n1", "title": "Test Notification", "message": "Hello World!",
            "type": "info", "timestamp": "2025-01-24T10:00:00Z", "userId": "test123"
        });
        assert_shape(&sample(), expected.clone());
        assert_shape(&SystemNotification(sample()), expected.clone());
        assert_shape(&ErrorNotification(sample()), expected);
        let broadcast = Notification {
            user_id: None,
            ..sample()
        };
        assert_eq!(
            serde_json::to_value(&broadcast).unwrap()["userId"],
            json!(null)
        );
    }

    #[test]
    fn gospa_helper_shapes() {
        assert_shape(
            &Update {
                key: "count".into(),
                value: json!(42),
            },
            json!({"key": "count", "value": 42}),
        );
        assert_shape(
            &Alert {
                level: AlertLevel::Warning,
                message: "Low disk space".into(),
            },
            json!({"level": "warning", "message": "Low disk space"}),
        );
        assert_shape(
            &Progress {
                progress: 75,
                message: "Uploading...".into(),
            },
            json!({"progress": 75, "message": "Uploading..."}),
        );
    }

    #[test]
    fn minimal_notification_decodes_with_defaults() {
        let n = Notification::from_data(r#"{"message":"Hello!"}"#).expect("decodes");
        assert_eq!((n.message.as_str(), n.kind.as_str()), ("Hello!", "info"));
    }
}
