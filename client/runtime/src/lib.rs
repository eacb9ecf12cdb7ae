//! # herald-client
//!
//! Herald's client runtime for Leptos apps: it wraps the browser's
//! `EventSource` with reconnects that the app controls (exponential backoff
//! with jitter, `max_retries`), heartbeat monitoring, resume from the last
//! event id, and typed handlers.
//!
//! The lifecycle logic lives in [`runtime`], a pure state machine tested
//! natively; the browser layer only carries out what it decides.

mod client;
mod config;
mod hooks;
pub mod http;
mod manager;
pub mod runtime;

pub use client::{Handle, Retry, SSEClient, SseError, SseMessage};
pub use config::SseConfig;
pub use hooks::{use_sse, use_sse_event, use_sse_events, SseHandle};
pub use manager::{get_sse_manager, SSEManager, SharedStream};
pub use runtime::machine::SseState;
