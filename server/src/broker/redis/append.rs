//! Appending to the log, within the history's budget.
//!
//! A publish is one script per log shard ([`Scripts::publish`]): it numbers
//! the event, appends it to each topic's stream and to the feed, and keeps
//! the shard within its share of [`HistoryLimits`]: a topic's oldest events
//! go past its count or bytes, the topics idle longest go whole past the
//! shard's bytes, and a topic past the shard's topic cap is not started.
//! The shard's share of the caps is the whole divided by the shards (a
//! topic's shard is a hash of its name, so they fill about evenly).
//!
//! How close it keeps (the README says so too): a topic is trimmed when
//! over its count or bytes, down to 99 % of them, so it never holds more
//! than its limit after a publish; the bytes counted are each entry's
//! fields plus a fixed cost per entry and per topic — Redis's own overhead
//! per entry differs (listpack encoding, stream nodes), so `INFO memory`
//! moves with the count within a small factor of it, not byte for byte. A
//! topic whose history expired keeps its record until the next sweep (or
//! a publish that needs its place) tidies it.
//!
//! [`Scripts::publish`]: super::scripts::Scripts
//! [`HistoryLimits`]: crate::broker::HistoryLimits

use std::sync::atomic::Ordering;

use redis::{Script, ScriptInvocation};

use super::{fresh_epoch, unavailable, RedisBackplane, Shared, TOPIC_SEPARATOR};
use crate::broker::backplane::{AppendError, Appended, BackplaneError, NewTopics, Usage};
use crate::broker::id::EventId;
use crate::clock::unix_ms as now_ms;

/// What an entry costs in the budget beyond its fields (as the memory
/// log's records do).
const EVENT_COST: usize = 64;
/// What a topic costs beyond its name and entries (its stream, its place
/// in the shard's sets and hashes).
const TOPIC_COST: usize = 256;

/// One event's part of a publish ([`Shared::invocation`]).
struct Event<'a> {
    /// Its topics in this shard.
    topics: &'a [&'a str],
    /// All its topics.
    all: &'a [&'a str],
    key: Option<&'a str>,
    body: &'a [u8],
    new_topics: NewTopics,
}

impl Shared {
    /// `script` with the keys and arguments of the publish script for log
    /// shard `shard`: the budget's (which `tidy` shares), and `event`'s
    /// when it is a publish.
    fn invocation<'s>(
        &self,
        script: &'s Script,
        shard: usize,
        event: Option<&Event<'_>>,
    ) -> ScriptInvocation<'s> {
        let l = &self.layout;
        let history = &self.options.history;
        let shards = l.log_shards();
        let flag = |on: bool| if on { "1" } else { "0" };
        // A publish's feed is its first topic's; `tidy` reads no feed (any
        // key of the shard's slot does).
        let feed = match event.and_then(|e| e.topics.first()) {
            Some(first) => l.feed_of(first),
            None => shard,
        };
        let mut call = script.key(l.in_shard(shard, "epoch"));
        call.key(l.in_shard(shard, "seq"))
            .key(l.feed(feed))
            .key(l.in_shard(shard, "topics"))
            .key(l.in_shard(shard, "hot"))
            .key(l.in_shard(shard, "bytes"))
            .key(l.in_shard(shard, "total"))
            .key(l.in_shard(shard, "floor"));
        for topic in event.map_or(&[][..], |e| e.topics) {
            call.key(l.topic(topic)).key(l.idempotency(topic));
        }
        call
            // Used only if a single Redis lost the epoch (a restart): a new
            // one, never the old one, or old ids would pass for new positions.
            .arg(fresh_epoch(self.epoch.load(Ordering::Relaxed)))
            .arg(event.map_or(String::new(), |e| e.all.join(TOPIC_SEPARATOR)))
            .arg(event.map_or(&[][..], |e| e.body))
            .arg(history.max_events.max(1))
            .arg(self.options.feed_len.max(1))
            .arg(self.history_ttl_ms())
            .arg(event.and_then(|e| e.key).unwrap_or(""))
            .arg(flag(event.is_some_and(|e| e.topics.len() < e.all.len())))
            .arg(flag(shards > 1))
            .arg(now_ms())
            .arg(flag(
                event.is_some_and(|e| e.new_topics == NewTopics::Allow),
            ))
            .arg(history.max_topics.div_ceil(shards).max(1))
            .arg(history.topic_bytes)
            .arg(history.total_bytes.div_ceil(shards))
            .arg(EVENT_COST)
            .arg(TOPIC_COST)
            .arg(l.in_shard(shard, "t:"))
            .arg(l.in_shard(shard, "idem:"))
            .arg(event.map_or(&[][..], |e| e.topics));
        call
    }

    /// Tidies log shard `shard` (drops the records of topics whose history
    /// expired) and says what it holds.
    pub(super) async fn tidy(&self, shard: usize) -> Result<Usage, BackplaneError> {
        let mut con = self.commands.clone();
        let (topics, bytes): (usize, i64) = self
            .invocation(&self.scripts.tidy, shard, None)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(Usage {
            topics,
            bytes: usize::try_from(bytes).unwrap_or(0),
        })
    }
}

impl RedisBackplane {
    /// Appends the event to log shard `shard`: `topics` are its topics
    /// there, `all` every topic of the event.
    pub(super) async fn append_in(
        &self,
        shard: usize,
        topics: &[&str],
        all: &[&str],
        key: Option<&str>,
        body: &[u8],
        new_topics: NewTopics,
    ) -> Result<Appended, AppendError> {
        let s = &self.shared;
        let event = Event {
            topics,
            all,
            key,
            body,
            new_topics,
        };
        let mut con = s.commands.clone();
        let reply: Result<(String, i64), _> = s
            .invocation(&s.scripts.publish, shard, Some(&event))
            .invoke_async(&mut con)
            .await;
        let appended = match reply {
            Ok((_, -1)) => return Err(AppendError::NewTopic),
            Ok((_, -2)) => {
                return Err(AppendError::TopicCap {
                    limit: s.options.history.max_topics,
                })
            }
            Ok((id, started)) => id
                .parse::<EventId>()
                .map(|id| Appended {
                    id,
                    created: usize::try_from(started).unwrap_or(0),
                })
                .map_err(|e| BackplaneError(format!("redis returned {e}"))),
            Err(e) => Err(unavailable(e)),
        };
        match appended {
            Ok(appended) => {
                s.ok();
                s.shard_up(shard, true);
                s.saw_epoch(appended.id.epoch.0);
                Ok(appended)
            }
            Err(e) => {
                s.failed(&e);
                s.shard_up(shard, false);
                Err(e.into())
            }
        }
    }
}
