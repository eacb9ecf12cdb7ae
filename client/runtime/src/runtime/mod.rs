//! The browser-free core of the client: the connection state machine and its
//! backoff. Unit-tested natively with a fake clock.

pub mod backoff;
pub mod machine;
