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
use herald_shared::events::{Connected, Reset, ResetReason};
use herald_shared::wire::Event;

use super::claims::{Claimed, ClientClaim};
use super::client::{Delivery, REPLAYED};
use super::policy::Principal;
use super::registry::Group;
use super::replay::ReplayCursor;
use super::{
    names, random_token, typed_event, BrokerError, ClientState, EventId, SSEBroker, Subscription,
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
    /// The first events of the stream. `None` sends the broker's
    /// `connected` event; APIs whose documented streams begin differently
    /// (the job streams' `connected` message, the plain broadcast's nothing
    /// at all) give their own. The `retry:` hint is sent either way.
    pub greeting: Option<Vec<Event>>,
}

impl SSEBroker {
    /// Registers a client and returns the stream of frames to write to it.
    ///
    /// The client is subscribed to its topics first and the missed history
    /// is read second, up to the log's head as it was then: live frames
    /// numbered up to it are dropped by the [`Subscription`] (the replay has
    /// them), later ones wait behind the replay. So nothing falls between
    /// replay and live, nothing arrives twice, and ids only grow.
    pub async fn connect(&self, mut opts: ConnectOptions) -> Result<Subscription, BrokerError> {
        dedup(&mut opts.topics);
        let limit = self.inner.config.max_topics;
        if opts.topics.len() > limit {
            return Err(BrokerError::TooManyTopics { limit });
        }
        let policy = self.policy();
        for topic in &opts.topics {
            names::validate_topic(topic)?;
            policy.check_request(&opts.principal, topic)?;
        }
        let requested = opts.client_id.is_some();
        let id: Arc<str> = match opts.client_id {
            Some(id) => {
                names::validate_client_id(&id)?;
                id.into()
            }
            None => random_token(8).into(),
        };
        let principal = opts.principal;
        if let Some(uid) = &principal.user_id {
            names::validate_topic(&names::user(uid))?;
        }
        if let Some(sid) = &principal.session_id {
            names::validate_topic(&names::session(sid))?;
        }
        // The id is its owner's, across nodes and for the history's age
        // after its last connection: whoever continues it gets its secret
        // and its history, a newcomer neither.
        let serial = random_token(8);
        let new_secret = random_token(16);
        let claim = ClientClaim {
            user: principal.user_id.as_deref(),
            session: principal.session_id.as_deref(),
            offered_secret: opts.secret.as_deref().filter(|s| !s.is_empty()),
            new_secret: &new_secret,
            holder: &serial,
        };
        let (secret, continued) = match self.inner.backplane.claim_client(&id, claim).await {
            Ok(Claimed::Fresh) => (new_secret, false),
            Ok(Claimed::Continued { secret }) => (secret, true),
            Ok(Claimed::Refused) => {
                self.inner.hub.stats.refused();
                return Err(BrokerError::ClientIdInUse(id.to_string()));
            }
            // An id the client asked for cannot be vouched for.
            Err(e) if requested => return Err(e.into()),
            // A fresh random id is nobody else's: the stream may work
            // without the record (a later reconnect with it starts fresh).
            Err(e) => {
                tracing::warn!(error = %e, "client id not recorded");
                (new_secret, false)
            }
        };
        let mut claim_guard = ClaimGuard {
            broker: self,
            id: &id,
            serial: &serial,
            armed: true,
        };

        let config = &self.inner.config;
        let group = match (&principal.user_id, opts.peer) {
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
        };
        let client = Arc::new(ClientState::new(
            id.clone(),
            secret,
            serial.clone(),
            principal,
            group,
            opts.metadata,
            self.inner.config.event_buffer_size,
        ));
        let registered = self
            .inner
            .registry
            .register(&client, self.inner.config.max_connections);
        match registered {
            Ok(Some(old)) => {
                // Same id reconnecting before we noticed the old stream died.
                old.close();
                self.unsubscribe_all(&old);
            }
            Ok(None) => {}
            Err(e) => {
                self.inner.hub.stats.refused();
                return Err(e);
            }
        }
        // From here on the subscription releases the claim.
        claim_guard.armed = false;
        self.inner.hub.stats.connected();
        // From here on, dropping `sub` (also on an early `?`) cleans up.
        let mut sub = Subscription {
            broker: self.clone(),
            client: client.clone(),
            pending: VecDeque::new(),
            replayed_through: Vec::new(),
            held: None,
            replay: None,
        };
        // The group limit holds across nodes: the backplane counts too.
        if let Some(group) = &client.group {
            match self
                .inner
                .backplane
                .admit(&group.key, &client.serial, group.limit)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    self.inner.hub.stats.refused();
                    return Err(BrokerError::TooManyConnections {
                        scope: group.scope,
                        limit: group.limit,
                    });
                }
                // Counting is down with the backplane: the local limit
                // still holds, and the stream itself may still work.
                Err(e) => {
                    tracing::warn!(group = %group.key, error = %e, "cluster-wide connection count unavailable")
                }
            }
        }

        let mut topics = vec![names::client(&id)];
        if !opts.no_broadcasts {
            topics.push(names::ALL.to_owned());
        }
        topics.extend(client.user_id().map(names::user));
        topics.extend(client.session_id().map(names::session));
        for topic in opts.topics {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }

        // Resume point: `None` = live only.
        let mut reset = None;
        let after = match opts.last_event_id.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => match raw.parse::<EventId>() {
                Ok(id) if id.epoch == self.epoch() => Some(id.seq),
                // An id from another epoch: the log restarted since (or it
                // is not ours). Its tail may be lost, so `reset`; everything
                // in the current log came after it, so replay all of it.
                Ok(_) => {
                    reset = Some(ResetReason::UnknownEpoch);
                    Some(0)
                }
                Err(_) => {
                    reset = Some(ResetReason::InvalidId);
                    None
                }
            },
        };

        // 1. Live first: from now on every new event reaches the queue.
        let mut keys = Vec::with_capacity(topics.len());
        for name in &topics {
            let topic = self.inner.hub.topic(name);
            topic.subscribe(&client);
            keys.push(topic.key());
            client.lock_topics().insert(name.clone());
        }
        // 2. Then what was missed up to the log's head now, merged across
        // topics in id order, a page at a time; later events come live.
        // A newcomer to an id is not shown what was sent to it before.
        let mut first_page = Vec::new();
        if let Some(mut after) = after {
            let head = self.inner.backplane.head().await?;
            if after > head {
                // A position this log never reached: not ours, or the log
                // lost its tail. Start over from all it has.
                reset = reset.or(Some(ResetReason::AheadOfLog));
                after = 0;
            }
            let own = names::client(&id);
            let missed: Vec<(String, usize, u64)> = topics
                .iter()
                .zip(keys)
                .filter(|(name, _)| continued || **name != own)
                .map(|(name, key)| (name.clone(), key, after))
                .collect();
            sub.replayed_through = missed.iter().map(|(_, key, _)| (*key, head)).collect();
            let mut cursor = ReplayCursor::new(missed, head);
            let (batch, gap) = cursor.next_batch(self.inner.backplane.as_ref()).await?;
            if gap && reset.is_none() {
                reset = Some(ResetReason::HistoryGap);
            }
            first_page = batch;
            if !cursor.is_done() {
                sub.replay = Some(Box::new(cursor));
            }
        }

        let retry = self.inner.config.retry_hint_ms;
        let greeting = match opts.greeting {
            Some(events) => events,
            None => vec![typed_event(&Connected {
                client_id: id.to_string(),
                secret: Some(client.secret.clone()),
                user_id: client.user_id().map(str::to_owned),
                session_id: client.session_id().map(str::to_owned),
                topics,
                retry: Some(retry),
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
        if let Some(reason) = reset {
            let reset = Reset {
                reason,
                last_event_id: opts.last_event_id.unwrap_or_default(),
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

    /// Adds a connected client to topics (live events only, no replay):
    /// each must be one its connection's principal may read.
    pub fn subscribe(
        &self,
        client_id: &str,
        topics: &[String],
    ) -> Result<Vec<String>, BrokerError> {
        for t in topics {
            names::validate_topic(t)?;
        }
        let client = self
            .client(client_id)
            .ok_or_else(|| BrokerError::UnknownClient(client_id.to_owned()))?;
        for t in topics {
            self.policy().check_request(&client.principal, t)?;
        }
        // The cap counts the topics it asked for, not the assigned ones.
        let limit = self.inner.config.max_topics;
        let held = client.lock_topics().clone();
        let assigned = held.iter().filter(|t| is_assigned(&client, t)).count();
        let mut after = held;
        after.extend(topics.iter().cloned());
        if after.len() - assigned > limit {
            return Err(BrokerError::TooManyTopics { limit });
        }
        for name in topics {
            self.inner.hub.topic(name).subscribe(&client);
            client.lock_topics().insert(name.clone());
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
            client.lock_topics().remove(name);
            if let Some(topic) = self.inner.hub.existing(name) {
                topic.unsubscribe(&client);
            }
        }
        Ok(client.topics())
    }

    /// Lets go of a client id this connection held.
    pub(crate) fn release_claim(&self, id: &str, serial: &str) {
        self.inner
            .backplane
            .release_client(id, serial, self.inner.config.history_max_age);
    }

    pub(crate) fn unsubscribe_all(&self, client: &Arc<ClientState>) {
        let topics = std::mem::take(&mut *client.lock_topics());
        for name in topics {
            if let Some(topic) = self.inner.hub.existing(&name) {
                topic.unsubscribe(client);
            }
        }
    }
}

/// Removes repeats, keeping the first of each.
fn dedup(topics: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    topics.retain(|t| seen.insert(t.clone()));
}

/// Whether `topic` is one the server put `client` on by itself.
fn is_assigned(client: &ClientState, topic: &str) -> bool {
    topic == names::ALL
        || topic == names::client(&client.id)
        || client.user_id().is_some_and(|u| topic == names::user(u))
        || client
            .session_id()
            .is_some_and(|s| topic == names::session(s))
}

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
