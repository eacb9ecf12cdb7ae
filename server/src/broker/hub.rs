//! This node's subscribers by topic: the [`Sink`] the backplane delivers
//! to. A delivery looks its topic up under a read lock and hands the frame
//! to [`Topic::deliver`]; deliveries to different topics never contend.
//!
//! A wildcard subscription (`chat:*`) is a topic too, named by its
//! pattern, and also indexed by its prefix: a publish to `chat:general`
//! then looks up `chat:general` and walks its prefixes of the lengths some
//! wildcard has (one lookup each; none at all while nobody holds a
//! wildcard). A wildcard subscriber gets only the topics the policy lets
//! it read, checked per event. An event that can reach a connection by
//! several ways (several topics, a topic and a wildcard) is delivered in
//! one call, which remembers whom it reached so each gets it once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::backplane::{frame_with_id, EventFrame, Fanout};
use super::client::ClientState;
use super::id::shard_of;
use super::names;
use super::policy::TopicPolicy;
use super::stats::Stats;
use super::topic::Topic;
use super::Sink;
use crate::sync::{read, write};

/// See the module docs.
pub(crate) struct Hub {
    /// Read-locked on every delivery to find the topic, write-locked only to
    /// create or drop one. The key is the topic's own name (a wildcard's
    /// is its pattern, `chat:*`).
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// The wildcards among `topics`, by prefix. Changed only while
    /// `topics` is write-locked (lock order: topics, then wildcards).
    wildcards: RwLock<Wildcards>,
    /// How many wildcards there are: publishing skips the prefix walk
    /// without taking a lock while there are none.
    wildcard_count: AtomicUsize,
    /// Decides which of a wildcard's topics each subscriber may read.
    policy: Arc<TopicPolicy>,
    /// The log's shard count: which copy of an event spanning shards
    /// reaches whom (see `deliver_each_once`).
    shards: usize,
    pub stats: Stats,
}

#[derive(Default)]
struct Wildcards {
    by_prefix: HashMap<Arc<str>, Arc<Topic>>,
    /// The distinct prefix lengths, ascending: the prefix walk's steps.
    lengths: Vec<usize>,
}

impl Wildcards {
    fn insert(&mut self, prefix: &str, topic: Arc<Topic>) {
        self.by_prefix.insert(prefix.into(), topic);
        if let Err(at) = self.lengths.binary_search(&prefix.len()) {
            self.lengths.insert(at, prefix.len());
        }
    }

    fn remove(&mut self, prefix: &str) {
        self.by_prefix.remove(prefix);
        if !self.by_prefix.keys().any(|p| p.len() == prefix.len()) {
            self.lengths.retain(|&l| l != prefix.len());
        }
    }

    /// The wildcards matching `topic`, shortest prefix first.
    fn matching<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Arc<Topic>> + 'a {
        self.lengths
            .iter()
            .take_while(move |&&len| len <= topic.len())
            .filter_map(move |&len| topic.get(..len).and_then(|p| self.by_prefix.get(p)))
    }
}

impl Hub {
    pub fn new(policy: Arc<TopicPolicy>, shards: usize) -> Self {
        Hub {
            topics: RwLock::default(),
            wildcards: RwLock::default(),
            wildcard_count: AtomicUsize::new(0),
            policy,
            shards,
            stats: Stats::default(),
        }
    }

    /// Puts `client` on topic (or wildcard) `name`, created if this node
    /// had no subscriber to it, and returns it. The subscription happens
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
            .or_insert_with(|| {
                let topic = Arc::new(Topic::new(name.clone()));
                if let Some(prefix) = names::wildcard_prefix(&name) {
                    write(&self.wildcards).insert(prefix, topic.clone());
                    self.wildcard_count.fetch_add(1, Ordering::Relaxed);
                }
                topic
            })
            .clone();
        topic.subscribe(client);
        topic
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
                if let Some(prefix) = names::wildcard_prefix(&name) {
                    write(&self.wildcards).remove(prefix);
                    self.wildcard_count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Hub {
    /// Delivers through every topic and matching wildcard, remembering
    /// whom it reached so that each connection gets the event once.
    ///
    /// In a sharded log an event whose topics span shards comes once per
    /// shard (`shard` is this copy's): a connection is reached through the
    /// first of the topics it is on, and takes this copy only if that
    /// topic lives in `shard` — the copies of other shards reach the rest.
    fn deliver_each_once(
        &self,
        topics: &[&str],
        wildcards: Option<&Wildcards>,
        (shard, seq): (usize, u64),
        frames: &mut Frames<'_>,
    ) {
        let mut reached = HashSet::new();
        for name in topics {
            let here = shard_of(name, self.shards) == shard;
            if let Some(t) = self.existing(name) {
                t.deliver((shard, seq), &self.stats, |c| {
                    (reached.insert(Arc::as_ptr(c)) && here).then(|| frames.of(c))
                });
            }
            let mut matching = wildcards
                .into_iter()
                .flat_map(|w| w.matching(name))
                .peekable();
            if matching.peek().is_none() {
                continue;
            }
            // The rule once per topic, not per subscriber.
            let readers = self.policy.readers(name);
            for w in matching {
                w.deliver((shard, seq), &self.stats, |c| {
                    (readers.admit(&c.principal) && reached.insert(Arc::as_ptr(c)) && here)
                        .then(|| frames.of(c))
                });
            }
        }
    }
}

/// One event's frames: the one frame of a one-shard log; in a sharded
/// log, one per set of shards its connections read (their `id:` names
/// only those), made when the first connection reading that set needs it.
/// Most topics' connections read the same few shards, so an event is
/// still encoded a few times, not once per connection.
struct Frames<'a> {
    event: EventFrame<'a>,
    made: Vec<(u64, Bytes)>,
}

impl Frames<'_> {
    /// The frame for `client`.
    fn of(&mut self, client: &ClientState) -> Bytes {
        match &self.event {
            EventFrame::Whole(frame) => frame.clone(),
            EventFrame::Positioned { at, body } => {
                let reads = client.reads();
                if let Some((_, frame)) = self.made.iter().find(|(r, _)| *r == reads) {
                    return frame.clone();
                }
                let frame = frame_with_id(at.naming(reads), body);
                self.made.push((reads, frame.clone()));
                frame
            }
        }
    }
}

impl Sink for Hub {
    fn deliver(&self, event: Fanout<'_>) {
        let Fanout {
            topics,
            shard,
            seq,
            frame,
        } = event;
        let at = (shard, seq);
        let mut frames = Frames {
            event: frame,
            made: Vec::new(),
        };
        // No lock, no prefix walk while nobody holds a wildcard.
        let wildcards =
            (self.wildcard_count.load(Ordering::Relaxed) > 0).then(|| read(&self.wildcards));
        if let [topic] = topics {
            // One way in (the topic itself, or a single wildcard over it,
            // the usual case for followers of `chat:*`): nobody can be
            // reached twice, so no set of whom it reached.
            let exact = self.existing(topic);
            let mut matching = wildcards.iter().flat_map(|w| w.matching(topic));
            match (exact, matching.next(), matching.next()) {
                (None, None, _) => return,
                (Some(t), None, _) => {
                    return t.deliver(at, &self.stats, |c| Some(frames.of(c)));
                }
                (None, Some(w), None) => {
                    let readers = self.policy.readers(topic);
                    return w.deliver(at, &self.stats, |c| {
                        readers.admit(&c.principal).then(|| frames.of(c))
                    });
                }
                _ => {}
            }
        }
        self.deliver_each_once(topics, wildcards.as_deref(), at, &mut frames)
    }

    fn lost(&self) {
        let topics: Vec<_> = read(&self.topics).values().cloned().collect();
        tracing::warn!("the backplane lost events for this node: closing its streams so clients resume from history");
        for t in topics {
            t.close_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::policy::Principal;

    fn client(id: &str, who: Principal) -> Arc<ClientState> {
        Arc::new(ClientState::new(
            id.into(),
            "secret".into(),
            format!("serial-{id}"),
            who,
            None,
            Default::default(),
            16,
        ))
    }

    fn deliver(hub: &Hub, topics: &[&str], seq: u64) {
        hub.deliver(Fanout {
            topics,
            shard: 0,
            seq,
            frame: EventFrame::Whole(Bytes::from_static(b"data: x\n\n")),
        });
    }

    #[test]
    fn an_event_spanning_shards_reaches_each_connection_through_one_copy() {
        const SHARDS: usize = 2;
        let hub = Hub::new(Arc::new(TopicPolicy::default()), SHARDS);
        // Two topics on different shards.
        let name = |shard| {
            (0..)
                .map(|k| format!("room-{k}"))
                .find(|t| shard_of(t, SHARDS) == shard)
                .expect("a topic on the shard")
        };
        let (a, b) = (name(0), name(1));
        let both = client("both", Principal::anonymous());
        let only_a = client("a", Principal::anonymous());
        let only_b = client("b", Principal::anonymous());
        for (topic, c) in [(&a, &both), (&b, &both), (&a, &only_a), (&b, &only_b)] {
            hub.subscribe(topic, c);
        }
        let delivered = || {
            hub.stats
                .snapshot(0, Default::default(), 0)
                .events_delivered
        };
        let copy = |shard| {
            hub.deliver(Fanout {
                topics: &[a.as_str(), b.as_str()],
                shard,
                seq: 1,
                frame: EventFrame::Whole(Bytes::from_static(b"data: x\n\n")),
            })
        };
        // Shard 0's copy: whoever's first topic of the two is `a`.
        copy(0);
        assert_eq!(delivered(), 2);
        // Shard 1's copy: only whoever is on `b` but not `a`.
        copy(1);
        assert_eq!(delivered(), 3);
    }

    #[test]
    fn a_sharded_events_id_names_each_readers_shards_encoded_once_per_set() {
        use crate::broker::{every_shard, shard_bit, Epoch, Position};
        let hub = Hub::new(Arc::new(TopicPolicy::default()), 4);
        let (one, same, wide) = (
            client("one", Principal::anonymous()),
            client("same", Principal::anonymous()),
            client("wide", Principal::anonymous()),
        );
        one.read_shards(shard_bit(1) | shard_bit(3));
        same.read_shards(shard_bit(1) | shard_bit(3));
        wide.read_shards(every_shard(4));
        for c in [&one, &same, &wide] {
            hub.subscribe("room", c);
        }
        let at = Position::new(Epoch(7), vec![3, 9, 0, 4]);
        hub.deliver(Fanout {
            topics: &["room"],
            shard: shard_of("room", 4),
            seq: 9,
            frame: EventFrame::Positioned {
                at: &at,
                body: b"data: x\n\n",
            },
        });
        let frame = |c: &ClientState| c.take_queued().remove(0).frame;
        let (one, same, wide) = (frame(&one), frame(&same), frame(&wide));
        assert_eq!(&one[..], b"id: 3.7.4.1:9.3:4\ndata: x\n\n");
        assert_eq!(
            one.as_ptr(),
            same.as_ptr(),
            "one encoding per set of shards"
        );
        assert_eq!(&wide[..], b"id: 3.7.4.0:3.1:9.2:0.3:4\ndata: x\n\n");
    }

    #[test]
    fn the_prefix_walk_steps_only_through_lengths_some_wildcard_has() {
        let mut w = Wildcards::default();
        let t = |n: &str| Arc::new(Topic::new(n.into()));
        w.insert("chat:", t("chat:*"));
        w.insert("jobs:", t("jobs:*"));
        w.insert("c", t("c*"));
        assert_eq!(w.lengths, [1, 5]);
        let names =
            |topic| -> Vec<String> { w.matching(topic).map(|t| t.name.to_string()).collect() };
        assert_eq!(names("chat:general"), ["c*", "chat:*"]);
        assert_eq!(names("jobs:alice"), ["jobs:*"]);
        assert!(names("news").is_empty());
        w.remove("c");
        assert_eq!(w.lengths, [5]);
    }

    #[test]
    fn each_connection_once_and_wildcards_filtered_by_policy() {
        let hub = Hub::new(Arc::new(TopicPolicy::default()), 1);
        let alice = client("a", Principal::user("alice"));
        let anon = client("b", Principal::anonymous());
        hub.subscribe("chat:general", &alice);
        hub.subscribe("chat:*", &alice);
        hub.subscribe("chat:*", &anon); // the route refuses this; the hub filters too
        deliver(&hub, &["chat:general", "chat:random"], 1);
        deliver(&hub, &["chat:random"], 2);
        // alice: seq 1 once (three ways in), seq 2 once; anon: nothing.
        assert_eq!(
            hub.stats
                .snapshot(0, Default::default(), 0)
                .events_delivered,
            2
        );

        // Nobody on the wildcard, swept: publishing takes the fast path again.
        hub.existing("chat:*")
            .expect("wildcard")
            .unsubscribe(&alice);
        hub.existing("chat:*").expect("wildcard").unsubscribe(&anon);
        hub.sweep();
        assert_eq!(hub.wildcard_count.load(Ordering::Relaxed), 0);
        assert!(read(&hub.wildcards).lengths.is_empty());
    }
}
