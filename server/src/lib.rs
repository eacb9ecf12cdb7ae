//! # herald-server
//!
//! The [`broker`] (topics, fan-out, history, resume) and its HTTP [`routes`],
//! plus the server-rendered demo app wired up in `main.rs`.

pub mod apps;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod jobs;
pub mod limits;
pub mod net;
pub mod random;
pub mod ratelimit;
pub mod router;
pub mod routes;
pub mod state;
pub mod sync;
pub mod web;
