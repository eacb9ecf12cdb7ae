//! Where each key lives.
//!
//! On one server every key is `<prefix><name>` (the table in the module
//! docs). In a Redis Cluster the keys one script touches must share a hash
//! slot, so the log is split in shards ([`crate::broker::id`]) and every
//! key of shard `i` — its `epoch` copy, `seq`, `feed`, `floor`, `topics`
//! index and its topics' `t:` and `idem:` keys — carries the shard's hash
//! tag: `<prefix>{<tag>}<name>`. A publish then touches one slot, and no
//! key is touched by every publish. Keys of one record (`conns:`, `cid:`,
//! `presence:`) stay untagged: each is its own slot.
//!
//! Shard `i` of `S` gets a tag whose slot lies in the `i`-th `S`-th of the
//! slot space, so a cluster whose masters split the slots evenly (what
//! `redis-cli --cluster create` does) gets the shards spread evenly. The
//! tags are a function of `S` alone: every node computes the same ones.

use crate::broker::id::shard_of;

/// Redis Cluster's hash slots.
const SLOTS: u16 = 16384;

pub(super) struct Layout {
    prefix: String,
    /// Each log shard's hash tag: `Some` in a cluster.
    tags: Option<Vec<String>>,
    /// Feed streams every node reads.
    feeds: usize,
}

impl Layout {
    /// One server: one log shard, `feeds` feed streams.
    pub fn server(prefix: &str, feeds: usize) -> Self {
        Layout {
            prefix: prefix.to_owned(),
            tags: None,
            feeds: feeds.max(1),
        }
    }

    /// A cluster: `shards` log shards, each with its own feed.
    pub fn cluster(prefix: &str, shards: usize) -> Self {
        let shards = shards.clamp(1, crate::broker::id::MAX_SHARDS);
        Layout {
            prefix: prefix.to_owned(),
            tags: Some((0..shards).map(|i| tag(i, shards)).collect()),
            feeds: shards,
        }
    }

    /// Shards that number the events (1 on one server).
    pub fn log_shards(&self) -> usize {
        self.tags.as_ref().map_or(1, Vec::len)
    }

    /// The log shard of `topic`.
    pub fn shard(&self, topic: &str) -> usize {
        shard_of(topic, self.log_shards())
    }

    /// A key of no shard in particular.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A key of log shard `shard`.
    pub fn in_shard(&self, shard: usize, name: &str) -> String {
        match self.tags.as_ref().and_then(|t| t.get(shard)) {
            Some(tag) => format!("{}{{{tag}}}{name}", self.prefix),
            None => self.key(name),
        }
    }

    /// `topic`'s history stream.
    pub fn topic(&self, topic: &str) -> String {
        self.in_shard(self.shard(topic), &format!("t:{topic}"))
    }

    /// The idempotency keys (each scoped to its publisher) of the events
    /// in `topic`'s history.
    pub fn idempotency(&self, topic: &str) -> String {
        self.in_shard(self.shard(topic), &format!("idem:{topic}"))
    }

    pub fn feeds(&self) -> usize {
        self.feeds
    }

    /// Feed stream `n`.
    pub fn feed(&self, n: usize) -> String {
        match self.tags {
            Some(_) => self.in_shard(n, "feed"),
            None => self.key(&format!("feed:{n}")),
        }
    }

    /// The feed an event whose first topic is `topic` travels in (on one
    /// server the feeds only spread fan-out; in a cluster each log shard
    /// has its own).
    pub fn feed_of(&self, topic: &str) -> usize {
        match self.tags {
            Some(_) => self.shard(topic),
            None => shard_of(topic, self.feeds),
        }
    }

    /// The log shard whose events feed `n` carries.
    pub fn shard_of_feed(&self, n: usize) -> usize {
        if self.tags.is_some() {
            n
        } else {
            0
        }
    }
}

/// The hash slot of `key` (the part in its first `{…}`, if not empty).
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// The first tag `<i>.<k>` whose slot lies in shard `i`'s part of the slots.
fn tag(i: usize, shards: usize) -> String {
    let part = |slot: u16| usize::from(slot) * shards / usize::from(SLOTS);
    (0..)
        .map(|k| format!("{i}.{k}"))
        .find(|t| part(slot(t.as_bytes())) == i)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // `CLUSTER KEYSLOT` answers, from the cluster specification.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    }

    #[test]
    fn shards_are_spread_over_the_slots() {
        let l = Layout::cluster("herald:", 3);
        let slots: Vec<u16> = (0..3)
            .map(|i| slot(l.in_shard(i, "seq").as_bytes()))
            .collect();
        assert!(slots[0] < 5461 && (5461..10923).contains(&slots[1]) && slots[2] >= 10923);
        // Every key of a shard is in its slot.
        let topic = "room:general";
        let s = l.shard(topic);
        for key in [
            l.topic(topic),
            l.idempotency(topic),
            l.feed(s),
            l.in_shard(s, "floor"),
        ] {
            assert_eq!(slot(key.as_bytes()), slots[s], "{key}");
        }
    }

    #[test]
    fn one_server_keeps_its_keys() {
        let l = Layout::server("herald:", 8);
        assert_eq!(l.log_shards(), 1);
        assert_eq!(l.topic("a"), "herald:t:a");
        assert_eq!(l.in_shard(0, "seq"), "herald:seq");
        assert_eq!(l.feed(3), "herald:feed:3");
        assert_eq!(l.idempotency("a"), "herald:idem:a");
    }
}
