//! Seed 002's "global connection limit: 1000" for its four streams
//! (notifications, realtime, chat, system status), on top of the broker's
//! own limits (all connections, 5 per user). Counted per node: with
//! several nodes each admits its own 1000.
//!
//! ```
//! use herald_server::apps::streams::StreamCap;
//! let cap = StreamCap::new(1);
//! let slot = cap.take().unwrap();
//! assert!(cap.take().is_err()); // a 429 naming the limit
//! drop(slot); // the stream ended
//! assert!(cap.take().is_ok());
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;

use crate::routes::error::ApiError;

/// Seed 002's documented limit.
pub const DEFAULT_STREAMS_MAX_CONNECTIONS: usize = 1000;

/// See the module docs.
#[derive(Debug)]
pub struct StreamCap {
    open: AtomicUsize,
    limit: usize,
}

/// One admitted stream; dropping it (with the stream) frees the place.
#[derive(Debug)]
pub struct Slot(Arc<StreamCap>);

impl StreamCap {
    /// `limit` streams at once; 0 for no limit.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(StreamCap {
            open: AtomicUsize::new(0),
            limit,
        })
    }

    /// A place for one more stream, or a 429 (with `Retry-After`).
    pub fn take(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let limit = self.limit;
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (limit == 0 || open < limit).then_some(open + 1)
            });
        match admitted {
            Ok(_) => Ok(Slot(self.clone())),
            Err(_) => Err(ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many connections to this API (limit {limit})"),
                )
            }),
        }
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
