//! What a resuming stream missed, read a page at a time.
//!
//! A client that comes back with `Last-Event-ID` gets every event of its
//! topics after that id and up to the log's head when it reconnected
//! (`until`; later events arrive live), merged across topics in id order so
//! that its last id only ever grows. The cursor reads a few events per
//! topic at a time, as the stream's socket takes them: a client that reads
//! slowly, or not at all, holds one small page of history, never all of it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::backplane::{Backplane, BackplaneError, Page};
use super::client::Delivery;

/// Events read ahead across all of a stream's topics (at least one per
/// topic: the merge needs each topic's next event to pick the oldest).
const READ_AHEAD: usize = 128;

/// One topic's place in the replay.
#[derive(Debug)]
struct TopicCursor {
    name: String,
    /// The topic's key in `Delivery` (see `topic::Topic::key`).
    key: usize,
    /// The last seq read from the log.
    after: u64,
    /// Read, not yet handed out.
    buffered: VecDeque<(u64, Bytes)>,
    /// Nothing left up to `until`.
    done: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ReplayCursor {
    topics: Vec<TopicCursor>,
    until: u64,
    /// Events per topic per read.
    per_topic: usize,
    /// The last seq handed out: an event published to several of the
    /// stream's topics is in each of their logs, and is written once.
    last: u64,
}

impl ReplayCursor {
    /// A replay of `topics` (`(name, key, after)`) up to `until`.
    pub fn new(topics: Vec<(String, usize, u64)>, until: u64) -> Self {
        let per_topic = (READ_AHEAD / topics.len().max(1)).max(1);
        ReplayCursor {
            topics: topics
                .into_iter()
                .map(|(name, key, after)| TopicCursor {
                    name,
                    key,
                    after,
                    buffered: VecDeque::new(),
                    done: after >= until,
                })
                .collect(),
            until,
            per_topic,
            last: 0,
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
            let page = Page {
                after: t.after,
                until: self.until,
                limit: self.per_topic,
            };
            let read = log.replay(&t.name, page).await?;
            gap |= read.gap;
            t.done = read.entries.len() < self.per_topic;
            if let Some((last, _)) = read.entries.last() {
                t.after = *last;
            }
            t.buffered.extend(read.entries);
            if t.after >= self.until {
                t.done = true;
            }
        }
        Ok(gap)
    }

    /// The next events in id order: as many as can be merged before some
    /// topic needs another read. Also says whether a gap was found.
    pub async fn next_batch(
        &mut self,
        log: &dyn Backplane,
    ) -> Result<(Vec<Delivery>, bool), BackplaneError> {
        let gap = self.fill(log).await?;
        let mut out = Vec::new();
        loop {
            // A topic that may have more but has nothing read: its next
            // event could be the oldest, so stop until it is read.
            if self.topics.iter().any(|t| !t.done && t.buffered.is_empty()) {
                break;
            }
            let oldest = self
                .topics
                .iter_mut()
                .filter(|t| !t.buffered.is_empty())
                .min_by_key(|t| t.buffered.front().map(|(seq, _)| *seq));
            let Some(t) = oldest else { break };
            let Some((seq, frame)) = t.buffered.pop_front() else {
                break;
            };
            if seq <= self.last {
                continue;
            }
            self.last = seq;
            out.push(Delivery {
                key: t.key,
                seq,
                frame,
            });
        }
        Ok((out, gap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{HistoryLimits, MemoryBackplane};

    /// One event per entry, to the topics it names (`a+b`: to both).
    async fn log_with(events: &[&str]) -> MemoryBackplane {
        let log = MemoryBackplane::new(HistoryLimits::default());
        for topic in events {
            let topics: Vec<&str> = topic.split('+').collect();
            log.append(&topics, None, Bytes::from_static(b"data: x\n\n"))
                .await
                .expect("append");
        }
        log
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
            vec![("a".into(), 1, 0), ("b".into(), 2, 0), ("c".into(), 3, 0)],
            8,
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
        let mut cursor = ReplayCursor::new(vec![("a".into(), 1, 0), ("b".into(), 2, 0)], 4);
        cursor.per_topic = 1;
        let seqs: Vec<u64> = drain(&mut cursor, &log)
            .await
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn each_topic_resumes_from_its_own_position() {
        let log = log_with(&["a", "b", "a", "b"]).await;
        let mut cursor = ReplayCursor::new(vec![("a".into(), 1, 3), ("b".into(), 2, 0)], 4);
        assert_eq!(drain(&mut cursor, &log).await, [(2, 2), (2, 4)]);
        let mut nothing = ReplayCursor::new(vec![("a".into(), 1, 4)], 4);
        assert!(nothing.is_done());
        assert_eq!(drain(&mut nothing, &log).await, []);
    }
}
