//! This node's subscribers by topic: the [`Sink`] the backplane delivers
//! to. A delivery looks its topic up under a read lock and hands the frame
//! to [`Topic::deliver`]; deliveries to different topics never contend.
//! An event for several topics is delivered in one call, which remembers
//! whom it reached so that a connection on two of them gets it once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use super::backplane::Fanout;
use super::client::ClientState;
use super::stats::Stats;
use super::topic::Topic;
use super::{read, write, Sink};

/// See the module docs.
#[derive(Default)]
pub(crate) struct Hub {
    /// Read-locked on every delivery to find the topic, write-locked only to
    /// create or drop one. The key is the topic's own name.
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    pub stats: Stats,
}

impl Hub {
    /// Puts `client` on topic `name` (created if this node had no
    /// subscriber to it) and returns the topic. The subscription happens
    /// under the map's lock, so a sweep cannot drop the topic in between
    /// and leave the client on one that no longer receives.
    pub fn subscribe(&self, name: &str, client: &Arc<ClientState>) -> Arc<Topic> {
        {
            let topics = read(&self.topics);
            if let Some(t) = topics.get(name) {
                t.subscribe(client);
                return t.clone();
            }
        }
        let name: Arc<str> = name.into();
        let mut topics = write(&self.topics);
        let topic = topics
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Topic::new(name)));
        topic.subscribe(client);
        topic.clone()
    }

    /// The topic if it exists (nobody is made a subscriber by asking).
    pub fn existing(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    /// How many of this node's connections are on `name`.
    pub fn subscribers(&self, name: &str) -> usize {
        read(&self.topics)
            .get(name)
            .map_or(0, |t| t.subscriber_count())
    }

    /// Subscriptions over all topics.
    pub fn subscriptions(&self) -> usize {
        read(&self.topics)
            .values()
            .map(|t| t.subscriber_count())
            .sum()
    }

    /// Drops topics nobody here listens to any more.
    pub fn sweep(&self) {
        let idle: Vec<Arc<str>> = read(&self.topics)
            .iter()
            .filter(|(_, t)| t.subscriber_count() == 0)
            .map(|(name, _)| name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        let mut topics = write(&self.topics);
        for name in idle {
            // Re-check under the write lock: someone may have subscribed since.
            if topics.get(&name).is_some_and(|t| t.subscriber_count() == 0) {
                topics.remove(&name);
            }
        }
    }
}

impl Sink for Hub {
    fn deliver(&self, event: Fanout<'_>) {
        let Fanout { topics, seq, frame } = event;
        if let [topic] = topics {
            // One topic, one lookup: no connection can be reached twice.
            // No local subscriber, no topic: nothing to do here.
            if let Some(t) = self.existing(topic) {
                t.deliver(seq, frame, &self.stats, |_| true);
            }
            return;
        }
        // Several topics: each connection once, through the first of them
        // it is on.
        let mut reached = HashSet::new();
        for name in topics {
            if let Some(t) = self.existing(name) {
                t.deliver(seq, frame.clone(), &self.stats, |c| {
                    reached.insert(Arc::as_ptr(c))
                });
            }
        }
    }

    fn lost(&self) {
        let topics: Vec<_> = read(&self.topics).values().cloned().collect();
        tracing::warn!("the backplane lost events for this node: closing its streams so clients resume from history");
        for t in topics {
            t.close_all();
        }
    }
}
