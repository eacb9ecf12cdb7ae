//! A topic as this node sees it: its name and its local subscribers.
//!
//! Every send in Herald is a publish to a topic (`client:<id>`, `user:<id>`,
//! `session:<id>`, `all`, a room, a job). The backplane numbers and stores
//! the event; this is where the encoded frame (one `Bytes`, shared) is put
//! in each local subscriber's bounded queue. Publishing never waits on a
//! subscriber's socket, and two topics never contend with each other.
//!
//! Most topics have one subscriber (every connection has its own
//! `client:<id>`, most sessions one tab): they hold it inline, and a map
//! only once a second one joins. An idle connection's topics are a large
//! part of its memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::client::{ClientState, Delivery, Offered};
use super::stats::Stats;

use crate::sync::lock;

/// A topic's local subscribers.
#[derive(Debug, Default)]
enum Subscribers {
    #[default]
    None,
    One(Arc<ClientState>),
    Many(HashMap<Arc<str>, Arc<ClientState>>),
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Topic {
    /// Shared with the hub's map and the subscribers' lists of topics.
    pub name: Arc<str>,
    subscribers: Mutex<Subscribers>,
}

impl Topic {
    pub fn new(name: Arc<str>) -> Self {
        Topic {
            name,
            subscribers: Mutex::new(Subscribers::None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        // Every update is one insert or remove: a panic elsewhere cannot
        // leave the set half-changed, so a poisoned lock is taken over.
        lock(&self.subscribers)
    }

    /// This topic's identity in a [`Delivery`] (stable while it has subscribers).
    pub fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Queues for every subscriber the frame `frame_for` gives it (`None`:
    /// not this one — an event for several topics reaches a connection
    /// once). A subscriber whose queue is full is evicted by `offer`
    /// (counted once, where it happens) and dropped from the topic, as is
    /// one whose stream already ended.
    pub fn deliver(
        self: &Arc<Self>,
        (shard, seq): (usize, u64),
        stats: &Stats,
        mut frame_for: impl FnMut(&Arc<ClientState>) -> Option<Bytes>,
    ) {
        let key = self.key();
        let mut offer = |client: &Arc<ClientState>| {
            let Some(frame) = frame_for(client) else {
                return true;
            };
            let offered = client.offer(Delivery {
                key,
                shard,
                seq,
                frame,
            });
            match offered {
                Offered::Queued => stats.delivered(),
                Offered::Evicted => stats.evicted(),
                Offered::Closed => {}
            }
            // Kept while it still reads.
            offered == Offered::Queued
        };
        let mut subscribers = self.lock();
        match &mut *subscribers {
            Subscribers::None => {}
            Subscribers::One(client) => {
                if !offer(client) {
                    *subscribers = Subscribers::None;
                }
            }
            Subscribers::Many(map) => map.retain(|_, client| offer(client)),
        }
    }

    pub fn subscribe(&self, client: &Arc<ClientState>) {
        let mut subscribers = self.lock();
        match &mut *subscribers {
            Subscribers::None => *subscribers = Subscribers::One(client.clone()),
            Subscribers::One(only) if only.id == client.id => *only = client.clone(),
            Subscribers::One(only) => {
                let map = HashMap::from([
                    (only.id.clone(), only.clone()),
                    (client.id.clone(), client.clone()),
                ]);
                *subscribers = Subscribers::Many(map);
            }
            Subscribers::Many(map) => {
                map.insert(client.id.clone(), client.clone());
            }
        }
    }

    /// Removes a subscriber if it is still this exact connection.
    pub fn unsubscribe(&self, client: &Arc<ClientState>) {
        let mut subscribers = self.lock();
        match &mut *subscribers {
            Subscribers::One(only) if Arc::ptr_eq(only, client) => {
                *subscribers = Subscribers::None;
            }
            Subscribers::Many(map) => {
                if map.get(&client.id).is_some_and(|c| Arc::ptr_eq(c, client)) {
                    map.remove(&client.id);
                }
                if map.is_empty() {
                    *subscribers = Subscribers::None;
                }
            }
            _ => {}
        }
    }

    /// Closes every subscriber's stream (see `Sink::lost`).
    pub fn close_all(&self) {
        match &*self.lock() {
            Subscribers::None => {}
            Subscribers::One(client) => client.close(),
            Subscribers::Many(map) => map.values().for_each(|c| c.close()),
        }
    }

    /// This node's subscribers, now.
    pub fn members(&self) -> Vec<Arc<ClientState>> {
        match &*self.lock() {
            Subscribers::None => Vec::new(),
            Subscribers::One(client) => vec![client.clone()],
            Subscribers::Many(map) => map.values().cloned().collect(),
        }
    }

    pub fn subscriber_count(&self) -> usize {
        match &*self.lock() {
            Subscribers::None => 0,
            Subscribers::One(_) => 1,
            Subscribers::Many(map) => map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::policy::Principal;

    fn client(id: &str) -> Arc<ClientState> {
        Arc::new(ClientState::new(
            id.into(),
            "secret".into(),
            format!("serial-{id}"),
            Principal::anonymous(),
            None,
            HashMap::new(),
            1,
        ))
    }

    #[test]
    fn one_subscriber_inline_then_a_map_then_none() {
        let topic = Arc::new(Topic::new("t".into()));
        let (a, b) = (client("a"), client("b"));
        topic.subscribe(&a);
        assert_eq!(topic.subscriber_count(), 1);
        topic.subscribe(&b);
        topic.subscribe(&b);
        assert_eq!(topic.subscriber_count(), 2);
        topic.unsubscribe(&a);
        topic.unsubscribe(&b);
        assert_eq!(topic.subscriber_count(), 0);
        // A replaced connection with the same id is not removed by the old one.
        let (old, new) = (client("c"), client("c"));
        topic.subscribe(&old);
        topic.subscribe(&new);
        topic.unsubscribe(&old);
        assert_eq!(topic.subscriber_count(), 1);
    }

    #[test]
    fn a_full_subscriber_is_evicted_once_and_dropped() {
        let stats = Stats::default();
        let topic = Arc::new(Topic::new("t".into()));
        let (a, b) = (client("a"), client("b"));
        topic.subscribe(&a);
        topic.subscribe(&b);
        // Capacity 1: the first frame is queued, the second evicts both.
        for (seq, frame) in [&b"data: 1\n\n"[..], b"data: 2\n\n", b"data: 3\n\n"]
            .into_iter()
            .enumerate()
        {
            let frame = Bytes::from_static(frame);
            topic.deliver((0, seq as u64 + 1), &stats, |_| Some(frame.clone()));
        }
        assert_eq!(topic.subscriber_count(), 0);
        assert_eq!(stats.snapshot(0, Default::default(), 0).evictions, 2);
    }
}
