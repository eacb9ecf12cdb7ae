//! The SSE wire format: [`Event`] → bytes ([`encode`]) and bytes → [`Frame`]s
//! ([`parse`]), both per the WHATWG HTML "Server-sent events" section.

pub mod encode;
pub mod parse;

pub use encode::{EncodeError, Event};
pub use parse::{Frame, MessageEvent, Parser};
