//! `SSEHelper`: GoSPA's high-level helper, over the typed events of the
//! shared crate. Each method is one `publish` to the matching topic.

use herald_shared::events::{Alert, AlertLevel, Notification, Progress, Update};
use serde::Serialize;

use super::{names, BrokerError, EventId, SSEBroker};

/// Common notification patterns in one call each.
///
/// ```
/// use herald_server::broker::{BrokerConfig, SSEBroker, SSEHelper};
/// use herald_shared::events::{AlertLevel, Notification};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let helper = SSEHelper::new(SSEBroker::new(BrokerConfig::default()));
/// helper.notify("client-1", Notification::new("Hello!")).await.unwrap();
/// helper.notify_all(Notification::new("System maintenance in 5 minutes")).await.unwrap();
/// helper.update("client-1", "count", 42).await.unwrap();
/// helper.alert("client-1", AlertLevel::Warning, "Low disk space").await.unwrap();
/// helper.progress("client-1", 75, "Uploading...").await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SSEHelper {
    broker: SSEBroker,
}

impl SSEHelper {
    pub fn new(broker: SSEBroker) -> Self {
        SSEHelper { broker }
    }

    /// The broker this helper publishes through.
    pub fn broker(&self) -> &SSEBroker {
        &self.broker
    }

    async fn notification(&self, topic: &str, mut n: Notification) -> Result<EventId, BrokerError> {
        if n.id.is_empty() {
            n.id = crate::random::token(8);
        }
        if n.timestamp.is_empty() {
            n.timestamp = crate::clock::now_rfc3339();
        }
        self.broker.publish_typed(topic, &n).await
    }

    /// A `notification` to one client.
    pub async fn notify(&self, client_id: &str, n: Notification) -> Result<EventId, BrokerError> {
        self.notification(&names::client(client_id), n).await
    }

    /// A `notification` to everyone.
    pub async fn notify_all(&self, n: Notification) -> Result<EventId, BrokerError> {
        self.notification(names::ALL, n).await
    }

    /// A `notification` to a topic's subscribers.
    pub async fn notify_topic(&self, topic: &str, n: Notification) -> Result<EventId, BrokerError> {
        self.notification(topic, n).await
    }

    async fn update_to(
        &self,
        topic: &str,
        key: &str,
        value: impl Serialize,
    ) -> Result<EventId, BrokerError> {
        let value =
            serde_json::to_value(value).map_err(|e| BrokerError::Serialize(e.to_string()))?;
        self.broker
            .publish_typed(
                topic,
                &Update {
                    key: key.to_owned(),
                    value,
                },
            )
            .await
    }

    /// An `update` `{key, value}` to one client.
    pub async fn update(
        &self,
        client_id: &str,
        key: &str,
        value: impl Serialize,
    ) -> Result<EventId, BrokerError> {
        self.update_to(&names::client(client_id), key, value).await
    }

    /// An `update` to everyone.
    pub async fn update_all(
        &self,
        key: &str,
        value: impl Serialize,
    ) -> Result<EventId, BrokerError> {
        self.update_to(names::ALL, key, value).await
    }

    /// An `update` to a topic's subscribers.
    pub async fn update_topic(
        &self,
        topic: &str,
        key: &str,
        value: impl Serialize,
    ) -> Result<EventId, BrokerError> {
        self.update_to(topic, key, value).await
    }

    /// An `alert` `{level, message}` to one client.
    pub async fn alert(
        &self,
        client_id: &str,
        level: AlertLevel,
        message: &str,
    ) -> Result<EventId, BrokerError> {
        let alert = Alert {
            level,
            message: message.to_owned(),
        };
        self.broker
            .publish_typed(&names::client(client_id), &alert)
            .await
    }

    /// An `alert` to everyone.
    pub async fn alert_all(
        &self,
        level: AlertLevel,
        message: &str,
    ) -> Result<EventId, BrokerError> {
        self.broker
            .publish_typed(
                names::ALL,
                &Alert {
                    level,
                    message: message.to_owned(),
                },
            )
            .await
    }

    /// A `progress` `{progress, message}` to one client; percent is capped at 100.
    pub async fn progress(
        &self,
        client_id: &str,
        percent: u8,
        message: &str,
    ) -> Result<EventId, BrokerError> {
        self.progress_topic(&names::client(client_id), percent, message)
            .await
    }

    /// A `progress` to a topic's subscribers.
    pub async fn progress_topic(
        &self,
        topic: &str,
        percent: u8,
        message: &str,
    ) -> Result<EventId, BrokerError> {
        let p = Progress {
            progress: percent.min(100),
            message: message.to_owned(),
        };
        self.broker.publish_typed(topic, &p).await
    }
}
