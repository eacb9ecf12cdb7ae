//! The feed reader: every node reads every feed shard and hands each
//! event to its local subscribers, in id order per read; it resyncs after
//! a reconnect and tells the sink when the log lost what it had not read.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Value};

use super::reply::{field, info_field, xread_streams, Fields};
use super::{unavailable, Shared, READ_BATCH, READ_BLOCK_MS};
use crate::broker::backplane::BackplaneError;
use crate::broker::id::EventId;
use crate::sync::lock;

/// The feed reader: one per node, for as long as the process runs.
pub(super) async fn read_feed(s: Arc<Shared>) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_millis(READ_BLOCK_MS + 3000)));
    let mut positions: Option<Vec<String>> = lock(&s.start).take();
    // The epoch the positions belong to (publishes may learn of a new
    // epoch first: the reader must still notice its positions are stale).
    let mut reader_epoch = s.epoch.load(Ordering::Relaxed);
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = s
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        let result = match connected {
            Ok(mut con) => {
                match resync(&s, &mut con, &mut positions, &mut reader_epoch, first).await {
                    Ok(()) => {
                        first = false;
                        backoff = Duration::from_millis(100);
                        s.ok();
                        read_until_error(&s, &mut con, positions.as_mut(), &mut reader_epoch).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(unavailable(e)),
        };
        if let Err(e) = result {
            s.failed(&e);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// After (re)connecting: where to read from, and whether anything was lost.
async fn resync(
    s: &Shared,
    con: &mut redis::aio::MultiplexedConnection,
    positions: &mut Option<Vec<String>>,
    reader_epoch: &mut u32,
    first: bool,
) -> Result<(), BackplaneError> {
    let epoch: Option<u32> = redis::cmd("GET")
        .arg(s.key("epoch"))
        .query_async(con)
        .await
        .map_err(unavailable)?;
    let Some(current) = positions.as_mut() else {
        return Ok(());
    };
    if first && epoch == Some(*reader_epoch) {
        // Starting from where `connect` left off: nothing to check yet.
        return Ok(());
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
    for (shard, position) in current.iter().enumerate() {
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(s.feed_key(shard))
            .query_async(con)
            .await
            .unwrap_or(Value::Nil);
        let trimmed =
            info_field(&info, "max-deleted-entry-id").and_then(|v| v.parse::<EventId>().ok());
        let read = position.parse::<EventId>().ok();
        if let (Some(trimmed), Some(read)) = (trimmed, read) {
            if trimmed.seq > read.seq {
                tracing::warn!(shard, "the feed was trimmed past this node's position");
                s.lost();
                break;
            }
        }
    }
    Ok(())
}

/// Reads the feed shards and delivers entries until the connection fails.
async fn read_until_error(
    s: &Shared,
    con: &mut redis::aio::MultiplexedConnection,
    positions: Option<&mut Vec<String>>,
    reader_epoch: &mut u32,
) -> Result<(), BackplaneError> {
    let Some(positions) = positions else {
        return Err(BackplaneError(
            "redis: the feed reader has no position".to_owned(),
        ));
    };
    let keys: Vec<String> = (0..s.options.shards).map(|n| s.feed_key(n)).collect();
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
        let reply: Value = cmd.query_async(con).await.map_err(unavailable)?;
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
                s.deliver(topics, id, body);
            }
            positions[shard] = raw_id;
        }
    }
}
