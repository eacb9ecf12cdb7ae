//! A topic as this node sees it: its local subscribers.
//!
//! Every send in Herald is a publish to a topic (`client:<id>`, `user:<id>`,
//! `session:<id>`, `all`, a room, a job). The backplane numbers and stores
//! the event; this is where the encoded frame (one `Bytes`, shared) is put
//! in each local subscriber's bounded queue. Publishing never waits on a
//! subscriber's socket, and two topics never contend with each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::client::{ClientState, Delivery, Offered};
use super::stats::Stats;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Topic {
    subscribers: Mutex<HashMap<Arc<str>, Arc<ClientState>>>,
}

impl Topic {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<ClientState>>> {
        // Every update is one insert or remove: a panic elsewhere cannot
        // leave the map half-changed, so a poisoned lock is taken over.
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This topic's identity in a [`Delivery`] (stable while it has subscribers).
    pub fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Queues the same frame for every subscriber. A subscriber whose queue
    /// is full is evicted by `offer` (counted once, where it happens) and
    /// dropped from the topic, as is one whose stream already ended.
    pub fn deliver(self: &Arc<Self>, seq: u64, frame: Bytes, stats: &Stats) {
        let key = self.key();
        let mut subscribers = self.lock();
        let mut gone = Vec::new();
        for (id, client) in subscribers.iter() {
            let offered = client.offer(Delivery {
                key,
                seq,
                frame: frame.clone(),
            });
            match offered {
                Offered::Queued => stats.delivered(),
                Offered::Evicted => {
                    stats.evicted();
                    gone.push(id.clone());
                }
                Offered::Closed => gone.push(id.clone()),
            }
        }
        for id in gone {
            subscribers.remove(&id);
        }
    }

    pub fn subscribe(&self, client: &Arc<ClientState>) {
        self.lock().insert(client.id.clone(), client.clone());
    }

    /// Removes a subscriber if it is still this exact connection.
    pub fn unsubscribe(&self, client: &Arc<ClientState>) {
        let mut subscribers = self.lock();
        if subscribers
            .get(&client.id)
            .is_some_and(|c| Arc::ptr_eq(c, client))
        {
            subscribers.remove(&client.id);
        }
    }

    /// Closes every subscriber's stream (see `Sink::lost`).
    pub fn close_all(&self) {
        for client in self.lock().values() {
            client.close();
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().len()
    }
}
