//! # herald-server
//!
//! A Server-Sent Events broker, the HTTP APIs over it, and the edge that
//! writes its streams. `main.rs` adds the server-rendered demo app.
//!
//! ## Crate map
//!
//! Dependencies run one way, top to bottom; nothing imports a module above
//! it.
//!
//! | module | owns |
//! |---|---|
//! | `main.rs` | parse [`config`], build [`state`], serve with [`net`], signals |
//! | [`router`] | every route mounted, CORS, request limits |
//! | [`routes`] | GoSPA's `/_sse` routes, `/healthz`, `/metrics` |
//! | [`apps`] | the five replaced systems' APIs (thin: topics and publishes) |
//! | [`web`] | the HTTP toolkit: JSON errors, the caller, SSE responses, `Last-Event-ID` |
//! | [`state`] | [`state::AppState`], what every handler reaches, and how a config becomes one |
//! | [`config`] | flags and environment variables, in groups |
//! | [`jobs`] | the job engine behind the jobs app (memory or Redis) |
//! | [`auth`] | tokens and session cookies → a verified identity |
//! | [`net`] | the accept loop and the one stream writer (flushers) |
//! | [`broker`] | clients, topics, policy, history, resume — no HTTP |
//! | [`limits`], [`ratelimit`], [`clock`], [`random`], [`sync`] | leaves |
//!
//! ## Where a published event goes
//!
//! 1. A route ([`routes`]' `publish.rs`, or an app) admits the caller
//!    ([`web::caller::Caller::admit_publish`]) and calls
//!    [`broker::SSEBroker::publish_to_as`] (`broker/mod.rs`), which asks the
//!    topic policy (`broker/policy.rs`) and encodes the event once.
//! 2. The [`broker::Backplane`] numbers it and appends it to each topic's
//!    history (`broker/memory.rs`; `broker/redis/` for several nodes), then
//!    hands it to every node's [`broker::Sink`].
//! 3. The hub (`broker/hub.rs`) finds the topic (and any wildcard holding
//!    it) and pushes a clone of the bytes onto each subscriber's bounded
//!    queue (`broker/topic.rs`, `broker/client.rs`), marking the
//!    connection dirty.
//! 4. A flusher thread (`net/flusher.rs`) writes each dirty connection's
//!    queued frames to its socket in one non-blocking write.
//!
//! A reconnecting stream takes the same path backwards:
//! `broker/connect.rs` reads its `Last-Event-ID`, replays what it missed
//! from the backplane (`broker/replay.rs`), then goes live.

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
