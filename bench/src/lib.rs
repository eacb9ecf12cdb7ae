//! # herald-bench
//!
//! A load generator for SSE servers: Herald and the baselines it is
//! measured against (a naive axum server, nginx + Nchan). Subscribers are
//! real HTTP/1.1 connections read with the shared crate's spec-conformant
//! parser; every event carries its number and its publish time, so each
//! subscriber checks loss, duplicates and order, and latency is measured
//! publish → receive on one clock.

pub mod backplanes;
pub mod client;
pub mod floor;
pub mod proc;
pub mod stats;
pub mod stream;
pub mod target;
pub mod workload;
