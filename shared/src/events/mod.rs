//! Typed events: one Rust type is both what the server publishes and what a
//! client's `on::<T>()` handler receives, so the two sides cannot drift.
//!
//! Each type names its wire event (`event:` field) once, in [`SseEvent::NAME`].
//! Types whose name is `message` are sent without an `event:` line, which is
//! what `EventSource.onmessage` and the systems Herald replaces expect.
//! Untyped events stay possible: build a [`crate::wire::Event`] by hand.

use serde::{de::DeserializeOwned, Serialize};

use crate::wire::Event;

pub mod avatar;
pub mod chat;
pub mod entity;
pub mod job;
pub mod lifecycle;
pub mod notify;
pub mod system;

pub use avatar::{AvatarUpdate, Envelope};
pub use chat::{ChatMessage, Presence, Typing, UserJoined, UserLeft};
pub use entity::{EntityCreate, EntityDelete, EntityEvent, EntityStatusChange, EntityUpdate};
pub use job::{JobConnected, JobMessage, JobState, JobStatus};
pub use lifecycle::{Connected, Heartbeat, HeartbeatInfo, Reset, ResetReason};
pub use notify::{
    Alert, AlertLevel, ErrorNotification, Notification, Progress, SystemNotification, Update,
};
pub use system::{Maintenance, NodeStatus, SystemStatus};

/// The wire name every untyped `data:`-only event has.
pub const MESSAGE: &str = "message";

/// An event type with a stable wire name and a JSON payload.
///
/// ```
/// use herald_shared::events::{Alert, AlertLevel, SseEvent};
///
/// let alert = Alert { level: AlertLevel::Warning, message: "Low disk space".into() };
/// let event = alert.to_event().unwrap();
/// assert_eq!(event.event.as_deref(), Some("alert"));
/// assert_eq!(Alert::from_data(event.data.as_deref().unwrap()).unwrap(), alert);
/// ```
pub trait SseEvent: Serialize + DeserializeOwned {
    /// The `event:` name on the wire.
    const NAME: &'static str;

    /// The untyped event carrying this value as JSON data. `message` events
    /// get no `event:` line.
    fn to_event(&self) -> Result<Event, serde_json::Error> {
        let event = Event::data(serde_json::to_string(self)?);
        Ok(if Self::NAME == MESSAGE {
            event
        } else {
            event.event(Self::NAME)
        })
    }

    /// Decodes an event's data.
    fn from_data(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
    }
}

/// Declares a transparent wrapper that gives an existing payload shape another
/// wire name (e.g. `notification` / `system-notification` share one shape).
macro_rules! named_as {
    ($(#[$meta:meta])* $name:ident($inner:ty) = $wire:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $crate::events::SseEvent for $name {
            const NAME: &'static str = $wire;
        }
    };
}
pub(crate) use named_as;

#[cfg(test)]
pub(crate) mod test_support {
    use super::SseEvent;
    use serde_json::Value;
    use std::fmt::Debug;

    /// Asserts the value serialises to exactly `expected` and decodes back.
    pub fn assert_shape<T: SseEvent + PartialEq + Debug>(value: &T, expected: Value) {
        let event = value.to_event().expect("serialises");
        let data = event.data.clone().expect("has data");
        let actual: Value = serde_json::from_str(&data).expect("valid json");
        assert_eq!(actual, expected, "JSON shape of {}", T::NAME);
        assert_eq!(&T::from_data(&data).expect("decodes"), value);
        if T::NAME == super::MESSAGE {
            assert_eq!(event.event, None);
        } else {
            assert_eq!(event.event.as_deref(), Some(T::NAME));
        }
    }
}
