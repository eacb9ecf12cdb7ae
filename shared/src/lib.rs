//! # herald-shared
//!
//! The vocabulary Herald's server and clients share:
//!
//! * [`wire`]: the SSE wire format, an encoder that refuses to write an
//!   injectable frame and an incremental parser that follows the WHATWG spec;
//! * [`events`]: typed events ([`events::SseEvent`]) so the type a server
//!   publishes is the type a client's `on::<T>()` receives;
//! * [`presence`]: the answer of `GET /_sse/presence`.
//!
//! It has no runtime dependencies (no tokio, no web-sys) and builds natively
//! and for `wasm32-unknown-unknown`.

pub mod events;
pub mod presence;
pub mod wire;

pub use events::SseEvent;
pub use wire::{EncodeError, Event, Frame, MessageEvent, Parser};
