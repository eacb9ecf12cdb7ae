//! Request and connection limits of the HTTP edge: their defaults, and
//! [`ConnectionCap`], a cap on streams open at once (seed 002's "global
//! connection limit: 1000" for its four streams, on top of the broker's
//! own limits). Counted per node: with several nodes each admits its own.
//!
//! ```
//! use herald_server::limits::ConnectionCap;
//! let cap = ConnectionCap::new(1);
//! let slot = cap.take().unwrap();
//! assert!(cap.take().is_err()); // a 429 naming the limit, at the edge
//! drop(slot); // the stream ended
//! assert!(cap.take().is_ok());
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest request body accepted (`--max-body-bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Seconds a client may take to send a request body (`--body-timeout-secs`).
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;
/// The longest request target (path and query) the routes accept. hyper
/// itself refuses targets over 64 KiB with a bare 414 before any route runs.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Seed 002's documented limit for its streams (`--streams-max-connections`).
pub const DEFAULT_STREAMS_MAX_CONNECTIONS: usize = 1000;

/// See the module docs.
#[derive(Debug)]
pub struct ConnectionCap {
    open: AtomicUsize,
    limit: usize,
}

/// One admitted stream; dropping it (with the stream) frees the place.
#[derive(Debug)]
pub struct Slot(Arc<ConnectionCap>);

/// The cap is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections to this API (limit {limit})")]
pub struct Full {
    pub limit: usize,
}

impl ConnectionCap {
    /// `limit` streams at once; 0 for no limit.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ConnectionCap {
            open: AtomicUsize::new(0),
            limit,
        })
    }

    /// A place for one more stream.
    pub fn take(self: &Arc<Self>) -> Result<Slot, Full> {
        let limit = self.limit;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (limit == 0 || open < limit).then_some(open + 1)
            })
            .map(|_| Slot(self.clone()))
            .map_err(|_| Full { limit })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
