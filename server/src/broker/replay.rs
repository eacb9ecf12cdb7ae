//! What a resuming stream missed, read a page at a time.
//!
//! A client that comes back with `Last-Event-ID` gets every event of its
//! topics after that position and up to the log's head when it
//! reconnected (`until`; later events arrive live), merged across topics in
//! id order so that its position only ever grows. The cursor reads a few
//! events per topic at a time, as the stream's socket takes them: a client
//! that reads slowly, or not at all, holds one small page of history,
//! never all of it.
//!
//! In a sharded log each shard is merged in its own id order, and each
//! event goes out with the stream's position (a seq per shard) as its
//! `id:`, not its own id.

use std::collections::VecDeque;

use super::backplane::{reframe, Backplane, BackplaneError, Entry, Page};
use super::client::Delivery;
use super::id::{shard_of, Position};

/// Events read ahead across all of a stream's topics (at least one per
/// topic: the merge needs each topic's next event to pick the oldest).
const READ_AHEAD: usize = 128;

/// One topic's place in the replay.
#[derive(Debug)]
struct TopicCursor {
    name: String,
    /// The topic's key in `Delivery` (see `topic::Topic::key`).
    key: usize,
    shard: usize,
    /// The last seq read from the log.
    after: u64,
    /// Read, not yet handed out.
    buffered: VecDeque<Entry>,
    /// Nothing left up to `until`.
    done: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ReplayCursor {
    topics: Vec<TopicCursor>,
    until: Position,
    /// Events per topic per read.
    per_topic: usize,
    /// The stream's position: per shard, the last seq handed out (an
    /// event published to several of the stream's topics in one shard is
    /// in each of their logs under one seq, and is written once).
    at: Position,
}

impl ReplayCursor {
    /// A replay of `topics` (`(name, key)`) from `from` up to `until`.
    pub fn new(topics: Vec<(String, usize)>, from: Position, until: Position) -> Self {
        let per_topic = (READ_AHEAD / topics.len().max(1)).max(1);
        let shards = until.shards();
        ReplayCursor {
            topics: topics
                .into_iter()
                .map(|(name, key)| {
                    let shard = shard_of(&name, shards);
                    let after = from.seq(shard);
                    TopicCursor {
                        done: after >= until.seq(shard),
                        name,
                        key,
                        shard,
                        after,
                        buffered: VecDeque::new(),
                    }
                })
                .collect(),
            until,
            per_topic,
            at: from,
        }
    }

    /// Everything up to `until` handed out.
    pub fn is_done(&self) -> bool {
        self.topics.iter().all(|t| t.done && t.buffered.is_empty())
    }

    /// Reads a page for every topic that needs one; returns whether any
    /// topic's history no longer reached back to where it was asked from
    /// (only the first read of a topic can say so).
    async fn fill(&mut self, log: &dyn Backplane) -> Result<bool, BackplaneError> {
        let mut gap = false;
        for t in &mut self.topics {
            if t.done || !t.buffered.is_empty() {
                continue;
            }
            let until = self.until.seq(t.shard);
            let page = Page {
                after: t.after,
                until,
                limit: self.per_topic,
            };
            let read = log.replay(&t.name, page).await?;
            gap |= read.gap;
            t.done = read.entries.len() < self.per_topic;
            if let Some(last) = read.entries.last() {
                t.after = last.seq;
            }
            t.buffered.extend(read.entries);
            if t.after >= until {
                t.done = true;
            }
        }
        Ok(gap)
    }

    /// Whether this stream takes `entry` from topic `t`'s log: an event
    /// spanning shards is taken through the first of its topics the stream
    /// replays, like the live copy of that topic's shard (`hub`).
    fn takes(&self, t: &TopicCursor, entry: &Entry) -> bool {
        let Some(topics) = &entry.topics else {
            return true;
        };
        let first = topics
            .iter()
            .find_map(|name| self.topics.iter().find(|c| c.name == *name));
        first.is_none_or(|c| c.shard == t.shard)
    }

    /// The next events in id order: as many as can be merged before some
    /// topic needs another read. Also says whether a gap was found.
    pub async fn next_batch(
        &mut self,
        log: &dyn Backplane,
    ) -> Result<(Vec<Delivery>, bool), BackplaneError> {
        let gap = self.fill(log).await?;
        let sharded = self.until.shards() > 1;
        let mut out = Vec::new();
        loop {
            // A topic that may have more but has nothing read: its next
            // event could be the oldest, so stop until it is read.
            if self.topics.iter().any(|t| !t.done && t.buffered.is_empty()) {
                break;
            }
            let oldest = (0..self.topics.len())
                .filter(|&i| !self.topics[i].buffered.is_empty())
                .min_by_key(|&i| self.topics[i].buffered.front().map(|e| e.seq));
            let Some(i) = oldest else { break };
            let Some(entry) = self.topics[i].buffered.pop_front() else {
                break;
            };
            let t = &self.topics[i];
            if entry.seq <= self.at.seq(t.shard) || !self.takes(t, &entry) {
                continue;
            }
            self.at.advance(t.shard, entry.seq);
            out.push(Delivery {
                key: t.key,
                shard: t.shard,
                seq: entry.seq,
                frame: if sharded {
                    reframe(&entry.frame, &self.at)
                } else {
                    entry.frame
                },
            });
        }
        Ok((out, gap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{HistoryLimits, MemoryBackplane};
    use bytes::Bytes;

    /// One event per entry, to the topics it names (`a+b`: to both).
    async fn log_with(events: &[&str]) -> MemoryBackplane {
        let log = MemoryBackplane::new(HistoryLimits::default());
        for topic in events {
            let topics: Vec<&str> = topic.split('+').collect();
            let event = crate::broker::Append::new(&topics, Bytes::from_static(b"data: x\n\n"));
            log.append(event).await.expect("append");
        }
        log
    }

    /// Position `seq` of a one-shard log.
    fn at(log: &MemoryBackplane, seq: u64) -> Position {
        Position::new(log.epoch(), vec![seq])
    }

    async fn drain(cursor: &mut ReplayCursor, log: &dyn Backplane) -> Vec<(usize, u64)> {
        let mut all = Vec::new();
        while !cursor.is_done() {
            let (batch, _) = cursor.next_batch(log).await.expect("read");
            all.extend(batch.into_iter().map(|d| (d.key, d.seq)));
        }
        all
    }

    #[tokio::test]
    async fn topics_merge_in_id_order_a_page_at_a_time() {
        // seq:   1  2  3  4  5  6  7  8  9
        let log = log_with(&["a", "b", "a", "a", "b", "c", "a", "b", "a"]).await;
        let mut cursor = ReplayCursor::new(
            vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)],
            at(&log, 0),
            at(&log, 8),
        );
        cursor.per_topic = 1; // the smallest pages: every merge step reads
        let got = drain(&mut cursor, &log).await;
        assert_eq!(
            got,
            [
                (1, 1),
                (2, 2),
                (1, 3),
                (1, 4),
                (2, 5),
                (3, 6),
                (1, 7),
                (2, 8)
            ],
            "seq 9 is after `until`: it comes live"
        );
    }

    #[tokio::test]
    async fn an_event_on_several_topics_is_replayed_once() {
        // seq:   1    2      3    4
        let log = log_with(&["a", "a+b", "b", "b+a"]).await;
        let mut cursor = ReplayCursor::new(
            vec![("a".into(), 1), ("b".into(), 2)],
            at(&log, 0),
            at(&log, 4),
        );
        cursor.per_topic = 1;
        let seqs: Vec<u64> = drain(&mut cursor, &log)
            .await
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn the_replay_starts_after_the_position() {
        let log = log_with(&["a", "b", "a", "b"]).await;
        let mut cursor = ReplayCursor::new(
            vec![("a".into(), 1), ("b".into(), 2)],
            at(&log, 2),
            at(&log, 4),
        );
        assert_eq!(drain(&mut cursor, &log).await, [(1, 3), (2, 4)]);
        let mut nothing = ReplayCursor::new(vec![("a".into(), 1)], at(&log, 4), at(&log, 4));
        assert!(nothing.is_done());
        assert_eq!(drain(&mut nothing, &log).await, []);
    }

    /// A fixed log of two shards (epoch 7): each topic's entries as given.
    struct TwoShards(std::collections::HashMap<&'static str, Vec<Entry>>);

    impl Backplane for TwoShards {
        fn name(&self) -> &'static str {
            "two shards"
        }
        fn epoch(&self) -> crate::broker::Epoch {
            crate::broker::Epoch(7)
        }
        fn shards(&self) -> usize {
            2
        }
        fn attach(&self, _: std::sync::Arc<dyn crate::broker::Sink>) {}
        fn append<'a>(
            &'a self,
            _: crate::broker::Append<'a>,
        ) -> crate::broker::BoxFuture<'a, Result<crate::broker::Appended, crate::broker::AppendError>>
        {
            unreachable!("the log is fixed")
        }
        fn replay<'a>(
            &'a self,
            topic: &'a str,
            page: Page,
        ) -> crate::broker::BoxFuture<'a, Result<crate::broker::Replay, BackplaneError>> {
            let entries = self.0.get(topic).into_iter().flatten();
            let page: Vec<Entry> = entries
                .filter(|e| e.seq > page.after && e.seq <= page.until)
                .take(page.limit)
                .cloned()
                .collect();
            Box::pin(std::future::ready(Ok(crate::broker::Replay {
                entries: page,
                gap: false,
            })))
        }
        fn topics_under<'a>(
            &'a self,
            _: &'a str,
            _: usize,
        ) -> crate::broker::BoxFuture<'a, Result<crate::broker::Matched, BackplaneError>> {
            unreachable!("no wildcard here")
        }
        fn head(&self) -> crate::broker::BoxFuture<'_, Result<Position, BackplaneError>> {
            unreachable!("the test gives `until`")
        }
        fn claim_client<'a>(
            &'a self,
            _: &'a str,
            _: crate::broker::ClientClaim<'a>,
        ) -> crate::broker::BoxFuture<'a, Result<crate::broker::Claimed, BackplaneError>> {
            unreachable!("no clients here")
        }
        fn release_client(&self, _: &str, _: &str, _: std::time::Duration) {}
    }

    #[tokio::test]
    async fn a_sharded_replay_writes_positions_and_takes_a_spanning_event_once() {
        // `a` is on shard 0, `b` on shard 1 (each numbers its own events);
        // "ab" went to both, so each shard holds a copy naming both.
        let (a, b) = ("room-1", "room-0");
        assert_eq!((shard_of(a, 2), shard_of(b, 2)), (0, 1), "pick other names");
        let entry = |seq: u64, data: &str, spans: bool| Entry {
            seq,
            frame: crate::broker::frame_with_id(format!("7-{seq}"), data.as_bytes()),
            topics: spans.then(|| vec![a.to_owned(), b.to_owned()].into()),
        };
        let log = TwoShards(std::collections::HashMap::from([
            (a, vec![entry(1, "a1", false), entry(2, "ab", true)]),
            (
                b,
                vec![
                    entry(1, "b1", false),
                    entry(2, "ab", true),
                    entry(3, "b3", false),
                ],
            ),
        ]));
        let start = Position::start(crate::broker::Epoch(7), 2);
        let until = Position::new(crate::broker::Epoch(7), vec![2, 3]);
        let log = &log;
        let frames = |cursor: ReplayCursor| async move {
            let mut cursor = cursor;
            let mut out = Vec::new();
            while !cursor.is_done() {
                let (batch, _) = cursor.next_batch(log).await.expect("read");
                out.extend(
                    batch
                        .into_iter()
                        .map(|d| String::from_utf8_lossy(&d.frame).into_owned()),
                );
            }
            out
        };
        let both = ReplayCursor::new(
            vec![(a.into(), 1), (b.into(), 2)],
            start.clone(),
            until.clone(),
        );
        assert_eq!(
            frames(both).await,
            [
                "id: 3.7.2.0:1.1:0\na1",
                "id: 3.7.2.0:1.1:1\nb1",
                "id: 3.7.2.0:2.1:1\nab",
                "id: 3.7.2.0:2.1:3\nb3"
            ]
        );
        // On `b` alone, the copy in `b`'s shard is the one to take, and
        // the ids name only that shard.
        let mut from = start;
        from.keep_only(crate::broker::shard_bit(1));
        let only_b = ReplayCursor::new(vec![(b.into(), 2)], from, until);
        assert_eq!(
            frames(only_b).await,
            [
                "id: 3.7.2.1:1\nb1",
                "id: 3.7.2.1:2\nab",
                "id: 3.7.2.1:3\nb3"
            ]
        );
    }
}
