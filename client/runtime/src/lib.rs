//! # herald-client
//!
//! Herald's client runtime for Leptos apps: it reads a server's event
//! stream with the browser's `EventSource` or with `fetch`
//! ([`Transport`]), with reconnects that the app controls (exponential
//! backoff with jitter, `max_retries`, typed errors with their attempt
//! number), heartbeat monitoring, resume from the last event id, typed
//! handlers, GoSPA's [`SSEManager`] and Leptos hooks.
//!
//! The lifecycle logic lives in [`runtime`], a pure state machine tested
//! natively; the browser layer only carries out what it decides.
//!
//! One dependency line is enough: the typed events and the wire format of
//! [`herald_shared`] are re-exported ([`events`], [`SseEvent`],
//! [`presence`], [`wire`]).
//!
//! ```
//! use herald_client::events::Notification;
//! use herald_client::{connect_sse, SseConfig, Transport};
//!
//! let sse = connect_sse("notifications", SseConfig::new("/notifications/stream")
//!     .transport(Transport::Fetch)
//!     .bearer("a token"));
//! sse.on::<Notification>(|n| println!("{}", n.message)).forget();
//! sse.on_error(|e, attempt| println!("attempt {attempt}: {e}")).forget();
//! ```

#![warn(missing_docs)]

mod client;
mod config;
mod hooks;
pub mod http;
mod manager;
pub mod runtime;

pub use client::{Handle, Retry, SSEClient, SseError, SseMessage, WeakClient, ANY_EVENT};
pub use config::{SseConfig, Transport};
pub use hooks::{use_shared_sse, use_sse, use_sse_event, use_sse_events, SseHandle};
pub use manager::{connect_sse, get_sse_manager, SSEManager, SharedStream};
pub use runtime::machine::SseState;

pub use herald_shared;
pub use herald_shared::{events, presence, wire, SseEvent};
