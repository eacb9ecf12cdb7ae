//! The Redis backplane: Redis Streams as the shared, ordered event log of
//! several Herald nodes.
//!
//! # Key layout (prefix `herald:` by default)
//!
//! | key | type | what |
//! |---|---|---|
//! | `epoch` | string | the log's identity, drawn by the first node (see below) |
//! | `seq` | counter | the last sequence number handed out |
//! | `t:<topic>` | stream | the topic's history, for resume (`XRANGE`) |
//! | `feed:<n>` | stream | fan-out: every event of the topics hashed to shard `n` |
//! | `idem:<topic>` | hash | publisher idempotency key → event id |
//! | `floor` | string | history below this sequence may be gone from expired topics |
//! | `nodes`, `nodes:exp` | hash, sorted set | each live node's latest status reading, and when it expires (`report_node`) |
//! | `topics` | sorted set | every topic with history, by name (score 0): a wildcard's resume finds its topics with `ZRANGEBYLEX` |
//! | `conns:<group>` | sorted set | a user's (`user:<uid>`) or an address's (`ip:<addr>`) connections on every node, scored by expiry |
//! | `cid:<id>` | hash | who client id `<id>` belongs to (`broker::claims`): held while a connection has it, kept for the history's age after |
//!
//! A publish is one Lua script, so one round trip and atomic: it takes the
//! next number from `seq` and appends the event under the entry id
//! `<epoch>-<seq>` to the topic's stream and to its feed shard. That entry
//! id **is** the SSE `id:`. An event for several topics (a send to a
//! client, a user and a session at once) is appended to each topic's
//! stream under the same id, and to the feed once, in its first topic's
//! shard, with every topic in its `t` field: each node delivers it in one
//! go, so a connection on several of the topics gets it once. A node
//! delivers what one read of the shards returned in id order. Because every id comes from one counter, ids
//! order events across topics, and a client on several topics resumes from
//! one `Last-Event-ID` on any node.
//!
//! Why two streams per event: history is per topic, so a hot topic trims
//! only its own history (`MAXLEN ~ history_size`, expiry after
//! `history_max_age` without publishes) and a resume reads one topic's
//! entries, never a shared firehose. Fan-out is sharded: every node reads
//! the `feed:<n>` streams (`XREAD BLOCK`) from its last entry id and hands
//! each entry to its local subscribers, so a hot topic occupies one shard
//! and nodes never need one key per subscribed topic (there is a
//! `client:<id>` topic per connection).
//!
//! # Failures
//!
//! Redis down: publishes fail with `BackplaneError` (503), streams stay open
//! and keep heartbeating, and the feed reader reconnects with backoff and
//! resumes from its last entry ids. If the feed was trimmed past what the
//! node had read, or Redis came back empty (a restart without persistence:
//! a new epoch), the node closes its streams ([`Sink::lost`]): clients
//! reconnect with `Last-Event-ID`, get a `reset` where history is gone, and
//! replay what the log still holds — never a silent gap.
//!
//! Why the `redis` crate: it is the maintained, widely used client, its
//! `ConnectionManager` reconnects by itself, and `Script` runs Lua by
//! `EVALSHA` with a fallback after a Redis restart flushed the script cache.
//! A single Redis (or a primary with replicas) is assumed; the scripts touch
//! several keys, which Redis Cluster would need in one hash slot.
//!
//! # Modules
//!
//! This file is the [`RedisBackplane`] itself (publish, replay, admission,
//! claims, node reports); [`scripts`] holds the Lua it runs, [`feed`] the
//! per-node reader that turns the feed shards into local deliveries,
//! [`connections`] the refresh that keeps this node's records alive, and
//! [`reply`] the parsing of Redis's answers.

mod connections;
mod feed;
mod presence;
mod reply;
mod scripts;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};
use tokio::sync::mpsc;

use self::connections::refresh_connections;
use self::feed::read_feed;
use self::presence::write_presence;
use self::reply::{field, parse_replay, stream_entries};
use self::scripts::Scripts;

use crate::broker::backplane::{
    frame_with_id, Backplane, BackplaneError, BackplaneHealth, BoxFuture, Entry, Fanout, Matched,
    Page, Replay, Sink,
};
use crate::broker::claims::{Claimed, ClientClaim};
use crate::broker::id::{shard_of, Epoch, EventId, Position};
use crate::broker::memory::HistoryLimits;
use crate::broker::presence::Member;
use crate::clock::unix_ms as now_ms;
use crate::sync::lock;

/// How to reach Redis and lay out the keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Prepended to every key; lets several clusters (or tests) share a Redis.
    pub prefix: String,
    /// Feed shards (streams every node reads).
    pub shards: usize,
    /// Entries kept per feed shard: how far behind a node may fall (e.g.
    /// while reconnecting) before it must close its streams.
    pub feed_len: usize,
    /// Per-topic history.
    pub history: HistoryLimits,
    /// See [`DEFAULT_LEASE`].
    pub lease: Duration,
}

/// Why a Redis Cluster is refused (see [`RedisBackplane::connect`]).
const CLUSTER_UNSUPPORTED: &str = "Redis Cluster is not supported yet: point --backplane at a \
     standalone Redis (or a primary with replicas); docs/capacity.md says how far one goes";

/// Why [`RedisBackplane::try_connect`] failed.
enum Failure {
    /// Redis may come up: worth another try.
    Unreachable(BackplaneError),
    /// Not a Redis Herald can use, however long it waits.
    Unsupported(BackplaneError),
}

/// Prepended to every key unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "herald:";

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            shards: 8,
            feed_len: 100_000,
            history: HistoryLimits::default(),
            lease: DEFAULT_LEASE,
        }
    }
}

/// How long a node's records (its connections' counts, held client ids,
/// presence) outlive it unless renewed: a node that dies stops counting
/// within this time. Renewed every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long one `XREAD` blocks; also bounds how late a dead connection is noticed.
const READ_BLOCK_MS: u64 = 2000;
const READ_BATCH: usize = 1000;
/// Joins an event's topics in its feed entry (never part of a topic name).
const TOPIC_SEPARATOR: &str = ",";

/// See the module docs.
///
/// ```no_run
/// use std::sync::Arc;
/// use herald_server::broker::{BrokerConfig, RedisBackplane, RedisOptions, SSEBroker};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let backplane = RedisBackplane::connect(RedisOptions::new("redis://127.0.0.1:6379")).await?;
/// let broker = SSEBroker::with_backplane(BrokerConfig::default(), Arc::new(backplane));
/// assert_eq!(broker.backplane().name(), "redis");
/// # Ok::<(), herald_server::broker::BackplaneError>(())
/// # });
/// ```
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    commands: ConnectionManager,
    options: RedisOptions,
    /// The epoch this node last saw; 0 while unknown (Redis came back empty).
    epoch: AtomicU32,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    sink: OnceLock<Arc<dyn Sink>>,
    /// This node's admitted `(user, member)` connections, refreshed in Redis.
    admitted: Mutex<HashSet<(String, String)>>,
    /// `(client id, holder)` of this node's connections, whose claims are
    /// refreshed in Redis.
    claimed: Mutex<HashSet<(String, String)>>,
    /// `(key, record)` of this node's connections present on a topic,
    /// renewed in Redis ([`presence`]).
    present: Mutex<HashSet<(String, String)>>,
    /// To the task that writes them, in order.
    presence_ops: mpsc::UnboundedSender<presence::Op>,
    /// Its end, until `attach` starts the task.
    presence_queue: Mutex<Option<mpsc::UnboundedReceiver<presence::Op>>>,
    /// `(when, seq)` samples that become the floor once older than the history age.
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Where the feed reader starts: the shards' ends when `connect` ran, so
    /// every event published after `connect` returned reaches this node.
    start: Mutex<Option<Vec<String>>>,
    scripts: Scripts,
}

fn unavailable(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError(format!("redis: {e}"))
}

/// A random epoch other than 0 (unknown) and `not`.
fn fresh_epoch(not: u32) -> u32 {
    loop {
        let e: u32 = rand::random();
        if e != 0 && e != not {
            return e;
        }
    }
}

impl Shared {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.options.prefix)
    }

    fn feed_key(&self, shard: usize) -> String {
        self.key(&format!("feed:{shard}"))
    }

    fn history_ttl_ms(&self) -> u64 {
        (self.options.history.max_age.as_millis() as u64).max(1000)
    }

    fn ok(&self) {
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// `e` as this backplane's error, noted as the reason it is down.
    fn down(&self, e: impl std::fmt::Display) -> BackplaneError {
        let e = unavailable(e);
        self.failed(&e);
        e
    }

    fn failed(&self, e: &BackplaneError) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "redis backplane unavailable");
        }
        *lock(&self.last_error) = Some(e.0.clone());
    }

    /// Records the epoch an id or Redis reported.
    fn saw_epoch(&self, epoch: u32) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Delivers a feed entry: `topics` as written by the publish script.
    fn deliver(&self, topics: &str, id: EventId, body: &[u8]) {
        if let Some(sink) = self.sink.get() {
            let topics: Vec<&str> = topics.split(TOPIC_SEPARATOR).collect();
            sink.deliver(Fanout {
                topics: &topics,
                shard: 0,
                seq: id.seq,
                frame: frame_with_id(id, body),
            });
        }
    }

    fn lost(&self) {
        if let Some(sink) = self.sink.get() {
            sink.lost();
        }
    }
}

impl RedisBackplane {
    /// [`connect`](Self::connect), retrying with backoff for up to
    /// `within`: nodes and Redis often start together (a compose file, a
    /// test), and a node should not lose that race.
    pub async fn connect_within(
        options: RedisOptions,
        within: Duration,
    ) -> Result<Self, BackplaneError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = Duration::from_millis(100);
        loop {
            match Self::try_connect(options.clone()).await {
                Ok(backplane) => return Ok(backplane),
                Err(Failure::Unsupported(e)) => return Err(e),
                Err(Failure::Unreachable(e)) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(error = %e, "redis not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(Failure::Unreachable(e)) => return Err(e),
            }
        }
    }

    /// Connects (failing if Redis cannot be reached now) and reads or
    /// creates the log's epoch. The feed reader starts when the broker
    /// attaches.
    ///
    /// A Redis Cluster is refused, by its URL (`redis+cluster://`) or by
    /// what the server says of itself: every publish is one script over
    /// the id counter, a feed shard and the topics' streams, keys a
    /// cluster keeps in different slots, so each publish would fail.
    pub async fn connect(options: RedisOptions) -> Result<Self, BackplaneError> {
        Self::try_connect(options).await.map_err(|f| match f {
            Failure::Unreachable(e) | Failure::Unsupported(e) => e,
        })
    }

    async fn try_connect(options: RedisOptions) -> Result<Self, Failure> {
        if options.url.starts_with("redis+cluster://") {
            return Err(Failure::Unsupported(unavailable(CLUSTER_UNSUPPORTED)));
        }
        let client =
            Client::open(options.url.as_str()).map_err(|e| Failure::Unsupported(unavailable(e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let unreachable = |e| Failure::Unreachable(unavailable(e));
        let mut commands = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unreachable)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut commands)
            .await
            .map_err(unreachable)?;
        if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Err(Failure::Unsupported(unavailable(CLUSTER_UNSUPPORTED)));
        }
        let scripts = Scripts::new();
        let epoch: String = scripts
            .init
            .key(format!("{}epoch", options.prefix))
            .arg(fresh_epoch(0))
            .invoke_async(&mut commands)
            .await
            .map_err(unreachable)?;
        let mut start = Vec::with_capacity(options.shards);
        for shard in 0..options.shards {
            let last: Value = redis::cmd("XREVRANGE")
                .arg(format!("{}feed:{shard}", options.prefix))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            start.push(
                stream_entries(&last)
                    .into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
            );
        }
        let (presence_ops, presence_queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            start: Mutex::new(Some(start)),
            client,
            commands,
            epoch: AtomicU32::new(epoch.parse().unwrap_or(0)),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            sink: OnceLock::new(),
            admitted: Mutex::new(HashSet::new()),
            claimed: Mutex::new(HashSet::new()),
            present: Mutex::new(HashSet::new()),
            presence_ops,
            presence_queue: Mutex::new(Some(presence_queue)),
            samples: Mutex::new(VecDeque::new()),
            scripts,
            options,
        });
        Ok(RedisBackplane { shared })
    }
}

impl Backplane for RedisBackplane {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn epoch(&self) -> Epoch {
        Epoch(self.shared.epoch.load(Ordering::Relaxed))
    }

    fn attach(&self, sink: Arc<dyn Sink>) {
        if self.shared.sink.set(sink).is_ok() {
            tokio::spawn(read_feed(self.shared.clone()));
            tokio::spawn(refresh_connections(Arc::downgrade(&self.shared)));
            if let Some(queue) = lock(&self.shared.presence_queue).take() {
                tokio::spawn(write_presence(Arc::downgrade(&self.shared), queue));
            }
        }
    }

    fn append<'a>(
        &'a self,
        topics: &'a [&'a str],
        key: Option<&'a str>,
        body: Bytes,
    ) -> BoxFuture<'a, Result<EventId, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let Some(first) = topics.first() else {
                return Err(BackplaneError("an event needs a topic".to_owned()));
            };
            // The event travels in its first topic's shard.
            let shard = shard_of(first, s.options.shards);
            let mut con = s.commands.clone();
            let mut script = s.scripts.publish.key(s.key("epoch"));
            script
                .key(s.key("seq"))
                .key(s.feed_key(shard))
                .key(s.key(&format!("idem:{first}")))
                .key(s.key("topics"));
            for topic in topics {
                script.key(s.key(&format!("t:{topic}")));
            }
            let id: Result<String, _> = script
                // Used only if Redis lost the epoch (a restart): a new one,
                // never the old one, or old ids would pass for new positions.
                .arg(fresh_epoch(s.epoch.load(Ordering::Relaxed)))
                .arg(topics.join(TOPIC_SEPARATOR))
                .arg(body.as_ref())
                .arg(s.options.history.max_events.max(1))
                .arg(s.options.feed_len.max(1))
                .arg(s.history_ttl_ms())
                .arg(key.unwrap_or(""))
                .arg(topics)
                .invoke_async(&mut con)
                .await;
            let id = id.map_err(unavailable).and_then(|id| {
                id.parse::<EventId>()
                    .map_err(|e| BackplaneError(format!("redis returned {e}")))
            });
            match id {
                Ok(id) => {
                    s.ok();
                    s.saw_epoch(id.epoch.0);
                    Ok(id)
                }
                Err(e) => {
                    s.failed(&e);
                    Err(e)
                }
            }
        })
    }

    fn replay<'a>(
        &'a self,
        topic: &'a str,
        page: Page,
    ) -> BoxFuture<'a, Result<Replay, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let after = page.after;
            let epoch = s.epoch.load(Ordering::Relaxed);
            let start = if after == 0 {
                "-".to_owned()
            } else {
                format!("({epoch}-{after}")
            };
            // While the epoch is unknown there is no bound to write.
            let end = if epoch == 0 || page.until == u64::MAX {
                "+".to_owned()
            } else {
                format!("{epoch}-{}", page.until)
            };
            let mut con = s.commands.clone();
            let reply: Result<Value, _> = s
                .scripts
                .replay
                .key(s.key(&format!("t:{topic}")))
                .key(s.key("floor"))
                .arg(start)
                .arg(end)
                .arg(page.limit.clamp(1, i64::MAX as usize))
                .invoke_async(&mut con)
                .await;
            let reply = reply.map_err(unavailable);
            let (trimmed, entries) = match reply.and_then(|v| parse_replay(&v)) {
                Ok(r) => r,
                Err(e) => {
                    s.failed(&e);
                    return Err(e);
                }
            };
            s.ok();
            let mut out = Vec::with_capacity(entries.len());
            for (id, fields) in entries {
                if let (Ok(id), Some(body)) = (id.parse::<EventId>(), field(&fields, b"b")) {
                    // While the epoch is unknown (Redis came back empty and
                    // this node has not read the new log yet) all of it is new.
                    if (epoch == 0 || id.epoch.0 == epoch) && id.seq > after && id.seq <= page.until
                    {
                        out.push(Entry::new(id.seq, frame_with_id(id, body)));
                    }
                }
            }
            Ok(Replay {
                entries: out,
                gap: after < trimmed,
            })
        })
    }

    fn topics_under<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Matched, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let mut con = s.commands.clone();
            // One more than asked: says whether the list is complete.
            let asked = limit.saturating_add(1).min(i64::MAX as usize);
            let reply: Result<Vec<String>, _> = s
                .scripts
                .topics_under
                .key(s.key("topics"))
                .key(s.key("floor"))
                .arg(format!("[{prefix}"))
                .arg(format!("[{prefix}\u{7f}"))
                .arg(asked)
                .arg(s.key("t:"))
                .invoke_async(&mut con)
                .await;
            let mut reply = reply.map_err(|e| s.down(e))?;
            s.ok();
            let floor = if reply.is_empty() {
                0
            } else {
                reply.remove(0).parse().unwrap_or(0)
            };
            let truncated = reply.len() > limit;
            reply.truncate(limit);
            Ok(Matched {
                topics: reply,
                forgotten_through: vec![floor],
                truncated,
            })
        })
    }

    fn report_node<'a>(
        &'a self,
        node: &'a str,
        reading: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let mut con = s.commands.clone();
            let readings: Result<Vec<String>, _> = s
                .scripts
                .report_node
                .key(s.key("nodes"))
                .key(s.key("nodes:exp"))
                .arg(node)
                .arg(reading)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke_async(&mut con)
                .await;
            readings.map_err(|e| s.down(e))
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let mut con = s.commands.clone();
            let seq: Option<u64> = redis::cmd("GET")
                .arg(s.key("seq"))
                .query_async(&mut con)
                .await
                .map_err(|e| s.down(e))?;
            let epoch = Epoch(s.epoch.load(Ordering::Relaxed));
            Ok(Position::new(epoch, vec![seq.unwrap_or(0)]))
        })
    }

    fn sweep(&self) {
        let s = self.shared.clone();
        tokio::spawn(async move {
            let mut con = s.commands.clone();
            let seq: Result<Option<u64>, _> = redis::cmd("GET")
                .arg(s.key("seq"))
                .query_async(&mut con)
                .await;
            let Ok(seq) = seq else { return };
            // A topic's stream expires `max_age` after its last publish, so
            // whatever it held is numbered below the counter's value from
            // `max_age` ago: that value becomes the floor for absent topics.
            let floor = {
                let mut samples = lock(&s.samples);
                samples.push_back((Instant::now(), seq.unwrap_or(0)));
                let mut floor = None;
                while samples
                    .front()
                    .is_some_and(|(at, _)| at.elapsed() > s.options.history.max_age)
                {
                    floor = samples.pop_front().map(|(_, seq)| seq);
                }
                floor
            };
            if let Some(floor) = floor {
                let raised: Result<i64, _> = s
                    .scripts
                    .raise_floor
                    .key(s.key("floor"))
                    .arg(floor)
                    .invoke_async(&mut con)
                    .await;
                if let Err(e) = raised {
                    tracing::debug!(error = %e, "could not raise the history floor");
                }
            }
        });
    }

    fn health(&self) -> BackplaneHealth {
        let ok = self.shared.healthy.load(Ordering::Relaxed);
        BackplaneHealth {
            name: "redis",
            ok,
            error: if ok {
                None
            } else {
                lock(&self.shared.last_error).clone()
            },
        }
    }

    fn admit<'a>(
        &'a self,
        user: &'a str,
        member: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<bool, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let now = now_ms();
            let ttl = s.options.lease.as_millis() as u64;
            let mut con = s.commands.clone();
            let admitted: i64 = s
                .scripts
                .admit
                .key(s.key(&format!("conns:{user}")))
                .arg(now)
                .arg(now + ttl)
                .arg(member)
                .arg(limit)
                .arg(ttl)
                .invoke_async(&mut con)
                .await
                .map_err(unavailable)?;
            if admitted == 1 {
                lock(&s.admitted).insert((user.to_owned(), member.to_owned()));
            }
            Ok(admitted == 1)
        })
    }

    fn claim_client<'a>(
        &'a self,
        id: &'a str,
        claim: ClientClaim<'a>,
    ) -> BoxFuture<'a, Result<Claimed, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let mut con = s.commands.clone();
            let reply: Vec<String> = s
                .scripts
                .claim
                .key(s.key(&format!("cid:{id}")))
                .arg(claim.user.unwrap_or(""))
                .arg(claim.session.unwrap_or(""))
                .arg(claim.offered_secret.unwrap_or(""))
                .arg(claim.new_secret)
                .arg(claim.holder)
                .arg(s.options.lease.as_millis() as u64)
                .invoke_async(&mut con)
                .await
                .map_err(unavailable)?;
            let claimed = match reply.as_slice() {
                [kind] if kind == "fresh" => Claimed::Fresh,
                [kind, secret] if kind == "continued" => Claimed::Continued {
                    secret: secret.clone(),
                },
                [kind] if kind == "refused" => Claimed::Refused,
                other => return Err(BackplaneError(format!("redis: claim answered {other:?}"))),
            };
            if claimed != Claimed::Refused {
                lock(&s.claimed).insert((id.to_owned(), claim.holder.to_owned()));
            }
            Ok(claimed)
        })
    }

    fn release_client(&self, id: &str, holder: &str, keep_for: Duration) {
        let s = self.shared.clone();
        lock(&s.claimed).remove(&(id.to_owned(), holder.to_owned()));
        let (key, holder) = (s.key(&format!("cid:{id}")), holder.to_owned());
        let keep = (keep_for.as_millis() as u64).max(1);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut con = s.commands.clone();
                let released: Result<i64, _> = s
                    .scripts
                    .release_claim
                    .key(key)
                    .arg(holder)
                    .arg(keep)
                    .invoke_async(&mut con)
                    .await;
                if let Err(e) = released {
                    // It expires by itself within the node's lease: the
                    // id is then free sooner than `keep_for`, never held.
                    tracing::debug!(error = %e, "could not release a client id");
                }
            });
        }
    }

    fn records_presence(&self) -> bool {
        true
    }

    fn join(&self, topic: &str, member: &Member) {
        let s = &self.shared;
        let (key, record) = (
            s.key(&format!("presence:{topic}")),
            presence::encode(member),
        );
        lock(&s.present).insert((key.clone(), record.clone()));
        // Fails only once the writer is gone, with the backplane.
        let _ = s.presence_ops.send(presence::Op::Join { key, record });
    }

    fn leave(&self, topic: &str, member: &Member) {
        let s = &self.shared;
        let (key, record) = (
            s.key(&format!("presence:{topic}")),
            presence::encode(member),
        );
        if lock(&s.present).remove(&(key.clone(), record.clone())) {
            let _ = s.presence_ops.send(presence::Op::Leave { key, record });
        }
    }

    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<Member>, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let key = s.key(&format!("presence:{topic}"));
            let now = now_ms();
            let mut con = s.commands.clone();
            // Records whose lease ended (their node died) go, the rest are read.
            let (records,): (Vec<String>,) = redis::pipe()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(now)
                .arg("+inf")
                .query_async(&mut con)
                .await
                .map_err(|e| s.down(e))?;
            Ok(records.iter().filter_map(|r| presence::decode(r)).collect())
        })
    }

    fn release(&self, user: &str, member: &str) {
        let s = self.shared.clone();
        let was_admitted = lock(&s.admitted).remove(&(user.to_owned(), member.to_owned()));
        if !was_admitted {
            return;
        }
        let (key, member) = (s.key(&format!("conns:{user}")), member.to_owned());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut con = s.commands.clone();
                let removed: Result<i64, _> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut con)
                    .await;
                if let Err(e) = removed {
                    // It expires by itself within the node's lease.
                    tracing::debug!(error = %e, "could not release a connection count");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_topics() {
        let mut seen = HashSet::new();
        for i in 0..100 {
            seen.insert(shard_of(&format!("topic-{i}"), 8));
        }
        assert_eq!(seen.len(), 8);
    }
}
