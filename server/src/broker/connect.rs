//! Opening a connection and changing its topics: where the topic policy
//! decides what a stream may be put on.
//!
//! A connection is registered (within the limits), put on its assigned
//! topics (`client:<id>`, `all` unless it opts out, `user:<uid>`,
//! `session:<sid>` from its verified identity) and on the topics it asked
//! for, each one allowed by [`TopicPolicy::check_request`]. Then, when it
//! resumes, what it missed is replayed before live events.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use herald_shared::events::{Connected, HeartbeatInfo, Reset, ResetReason};
use herald_shared::presence::TopicPresence;
use herald_shared::wire::Event;

use super::backplane::frame_with_id;
use super::claims::{Claimed, ClientClaim};
use super::client::{Delivery, Replayed, REPLAYED};
use super::id::{every_shard, shard_bit, shard_of};
use super::policy::Principal;
use super::presence::{self, Member};
use super::registry::Group;
use super::replay::ReplayCursor;
use super::topic::Topic;
use super::{
    names, typed_event, BrokerError, ClientState, Epoch, HeartbeatStyle, Position, SSEBroker,
    Subscription,
};

/// What a new connection asks for.
///
/// ```
/// use herald_server::broker::policy::Principal;
/// use herald_server::broker::{BrokerConfig, ConnectOptions, SSEBroker};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
///
/// let broker = SSEBroker::new(BrokerConfig::default());
/// let sub = broker.connect(ConnectOptions {
///     client_id: Some("tab-1".into()),
///     principal: Principal::user("alice"),
///     topics: vec!["room:general".into()],
///     ..ConnectOptions::default()
/// }).await.unwrap();
/// assert_eq!(sub.client_id(), "tab-1");
/// assert_eq!(broker.clients_in("user:alice"), 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Reuse an id (a reconnecting client); a new one is drawn otherwise.
    /// An id on record is its owner's (see [`super::claims`]): the same
    /// user, the same session or its secret continues it (a live
    /// connection with it is replaced); anyone else gets `ClientIdInUse`.
    pub client_id: Option<String>,
    /// The id's secret, from an earlier `connected` event: proves a
    /// reconnecting client owns `client_id`.
    pub secret: Option<String>,
    /// Who is connecting, as verified (never as declared): puts the
    /// connection on `user:` and `session:`, and is what the topic policy
    /// judges its topics by.
    pub principal: Principal,
    /// Extra topics, on top of the implicit ones (at most
    /// [`max_topics`](super::BrokerConfig::max_topics)).
    pub topics: Vec<String>,
    /// The peer's address: anonymous connections count against a limit
    /// per address, as authenticated ones do per user.
    pub peer: Option<IpAddr>,
    /// Resume after this id (`Last-Event-ID`).
    pub last_event_id: Option<String>,
    pub metadata: HashMap<String, String>,
    /// Leave out the `all` topic: for streams that must carry only their
    /// own topics (e.g. the public system status stream).
    pub no_broadcasts: bool,
    /// Leave out `user:<uid>` and `session:<sid>` too: for an API's stream
    /// whose events have one shape (a chat room's, a job's), where an event
    /// sent to the user would arrive as one of them. The connection still
    /// counts as the user's.
    pub no_identity_topics: bool,
    /// The first events of the stream. `None` sends the broker's
    /// `connected` event; APIs whose documented streams begin differently
    /// (the job streams' `connected` message, the plain broadcast's nothing
    /// at all) give their own. The `retry:` hint is sent either way.
    pub greeting: Option<Vec<Event>>,
}

/// The most topics a wildcard's resume reads history from; past it the
/// client gets a `reset` (its history is incomplete) and live events.
const MAX_WILDCARD_REPLAY: usize = 1000;

impl SSEBroker {
    /// Registers a client and returns the stream of frames to write to it.
    ///
    /// The client is subscribed to its topics first and the missed history
    /// is read second, up to the log's head as it was then: live frames
    /// numbered up to it are dropped by the [`Subscription`] (the replay has
    /// them), later ones wait behind the replay. So nothing falls between
    /// replay and live, nothing arrives twice, and ids only grow.
    pub async fn connect(&self, mut opts: ConnectOptions) -> Result<Subscription, BrokerError> {
        self.check_request(&mut opts)?;
        // Lookups last, once everything that needs none has passed.
        self.policy()
            .check_looked_up(&opts.principal, &opts.topics)
            .await?;
        let requested = opts.client_id.is_some();
        let id: Arc<str> = match opts.client_id.take() {
            Some(id) => id.into(),
            None => crate::random::token(8).into(),
        };
        let serial = crate::random::token(8);
        let (secret, continued) = self
            .claim_id(
                &id,
                &serial,
                &opts.principal,
                opts.secret.as_deref(),
                requested,
            )
            .await?;
        let mut claim_guard = ClaimGuard {
            broker: self,
            id: &id,
            serial: &serial,
            armed: true,
        };
        let group = self.group_of(&opts.principal, opts.peer);
        let client = Arc::new(ClientState::new(
            id.clone(),
            secret,
            serial.clone(),
            std::mem::take(&mut opts.principal),
            group,
            std::mem::take(&mut opts.metadata),
            self.inner.config.event_buffer_size,
        ));
        self.register(&client)?;
        // From here on dropping `sub` (also on an early `?`) cleans up,
        // the claim included.
        claim_guard.armed = false;
        self.inner.hub.stats.connected();
        let mut sub = Subscription {
            broker: self.clone(),
            client: client.clone(),
            pending: VecDeque::new(),
            replayed: None,
            held: None,
            replay: None,
        };
        self.admit_group(&client).await?;

        let topics = topics_of(&client, &opts);
        let shards = self.inner.backplane.shards();
        let (after, mut reset) = resume_point(opts.last_event_id.as_deref(), self.epoch(), shards);
        // 1. Live first: from now on every new event reaches the queue.
        let mut keys = Vec::with_capacity(topics.len());
        for name in &topics {
            keys.push(self.join(&client, name).key());
        }
        // 2. Then what was missed up to the log's head now, merged across
        // topics in id order, a page at a time; later events come live.
        // A newcomer to an id is not shown what was sent to it before.
        let mut first_page = Vec::new();
        if let Some(mut after) = after {
            let head = self.inner.backplane.head().await?;
            for shard in 0..shards {
                if after.seq(shard) > head.seq(shard) {
                    // A position this shard never reached: not ours, or it
                    // lost its tail. Start that shard over from all it has.
                    reset = reset.or(Some(ResetReason::AheadOfLog));
                    after.rewind(shard);
                }
            }
            let own = names::client(&id);
            let replayed: Vec<(&String, usize)> = topics
                .iter()
                .zip(keys)
                .filter(|(name, _)| continued || **name != own)
                .collect();
            sub.replayed = Some(Replayed {
                keys: replayed.iter().map(|(_, key)| *key).collect(),
                through: head.clone(),
            });
            let (mut missed, expansion_gap) = self.expand(&client, replayed, &after).await?;
            if start_unnamed_shards(&mut after, &head, &mut missed, &client) {
                reset = reset.or(Some(ResetReason::ShardNotInId));
            }
            // Its ids name only the shards it reads.
            after.keep_only(client.reads());
            let mut cursor = ReplayCursor::new(missed, after, head);
            let (batch, gap) = cursor.next_batch(self.inner.backplane.as_ref()).await?;
            if (gap || expansion_gap) && reset.is_none() {
                reset = Some(ResetReason::HistoryGap);
            }
            first_page = batch;
            if !cursor.is_done() {
                sub.replay = Some(Box::new(cursor));
            }
        }
        // 3. What goes out first: the greeting, a reset, the first page.
        self.greet(&mut sub, opts.greeting.take(), topics)?;
        if let Some(reason) = reset {
            let reset = Reset {
                reason,
                last_event_id: opts.last_event_id.take().unwrap_or_default(),
            };
            sub.pending
                .push_back(Delivery::control(typed_event(&reset)?.encode()?));
        }
        REPLAYED.increment(first_page.len() as u64);
        sub.pending.extend(first_page);

        if let Some(hook) = &self.inner.config.on_connect {
            hook(&client);
        }
        Ok(sub)
    }

    /// The logs a resume reads (`(topic, key)`): each topic's own, and for
    /// a wildcard those of the topics under it that the client may read,
    /// delivered under the wildcard's key. Also says whether a wildcard's
    /// history is incomplete (a topic expired whole since `after`, or more
    /// topics than a resume reads).
    async fn expand(
        &self,
        client: &ClientState,
        topics: Vec<(&String, usize)>,
        after: &Position,
    ) -> Result<(Vec<(String, usize)>, bool), BrokerError> {
        let mut missed: Vec<(String, usize)> = Vec::with_capacity(topics.len());
        let mut gap = false;
        for (name, key) in topics {
            let Some(prefix) = names::wildcard_prefix(name) else {
                missed.push((name.clone(), key));
                continue;
            };
            let matched = self
                .inner
                .backplane
                .topics_under(prefix, MAX_WILDCARD_REPLAY)
                .await?;
            let forgotten = matched.forgotten_through.iter().enumerate();
            gap |= matched.truncated || forgotten.into_iter().any(|(s, f)| after.seq(s) < *f);
            for topic in matched.topics {
                // A topic also held by name is read once; the merge drops
                // the copies of an event that is in several logs anyway.
                let held = missed.iter().any(|(t, ..)| *t == topic);
                if !held && self.policy().may_read(&client.principal, &topic) {
                    missed.push((topic, key));
                }
            }
        }
        Ok((missed, gap))
    }

    /// Checks what a connection asks for that needs no lookup, before
    /// anything is held for it: its topics (repeats dropped, within the
    /// cap, valid names, none that the policy refuses this caller whoever
    /// owns it), its client id and its identity's topic names.
    fn check_request(&self, opts: &mut ConnectOptions) -> Result<(), BrokerError> {
        dedup(&mut opts.topics);
        let limit = self.inner.config.max_topics;
        if opts.topics.len() > limit {
            return Err(BrokerError::TooManyTopics { limit });
        }
        for topic in &opts.topics {
            names::validate_subscription(topic)?;
            self.policy().check_unlooked(&opts.principal, topic)?;
        }
        if let Some(id) = &opts.client_id {
            names::validate_client_id(id)?;
        }
        if let Some(uid) = &opts.principal.user_id {
            names::validate_topic(&names::user(uid))?;
        }
        if let Some(sid) = &opts.principal.session_id {
            names::validate_topic(&names::session(sid))?;
        }
        Ok(())
    }

    /// Claims client id `id` for connection `serial`: its secret, and
    /// whether the owner continues it (then its history is theirs). The id
    /// is its owner's across nodes and for the history's age after its last
    /// connection; a newcomer gets neither its secret nor its history.
    async fn claim_id(
        &self,
        id: &str,
        serial: &str,
        principal: &Principal,
        offered_secret: Option<&str>,
        requested: bool,
    ) -> Result<(String, bool), BrokerError> {
        let new_secret = crate::random::token(16);
        let claim = ClientClaim {
            user: principal.user_id.as_deref(),
            session: principal.session_id.as_deref(),
            offered_secret: offered_secret.filter(|s| !s.is_empty()),
            new_secret: &new_secret,
            holder: serial,
        };
        match self.inner.backplane.claim_client(id, claim).await {
            Ok(Claimed::Fresh) => Ok((new_secret, false)),
            Ok(Claimed::Continued { secret }) => Ok((secret, true)),
            Ok(Claimed::Refused) => {
                self.inner.hub.stats.refused();
                Err(BrokerError::ClientIdInUse(id.to_owned()))
            }
            // An id the client asked for cannot be vouched for.
            Err(e) if requested => Err(e.into()),
            // A fresh random id is nobody else's: the stream may work
            // without the record (a later reconnect with it starts fresh).
            Err(e) => {
                tracing::warn!(error = %e, "client id not recorded");
                Ok((new_secret, false))
            }
        }
    }

    /// What a connection counts against besides the global limit: its
    /// user, or for an anonymous one its address.
    fn group_of(&self, principal: &Principal, peer: Option<IpAddr>) -> Option<Group> {
        let config = &self.inner.config;
        match (&principal.user_id, peer) {
            (Some(uid), _) => Some(Group {
                key: names::user(uid),
                scope: "user",
                limit: config.max_connections_per_user,
            }),
            (None, Some(ip)) if config.max_connections_per_ip > 0 => Some(Group {
                key: format!("ip:{ip}"),
                scope: "address",
                limit: config.max_connections_per_ip,
            }),
            (None, _) => None,
        }
    }

    /// Adds `client` to this node's registry within the limits; a live
    /// connection with its id (proven to be the same owner's) is closed.
    fn register(&self, client: &Arc<ClientState>) -> Result<(), BrokerError> {
        let registered = self
            .inner
            .registry
            .register(client, self.inner.config.max_connections);
        match registered {
            Ok(Some(old)) => {
                // Same id reconnecting before we noticed the old stream died.
                old.close();
                self.unsubscribe_all(&old);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.inner.hub.stats.refused();
                Err(e)
            }
        }
    }

    /// Counts `client` against its group's limit across nodes (the
    /// backplane counts too).
    async fn admit_group(&self, client: &ClientState) -> Result<(), BrokerError> {
        let Some(group) = &client.group else {
            return Ok(());
        };
        match self
            .inner
            .backplane
            .admit(&group.key, &client.serial, group.limit)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.inner.hub.stats.refused();
                Err(BrokerError::TooManyConnections {
                    scope: group.scope,
                    limit: group.limit,
                })
            }
            // Counting is down with the backplane: the local limit still
            // holds, and the stream itself may still work.
            Err(e) => {
                tracing::warn!(group = %group.key, error = %e, "cluster-wide connection count unavailable");
                Ok(())
            }
        }
    }

    /// Queues the stream's first frames: the `retry:` hint and the
    /// broker's `connected` event, or the API's own greeting.
    fn greet(
        &self,
        sub: &mut Subscription,
        greeting: Option<Vec<Event>>,
        topics: Vec<String>,
    ) -> Result<(), BrokerError> {
        let client = &sub.client;
        let retry = self.inner.config.retry_hint_ms;
        let greeting = match greeting {
            Some(events) => events,
            None => vec![typed_event(&Connected {
                client_id: client.id.to_string(),
                secret: Some(client.secret.clone()),
                user_id: client.user_id().map(str::to_owned),
                session_id: client.session_id().map(str::to_owned),
                topics,
                retry: Some(retry),
                heartbeat: Some(HeartbeatInfo {
                    interval_ms: self.inner.config.heartbeat_interval.as_millis() as u64,
                    visible: self.inner.config.heartbeat_style == HeartbeatStyle::Event,
                }),
            })?],
        };
        if greeting.is_empty() {
            sub.pending.push_back(Delivery::control(Bytes::from(format!(
                "retry: {retry}\n\n"
            ))));
        }
        for (i, mut event) in greeting.into_iter().enumerate() {
            if i == 0 {
                event.retry = Some(retry);
            }
            sub.pending.push_back(Delivery::control(event.encode()?));
        }
        Ok(())
    }

    /// Adds a connected client to topics (live events only, no replay):
    /// each must be one its connection's principal may read. What needs
    /// no lookup is checked first (the client, the names, the cap), so a
    /// request that fails those costs the backplane nothing.
    pub async fn subscribe(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<Vec<String>, BrokerError> {
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        // The cap counts the topics it asked for, not the assigned ones.
        let limit = self.inner.config.max_topics;
        if topics.len() > limit {
            return Err(BrokerError::TooManyTopics { limit });
        }
        let mut after: std::collections::BTreeSet<String> = client.topics().into_iter().collect();
        let assigned = after.iter().filter(|t| client.is_assigned(t)).count();
        after.extend(topics.iter().cloned());
        if after.len() - assigned > limit {
            return Err(BrokerError::TooManyTopics { limit });
        }
        for t in topics {
            names::validate_subscription(t)?;
            self.policy().check_unlooked(&client.principal, t)?;
        }
        self.policy()
            .check_looked_up(&client.principal, topics)
            .await?;
        let reads = client.reads();
        for name in topics {
            self.join(&client, name);
        }
        if client.reads() != reads {
            // The stream reads a shard its ids did not name: an `id:`-only
            // frame (no event) tells it where it is there, or a resume
            // before its next event would take that shard's topics for new.
            self.inner.backplane.at_position(&mut |at| {
                let id = frame_with_id(at.naming(client.reads()), b"\n");
                let _ = client.offer(Delivery::control(id));
            });
        }
        Ok(client.topics())
    }

    /// Removes a connected client from topics.
    pub fn unsubscribe(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<Vec<String>, BrokerError> {
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        for name in topics {
            if let Some(topic) = client.remove_topic(name) {
                self.leave(&client, &topic);
            }
        }
        Ok(client.topics())
    }

    /// Puts `client` on topic `name`: from now on the hub hands it the
    /// topic's events, and it is present there if it asked for the topic.
    fn join(&self, client: &Arc<ClientState>, name: &str) -> Arc<Topic> {
        // Before the topic's first event can reach it: the ids of its
        // stream name the topic's shard from then on.
        let shards = self.inner.backplane.shards();
        client.read_shards(match names::wildcard_prefix(name) {
            Some(_) => every_shard(shards),
            None => shard_bit(shard_of(name, shards)),
        });
        let topic = self.inner.hub.subscribe(name, client);
        client.add_topic(&topic);
        if self.inner.backplane.records_presence() && presence::counts(client, name) {
            let member = Member::of(client, self.node_id());
            self.inner.backplane.join(name, &member);
        }
        topic
    }

    /// Takes `client` off `topic` (see [`join`](Self::join)).
    fn leave(&self, client: &Arc<ClientState>, topic: &Topic) {
        topic.unsubscribe(client);
        if self.inner.backplane.records_presence() && presence::counts(client, &topic.name) {
            let member = Member::of(client, self.node_id());
            self.inner.backplane.leave(&topic.name, &member);
        }
    }

    /// [`presence`](Self::presence) asked by `who`: under the rule that
    /// lets it subscribe to `topic` (a topic name, not a wildcard), so
    /// whoever may not be there learns nothing of who is; and shown as
    /// [`presence::shown_to`] says (counts, its own connections, members'
    /// user ids where the topic's rule shows them, no other client id).
    pub async fn presence_as(
        &self,
        who: &Principal,
        topic: &str,
    ) -> Result<TopicPresence, BrokerError> {
        names::validate_topic(topic)?;
        self.policy().check_unlooked(who, topic)?;
        self.policy()
            .check_looked_up(who, &[topic.to_owned()])
            .await?;
        let members = self.presence(topic).await?;
        let show_users = self.policy().shows_members(who, topic);
        Ok(presence::shown_to(topic, members, who, show_users))
    }

    /// Who is on `topic`, on every node ([`presence`]), oldest first: the
    /// server's own question (callers ask [`presence_as`](Self::presence_as)).
    pub async fn presence(&self, topic: &str) -> Result<Vec<Member>, BrokerError> {
        let mut members = if self.inner.backplane.records_presence() {
            self.inner.backplane.members(topic).await?
        } else {
            self.inner
                .hub
                .existing(topic)
                .map(|t| t.members())
                .unwrap_or_default()
                .iter()
                .filter(|client| presence::counts(client, topic))
                .map(|client| Member::of(client, self.node_id()))
                .collect()
        };
        presence::oldest_first(&mut members);
        Ok(members)
    }

    /// Lets go of a client id this connection held.
    pub(crate) fn release_claim(&self, id: &str, serial: &str) {
        self.inner
            .backplane
            .release_client(id, serial, self.inner.config.history.max_age);
    }

    pub(crate) fn unsubscribe_all(&self, client: &Arc<ClientState>) {
        for topic in client.take_topics() {
            self.leave(client, &topic);
        }
    }
}

/// The topics of a connection: its own, `all` and its user's and
/// session's (unless it opts out), then those it asked for.
fn topics_of(client: &ClientState, opts: &ConnectOptions) -> Vec<String> {
    let mut topics = vec![names::client(&client.id)];
    if !opts.no_broadcasts {
        topics.push(names::ALL.to_owned());
    }
    if !opts.no_identity_topics {
        topics.extend(client.user_id().map(names::user));
        topics.extend(client.session_id().map(names::session));
    }
    for topic in &opts.topics {
        if !topics.contains(topic) {
            topics.push(topic.clone());
        }
    }
    topics
}

/// Where a stream resumes (`None`: live only) and the `reset` it starts
/// with, from its `Last-Event-ID`, in a log of `shards` shards.
fn resume_point(
    last_event_id: Option<&str>,
    epoch: Epoch,
    shards: usize,
) -> (Option<Position>, Option<ResetReason>) {
    match last_event_id.filter(|s| !s.is_empty()) {
        None => (None, None),
        Some(raw) => match raw.parse::<Position>() {
            Ok(at) if at.epoch == epoch && at.shards() == shards => (Some(at), None),
            // A position in another epoch (the log restarted since, or it
            // is not ours) or another layout of shards (the deployment
            // moved to or from a sharded log). Its tail may be lost, so
            // `reset`; everything in the current log came after it, so
            // replay all of it.
            Ok(_) => (
                Some(Position::start(epoch, shards)),
                Some(ResetReason::UnknownEpoch),
            ),
            Err(_) => (None, Some(ResetReason::InvalidId)),
        },
    }
}

/// Where a resume starts in the shards its id does not name (in a sharded
/// log: its stream did not read them when the id was written). The topics
/// it asked for there are new to the position: everything they hold is
/// replayed, and the answer is `true` (a `reset` says so). Its own topics
/// there (`all`, `client:`, `user:`, `session:` of an identity the id's
/// stream did not have) start live at `head`, as a newcomer's do, and
/// leave `missed`.
fn start_unnamed_shards(
    after: &mut Position,
    head: &Position,
    missed: &mut Vec<(String, usize)>,
    client: &ClientState,
) -> bool {
    let shards = head.shards();
    let unnamed = |t: &str| !after.knows(shard_of(t, shards));
    missed.retain(|(t, _)| !(unnamed(t) && client.is_assigned(t)));
    let mut reset = false;
    for shard in 0..shards {
        if after.knows(shard) {
            continue;
        }
        if missed.iter().any(|(t, _)| shard_of(t, shards) == shard) {
            reset = true;
            after.set(shard, 0);
        } else {
            after.set(shard, head.seq(shard));
        }
    }
    reset
}

/// Removes repeats, keeping the first of each.
fn dedup(topics: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    topics.retain(|t| seen.insert(t.clone()));
}

/// Whether `topic` is one the server put `client` on by itself.
/// Releases a client id claimed for a connection that never came to be.
struct ClaimGuard<'a> {
    broker: &'a SSEBroker,
    id: &'a str,
    serial: &'a str,
    armed: bool,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.broker.release_claim(self.id, self.serial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARDS: usize = 3;

    /// The first `<prefix><k>` whose topic (`topic(name)`) is on `shard`.
    fn named_on(shard: usize, prefix: &str, topic: impl Fn(&str) -> String) -> String {
        (0..)
            .map(|k| format!("{prefix}{k}"))
            .find(|n| shard_of(&topic(n), SHARDS) == shard)
            .expect("a name on the shard")
    }

    #[test]
    fn shards_an_id_does_not_name_start_over_for_asked_topics_and_live_for_own() {
        let id = named_on(2, "c-", names::client);
        let client = ClientState::new(
            id.as_str().into(),
            "secret".into(),
            "serial".into(),
            Principal::anonymous(),
            None,
            HashMap::new(),
            8,
        );
        let (room, own) = (named_on(1, "room-", str::to_owned), names::client(&id));
        let head = Position::new(Epoch(1), vec![7, 8, 9]);

        // Named: shard 0. Asked for on shard 1: all it holds, and a reset.
        // Its own topic, on shard 2, starts live at the head.
        let mut after: Position = "3.1.3.0:5".parse().expect("a position");
        let mut missed = vec![(room.clone(), 1), (own.clone(), 2)];
        assert!(start_unnamed_shards(
            &mut after,
            &head,
            &mut missed,
            &client
        ));
        assert_eq!(missed, [(room.clone(), 1)]);
        assert_eq!(after.seqs(), [5, 0, 9]);

        // Only its own topic's shard unnamed: no reset.
        let mut after: Position = "3.1.3.0:5.1:6".parse().expect("a position");
        let mut missed = vec![(room.clone(), 1), (own, 2)];
        assert!(!start_unnamed_shards(
            &mut after,
            &head,
            &mut missed,
            &client
        ));
        assert_eq!(missed, [(room, 1)]);
        assert_eq!(after.seqs(), [5, 6, 9]);
    }
}
