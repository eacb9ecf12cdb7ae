//! The feed readers: every node reads every feed and hands each event to
//! its local subscribers, in id order per read; a reader resyncs after a
//! reconnect and tells the sink when the log lost what it had not read.
//! One reader per log shard: on one server, one reader of all its feeds;
//! in a cluster, one per shard, so a shard whose master is down holds up
//! nobody else's events.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::link::Link;
use super::reply::{field, info_field, xread_streams, Fields};
use super::{unavailable, Shared, READ_BATCH, READ_BLOCK_MS};
use crate::broker::backplane::BackplaneError;
use crate::broker::id::EventId;

/// What one reader reads: the feeds of one log shard.
struct Reader {
    shard: usize,
    feeds: Vec<usize>,
    /// The last entry id read from each feed.
    positions: Vec<String>,
    /// The epoch the positions belong to (publishes may learn of a new
    /// epoch first: the reader must still notice its positions are stale).
    epoch: u32,
    /// This shard came back without its data, and the sink was told.
    lost: bool,
}

/// The reader of log shard `shard`'s `feeds`, for as long as the process runs.
pub(super) async fn read_feed(s: Arc<Shared>, shard: usize, feeds: Vec<usize>) {
    let mut reader = Reader {
        shard,
        positions: feeds.iter().map(|&f| s.start[f].clone()).collect(),
        feeds,
        epoch: s.epoch.load(Ordering::Relaxed),
        lost: false,
    };
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        let first_feed = s
            .layout
            .feed(reader.feeds.first().copied().unwrap_or_default());
        let block = Duration::from_millis(READ_BLOCK_MS);
        let connected = s.target.reader(&first_feed, &s.commands, block).await;
        let result = match connected {
            Ok(mut con) => match resync(&s, &mut con, &mut reader, first).await {
                Ok(()) => {
                    first = false;
                    backoff = Duration::from_millis(100);
                    s.ok();
                    s.shard_up(reader.shard, true);
                    read_until_error(&s, &mut con, &mut reader).await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(unavailable(e)),
        };
        if let Err(e) = result {
            s.failed(&e);
            s.shard_up(reader.shard, false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// After (re)connecting: where to read from, and whether anything was lost.
async fn resync(
    s: &Shared,
    con: &mut Link,
    reader: &mut Reader,
    first: bool,
) -> Result<(), BackplaneError> {
    let epoch: Option<u32> = redis::cmd("GET")
        .arg(s.layout.in_shard(reader.shard, "epoch"))
        .query_async(con)
        .await
        .map_err(unavailable)?;
    let reader_epoch = &mut reader.epoch;
    let current = &mut reader.positions;
    if first && epoch == Some(*reader_epoch) {
        // Starting from where `connect` left off: nothing to check yet.
        return Ok(());
    }
    if s.layout.log_shards() > 1 && epoch != Some(*reader_epoch) {
        // One shard of a sharded log came back without its data: what it
        // held is gone and its positions mean nothing, while the other
        // shards' still do, so the log cannot start over by itself. Its
        // publishes are refused (the script draws no epoch for it), and
        // streams are closed once so their clients learn what was lost.
        if !std::mem::replace(&mut reader.lost, true) {
            tracing::error!(
                shard = reader.shard,
                "a redis master came back without this shard's data"
            );
            let shard = reader.shard.to_string();
            metrics::counter!("herald_backplane_shard_lost_total", "shard" => shard).increment(1);
            s.lost();
        }
        return Err(BackplaneError(format!(
            "redis: log shard {} lost its data (its master restarted empty); \
             the README (\"On a Redis Cluster\") says how to start the log over",
            reader.shard
        )));
    }
    if epoch != Some(*reader_epoch) || *reader_epoch == 0 {
        // Redis lost its data (a restart without persistence): the log
        // starts over under a new epoch (or will, with the next publish).
        // Read it from its beginning, and have clients resume so they
        // learn what was lost.
        tracing::warn!("redis came back without this log's data: starting over");
        *reader_epoch = epoch.unwrap_or(0);
        s.saw_epoch(*reader_epoch);
        current.iter_mut().for_each(|p| *p = "0-0".to_owned());
        s.lost();
        return Ok(());
    }
    // Same log: was anything trimmed from the feed before this node read it?
    for (&feed, position) in reader.feeds.iter().zip(current.iter()) {
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(s.layout.feed(feed))
            .query_async(con)
            .await
            .unwrap_or(Value::Nil);
        let trimmed =
            info_field(&info, "max-deleted-entry-id").and_then(|v| v.parse::<EventId>().ok());
        let read = position.parse::<EventId>().ok();
        if let (Some(trimmed), Some(read)) = (trimmed, read) {
            if trimmed.seq > read.seq {
                tracing::warn!(feed, "the feed was trimmed past this node's position");
                s.lost();
                break;
            }
        }
    }
    Ok(())
}

/// Reads the feeds and delivers entries until the connection fails.
async fn read_until_error(
    s: &Shared,
    con: &mut Link,
    reader: &mut Reader,
) -> Result<(), BackplaneError> {
    let keys: Vec<String> = reader.feeds.iter().map(|&f| s.layout.feed(f)).collect();
    let positions = &mut reader.positions;
    let reader_epoch = &mut reader.epoch;
    let sharded = s.layout.log_shards() > 1;
    loop {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS");
        for key in &keys {
            cmd.arg(key);
        }
        for position in positions.iter() {
            cmd.arg(position);
        }
        let asked = std::time::Instant::now();
        let reply: Value = cmd.query_async(con).await.map_err(unavailable)?;
        let waited = asked.elapsed();
        // What the shards returned, delivered in id order across shards:
        // events written close together (the usual case) reach subscribers
        // in the order they were numbered, whichever shard carried them.
        let mut batch: Vec<(u64, usize, String, Fields)> = Vec::new();
        for (key, entries) in xread_streams(&reply) {
            let Some(shard) = keys.iter().position(|k| k.as_bytes() == key.as_slice()) else {
                continue;
            };
            for (raw_id, fields) in entries {
                let seq = raw_id.parse::<EventId>().map_or(0, |id| id.seq);
                batch.push((seq, shard, raw_id, fields));
            }
        }
        batch.sort_by_key(|(seq, ..)| *seq);
        for (_, shard, raw_id, fields) in batch {
            if let (Ok(id), Some(topics), Some(body)) = (
                raw_id.parse::<EventId>(),
                field(&fields, b"t").and_then(|t| std::str::from_utf8(t).ok()),
                field(&fields, b"b"),
            ) {
                if id.epoch.0 != *reader_epoch {
                    *reader_epoch = id.epoch.0;
                    s.saw_epoch(id.epoch.0);
                }
                s.deliver(reader.shard, topics, id, body);
            }
            positions[shard] = raw_id;
        }
        if sharded && waited < BUSY {
            // Entries come fast: a short pause lets the next read take
            // several at once. A shard's reader sees only its shard's share
            // of the events one reader of every feed would, so without it
            // reads batch less: more XREADs per publish, and more, smaller
            // writes to this node's sockets. A quiet log's reads wait
            // longer than `BUSY` and are never held up.
            tokio::time::sleep(BUSY_PAUSE).await;
        }
    }
}

/// A sharded log's read answered within this: its shard is busy.
/// Measured (`herald-bench backplanes`): at 1.5 ms the cluster's XREADs per
/// publish fall from 0.9 to 0.4 and paced latency does not move; at
/// 0.5 ms, to 0.7. A pause after every read, however long it waited,
/// doubled paced latency.
const BUSY: Duration = Duration::from_micros(1500);
/// How long a sharded log's reader pauses after a busy read.
const BUSY_PAUSE: Duration = Duration::from_millis(1);
