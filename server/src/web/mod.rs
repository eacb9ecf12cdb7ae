//! The HTTP toolkit every route uses: JSON errors ([`error`]), who is
//! calling ([`caller`]), event-stream responses ([`sse`]), the resume point
//! ([`resume`]), targets of a send ([`target`]), stream headers
//! ([`headers`]) and the access log. It knows the state and the broker,
//! never a route.

pub mod access_log;
pub mod caller;
pub mod error;
pub mod headers;
pub mod resume;
pub mod sse;
pub mod target;

pub use resume::LastEventId;
pub use sse::{sse_response, sse_stream_response};
