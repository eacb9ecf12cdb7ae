//! The hand-off between a route and the accept loop: an event-stream
//! response carries its [`Subscription`] in a [`DirectStream`], which the
//! accept loop takes to write the stream itself (`super::flusher`); when
//! hyper serves the response instead, its body takes it.

use std::sync::{Arc, Mutex};

use crate::broker::Subscription;
use crate::sync::lock;

/// The subscription behind an event-stream response, for whoever writes
/// the response first to take: the accept loop, to write it directly, or
/// the body, when hyper serves the response.
#[derive(Debug, Clone)]
pub struct DirectStream(Arc<Mutex<Option<Subscription>>>);

impl DirectStream {
    pub fn new(sub: Subscription) -> Self {
        DirectStream(Arc::new(Mutex::new(Some(sub))))
    }

    /// The subscription, unless the body or another caller took it.
    pub fn take(&self) -> Option<Subscription> {
        // Taking is one `Option::take`: never half done.
        lock(&self.0).take()
    }
}

/// Counts bytes written to event streams, whichever path wrote them.
pub fn count_bytes_written(n: usize) {
    BYTES_WRITTEN.increment(n as u64);
}

/// The Prometheus counter, looked up once.
static BYTES_WRITTEN: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("herald_bytes_written_total"));
