//! The APIs of the systems Herald replaces, as thin route modules over the
//! one broker: each turns its documented routes into publishes and
//! connections on topics, and owns no fan-out of its own.

pub mod system;
