//! The Redis backplane: Redis Streams as the shared, ordered event log of
//! several Herald nodes, on one Redis or on a Redis Cluster.
//!
//! # Key layout (prefix `herald:` by default)
//!
//! | key | type | what |
//! |---|---|---|
//! | `epoch` | string | the log's identity, drawn by the first node (see below) |
//! | `seq` | counter | the last sequence number handed out |
//! | `t:<topic>` | stream | the topic's history, for resume (`XRANGE`) |
//! | `feed:<n>` | stream | fan-out: every event of the topics hashed to feed `n` |
//! | `idem:<topic>` | hash | publisher idempotency key → event id |
//! | `floor` | string | history below this sequence may be gone from expired topics |
//! | `nodes`, `nodes:exp` | hash, sorted set | each live node's latest status reading, and when it expires (`report_node`) |
//! | `topics` | sorted set | every topic with history, by name (score 0): a wildcard's resume finds its topics with `ZRANGEBYLEX` |
//! | `hot`, `bytes`, `total` | sorted set, hash, string | the history's budget: each topic's last publish (ms), the bytes its history holds, their sum ([`append`]) |
//! | `conns:<group>` | sorted set | a user's (`user:<uid>`) or an address's (`ip:<addr>`) connections on every node, scored by expiry |
//! | `cid:<id>` | hash | who client id `<id>` belongs to (`broker::claims`): held while a connection has it, kept for the history's age after |
//! | `presence:<topic>` | sorted set | who is on the topic, scored by lease end ([`presence`]) |
//!
//! On a Redis Cluster the log is split in shards, and each shard has its
//! own `epoch` copy, `seq`, `feed`, `floor`, `topics` and its topics' `t:`
//! and `idem:` keys, all under the shard's hash tag ([`layout`]); shard 0
//! also holds `complete`, set once every shard has its epoch copy.
//!
//! A publish is one Lua script, so one round trip and atomic: it takes the
//! next number from `seq` and appends the event under the entry id
//! `<epoch>-<seq>` to the topic's stream and to its feed. On one Redis that
//! entry id **is** the SSE `id:`. An event for several topics (a send to a
//! client, a user and a session at once) is appended to each topic's
//! stream under the same id, and to the feed once, in its first topic's
//! feed, with every topic in its `t` field: each node delivers it in one
//! go, so a connection on several of the topics gets it once. A node
//! delivers what one read of the feeds returned in id order. Because every
//! id comes from one counter, ids order events across topics, and a client
//! on several topics resumes from one `Last-Event-ID` on any node.
//!
//! Why two streams per event: history is per topic, so a hot topic trims
//! only its own history (past its count or bytes, expiry after the
//! history's age without publishes; past the bytes of all topics the
//! topics idle longest go whole: [`append`]) and a resume reads one
//! topic's entries, never a shared firehose. Fan-out is sharded: every node reads
//! the `feed:<n>` streams (`XREAD BLOCK`) from its last entry id and hands
//! each entry to its local subscribers, so a hot topic occupies one feed
//! and nodes never need one key per subscribed topic (there is a
//! `client:<id>` topic per connection).
//!
//! # On a Redis Cluster
//!
//! One counter would be one key on every publish, and the scripts' keys
//! must share a slot, so a cluster's log has `shards` shards, each
//! numbering its own events: a publish runs on its topic's shard only. A
//! stream's position is then a seq per shard ([`Position`]); each node reads
//! each shard's feed with a reader of its own (pausing 1 ms after a read
//! that found entries waiting, so busy reads batch) and tells its streams
//! its position, each stream's id naming the shards it reads, under one
//! lock so that what a stream is told never goes back
//! ([`Shared::deliver`]). A resume waits for this node to have delivered
//! up to the shards' heads ([`Backplane::head`]). An event
//! for topics on several shards is one script per shard, each copy naming
//! all its topics (`t` also in the topic streams, for replays): a
//! connection takes the copy of the shard of the first of them it is on.
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
//! On a cluster a master that is down stops only its shards (their
//! publishes and replays fail, `/healthz` names them, the others flow). A
//! master that comes back without its data cannot start its shards over
//! while the others go on (old positions would name new events): the
//! publish script refuses them (it draws no epoch on a sharded log), the
//! node closes its streams once, and a node starting against it refuses to
//! start, saying the shards disagree on the epoch.
//!
//! Why the `redis` crate: it is the maintained, widely used client, its
//! `ConnectionManager` reconnects by itself, its cluster client routes by
//! slot and follows failovers, and `Script` runs Lua by `EVALSHA` with a
//! fallback after a Redis restart flushed the script cache.
//!
//! # Modules
//!
//! This file is the [`RedisBackplane`] itself (replay, admission, claims,
//! node reports); [`append`] publishes within the history's budget,
//! [`layout`] says where each key lives, [`link`]
//! how a node reaches one Redis or a cluster, [`scripts`] holds the Lua it
//! runs, [`feed`] the per-shard readers that turn the feeds into local
//! deliveries, [`connections`] the refresh that keeps this node's records
//! alive, [`presence`] who is on which topic, and [`reply`] the parsing of
//! Redis's answers.

mod append;
mod connections;
mod feed;
mod layout;
mod link;
mod presence;
mod reply;
mod scripts;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::{mpsc, watch};

use self::connections::refresh_connections;
use self::feed::read_feed;
use self::layout::Layout;
pub(crate) use self::link::{Link, Target};
use self::presence::write_presence;
use self::reply::{field, parse_replay, stream_entries};
use self::scripts::Scripts;

use crate::broker::backplane::{
    frame_with_id, Append, AppendError, Appended, Backplane, BackplaneError, BackplaneHealth,
    BoxFuture, Entry, EventFrame, Fanout, Matched, Page, Replay, Sink, Usage,
};
use crate::broker::claims::{Claimed, ClientClaim};
use crate::broker::id::{Epoch, EventId, Position, MAX_SHARDS};
use crate::broker::presence::Member;
use crate::broker::HistoryLimits;
use crate::clock::unix_ms as now_ms;
use crate::sync::lock;

/// How to reach Redis and lay out the keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port[/db]` for one server (or a primary with
    /// replicas), `redis+cluster://host:port,host:port,…` for a Redis
    /// Cluster (some of its masters: the rest are found from them).
    pub url: String,
    /// Prepended to every key; lets several clusters (or tests) share a Redis.
    pub prefix: String,
    /// On one server, the feed streams every node reads (fan-out only). In
    /// a cluster, the log's shards (at most 64), each numbering its events
    /// on its own: fixed for the log's life, since positions name them.
    pub shards: usize,
    /// Entries kept per feed shard: how far behind a node may fall (e.g.
    /// while reconnecting) before it must close its streams.
    pub feed_len: usize,
    /// Per-topic history.
    pub history: HistoryLimits,
    /// See [`DEFAULT_LEASE`].
    pub lease: Duration,
}

/// Why a cluster node named by a one-server URL is refused (see
/// [`RedisBackplane::connect`]).
const CLUSTER_NEEDS_ITS_URL: &str = "this Redis is a Redis Cluster node: use --backplane \
     redis+cluster://host:port,host:port,… to run on the cluster";

/// Why [`RedisBackplane::try_connect`] failed.
enum Failure {
    /// Redis may come up: worth another try.
    Unreachable(BackplaneError),
    /// Not a Redis Herald can use, however long it waits.
    Unsupported(BackplaneError),
}

/// Feed streams on one server, log shards in a cluster ([`RedisOptions::shards`]).
pub const DEFAULT_SHARDS: usize = 8;

/// Prepended to every key unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "herald:";

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            shards: DEFAULT_SHARDS,
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
/// How long a resume waits for this node's feed readers to catch up with
/// a sharded log's head (they are usually there already).
const HEAD_WAIT: Duration = Duration::from_secs(5);
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
    target: Target,
    commands: Link,
    layout: Layout,
    options: RedisOptions,
    /// The epoch this node last saw; 0 while unknown (Redis came back empty).
    epoch: AtomicU32,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Log shards that do not answer right now ([`Shared::shard_up`]).
    shards_down: Mutex<BTreeSet<usize>>,
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
    /// `(when, seq of each log shard)` samples that become the floors once
    /// older than the history age.
    samples: Mutex<VecDeque<(Instant, Vec<u64>)>>,
    /// Where the feed readers start: each feed's end when `connect` ran,
    /// so every event published after `connect` returned reaches this node.
    start: Vec<String>,
    /// A sharded log's: per shard, the last seq handed to the sink. Held
    /// (written) while an event is handed over, so the positions streams
    /// are written only grow ([`Shared::deliver`]); [`Backplane::head`]
    /// waits on it.
    frontier: watch::Sender<Position>,
    scripts: Scripts,
    /// What the log held at the last sweep ([`Backplane::usage`]).
    usage: Mutex<Usage>,
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
        self.layout.key(name)
    }

    fn history_ttl_ms(&self) -> u64 {
        (self.options.history.max_age.as_millis() as u64).max(1000)
    }

    fn ok(&self) {
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// Notes whether log shard `shard` answers, as its feed reader and its
    /// publishes find: `/healthz` names the shards that do not, and
    /// `herald_backplane_shard_up{shard}` says it per shard.
    fn shard_up(&self, shard: usize, up: bool) {
        let mut down = lock(&self.shards_down);
        let changed = if up {
            down.remove(&shard)
        } else {
            down.insert(shard)
        };
        if changed {
            metrics::gauge!("herald_backplane_shard_up", "shard" => shard.to_string()).set(if up {
                1.0
            } else {
                0.0
            });
        }
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

    /// Delivers a feed entry of log shard `shard`: `topics` as written by
    /// the publish script.
    fn deliver(&self, shard: usize, topics: &str, id: EventId, body: &[u8]) {
        let Some(sink) = self.sink.get() else { return };
        let topics: Vec<&str> = topics.split(TOPIC_SEPARATOR).collect();
        if self.layout.log_shards() == 1 {
            // One log: an event's own id is the position of a stream that has it.
            sink.deliver(Fanout {
                topics: &topics,
                shard,
                seq: id.seq,
                frame: EventFrame::Whole(frame_with_id(id, body)),
            });
            return;
        }
        // Sharded: what a stream is told is this node's position (it has
        // every event of its topics up to there), naming the shards that
        // stream reads, handed over while the frontier is held so that no
        // stream sees a position go back.
        self.frontier.send_modify(|at| {
            if shard >= at.shards() {
                return;
            }
            at.epoch = id.epoch;
            at.advance(shard, id.seq);
            sink.deliver(Fanout {
                topics: &topics,
                shard,
                seq: id.seq,
                frame: EventFrame::Positioned { at, body },
            });
        });
    }

    /// Each log shard's counter: the last seq it handed out.
    async fn counters(&self) -> Vec<Result<u64, redis::RedisError>> {
        let read = (0..self.layout.log_shards()).map(|shard| {
            let mut con = self.commands.clone();
            let key = self.layout.in_shard(shard, "seq");
            async move {
                let seq: Option<u64> = redis::cmd("GET").arg(key).query_async(&mut con).await?;
                Ok(seq.unwrap_or(0))
            }
        });
        futures::future::join_all(read).await
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
    /// creates the log's epoch, the same in every shard. The feed readers
    /// start when the broker attaches.
    ///
    /// A Redis Cluster node named by a one-server URL is refused: every
    /// publish is one script over several keys, which a cluster keeps in
    /// one slot only when laid out for it (`redis+cluster://`). So is a
    /// cluster whose shards disagree on the epoch: a master came back
    /// without its data, and its positions mean nothing any more.
    pub async fn connect(options: RedisOptions) -> Result<Self, BackplaneError> {
        Self::try_connect(options).await.map_err(|f| match f {
            Failure::Unreachable(e) | Failure::Unsupported(e) => e,
        })
    }

    async fn try_connect(options: RedisOptions) -> Result<Self, Failure> {
        let unsupported = |e| Failure::Unsupported(unavailable(e));
        let unreachable = |e| Failure::Unreachable(unavailable(e));
        let target = Target::open(&options.url).map_err(unsupported)?;
        let mut commands = target.commands().await.map_err(unreachable)?;
        let layout = if target.is_cluster() {
            if options.shards > MAX_SHARDS {
                return Err(unsupported(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "too many shards",
                    format!("a sharded log has at most {MAX_SHARDS}"),
                ))));
            }
            Layout::cluster(&options.prefix, options.shards)
        } else {
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            if info.lines().any(|l| l.trim() == "cluster_enabled:1") {
                return Err(Failure::Unsupported(unavailable(CLUSTER_NEEDS_ITS_URL)));
            }
            Layout::server(&options.prefix, options.shards)
        };
        let scripts = Scripts::new();
        let epoch = read_epoch(&layout, &scripts, &mut commands).await?;
        let mut start = Vec::with_capacity(layout.feeds());
        for feed in 0..layout.feeds() {
            let last: Value = redis::cmd("XREVRANGE")
                .arg(layout.feed(feed))
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
        // A sharded log's readers start at the feeds' ends: that is what
        // this node has, as far as a stream resuming here is concerned.
        let frontier: Vec<u64> = if layout.log_shards() > 1 {
            start
                .iter()
                .map(|id| id.parse::<EventId>().map_or(0, |id| id.seq))
                .collect()
        } else {
            Vec::new()
        };
        let epoch: u32 = epoch.parse().unwrap_or(0);
        let frontier = Position::new(Epoch(epoch), frontier);
        let (presence_ops, presence_queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            start,
            frontier: watch::Sender::new(frontier),
            target,
            commands,
            layout,
            epoch: AtomicU32::new(epoch),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            shards_down: Mutex::new(BTreeSet::new()),
            sink: OnceLock::new(),
            admitted: Mutex::new(HashSet::new()),
            claimed: Mutex::new(HashSet::new()),
            present: Mutex::new(HashSet::new()),
            presence_ops,
            presence_queue: Mutex::new(Some(presence_queue)),
            samples: Mutex::new(VecDeque::new()),
            scripts,
            options,
            usage: Mutex::new(Usage::default()),
        });
        Ok(RedisBackplane { shared })
    }
}

/// Reads the log's epoch, drawing it if the log is new. Every shard of a
/// sharded log keeps a copy, and shard 0 notes (`complete`) once all of
/// them have one: from then on a shard without its copy lost its data,
/// and is refused rather than given the epoch back (its counter would
/// start over, and old positions would name new events).
async fn read_epoch(layout: &Layout, scripts: &Scripts, con: &mut Link) -> Result<String, Failure> {
    let unreachable = |e| Failure::Unreachable(unavailable(e));
    let disagree = |detail: String| {
        Failure::Unsupported(unavailable(format!(
            "the log's shards disagree on its epoch ({detail}): a Redis master came back \
             without its data; the README (\"On a Redis Cluster\") says how to start the \
             log over"
        )))
    };
    let shards = layout.log_shards();
    let complete_key = layout.in_shard(0, "complete");
    let complete = shards > 1
        && redis::cmd("EXISTS")
            .arg(&complete_key)
            .query_async::<bool>(con)
            .await
            .map_err(unreachable)?;
    let mut epoch: Option<String> = None;
    for shard in 0..shards {
        let key = layout.in_shard(shard, "epoch");
        let held: Option<String> = if complete {
            redis::cmd("GET")
                .arg(&key)
                .query_async(con)
                .await
                .map_err(unreachable)?
        } else {
            let candidate = epoch.clone().unwrap_or_else(|| fresh_epoch(0).to_string());
            let held: String = scripts
                .init
                .key(&key)
                .arg(candidate)
                .invoke_async(con)
                .await
                .map_err(unreachable)?;
            Some(held)
        };
        match (&epoch, held) {
            (_, None) => return Err(disagree(format!("shard {shard} has none"))),
            (Some(first), Some(held)) if *first != held => {
                return Err(disagree(format!("shard 0: {first}, shard {shard}: {held}")));
            }
            (Some(_), Some(_)) => {}
            (None, Some(held)) => epoch = Some(held),
        }
    }
    if shards > 1 && !complete {
        redis::cmd("SET")
            .arg(&complete_key)
            .arg(1)
            .query_async::<()>(con)
            .await
            .map_err(unreachable)?;
    }
    epoch.ok_or_else(|| disagree("no shard has one".to_owned()))
}

impl Backplane for RedisBackplane {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn epoch(&self) -> Epoch {
        Epoch(self.shared.epoch.load(Ordering::Relaxed))
    }

    fn shards(&self) -> usize {
        self.shared.layout.log_shards()
    }

    fn attach(&self, sink: Arc<dyn Sink>) {
        if self.shared.sink.set(sink).is_ok() {
            // One reader per log shard, reading all of its feeds.
            let l = &self.shared.layout;
            for shard in 0..l.log_shards() {
                let shard_label = shard.to_string();
                metrics::gauge!("herald_backplane_shard_up", "shard" => shard_label).set(1.0);
                let feeds = (0..l.feeds()).filter(|&f| l.shard_of_feed(f) == shard);
                tokio::spawn(read_feed(self.shared.clone(), shard, feeds.collect()));
            }
            tokio::spawn(refresh_connections(Arc::downgrade(&self.shared)));
            if let Some(queue) = lock(&self.shared.presence_queue).take() {
                tokio::spawn(write_presence(Arc::downgrade(&self.shared), queue));
            }
        }
    }

    fn append<'a>(&'a self, event: Append<'a>) -> BoxFuture<'a, Result<Appended, AppendError>> {
        Box::pin(async move {
            // One script per log shard the topics are in (one on a single
            // server), the first topic's shard first: its id is the answer.
            let l = &self.shared.layout;
            let mut by_shard: Vec<(usize, Vec<&str>)> = Vec::new();
            for topic in event.topics {
                let shard = l.shard(topic);
                match by_shard.iter_mut().find(|(s, _)| *s == shard) {
                    Some((_, group)) => group.push(topic),
                    None => by_shard.push((shard, vec![topic])),
                }
            }
            let mut first: Option<Appended> = None;
            for (shard, group) in by_shard {
                let appended = self
                    .append_in(
                        shard,
                        &group,
                        event.topics,
                        event.key,
                        &event.body,
                        event.new_topics,
                    )
                    .await?;
                match &mut first {
                    Some(first) => first.created += appended.created,
                    None => first = Some(appended),
                }
            }
            first.ok_or_else(|| BackplaneError("an event needs a topic".to_owned()).into())
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
            let l = &s.layout;
            let reply: Result<Value, _> = s
                .scripts
                .replay
                .key(l.topic(topic))
                .key(l.in_shard(l.shard(topic), "floor"))
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
                        out.push(Entry {
                            seq: id.seq,
                            frame: frame_with_id(id, body),
                            topics: field(&fields, b"t")
                                .and_then(|t| std::str::from_utf8(t).ok())
                                .map(|t| t.split(TOPIC_SEPARATOR).map(str::to_owned).collect()),
                        });
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
            let l = &s.layout;
            let mut con = s.commands.clone();
            // One more than asked: says whether the list is complete.
            let asked = limit.saturating_add(1).min(i64::MAX as usize);
            let mut topics = Vec::new();
            let mut forgotten_through = Vec::with_capacity(l.log_shards());
            for shard in 0..l.log_shards() {
                let reply: Result<Vec<String>, _> = s
                    .scripts
                    .topics_under
                    .key(l.in_shard(shard, "topics"))
                    .key(l.in_shard(shard, "floor"))
                    .arg(format!("[{prefix}"))
                    .arg(format!("[{prefix}\u{7f}"))
                    .arg(asked)
                    .arg(l.in_shard(shard, "t:"))
                    .invoke_async(&mut con)
                    .await;
                let mut reply = reply.map_err(|e| s.down(e))?.into_iter();
                forgotten_through.push(reply.next().and_then(|f| f.parse().ok()).unwrap_or(0));
                topics.extend(reply);
            }
            s.ok();
            topics.sort_unstable();
            let truncated = topics.len() > limit;
            topics.truncate(limit);
            Ok(Matched {
                topics,
                forgotten_through,
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
            // Both keys in one slot (shard 0's) for the script.
            let readings: Result<Vec<String>, _> = s
                .scripts
                .report_node
                .key(s.layout.in_shard(0, "nodes"))
                .key(s.layout.in_shard(0, "nodes:exp"))
                .arg(node)
                .arg(reading)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke_async(&mut con)
                .await;
            readings.map_err(|e| s.down(e))
        })
    }

    fn at_position(&self, f: &mut dyn FnMut(&Position)) {
        if self.shared.layout.log_shards() > 1 {
            // Read-locked: no delivery (which holds it written) is under way.
            f(&self.shared.frontier.borrow());
        }
    }

    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>> {
        Box::pin(async move {
            let s = &self.shared;
            let epoch = Epoch(s.epoch.load(Ordering::Relaxed));
            let counters = s.counters().await;
            if s.layout.log_shards() == 1 {
                let seq = counters.into_iter().next().unwrap_or(Ok(0));
                return Ok(Position::new(epoch, vec![seq.map_err(|e| s.down(e))?]));
            }
            // Sharded: a head this node has delivered up to, so that the
            // positions it writes live are never behind a replay's. A
            // shard that does not answer (its master is down) is taken
            // where this node is: its topics' replays fail until it is back.
            let mut frontier = s.frontier.subscribe();
            let target: Vec<u64> = {
                let delivered = frontier.borrow();
                counters
                    .into_iter()
                    .zip(delivered.seqs())
                    .map(|(seq, &at)| seq.unwrap_or(at))
                    .collect()
            };
            let caught_up = |at: &Position| at.seqs().iter().zip(&target).all(|(a, t)| a >= t);
            let reached = tokio::time::timeout(HEAD_WAIT, frontier.wait_for(caught_up)).await;
            match reached {
                Ok(Ok(at)) => Ok(Position::new(epoch, at.seqs().to_vec())),
                _ => Err(s.down("this node's feed readers are behind the log")),
            }
        })
    }

    fn sweep(&self) {
        let s = self.shared.clone();
        tokio::spawn(async move {
            let counters: Result<Vec<u64>, _> = s.counters().await.into_iter().collect();
            let Ok(seqs) = counters else { return };
            // A topic's stream expires `max_age` after its last publish, so
            // whatever it held is numbered below its shard's counter's value
            // from `max_age` ago: those values become the floors for
            // absent topics.
            let floors = {
                let mut samples = lock(&s.samples);
                samples.push_back((Instant::now(), seqs));
                let mut floors = None;
                while samples
                    .front()
                    .is_some_and(|(at, _)| at.elapsed() > s.options.history.max_age)
                {
                    floors = samples.pop_front().map(|(_, seqs)| seqs);
                }
                floors
            };
            // What the log holds (for stats), its expired topics tidied.
            let mut usage = Usage::default();
            for shard in 0..s.layout.log_shards() {
                match s.tidy(shard).await {
                    Ok(u) => {
                        usage.topics += u.topics;
                        usage.bytes += u.bytes;
                    }
                    Err(e) => tracing::debug!(shard, error = %e, "could not tidy the history"),
                }
            }
            *lock(&s.usage) = usage;
            let mut con = s.commands.clone();
            for (shard, floor) in floors.unwrap_or_default().into_iter().enumerate() {
                let raised: Result<i64, _> = s
                    .scripts
                    .raise_floor
                    .key(s.layout.in_shard(shard, "floor"))
                    .arg(floor)
                    .invoke_async(&mut con)
                    .await;
                if let Err(e) = raised {
                    tracing::debug!(error = %e, "could not raise the history floor");
                }
            }
        });
    }

    fn usage(&self) -> Usage {
        *lock(&self.shared.usage)
    }

    fn health(&self) -> BackplaneHealth {
        let s = &self.shared;
        let down: Vec<usize> = lock(&s.shards_down).iter().copied().collect();
        let ok = s.healthy.load(Ordering::Relaxed) && down.is_empty();
        let last = || lock(&s.last_error).clone();
        let error = if ok {
            None
        } else if !down.is_empty() && s.layout.log_shards() > 1 {
            // A sharded log works on in part: say which part does not.
            let of = s.layout.log_shards();
            Some(format!(
                "log shards {down:?} of {of} do not answer: {}",
                last().unwrap_or_default()
            ))
        } else {
            last()
        };
        BackplaneHealth {
            name: "redis",
            ok,
            error,
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
