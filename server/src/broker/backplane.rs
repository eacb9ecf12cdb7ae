//! The backplane: where events get their ids, where history lives, and how
//! an event published on one node reaches the subscribers of every node.
//!
//! The broker splits its work in two. The backplane owns the **log**: it
//! appends events, numbers them and keeps them for resume. Each node's
//! broker owns its **local subscribers** and fans out whatever the backplane
//! delivers to its [`Sink`]. In memory (one node) `append` delivers at once;
//! a clustered backplane (Redis Streams) appends to a shared log and delivers
//! when each node reads the entry back — so every node, including the one
//! that published, sees the same events in the same order.
//!
//! An event may go to several topics at once (a send to a client, a user
//! and a session together): it gets one id, is in each topic's history,
//! and reaches each subscribed connection once, through the first of its
//! topics the connection is on ([`Fanout`]).
//!
//! A log may be split in **shards** that number their events each on its
//! own ([`super::id`]; Redis Cluster): a topic lives in one shard
//! ([`shard_of`]), order holds per topic, and a stream's position is a seq
//! per shard. An event for topics in several shards is numbered in each of
//! them and delivered once per shard, every copy naming all its topics: a
//! connection takes the copy of the shard that holds the first of the
//! event's topics it is on, live ([`Fanout`]) and in a replay
//! ([`Entry::topics`]), so it still gets the event once.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use thiserror::Error;

use super::claims::{Claimed, ClientClaim};
#[cfg(doc)]
use super::id::shard_of;
use super::id::{Epoch, EventId, Position};
use super::presence::Member;

/// A boxed `Send` future (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most topics one event may be published to at once.
pub const MAX_TOPICS_PER_EVENT: usize = 64;

/// One event on its way to a node's subscribers.
#[derive(Debug, Clone)]
pub struct Fanout<'a> {
    /// Every topic the event was published to, in the publisher's order
    /// (at most [`MAX_TOPICS_PER_EVENT`]).
    pub topics: &'a [&'a str],
    /// The shard that numbered this copy (0 in a single log): it reaches
    /// the connections whose first topic among `topics` lives there.
    pub shard: usize,
    pub seq: u64,
    pub frame: EventFrame<'a>,
}

/// What a node's connections are sent for an event ([`Fanout::frame`]).
#[derive(Debug, Clone)]
pub enum EventFrame<'a> {
    /// The complete encoded event, `id:` line included, the same for every
    /// connection: a one-shard log, where the event's id is the position
    /// of every stream that has it.
    Whole(Bytes),
    /// A sharded log: the encoded event without its `id:` line, and this
    /// node's position once it has the event. Each connection's `id:` is
    /// that position naming only the shards it reads
    /// ([`Position::naming`]).
    Positioned { at: &'a Position, body: &'a [u8] },
}

/// Where a backplane hands every event, in log order per topic.
pub trait Sink: Send + Sync + 'static {
    /// Hands `event` to the subscribers of its topics, each connection
    /// once (one on several of the topics too). A backplane delivers each
    /// event in one call.
    fn deliver(&self, event: Fanout<'_>);

    /// The backplane cannot vouch that every event reached this node (its
    /// shared log was trimmed past what this node had read, or restarted).
    /// The node closes its streams: clients reconnect with `Last-Event-ID`
    /// and get what they missed from history, or a `reset`.
    fn lost(&self) {}
}

/// What `/healthz` says about the backplane.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackplaneHealth {
    pub name: &'static str,
    /// Publishing and resuming work right now.
    pub ok: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which part of a topic's log to read: at most `limit` events with
/// `after < seq <= until`, oldest first. A resuming stream reads its
/// history a page at a time, as its socket drains, never all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: u64,
    pub until: u64,
    pub limit: usize,
}

/// One event in a topic's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// The complete encoded event, its own `id:` line included.
    pub frame: Bytes,
    /// For an event whose topics lie in several shards: all of them, in
    /// the publisher's order (a replay gives it through the first one the
    /// stream is on). `None` otherwise.
    pub topics: Option<std::sync::Arc<[String]>>,
}

impl Entry {
    pub fn new(seq: u64, frame: Bytes) -> Self {
        Entry {
            seq,
            frame,
            topics: None,
        }
    }
}

/// One page of the events a resuming client missed on one topic.
#[derive(Debug, Default, Clone)]
pub struct Replay {
    /// In order.
    pub entries: Vec<Entry>,
    /// History no longer reaches back to the page's `after`.
    pub gap: bool,
}

/// The topics with history under a prefix: what a wildcard subscriber
/// (`chat:*`) resumes from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Topic names, at most the `limit` asked for.
    pub topics: Vec<String>,
    /// Topics whose whole history expired are no longer listed; per
    /// shard, their events reached up to this seq. Resuming from before it
    /// may have missed some: a gap.
    pub forgotten_through: Vec<u64>,
    /// There were more than `limit`: the list is incomplete (a gap too).
    pub truncated: bool,
}

/// The backplane could not do what was asked (e.g. its server is down).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("backplane unavailable: {0}")]
pub struct BackplaneError(pub String);

/// Whether an append may start a topic that holds no history now (see
/// [`HistoryLimits`](super::HistoryLimits) for the log's own cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewTopics {
    Allow,
    /// The publisher may not start topics now (its quota is spent): an
    /// event for a topic without history is refused, whole.
    Refuse,
}

/// One event to append ([`Backplane::append`]).
#[derive(Debug, Clone)]
pub struct Append<'a> {
    /// One or more distinct topics, at most [`MAX_TOPICS_PER_EVENT`].
    pub topics: &'a [&'a str],
    /// The publisher's idempotency key, already scoped to the publisher
    /// by the broker: an event already in the history of any of `topics`
    /// under it is not appended again, and its id is the answer.
    pub key: Option<&'a str>,
    /// The encoded event, without its `id:` line.
    pub body: Bytes,
    pub new_topics: NewTopics,
}

impl<'a> Append<'a> {
    /// An event for `topics`, no key, new topics allowed.
    pub fn new(topics: &'a [&'a str], body: Bytes) -> Self {
        Append {
            topics,
            key: None,
            body,
            new_topics: NewTopics::Allow,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub id: EventId,
    /// Topics that held no history before it (0 for a repeated key).
    pub created: usize,
}

/// Why an append did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error(transparent)]
    Unavailable(#[from] BackplaneError),
    /// A topic of the event holds no history, and the log keeps as many
    /// topics as it may.
    #[error("the log keeps history for at most {limit} topics")]
    TopicCap { limit: usize },
    /// A topic of the event holds no history, and the append was told
    /// [`NewTopics::Refuse`].
    #[error("the event would start a new topic")]
    NewTopic,
}

/// The seam between the broker and its log. See the module docs.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use bytes::Bytes;
/// use herald_server::broker::{Append, Backplane, Fanout, MemoryBackplane, Page, Sink};
///
/// struct Collect(Mutex<Vec<(String, u64)>>);
/// impl Sink for Collect {
///     fn deliver(&self, event: Fanout<'_>) {
///         let topics = event.topics.join(",");
///         self.0.lock().unwrap().push((topics, event.seq));
///         assert_eq!(event.shard, 0); // one log, one shard
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = Arc::new(Collect(Mutex::new(Vec::new())));
/// let log = MemoryBackplane::new(Default::default());
/// log.attach(sink.clone());
/// let hi = Append::new(&["news"], Bytes::from_static(b"data: hi\n\n"));
/// let one = log.append(hi).await.unwrap();
/// assert_eq!(one.created, 1); // `news` had no history
/// let ho = Append::new(&["news", "sport"], Bytes::from_static(b"data: ho\n\n"));
/// let both = log.append(ho).await.unwrap().id;
/// assert_eq!(*sink.0.lock().unwrap(), [("news".to_owned(), one.id.seq), ("news,sport".to_owned(), both.seq)]);
/// let until = log.head().await.unwrap().seq(0);
/// let replay = log.replay("news", Page { after: 0, until, limit: 100 }).await.unwrap();
/// assert_eq!(replay.entries.len(), 2);
/// # });
/// ```
pub trait Backplane: Send + Sync + 'static {
    /// For logs and `/healthz` (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

    /// The identity written into every id; ids of another epoch are not
    /// positions in this log.
    fn epoch(&self) -> Epoch;

    /// How many shards number the events (see the module docs); fixed for
    /// the log's life. One unless the log is sharded.
    fn shards(&self) -> usize {
        1
    }

    /// Connects the broker's local fan-out. Called once, before any append.
    fn attach(&self, sink: std::sync::Arc<dyn Sink>);

    /// Appends an encoded event to the log of each of its topics under
    /// one id, and arranges its delivery to every node's sink ([`Append`]
    /// says what, and what it may start). The log stays within its
    /// [`HistoryLimits`](super::HistoryLimits): a topic's oldest events go
    /// past its count, age or bytes; past the bytes of all topics, the
    /// history of the topics idle longest goes first (a resume from
    /// before it is told of the gap); a topic past the topic cap is
    /// refused ([`AppendError::TopicCap`]).
    fn append<'a>(&'a self, event: Append<'a>) -> BoxFuture<'a, Result<Appended, AppendError>>;

    /// A page of `topic`'s events, in order.
    fn replay<'a>(
        &'a self,
        topic: &'a str,
        page: Page,
    ) -> BoxFuture<'a, Result<Replay, BackplaneError>>;

    /// The topics with history whose names start with `prefix`, at most
    /// `limit` of them, for a wildcard subscriber's resume.
    fn topics_under<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Matched, BackplaneError>>;

    /// Where a resume's replay stops and live delivery takes over: per
    /// shard, a seq such that every event numbered up to it is in its
    /// topic's log (if still kept). A sharded log's head is also one this
    /// node's sink has already been handed: the positions it writes live
    /// never fall behind a replay's.
    fn head(&self) -> BoxFuture<'_, Result<Position, BackplaneError>>;

    /// Calls `f` with the position this node's sink was handed last
    /// ([`EventFrame::Positioned`]) while no delivery is under way, so
    /// that a frame `f` queues names a position no frame queued before it
    /// is past. Only a sharded log has such positions (a stream that starts
    /// reading another shard is told where it is there); a one-shard log's
    /// ids are its events' own, so by default `f` is not called.
    fn at_position(&self, _f: &mut dyn FnMut(&Position)) {}

    /// Drops expired history; called periodically by the broker.
    fn sweep(&self) {}

    /// Whether the backplane works right now (for `/healthz`).
    fn health(&self) -> BackplaneHealth {
        BackplaneHealth {
            name: self.name(),
            ok: true,
            error: None,
        }
    }

    /// Admits connection `member` of `user` if the user has fewer than
    /// `limit` connections cluster-wide. A single node counts locally, so
    /// the default admits everything; a shared backplane counts across nodes.
    fn admit<'a>(
        &'a self,
        _user: &'a str,
        _member: &'a str,
        _limit: usize,
    ) -> BoxFuture<'a, Result<bool, BackplaneError>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    /// The connection admitted as `member` of `user` has gone.
    fn release(&self, _user: &str, _member: &str) {}

    /// Claims client id `id` for a connection (see [`super::claims`]):
    /// fresh when nobody holds it, continued when the claim proves it is
    /// the owner's, refused otherwise. Held until released, across nodes
    /// for a shared backplane.
    fn claim_client<'a>(
        &'a self,
        id: &'a str,
        claim: ClientClaim<'a>,
    ) -> BoxFuture<'a, Result<Claimed, BackplaneError>>;

    /// The connection `holder` no longer uses client id `id`; unless a
    /// newer one holds it, it stays its owner's for `keep_for`.
    fn release_client(&self, id: &str, holder: &str, keep_for: std::time::Duration);

    /// Records this node's latest status `reading` (kept for `ttl` unless
    /// renewed) and returns every live node's, this one's included: what
    /// the cluster summary of `/system/status/stream` is made of. A single
    /// node knows only its own.
    fn report_node<'a>(
        &'a self,
        _node: &'a str,
        reading: String,
        _ttl: std::time::Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, BackplaneError>> {
        Box::pin(std::future::ready(Ok(vec![reading])))
    }

    /// Whether presence ([`super::presence`]) is recorded here for every
    /// node to read, through [`join`](Self::join), [`leave`](Self::leave)
    /// and [`members`](Self::members). A single node records none: its hub
    /// is the record.
    fn records_presence(&self) -> bool {
        false
    }

    /// This node's connection `member` is now present on `topic`: recorded
    /// until [`leave`](Self::leave), or until this node stops renewing it.
    fn join(&self, _topic: &str, _member: &Member) {}

    /// `member` left `topic`.
    fn leave(&self, _topic: &str, _member: &Member) {}

    /// Every node's members on `topic`, in no particular order.
    fn members<'a>(
        &'a self,
        _topic: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Member>, BackplaneError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Topics with history held, and the bytes of that history (what
    /// `/_sse/stats` and `/metrics` report: `herald_topics`,
    /// `herald_history_bytes`). A shared log may answer from its last
    /// [`sweep`](Self::sweep).
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// What a log holds ([`Backplane::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub topics: usize,
    pub bytes: usize,
}

/// The full frame: `id: <id>\n` followed by the encoded body.
pub fn frame_with_id(id: impl std::fmt::Display, body: &[u8]) -> Bytes {
    use bytes::BufMut;
    let id = id.to_string();
    let mut frame = bytes::BytesMut::with_capacity(body.len() + id.len() + 5);
    frame.put_slice(b"id: ");
    frame.put_slice(id.as_bytes());
    frame.put_u8(b'\n');
    frame.put_slice(body);
    frame.freeze()
}

/// `frame` with its own `id:` line, if it starts with one, replaced by `id`.
///
/// ```
/// use herald_server::broker::{frame_with_id, reframe};
/// let frame = frame_with_id("7-3", b"data: x\n\n");
/// assert_eq!(&reframe(&frame, "3.7.2.0:3")[..], b"id: 3.7.2.0:3\ndata: x\n\n");
/// ```
pub fn reframe(frame: &[u8], id: impl std::fmt::Display) -> Bytes {
    let body = frame
        .strip_prefix(b"id: ")
        .and_then(|rest| {
            rest.iter()
                .position(|&b| b == b'\n')
                .map(|n| &rest[n + 1..])
        })
        .unwrap_or(frame);
    frame_with_id(id, body)
}
