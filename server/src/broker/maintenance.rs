//! Work on a clock: heartbeats, history expiry, dropping idle topics, and
//! closing every stream on shutdown.

use std::sync::Arc;
use std::time::Duration;

use herald_shared::events::Heartbeat;
use herald_shared::wire::Event;

use super::client::{Delivery, Offered};
use super::{typed_event, HeartbeatStyle, SSEBroker};

impl SSEBroker {
    /// Closes every stream (graceful shutdown): each client gets a `retry:`
    /// hint first so it comes back soon, possibly to another node.
    pub fn close_all(&self) {
        let clients = self.inner.registry.all();
        let hint = Event::retry_hint(self.inner.config.retry_hint_ms).encode();
        for client in clients {
            if let Ok(hint) = &hint {
                client.offer(Delivery::control(hint.clone()));
            }
            client.close();
        }
    }

    /// Sends one heartbeat to every client and drops expired history. A
    /// client whose queue is full is closed here too.
    pub fn tick(&self) {
        let frame = match self.inner.config.heartbeat_style {
            HeartbeatStyle::Comment => Ok(Event::comment("heartbeat")),
            HeartbeatStyle::Event => typed_event(&Heartbeat {
                timestamp: crate::clock::now_rfc3339(),
            }),
        }
        .and_then(|e| Ok(e.encode()?));
        if let Ok(frame) = frame {
            let clients = self.inner.registry.all();
            for client in clients {
                if client.offer(Delivery::control(frame.clone())) == Offered::Evicted {
                    self.inner.hub.stats.evicted();
                }
            }
        }
        self.sweep();
    }

    fn sweep(&self) {
        self.inner.backplane.sweep();
        self.inner.hub.sweep();
    }

    /// Spawns the heartbeat/expiry loop; it stops when every broker handle is gone.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = if self.inner.config.heartbeat_interval.is_zero() {
            Duration::from_secs(30)
        } else {
            self.inner.config.heartbeat_interval
        };
        let beats = !self.inner.config.heartbeat_interval.is_zero();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await; // the first tick is immediate
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let broker = SSEBroker { inner };
                if beats {
                    broker.tick();
                } else {
                    broker.sweep();
                }
            }
        })
    }
}
