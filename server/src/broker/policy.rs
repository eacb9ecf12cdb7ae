//! Who may read and who may publish each topic: one table, asked on every
//! way in. The broker asks it in [`connect`](super::SSEBroker::connect) and
//! [`subscribe`](super::SSEBroker::subscribe) and in
//! [`publish_as`](super::SSEBroker::publish_as), so `/_sse/connect`,
//! `/_sse/subscribe`, `/_sse/publish` and every app route get the same
//! answer for the same topic: a route can protect a topic only by the
//! table, never by a check of its own that another route would skip.
//!
//! | topics | who reads | who publishes |
//! |---|---|---|
//! | `client:<id>` | that connection only: assigned by the server, never requested | the server; a token whose `publish` claim covers it |
//! | `user:<uid>` | the user's own connections (assigned) | the server; a claim |
//! | `session:<sid>` | the session's own connections (assigned) | the server; a claim |
//! | `jobs:<owner>` | the owner (`sub` = `<owner>`) | the job queue; a claim |
//! | `job:<id>` | the job's owner (asked of the job queue) | the job queue; a claim |
//! | `chat:<room>` | any authenticated user | the chat routes for their caller; a claim |
//! | `notifications`, `realtime` | any authenticated user | their app routes; a claim |
//! | `avatar:*`, `system:*` | anyone | their app routes / the server; a claim |
//! | everything else (`all` too) | anyone | a claim, or anyone with `--anonymous-publish` |
//!
//! On top of every read rule, a token's `subscribe` claim (when present)
//! must match the topic. "A claim" means the token's `publish` claim names
//! the topic (a pattern matching it); a token without a `publish` claim
//! publishes nothing over HTTP. An app route (`/chat/send`, ...) publishes
//! for its caller into topics that caller may read (or its publish claim
//! covers), with the
//! caller's identity stamped into the event by the route. The event names
//! the server itself speaks ([`LIFECYCLE_EVENTS`]) are published by no one.
//!
//! Operators add or override rules (`--topic-rule`, see [`Rule::parse`]);
//! the assigned namespaces cannot be overridden.
//!
//! ```
//! use herald_server::broker::policy::{Principal, Publisher, TopicPolicy};
//!
//! let policy = TopicPolicy::default();
//! let anonymous = Principal::anonymous();
//! let alice = Principal::user("alice");
//!
//! // Reading.
//! assert!(policy.check_request(&anonymous, "news").is_ok());
//! assert!(policy.check_request(&anonymous, "chat:general").is_err()); // needs a token
//! assert!(policy.check_request(&alice, "chat:general").is_ok());
//! assert!(policy.check_request(&alice, "jobs:alice").is_ok());
//! assert!(policy.check_request(&alice, "jobs:bob").is_err());
//! assert!(policy.check_request(&alice, "user:alice").is_err()); // assigned, never requested
//!
//! // Publishing.
//! assert!(policy.check_publish(Publisher::Server, "jobs:alice", Some("job_update")).is_ok());
//! assert!(policy.check_publish(Publisher::Caller(&alice), "news", None).is_err()); // no claim
//! let service = Principal { publish: Some(vec!["news".into()]), ..Principal::user("svc") };
//! assert!(policy.check_publish(Publisher::Caller(&service), "news", None).is_ok());
//! assert!(policy.check_publish(Publisher::OnBehalfOf(&alice), "chat:general", Some("message")).is_ok());
//! assert!(policy.check_publish(Publisher::Server, "all", Some("connected")).is_err()); // lifecycle
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::pattern::any_matches;
use super::BrokerError;
use crate::sync::{read, write};

/// Event names the server itself speaks on a stream (and clients act on):
/// nobody publishes them, not even code in this process.
pub const LIFECYCLE_EVENTS: [&str; 6] =
    ["connected", "reset", "heartbeat", "ping", "error", "open"];

/// Who is asking, as the HTTP layer verified it: from a token, or (for a
/// session) a cookie this server signed. Never what a caller merely
/// declared.
///
/// ```
/// use herald_server::broker::policy::Principal;
/// let p = Principal::user("alice").with_session("s1");
/// assert_eq!((p.user_id.as_deref(), p.session_id.as_deref()), (Some("alice"), Some("s1")));
/// assert!(!Principal::anonymous().is_authenticated());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub roles: Vec<String>,
    /// The token's `subscribe` claim; `None` puts no limit of its own.
    pub subscribe: Option<Vec<String>>,
    /// The token's `publish` claim; `None` publishes nothing over HTTP.
    pub publish: Option<Vec<String>>,
    /// The address the request came from (the TCP peer): who an
    /// anonymous caller is, for the limits every caller has.
    pub peer: Option<std::net::IpAddr>,
}

impl Principal {
    /// Nobody in particular.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A user with no claims of their own (tests, dev-mode identities).
    pub fn user(id: impl Into<String>) -> Self {
        Principal {
            user_id: Some(id.into()),
            ..Self::default()
        }
    }

    pub fn with_session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    pub fn is_authenticated(&self) -> bool {
        self.user_id.is_some()
    }

    /// Whose limits this caller draws on: its user (`user:<uid>`), else
    /// its address (`ip:<addr>`), else `anonymous`. One caller for the
    /// publish rate, topic creations and idempotency keys alike.
    ///
    /// ```
    /// use herald_server::broker::policy::Principal;
    /// assert_eq!(Principal::user("alice").caller_key(), "user:alice");
    /// let peer = Principal { peer: Some([10, 0, 0, 7].into()), ..Principal::anonymous() };
    /// assert_eq!(peer.caller_key(), "ip:10.0.0.7");
    /// ```
    pub fn caller_key(&self) -> String {
        caller_key(self.user_id.as_deref(), self.peer)
    }

    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// [`Principal::caller_key`] of a caller known by its user and address.
pub fn caller_key(user: Option<&str>, peer: Option<std::net::IpAddr>) -> String {
    match (user, peer) {
        (Some(uid), _) => super::names::user(uid),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "anonymous".to_owned(),
    }
}

/// How a publish arrives.
#[derive(Debug, Clone, Copy)]
pub enum Publisher<'a> {
    /// Code in this process: the apps' workers, the status publisher,
    /// `SSEHelper`, `SSENotifier`. May publish to any topic.
    Server,
    /// An app's own event that a caller's request set off (a chat stream
    /// announcing its caller in the rooms it names): the app vouches for
    /// it, so any topic, as [`Server`](Self::Server); what it costs (the
    /// topics it starts) is the caller's.
    App(&'a Principal),
    /// An app route publishing what its caller asked for (a chat message,
    /// a notification), with the caller's identity stamped in by the
    /// route: into the topics its `publish` claim covers when it has one,
    /// else into the topics the caller may read.
    OnBehalfOf(&'a Principal),
    /// A caller publishing raw events (`/_sse/publish`, `/api/sse/send`,
    /// `/update`): needs a `publish` claim covering the topic, unless the
    /// server runs with open publishing and the topic is not an app's.
    Caller(&'a Principal),
}

/// Which connections an assigned topic belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Connection,
    User,
    Session,
}

/// Who may read a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Put on a connection by the server from its verified identity;
    /// asking for it is refused.
    Assigned(Assigned),
    Anyone,
    /// Any caller with a token.
    Authenticated,
    /// The user the rest of the name names (`jobs:<owner>`).
    Owner,
    /// The owner of the resource the rest of the name names, as the app
    /// that owns the namespace says ([`TopicPolicy::set_owner_lookup`]);
    /// nobody while no app answers.
    OwnerLookup,
    /// Callers whose token has this role.
    Role(String),
    /// No stream may ask for it (server-side topics).
    Nobody,
}

/// Who may publish to a namespace (besides the server, which always may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// A token whose `publish` claim covers the topic; with open publishing
    /// (`--anonymous-publish`, dev mode), any caller.
    Claim,
    /// The app that owns it, for its callers; otherwise only a token whose
    /// `publish` claim covers the topic (open publishing does not open it).
    App,
}

/// Who sees who is on a topic (`GET /_sse/presence`), besides the
/// members' own connections (each caller always sees its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presence {
    /// Counts for its readers; its members' user ids only to those who
    /// may publish to it (a `publish` claim, or open publishing).
    #[default]
    Counts,
    /// Its members' user ids to everyone who may read it (a chat room,
    /// where joins are announced anyway).
    Members,
}

/// The names a rule covers: one topic, or every topic under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    /// The rest of `topic` after this pattern's prefix, if it matches.
    fn rest<'t>(&self, topic: &'t str) -> Option<&'t str> {
        match self {
            Pattern::Exact(name) => (name == topic).then_some(""),
            Pattern::Prefix(prefix) => topic.strip_prefix(prefix.as_str()),
        }
    }

    /// Exact rules first, then longer prefixes before shorter ones.
    fn specificity(&self) -> usize {
        match self {
            Pattern::Exact(_) => usize::MAX,
            Pattern::Prefix(p) => p.len(),
        }
    }

    fn text(&self) -> String {
        match self {
            Pattern::Exact(name) => name.clone(),
            Pattern::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pattern: Pattern,
    pub read: Read,
    pub publish: Publish,
    pub presence: Presence,
}

/// Why an operator's rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic rule {rule:?}: {reason}")]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

impl Rule {
    pub fn new(pattern: &str, read: Read, publish: Publish) -> Self {
        Rule {
            pattern: Pattern::parse(pattern),
            read,
            publish,
            presence: Presence::Counts,
        }
    }

    /// This rule with its topics' presence shown as `presence` says.
    pub fn presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }

    /// The pattern as written (`chat:*`, `notifications`).
    pub fn pattern(&self) -> String {
        self.pattern.text()
    }

    /// An operator's rule: `PATTERN=READ[/PUBLISH[/PRESENCE]]`, where
    /// `PATTERN` is a topic or a prefix ending in `*`, `READ` is `anyone`,
    /// `authenticated`, `owner`, `role:<name>` or `nobody`, `PUBLISH` is
    /// `claim` (the default) or `app`, and `PRESENCE` is `counts` (the
    /// default) or `members` ([`Presence`]).
    ///
    /// ```
    /// use herald_server::broker::policy::{Presence, Publish, Read, Rule};
    /// let rule = Rule::parse("tenant:*=owner/app").unwrap();
    /// assert_eq!((rule.pattern(), &rule.read, rule.publish), ("tenant:*".into(), &Read::Owner, Publish::App));
    /// assert_eq!(Rule::parse("ops=role:admin").unwrap().read, Read::Role("admin".into()));
    /// assert_eq!(Rule::parse("room:*=anyone/claim/members").unwrap().presence, Presence::Members);
    /// assert!(Rule::parse("user:*=anyone").is_err()); // assigned namespaces stay the server's
    /// assert!(Rule::parse("news=everybody").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let fail = |reason: &str| RuleError {
            rule: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (pattern, rules) = text
            .split_once('=')
            .ok_or_else(|| fail("expected PATTERN=READ[/PUBLISH[/PRESENCE]]"))?;
        let mut parts = rules.splitn(3, '/');
        let read = parts.next().unwrap_or_default();
        let publish = parts.next().unwrap_or("claim");
        let presence = match parts.next().map(str::trim) {
            None | Some("counts") => Presence::Counts,
            Some("members") => Presence::Members,
            Some(_) => return Err(fail("PRESENCE is counts or members")),
        };
        let read = match read.trim() {
            "anyone" => Read::Anyone,
            "authenticated" => Read::Authenticated,
            "owner" => Read::Owner,
            "nobody" => Read::Nobody,
            other => match other.strip_prefix("role:") {
                Some(role) if !role.is_empty() => Read::Role(role.to_owned()),
                _ => {
                    return Err(fail(
                        "READ is one of anyone, authenticated, owner, role:<name>, nobody",
                    ))
                }
            },
        };
        let publish = match publish.trim() {
            "claim" => Publish::Claim,
            "app" => Publish::App,
            _ => return Err(fail("PUBLISH is claim or app")),
        };
        let pattern = pattern.trim();
        if pattern == "*" {
            // The rule for open topics: everything no other rule names.
            return Ok(Rule::new(pattern, read, publish).presence(presence));
        }
        let name = pattern.strip_suffix('*').unwrap_or(pattern);
        if name.contains('*') {
            return Err(fail("only a trailing * is allowed in the pattern"));
        }
        if !name.is_empty() {
            super::names::validate_topic(name).map_err(|e| fail(&e.to_string()))?;
        }
        let rule = Rule::new(pattern, read, publish).presence(presence);
        let overlaps_assigned = builtin().iter().any(|b| {
            matches!(b.read, Read::Assigned(_))
                && match (&rule.pattern, &b.pattern) {
                    (Pattern::Prefix(p), Pattern::Prefix(a)) => {
                        p.starts_with(a.as_str()) || a.starts_with(p.as_str())
                    }
                    (Pattern::Exact(e), Pattern::Prefix(a)) => e.starts_with(a.as_str()),
                    _ => false,
                }
        });
        if overlaps_assigned {
            return Err(fail(
                "client:, user: and session: topics are assigned by the server and cannot be re-ruled",
            ));
        }
        Ok(rule)
    }
}

/// The built-in table (see the module docs).
fn builtin() -> Vec<Rule> {
    use super::names;
    vec![
        Rule::new(
            "client:*",
            Read::Assigned(Assigned::Connection),
            Publish::Claim,
        ),
        Rule::new("user:*", Read::Assigned(Assigned::User), Publish::Claim),
        Rule::new(
            "session:*",
            Read::Assigned(Assigned::Session),
            Publish::Claim,
        ),
        Rule::new("jobs:*", Read::Owner, Publish::App),
        Rule::new("job:*", Read::OwnerLookup, Publish::App),
        Rule::new("chat:*", Read::Authenticated, Publish::App).presence(Presence::Members),
        Rule::new(names::NOTIFICATIONS, Read::Authenticated, Publish::App),
        Rule::new(names::REALTIME, Read::Authenticated, Publish::App),
        Rule::new("avatar:*", Read::Anyone, Publish::App),
        Rule::new("system:*", Read::Anyone, Publish::App),
    ]
}

/// Does `who`'s `subscribe` claim, if any, match `topic`?
fn subscribe_claim_allows(who: &Principal, topic: &str) -> bool {
    who.subscribe
        .as_deref()
        .is_none_or(|patterns| any_matches(patterns, topic))
}

/// Says who owns the resources an [`Read::OwnerLookup`] rule's topics
/// name (each topic's name without the rule's prefix): the app that owns
/// the namespace registers one ([`TopicPolicy::set_owner_lookup`]).
pub trait Owners: Send + Sync {
    /// The owner of `name`, if known here without waiting: asked while a
    /// request is checked, and per event for a wildcard's readers.
    fn owner_now(&self, name: &str) -> Option<String>;

    /// Makes the owners of `names` known to [`owner_now`](Self::owner_now),
    /// in one round trip for all of them (a store elsewhere). Asked only
    /// for an authenticated caller's request, after every check that needs
    /// no lookup, with at most a connection's topic cap of names. A store
    /// that knows every owner here needs nothing.
    fn learn<'a>(&'a self, _names: &'a [&'a str]) -> super::BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A registered [`Owners`].
pub type OwnerLookup = Arc<dyn Owners>;

/// Who may read one topic: [`TopicPolicy::readers`].
pub struct Readers<'a> {
    topic: &'a str,
    rule: &'a Rule,
    /// The name after the rule's prefix (`alice` of `jobs:alice`).
    rest: &'a str,
    /// For an [`Read::OwnerLookup`] rule, whom the lookup named.
    owner: Option<String>,
}

impl Readers<'_> {
    /// Does the rule admit `who`, and does their `subscribe` claim, if
    /// any, match the topic?
    pub fn admit(&self, who: &Principal) -> bool {
        self.rule_admits(who) && self.claim_allows(who)
    }

    fn claim_allows(&self, who: &Principal) -> bool {
        subscribe_claim_allows(who, self.topic)
    }

    fn rule_admits(&self, who: &Principal) -> bool {
        let rest = Some(self.rest);
        match &self.rule.read {
            Read::Anyone => true,
            Read::Authenticated => who.is_authenticated(),
            Read::Owner => who.user_id.as_deref() == rest,
            Read::OwnerLookup => {
                who.is_authenticated() && self.owner.is_some() && self.owner == who.user_id
            }
            Read::Role(role) => who.has_role(role),
            Read::Assigned(Assigned::User) => who.user_id.as_deref() == rest,
            Read::Assigned(Assigned::Session) => who.session_id.as_deref() == rest,
            Read::Assigned(Assigned::Connection) | Read::Nobody => false,
        }
    }
}

/// The table, plus the owner lookups apps register. See the module docs.
pub struct TopicPolicy {
    /// Most specific first.
    rules: Vec<Rule>,
    /// Open topics: everything no rule names.
    default: Rule,
    /// `--anonymous-publish` / dev mode.
    open_publishing: bool,
    /// By rule pattern (`job:*`).
    lookups: RwLock<HashMap<String, OwnerLookup>>,
}

impl std::fmt::Debug for TopicPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicPolicy")
            .field("rules", &self.rules)
            .field("open_publishing", &self.open_publishing)
            .finish_non_exhaustive()
    }
}

impl Default for TopicPolicy {
    fn default() -> Self {
        Self::with_rules(Vec::new())
    }
}

impl TopicPolicy {
    /// The built-in table with `extra` rules added; an extra rule with the
    /// same pattern as a built-in one replaces it, and one for `*` replaces
    /// the rule for open topics.
    pub fn with_rules(extra: Vec<Rule>) -> Self {
        let mut rules = builtin();
        let mut default = Rule::new("*", Read::Anyone, Publish::Claim);
        for rule in extra {
            if rule.pattern == default.pattern {
                default = rule;
                continue;
            }
            rules.retain(|r| r.pattern != rule.pattern);
            rules.push(rule);
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.pattern.specificity()));
        TopicPolicy {
            rules,
            default,
            open_publishing: false,
            lookups: RwLock::new(HashMap::new()),
        }
    }

    /// Lets callers without a `publish` claim publish to topics whose rule
    /// is [`Publish::Claim`] (`--anonymous-publish`, dev mode).
    pub fn open_publishing(mut self, on: bool) -> Self {
        self.open_publishing = on;
        self
    }

    pub fn is_open_publishing(&self) -> bool {
        self.open_publishing
    }

    /// The rule for `topic`, and the rest of the name after its prefix.
    pub fn rule_for<'t>(&self, topic: &'t str) -> (&Rule, &'t str) {
        self.rules
            .iter()
            .find_map(|r| r.pattern.rest(topic).map(|rest| (r, rest)))
            .unwrap_or((&self.default, topic))
    }

    /// Registers who owns what an [`Read::OwnerLookup`] rule's topics name
    /// (`pattern` as in the table, e.g. `job:*`); replaces an earlier one.
    pub fn set_owner_lookup(&self, pattern: &str, lookup: OwnerLookup) {
        write(&self.lookups).insert(pattern.to_owned(), lookup);
    }

    /// The second half of judging a request, after
    /// [`check_unlooked`](Self::check_unlooked) passed every topic: the
    /// topics under an [`Read::OwnerLookup`] rule have their owners made
    /// known (those not known yet: one [`Owners::learn`] per rule, so one
    /// round trip) and are judged in full. The others were judged already.
    pub async fn check_looked_up(
        &self,
        who: &Principal,
        topics: &[String],
    ) -> Result<(), BrokerError> {
        let looked_up: Vec<&String> = topics
            .iter()
            .filter(|t| {
                self.rule_for(t).0.read == Read::OwnerLookup
                    && super::names::wildcard_prefix(t).is_none()
            })
            .collect();
        let mut wanted: Vec<(OwnerLookup, Vec<&str>)> = Vec::new();
        for topic in &looked_up {
            let (rule, rest) = self.rule_for(topic);
            let Some(lookup) = read(&self.lookups).get(&rule.pattern()).cloned() else {
                continue;
            };
            if lookup.owner_now(rest).is_some() {
                continue;
            }
            match wanted.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &lookup)) {
                Some((_, names)) => names.push(rest),
                None => wanted.push((lookup, vec![rest])),
            }
        }
        for (lookup, names) in wanted {
            lookup.learn(&names).await;
        }
        for topic in looked_up {
            self.check_request(who, topic)?;
        }
        Ok(())
    }

    /// May `who` ask for `topic` on a stream (`/_sse/connect`,
    /// `/_sse/subscribe`, an app's stream)?
    ///
    /// A wildcard (`chat:*`) is let in unless the rule over its whole
    /// prefix shuts `who` out (no token for `chat:*`); which of its topics
    /// `who` then gets is decided per topic ([`may_read`](Self::may_read)),
    /// so `jobs:*` gives alice `jobs:alice` and nothing else.
    ///
    /// ```
    /// use herald_server::broker::policy::{Principal, TopicPolicy};
    /// let policy = TopicPolicy::default();
    /// assert!(policy.check_request(&Principal::user("alice"), "chat:*").is_ok());
    /// assert!(policy.check_request(&Principal::anonymous(), "chat:*").is_err()); // needs a token
    /// assert!(policy.check_request(&Principal::user("alice"), "user:*").is_err()); // assigned
    /// assert!(policy.may_read(&Principal::user("alice"), "jobs:alice"));
    /// assert!(!policy.may_read(&Principal::user("alice"), "jobs:bob"));
    /// ```
    pub fn check_request(&self, who: &Principal, topic: &str) -> Result<(), BrokerError> {
        if let Some(prefix) = super::names::wildcard_prefix(topic) {
            return self.check_wildcard(who, topic, prefix);
        }
        let (rule, _) = self.rule_for(topic);
        if matches!(rule.read, Read::Assigned(_)) {
            return Err(BrokerError::ReservedTopic(topic.to_owned()));
        }
        self.check_read(who, topic)
    }

    /// [`check_request`](Self::check_request) as far as it goes without
    /// asking an app who owns the topic: a topic under an
    /// [`Read::OwnerLookup`] rule passes if `who` could be its owner (has a
    /// token whose `subscribe` claim allows it), to be judged by
    /// `check_request` once its owner is known
    /// ([`check_looked_up`](Self::check_looked_up)). Every other topic is
    /// judged in full.
    ///
    /// ```
    /// use herald_server::broker::policy::{Principal, TopicPolicy};
    /// let policy = TopicPolicy::default();
    /// assert!(policy.check_unlooked(&Principal::anonymous(), "job:7").is_err()); // no lookup needed
    /// assert!(policy.check_unlooked(&Principal::user("alice"), "job:7").is_ok()); // then asked
    /// assert!(policy.check_unlooked(&Principal::user("alice"), "jobs:bob").is_err());
    /// ```
    pub fn check_unlooked(&self, who: &Principal, topic: &str) -> Result<(), BrokerError> {
        let (rule, _) = self.rule_for(topic);
        if rule.read != Read::OwnerLookup || super::names::wildcard_prefix(topic).is_some() {
            return self.check_request(who, topic);
        }
        if !who.is_authenticated() {
            return Err(BrokerError::NeedsToken(topic.to_owned()));
        }
        if !subscribe_claim_allows(who, topic) {
            return Err(BrokerError::TopicNotAllowed(topic.to_owned()));
        }
        Ok(())
    }

    fn check_wildcard(
        &self,
        who: &Principal,
        pattern: &str,
        prefix: &str,
    ) -> Result<(), BrokerError> {
        let (rule, _) = self.rule_for(prefix);
        // Only a prefix rule covers every topic under `prefix`.
        let covers_all =
            matches!(&rule.pattern, Pattern::Prefix(p) if prefix.starts_with(p.as_str()));
        if !covers_all {
            return Ok(());
        }
        let shut_out = match &rule.read {
            Read::Assigned(_) => return Err(BrokerError::ReservedTopic(pattern.to_owned())),
            Read::Authenticated => !who.is_authenticated(),
            Read::Role(role) => !who.has_role(role),
            Read::Nobody => true,
            Read::Anyone | Read::Owner | Read::OwnerLookup => false,
        };
        if !shut_out {
            return Ok(());
        }
        Err(if who.is_authenticated() {
            BrokerError::ReadDenied {
                topic: pattern.to_owned(),
                rule: rule.pattern(),
            }
        } else {
            BrokerError::NeedsToken(pattern.to_owned())
        })
    }

    /// Is `who` a reader of `topic`? [`check_read`](Self::check_read)
    /// without the error: asked per event for wildcard subscribers.
    pub fn may_read(&self, who: &Principal, topic: &str) -> bool {
        self.readers(topic).admit(who)
    }

    /// The readers of `topic`, its rule (and owner, for a looked-up one)
    /// resolved once: one event's check of every subscriber of a wildcard.
    pub fn readers<'a>(&'a self, topic: &'a str) -> Readers<'a> {
        let (rule, rest) = self.rule_for(topic);
        let owner = match rule.read {
            Read::OwnerLookup => read(&self.lookups)
                .get(&rule.pattern())
                .and_then(|lookup| lookup.owner_now(rest)),
            _ => None,
        };
        Readers {
            topic,
            rule,
            rest,
            owner,
        }
    }

    /// Is `who` a reader of `topic`: its rule admits them (assigned topics:
    /// they are its user or session) and their `subscribe` claim matches?
    pub fn check_read(&self, who: &Principal, topic: &str) -> Result<(), BrokerError> {
        let readers = self.readers(topic);
        if !readers.rule_admits(who) {
            let rule = readers.rule;
            return Err(if who.is_authenticated() {
                BrokerError::ReadDenied {
                    topic: topic.to_owned(),
                    rule: rule.pattern(),
                }
            } else {
                BrokerError::NeedsToken(topic.to_owned())
            });
        }
        if !readers.claim_allows(who) {
            return Err(BrokerError::TopicNotAllowed(topic.to_owned()));
        }
        Ok(())
    }

    /// Whether `who`, a reader of `topic`, is shown its members' user ids
    /// ([`Presence`]): the topic's rule says so, or `who` may publish raw
    /// events to it.
    ///
    /// ```
    /// use herald_server::broker::policy::{Principal, TopicPolicy};
    /// let policy = TopicPolicy::default();
    /// let alice = Principal::user("alice");
    /// assert!(policy.shows_members(&alice, "chat:lobby"));
    /// assert!(!policy.shows_members(&alice, "news"));
    /// let svc = Principal { publish: Some(vec!["news".into()]), ..Principal::user("svc") };
    /// assert!(policy.shows_members(&svc, "news"));
    /// ```
    pub fn shows_members(&self, who: &Principal, topic: &str) -> bool {
        let (rule, _) = self.rule_for(topic);
        rule.presence == Presence::Members
            || self
                .check_publish(Publisher::Caller(who), topic, None)
                .is_ok()
    }

    /// May `who` publish an event named `event` (`None`: unnamed) to `topic`?
    pub fn check_publish(
        &self,
        who: Publisher<'_>,
        topic: &str,
        event: Option<&str>,
    ) -> Result<(), BrokerError> {
        if let Some(name) = event.filter(|n| LIFECYCLE_EVENTS.contains(n)) {
            return Err(BrokerError::ReservedEventName(name.to_owned()));
        }
        let claimed = |p: &Principal| {
            p.publish
                .as_deref()
                .is_some_and(|patterns| any_matches(patterns, topic))
        };
        let denied = |why: &'static str| {
            Err(BrokerError::PublishDenied {
                topic: topic.to_owned(),
                why,
            })
        };
        let (rule, _) = self.rule_for(topic);
        match who {
            Publisher::Server | Publisher::App(_) => Ok(()),
            Publisher::OnBehalfOf(p) => match &p.publish {
                Some(_) if claimed(p) => Ok(()),
                Some(_) => denied("the token's publish claim does not cover it"),
                None => self.check_read(p, topic),
            },
            Publisher::Caller(p) => match (&p.publish, rule.publish) {
                (Some(_), _) if claimed(p) => Ok(()),
                (Some(_), _) => denied("the token's publish claim does not cover it"),
                (None, Publish::Claim) if self.open_publishing => Ok(()),
                (None, Publish::Claim) => {
                    denied("publishing needs a token with a publish claim covering the topic")
                }
                (None, Publish::App) => {
                    denied("only its app, or a token whose publish claim names it, publishes there")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(user: &str, subscribe: Option<&[&str]>, publish: Option<&[&str]>) -> Principal {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| (*s).to_owned()).collect());
        Principal {
            subscribe: list(subscribe),
            publish: list(publish),
            ..Principal::user(user)
        }
    }

    #[test]
    fn assigned_topics_are_never_requested_but_their_owners_read_them() {
        let policy = TopicPolicy::default();
        let alice = Principal::user("alice").with_session("s1");
        for topic in ["client:c1", "user:alice", "session:s1"] {
            assert_eq!(
                policy.check_request(&alice, topic),
                Err(BrokerError::ReservedTopic(topic.into()))
            );
        }
        assert!(policy.check_read(&alice, "user:alice").is_ok());
        assert!(policy.check_read(&alice, "session:s1").is_ok());
        assert!(policy.check_read(&alice, "user:bob").is_err());
        assert!(policy.check_read(&alice, "session:s2").is_err());
        assert!(policy.check_read(&alice, "client:c1").is_err());
    }

    #[test]
    fn app_namespaces_read_as_their_routes_do() {
        let policy = TopicPolicy::default();
        let anonymous = Principal::anonymous();
        let alice = Principal::user("alice");
        for topic in [
            "chat:general",
            "notifications",
            "realtime",
            "jobs:alice",
            "job:42",
        ] {
            assert_eq!(
                policy.check_request(&anonymous, topic),
                Err(BrokerError::NeedsToken(topic.into())),
                "{topic}"
            );
        }
        for topic in ["chat:general", "notifications", "realtime", "jobs:alice"] {
            assert!(policy.check_request(&alice, topic).is_ok(), "{topic}");
        }
        assert!(matches!(
            policy.check_request(&alice, "jobs:bob"),
            Err(BrokerError::ReadDenied { .. })
        ));
        for topic in ["avatar:updates", "system:status", "news", "all"] {
            assert!(policy.check_request(&anonymous, topic).is_ok(), "{topic}");
        }
    }

    #[test]
    fn a_job_is_read_by_the_owner_its_app_names() {
        let policy = TopicPolicy::default();
        let alice = Principal::user("alice");
        assert!(
            policy.check_request(&alice, "job:42").is_err(),
            "no lookup yet"
        );
        struct Jobs;
        impl Owners for Jobs {
            fn owner_now(&self, id: &str) -> Option<String> {
                (id == "42").then(|| "alice".to_owned())
            }
        }
        policy.set_owner_lookup("job:*", Arc::new(Jobs));
        assert!(policy.check_request(&alice, "job:42").is_ok());
        assert!(policy
            .check_request(&Principal::user("bob"), "job:42")
            .is_err());
        assert!(
            policy.check_request(&alice, "job:43").is_err(),
            "unknown job"
        );
    }

    #[test]
    fn the_subscribe_claim_narrows_every_rule() {
        let policy = TopicPolicy::default();
        let rooms = token("alice", Some(&["chat:general"]), None);
        assert!(policy.check_request(&rooms, "chat:general").is_ok());
        assert_eq!(
            policy.check_request(&rooms, "chat:secret"),
            Err(BrokerError::TopicNotAllowed("chat:secret".into()))
        );
        assert!(policy.check_request(&rooms, "news").is_err());
    }

    #[test]
    fn publishing_over_http_needs_a_claim_and_open_mode_opens_only_open_topics() {
        let strict = TopicPolicy::default();
        let open = TopicPolicy::default().open_publishing(true);
        let anonymous = Principal::anonymous();
        let plain = Principal::user("alice");
        let news = token("svc", None, Some(&["news", "jobs:*"]));
        for topic in ["news", "all", "user:bob", "client:c1"] {
            assert!(strict
                .check_publish(Publisher::Caller(&plain), topic, None)
                .is_err());
            assert!(strict
                .check_publish(Publisher::Caller(&anonymous), topic, None)
                .is_err());
            assert!(open
                .check_publish(Publisher::Caller(&anonymous), topic, None)
                .is_ok());
        }
        for topic in [
            "jobs:alice",
            "job:1",
            "chat:general",
            "notifications",
            "system:status",
            "avatar:updates",
        ] {
            assert!(
                open.check_publish(Publisher::Caller(&anonymous), topic, None)
                    .is_err(),
                "{topic}"
            );
            assert!(
                open.check_publish(Publisher::Caller(&plain), topic, None)
                    .is_err(),
                "{topic}"
            );
        }
        assert!(strict
            .check_publish(Publisher::Caller(&news), "news", None)
            .is_ok());
        assert!(strict
            .check_publish(Publisher::Caller(&news), "jobs:alice", None)
            .is_ok());
        assert!(strict
            .check_publish(Publisher::Caller(&news), "sports", None)
            .is_err());
        assert!(
            open.check_publish(Publisher::Caller(&news), "sports", None)
                .is_err(),
            "a claim restricts even in open mode"
        );
    }

    #[test]
    fn app_routes_publish_for_callers_who_may_read() {
        let policy = TopicPolicy::default();
        let alice = Principal::user("alice");
        let anonymous = Principal::anonymous();
        let on_behalf = |p, t| policy.check_publish(Publisher::OnBehalfOf(p), t, Some("message"));
        assert!(on_behalf(&alice, "chat:general").is_ok());
        assert!(on_behalf(&alice, "notifications").is_ok());
        assert!(on_behalf(&alice, "user:alice").is_ok());
        assert!(on_behalf(&alice, "user:bob").is_err());
        assert!(on_behalf(&anonymous, "chat:general").is_err());
        let general_only = token("alice", None, Some(&["chat:general"]));
        assert!(on_behalf(&general_only, "chat:general").is_ok());
        assert!(on_behalf(&general_only, "chat:random").is_err());
        let notifier = token("svc", None, Some(&["user:*"]));
        assert!(on_behalf(&notifier, "user:bob").is_ok());
    }

    #[test]
    fn lifecycle_names_are_published_by_nobody() {
        let policy = TopicPolicy::default().open_publishing(true);
        let root = token("root", None, Some(&["*"]));
        for name in LIFECYCLE_EVENTS {
            for who in [Publisher::Server, Publisher::Caller(&root)] {
                assert_eq!(
                    policy.check_publish(who, "all", Some(name)),
                    Err(BrokerError::ReservedEventName(name.into()))
                );
            }
        }
        assert!(policy
            .check_publish(Publisher::Caller(&root), "all", Some("message"))
            .is_ok());
    }

    #[test]
    fn operator_rules_add_and_override_most_specific_first() {
        let policy = TopicPolicy::with_rules(vec![
            Rule::parse("tenant:*=owner").expect("rule"),
            Rule::parse("chat:lobby=anyone").expect("rule"),
            Rule::parse("ops:*=role:admin/app").expect("rule"),
            Rule::parse("internal:*=nobody").expect("rule"),
        ]);
        let anonymous = Principal::anonymous();
        let alice = Principal::user("alice");
        let admin = Principal {
            roles: vec!["admin".into()],
            ..Principal::user("root")
        };
        assert!(policy.check_request(&alice, "tenant:alice").is_ok());
        assert!(policy.check_request(&alice, "tenant:bob").is_err());
        assert!(policy.check_request(&anonymous, "chat:lobby").is_ok());
        assert!(policy.check_request(&anonymous, "chat:general").is_err());
        assert!(policy.check_request(&admin, "ops:alerts").is_ok());
        assert!(policy.check_request(&alice, "ops:alerts").is_err());
        assert!(policy.check_request(&admin, "internal:x").is_err());
        assert!(Rule::parse("session:x=anyone").is_err());
        let closed = TopicPolicy::with_rules(vec![Rule::parse("*=authenticated").expect("rule")]);
        assert!(closed.check_request(&anonymous, "news").is_err());
        assert!(closed.check_request(&alice, "news").is_ok());
        assert!(
            Rule::parse("client*=anyone").is_err(),
            "would cover client:"
        );
        assert!(Rule::parse("a*b=anyone").is_err());
        assert!(Rule::parse("bad topic=anyone").is_err());
    }
}
