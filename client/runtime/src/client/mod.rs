//! `SSEClient`: a stream read by the browser (an `EventSource`, or `fetch`
//! with a streamed body), driven by the runtime's state machine.
//!
//! This layer is thin on purpose. Every browser callback (open, error, an
//! event, a status, the timer) tells the [`Machine`] what happened and
//! carries out the [`Action`]s it returns: open or close a connection,
//! report a state or an error. The browser's own silent retry is never
//! relied on: on `error` the connection is closed and the machine decides
//! when to come back.
//!
//! The client owns its connection: when the last handle on it is dropped,
//! the connection is closed, its timer cancelled and its callbacks
//! released (nothing keeps running in the page).
//!
//! **Topics survive reconnects.** Every connection is a new one to the
//! server (a new client id), so the topics a client holds
//! ([`SSEClient::subscribe`]) are put in each connection's URL
//! (`topics=`): the server puts the stream on them from the start and
//! replays what they missed since the last event id, whichever way the
//! client reconnected (by itself, or by [`SSEClient::reconnect`]). A topic
//! added while connected is also added to the open stream
//! (`POST /_sse/subscribe` with the connection's secret).
//!
//! Outside a browser (server-side rendering, native tests) nothing is opened:
//! the client stays `Connecting` after `connect()`, and components render.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::{Rc, Weak};

use herald_shared::events::{Connected, SseEvent};
use thiserror::Error;

use crate::config::{encode_component, with_param, SseConfig};
use crate::runtime::machine::{Action, Failure, Machine, SseState};

/// One event as handlers receive it.
///
/// ```
/// use herald_client::{SSEClient, SseConfig};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// client.on_named("alert", |m| println!("{} {} (after id {})", m.event, m.value, m.last_event_id)).forget();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    /// The event name (`message` for unnamed events).
    pub event: String,
    /// The data as sent.
    pub data: String,
    /// The data as JSON, or the text itself (a JSON string) when it is not
    /// JSON: what GoSPA's client hands its handlers.
    pub value: serde_json::Value,
    /// The id the server gave it (or the last one before it).
    pub last_event_id: String,
}

impl SseMessage {
    /// An event with its data parsed as JSON where it is JSON.
    ///
    /// ```
    /// use herald_client::SseMessage;
    /// let m = SseMessage::new("update", r#"{"key":"count","value":42}"#, "e-7");
    /// assert_eq!(m.value["value"], 42);
    /// assert_eq!(SseMessage::new("message", "plain text", "").value, "plain text");
    /// ```
    pub fn new(event: &str, data: &str, last_event_id: &str) -> Self {
        SseMessage {
            event: event.to_owned(),
            data: data.to_owned(),
            value: serde_json::from_str(data)
                .unwrap_or_else(|_| serde_json::Value::String(data.to_owned())),
            last_event_id: last_event_id.to_owned(),
        }
    }
}

/// What `on_error` handlers hear about, with the attempt it happened on.
///
/// ```
/// use herald_client::{SSEClient, SseConfig, SseError};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// client.on_error(|e, attempt| match e {
///     SseError::Unauthorized | SseError::Forbidden => eprintln!("sign in again"),
///     SseError::TooManyRequests { retry_after_ms } => eprintln!("busy; retry in {retry_after_ms:?} ms"),
///     other => eprintln!("attempt {attempt}: {other}"),
/// }).forget();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// A typed handler could not decode an event's data.
    #[error("could not decode a {event:?} event: {message}")]
    Decode {
        /// The event's name.
        event: String,
        /// Why it did not decode.
        message: String,
    },
    /// The connection failed or dropped (an `EventSource` does not say
    /// why: use the fetch transport to see refusals).
    #[error("the event stream connection failed")]
    Network,
    /// 401: no token, or a bad one. Not retried.
    #[error("the server wants a (valid) token: 401")]
    Unauthorized,
    /// 403: not this caller's stream or topic. Not retried.
    #[error("this stream is not the caller's: 403")]
    Forbidden,
    /// 429: a limit; the next try waits at least `retry_after_ms`.
    #[error("too many requests: 429 (retry after {retry_after_ms:?} ms)")]
    TooManyRequests {
        /// The server's `Retry-After`, in ms.
        retry_after_ms: Option<u64>,
    },
    /// 503: the server is unavailable for now.
    #[error("the server is unavailable: 503")]
    Unavailable,
    /// Another refusal.
    #[error("the server refused the stream: {0}")]
    Status(u16),
    /// The connection did not open within the configured timeout.
    #[error("the connection did not open in time")]
    Timeout,
    /// No heartbeat for `missed_heartbeats_limit` intervals.
    #[error("the server fell silent: heartbeats missed")]
    HeartbeatLost,
    /// A 200 whose body is not `text/event-stream` (a proxy's page, a
    /// wrong route). Retried.
    #[error("the response is not an event stream")]
    NotAStream,
    /// The browser would not make the request (e.g. a malformed URL). Not
    /// retried.
    #[error("could not open a stream for {0:?}")]
    Open(String),
    /// The server refused to put the stream on a topic
    /// ([`SSEClient::subscribe`]): not the caller's, or not a valid name.
    /// The topic is not held.
    #[error("topic refused ({status}): {message}")]
    TopicRefused {
        /// The HTTP status (400, 401, 403).
        status: u16,
        /// The server's error.
        message: String,
    },
}

impl From<Failure> for SseError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Network => SseError::Network,
            Failure::Unauthorized => SseError::Unauthorized,
            Failure::Forbidden => SseError::Forbidden,
            Failure::TooManyRequests { retry_after_ms } => {
                SseError::TooManyRequests { retry_after_ms }
            }
            Failure::Unavailable => SseError::Unavailable,
            Failure::Status(s) => SseError::Status(s),
            Failure::Timeout => SseError::Timeout,
            Failure::HeartbeatLost => SseError::HeartbeatLost,
            Failure::NotAStream => SseError::NotAStream,
            // The client reports it with the URL it could not open.
            Failure::Invalid => SseError::Open(String::new()),
        }
    }
}

type Callback<T> = Rc<dyn Fn(&T)>;

#[derive(Default)]
struct Handlers {
    next_id: u64,
    named: HashMap<String, Vec<(u64, Callback<SseMessage>)>>,
    state: Vec<(u64, Callback<SseState>)>,
    error: Vec<(u64, Callback<(SseError, u32)>)>,
    retry: Vec<(u64, Callback<Retry>)>,
}

/// A scheduled reconnect, as `on_retry` handlers receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Failed attempts so far (1 for the first retry).
    pub attempt: u32,
    /// When the next attempt starts.
    pub delay_ms: u64,
}

enum Slot {
    Named(String),
    State,
    Error,
    Retry,
}

pub(crate) struct Inner {
    config: SseConfig,
    machine: Machine,
    handlers: Handlers,
    /// Topics this client holds on top of its URL's ([`SSEClient::subscribe`]).
    topics: BTreeSet<String>,
    /// The current connection's client id and secret (from `connected`):
    /// what adding a topic to the open stream takes.
    identity: Option<(String, String)>,
    /// Counts connections: a callback of an older one is ignored.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    generation: u64,
    #[cfg(target_arch = "wasm32")]
    browser: Option<browser::Browser>,
}

/// A managed stream connection. Cheap to clone; clones share one
/// connection, which closes when the last clone is dropped. Not `Send`:
/// it lives on the browser's one thread.
///
/// ```
/// use herald_client::{SSEClient, SseConfig, SseState};
/// use herald_shared::events::Notification;
///
/// let client = SSEClient::new(SseConfig::new("/_sse/connect?topics=news").debug(true));
/// client.on::<Notification>(|n| println!("{}", n.message));
/// client.on_state_change(|s| println!("now {}", s.as_str()));
/// assert_eq!(client.state(), SseState::Disconnected);
/// client.connect();
/// ```
#[derive(Clone)]
pub struct SSEClient {
    inner: Rc<RefCell<Inner>>,
}

/// A registered handler: it stays for the client's lifetime unless
/// [`Handle::unsubscribe`] removes it. Dropping the handle keeps the
/// handler, so `let _ = client.on(..)` and a bare `client.on(..);` both
/// register for good; a component that goes away before its client keeps
/// the handle and unsubscribes (the hooks do).
///
/// ```
/// use herald_client::{SSEClient, SseConfig};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// let _ = client.on_named("alert", |m| println!("{}", m.data)); // kept
/// let handle = client.on_named("progress", |m| println!("{}", m.data));
/// // ... later, when the component goes away:
/// handle.unsubscribe();
/// ```
pub struct Handle {
    inner: Weak<RefCell<Inner>>,
    slot: Slot,
    id: u64,
}

impl Handle {
    /// Removes the handler. From inside a callback of the same client it
    /// is removed right after that callback returns.
    pub fn unsubscribe(self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let remove = move |inner: &mut Inner| {
            let id = self.id;
            match &self.slot {
                Slot::Named(name) => {
                    if let Some(list) = inner.handlers.named.get_mut(name) {
                        list.retain(|(i, _)| *i != id);
                    }
                }
                Slot::State => inner.handlers.state.retain(|(i, _)| *i != id),
                Slot::Error => inner.handlers.error.retain(|(i, _)| *i != id),
                Slot::Retry => inner.handlers.retry.retain(|(i, _)| *i != id),
            }
        };
        // Handlers run with no borrow held, so this borrow succeeds even
        // from inside one.
        let borrowed = inner.try_borrow_mut();
        if let Ok(mut inner) = borrowed {
            remove(&mut inner);
        }
    }

    /// Keeps the handler for as long as the client lives: what dropping the
    /// handle does too (kept for code that says so).
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on_message(|m| println!("{}", m.data)).forget();
    /// ```
    pub fn forget(self) {}
}

/// A handle on a client that does not keep it alive: for a handler that
/// needs its own client (holding an [`SSEClient`] there would be a cycle,
/// and the client would never be dropped).
///
/// ```
/// use herald_client::{SSEClient, SseConfig};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// let weak = client.downgrade();
/// client.on_named("bye", move |_| {
///     if let Some(client) = weak.upgrade() {
///         client.disconnect();
///     }
/// }).forget();
/// ```
#[derive(Clone)]
pub struct WeakClient(Weak<RefCell<Inner>>);

impl WeakClient {
    /// The client, while some [`SSEClient`] clone still holds it.
    pub fn upgrade(&self) -> Option<SSEClient> {
        self.0.upgrade().map(|inner| SSEClient { inner })
    }
}

/// Event names every connection listens to, for liveness and resume.
const BUILTIN: [&str; 3] = ["connected", "heartbeat", "message"];

/// The server's own event names: they show the connection is alive, not
/// that it delivers (see the machine's retry accounting).
const LIFECYCLE: [&str; 4] = ["connected", "heartbeat", "ping", "reset"];

/// The handler name that receives every event. With the `EventSource`
/// transport that is every event whose name some handler (or the runtime)
/// listens to: an `EventSource` delivers only the names it was asked for.
/// The fetch transport sees them all.
///
/// ```
/// use herald_client::{SSEClient, SseConfig, ANY_EVENT};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// client.on_named(ANY_EVENT, |m| println!("{}: {}", m.event, m.data)).forget();
/// ```
pub const ANY_EVENT: &str = "*";

impl SSEClient {
    /// A disconnected client; call [`SSEClient::connect`].
    pub fn new(config: SseConfig) -> Self {
        let mut machine = Machine::new(config.settings(), seed());
        machine.set_last_event_id(config.last_event_id.clone());
        SSEClient {
            inner: Rc::new(RefCell::new(Inner {
                config,
                machine,
                handlers: Handlers::default(),
                topics: BTreeSet::new(),
                identity: None,
                generation: 0,
                #[cfg(target_arch = "wasm32")]
                browser: None,
            })),
        }
    }

    /// Opens the stream (again, after `disconnect` or `Error`). In a browser
    /// it opens a connection; elsewhere it only changes the state.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig, SseState};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.connect();
    /// assert_eq!(client.state(), SseState::Connecting);
    /// client.disconnect();
    /// assert_eq!(client.state(), SseState::Disconnected);
    /// client.reconnect();
    /// assert_eq!((client.state(), client.attempt(), client.next_delay_ms()), (SseState::Connecting, 0, None));
    /// ```
    pub fn connect(&self) {
        self.drive(|m, now| m.connect(now));
    }

    /// Closes the stream on purpose: no reconnect until `connect`.
    pub fn disconnect(&self) {
        self.drive(|m, now| m.disconnect(now));
    }

    /// A [`WeakClient`] for handlers that need this client.
    pub fn downgrade(&self) -> WeakClient {
        WeakClient(Rc::downgrade(&self.inner))
    }

    /// Closes and reopens now, with a fresh retry count.
    pub fn reconnect(&self) {
        self.drive(|m, now| m.reconnect(now));
    }

    /// Where the connection is now.
    pub fn state(&self) -> SseState {
        self.inner.borrow().machine.state()
    }

    /// Whether the stream is open (GoSPA's `isConnected`).
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// assert!(!client.is_connected());
    /// ```
    pub fn is_connected(&self) -> bool {
        self.state() == SseState::Connected
    }

    /// Failed attempts since the connection was last healthy.
    pub fn attempt(&self) -> u32 {
        self.inner.borrow().machine.attempt()
    }

    /// The delay before the pending retry, if one is scheduled.
    pub fn next_delay_ms(&self) -> Option<u64> {
        self.inner.borrow().machine.next_delay_ms()
    }

    /// The id the next connection resumes from.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect").last_event_id("0000abcd-41"));
    /// assert_eq!(client.last_event_id().as_deref(), Some("0000abcd-41"));
    /// ```
    pub fn last_event_id(&self) -> Option<String> {
        self.inner
            .borrow()
            .machine
            .last_event_id()
            .map(str::to_owned)
    }

    /// A copy of the client's settings.
    pub fn config(&self) -> SseConfig {
        self.inner.borrow().config.clone()
    }

    /// Changes the settings in place (retries, delays, heartbeat, debug, ...);
    /// they apply from the next decision on, and the URL, transport and
    /// headers from the next connect.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.configure(|c| {
    ///     c.max_retries = 2;
    ///     c.debug = true;
    /// });
    /// assert_eq!(client.config().max_retries, 2);
    /// ```
    pub fn configure(&self, change: impl FnOnce(&mut SseConfig)) {
        let mut inner = self.inner.borrow_mut();
        change(&mut inner.config);
        let settings = inner.config.settings();
        inner.machine.set_settings(settings);
    }

    /// Changes the URL; it takes effect on the next (re)connect.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.set_url("/_sse/connect?topics=news");
    /// assert_eq!(client.config().url, "/_sse/connect?topics=news");
    /// ```
    pub fn set_url(&self, url: impl Into<String>) {
        self.inner.borrow_mut().config.url = url.into();
    }

    /// Holds `topics` on this client's stream: added to the open stream now
    /// (when it is open) and put on every later connection from its start,
    /// resumed from the last event id, however it reconnects. Topics it
    /// already holds, or its URL names, are left as they are. A topic the
    /// server refuses (not the caller's to read, not a valid name) is
    /// dropped again and reported to the `on_error` handlers
    /// ([`SseError::TopicRefused`]); [`subscribe_now`](Self::subscribe_now)
    /// awaits the answer instead.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect?topics=news"));
    /// client.subscribe(&["room:blue", "news"]);
    /// assert_eq!(client.topics(), ["room:blue"]);
    /// assert_eq!(client.stream_url(), "/_sse/connect?topics=news,room%3Ablue");
    /// client.unsubscribe(&["room:blue"]);
    /// assert!(client.topics().is_empty());
    /// ```
    pub fn subscribe<T: AsRef<str>>(&self, topics: &[T]) {
        let change = self.hold(topics, true);
        self.spawn_change(change);
    }

    /// Stops holding `topics` (those it held): taken off the open stream
    /// now, and off later connections.
    pub fn unsubscribe<T: AsRef<str>>(&self, topics: &[T]) {
        let change = self.hold(topics, false);
        self.spawn_change(change);
    }

    /// [`subscribe`](Self::subscribe), awaited: the topics the open stream
    /// is on now (all of them, as the server says; the client's own view
    /// when no stream is open), or the server's refusal (the topics are
    /// then not held).
    pub async fn subscribe_now<T: AsRef<str>>(
        &self,
        topics: &[T],
    ) -> Result<Vec<String>, SseError> {
        let change = self.hold(topics, true);
        self.tell_server(change).await
    }

    /// [`unsubscribe`](Self::unsubscribe), awaited (see
    /// [`subscribe_now`](Self::subscribe_now)).
    pub async fn unsubscribe_now<T: AsRef<str>>(
        &self,
        topics: &[T],
    ) -> Result<Vec<String>, SseError> {
        let change = self.hold(topics, false);
        self.tell_server(change).await
    }

    /// The topics this client holds on top of its URL's, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.inner.borrow().topics.iter().cloned().collect()
    }

    /// The URL the next connection opens (before its resume point): the
    /// configured one, with the topics the client holds added to its
    /// `topics=`.
    pub fn stream_url(&self) -> String {
        self.inner.borrow().stream_url()
    }

    /// Records `topics` as held (`on`) or not; what changed.
    fn hold<T: AsRef<str>>(&self, topics: &[T], on: bool) -> TopicChange {
        let mut inner = self.inner.borrow_mut();
        let own = url_topics(&inner.config.url);
        let changed = topics
            .iter()
            .map(|t| t.as_ref())
            .filter(|t| {
                if on {
                    !own.iter().any(|o| o == t) && inner.topics.insert((*t).to_owned())
                } else {
                    inner.topics.remove(*t)
                }
            })
            .map(str::to_owned)
            .collect();
        TopicChange {
            subscribe: on,
            topics: changed,
        }
    }

    /// [`tell_server`](Self::tell_server) in the background; a refusal goes
    /// to the `on_error` handlers.
    fn spawn_change(&self, change: TopicChange) {
        #[cfg(target_arch = "wasm32")]
        {
            let client = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = client.tell_server(change).await {
                    let attempt = client.attempt();
                    client.report(e, attempt);
                }
            });
        }
        #[cfg(not(target_arch = "wasm32"))]
        let _ = change;
    }

    /// Tells the open stream's server about a change of topics (the
    /// connection's secret proves it is ours). With no stream open the
    /// next connection's URL carries them. A refused subscription is not
    /// held.
    async fn tell_server(&self, change: TopicChange) -> Result<Vec<String>, SseError> {
        let identity = self.inner.borrow().identity.clone();
        let (Some((client_id, secret)), false) = (identity, change.topics.is_empty()) else {
            return Ok(self.held_now());
        };
        let action = if change.subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let url = sibling_route(&self.inner.borrow().config.url, action);
        let body =
            serde_json::json!({ "clientId": client_id, "topics": change.topics, "secret": secret });
        let answer = crate::http::post_json(&url, body.to_string()).await;
        match answer.status {
            200..=299 => Ok(serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| serde_json::from_value(v["held"].clone()).ok())
                .unwrap_or_else(|| self.held_now())),
            // The connection is gone (or the request never left): the next
            // one's URL carries the topics.
            0 | 404 => Ok(self.held_now()),
            status => {
                if change.subscribe {
                    let mut inner = self.inner.borrow_mut();
                    for t in &change.topics {
                        inner.topics.remove(t);
                    }
                }
                Err(SseError::TopicRefused {
                    status,
                    message: answer.error_message(),
                })
            }
        }
    }

    /// The topics the stream would be on, as far as this client knows.
    fn held_now(&self) -> Vec<String> {
        let inner = self.inner.borrow();
        let mut all = url_topics(&inner.config.url);
        all.extend(inner.topics.iter().cloned());
        all
    }

    /// Runs `handler` for every event named `name`, any name at all
    /// (including `connected`, `alert`, `progress`, `reset`); `"*"` for
    /// every event whatever its name. Its data comes parsed as JSON in
    /// [`SseMessage::value`] (the text itself when it is not JSON).
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on_named("update", |m| println!("{} = {}", m.value["key"], m.value["value"])).forget();
    /// client.on_named("*", |m| println!("any: {}", m.event)).forget();
    /// ```
    pub fn on_named(&self, name: &str, handler: impl Fn(&SseMessage) + 'static) -> Handle {
        let handle = self.add(
            Slot::Named(name.to_owned()),
            |h| h.named.entry(name.to_owned()).or_default(),
            Rc::new(handler),
        );
        // A name first seen while a source is open needs its listener now.
        #[cfg(target_arch = "wasm32")]
        if let Some(b) = &mut self.inner.borrow_mut().browser {
            b.listen(name);
        }
        handle
    }

    /// Runs `handler` for unnamed events (`EventSource.onmessage`).
    pub fn on_message(&self, handler: impl Fn(&SseMessage) + 'static) -> Handle {
        self.on_named("message", handler)
    }

    /// Runs `handler` with each `T` event, decoded with the shared type. A
    /// payload that does not decode goes to the `on_error` handlers.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// use herald_shared::events::{Alert, Progress};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on::<Alert>(|a| println!("{:?}: {}", a.level, a.message)).forget();
    /// let _progress = client.on::<Progress>(|p| println!("{}%", p.progress));
    /// ```
    pub fn on<T: SseEvent + 'static>(&self, handler: impl Fn(T) + 'static) -> Handle {
        let weak = Rc::downgrade(&self.inner);
        self.on_named(T::NAME, move |msg| match T::from_data(&msg.data) {
            Ok(value) => handler(value),
            Err(e) => {
                if let Some(inner) = weak.upgrade() {
                    let client = SSEClient { inner };
                    let attempt = client.attempt();
                    client.report(
                        SseError::Decode {
                            event: msg.event.clone(),
                            message: e.to_string(),
                        },
                        attempt,
                    );
                }
            }
        })
    }

    /// Runs `handler` on every state transition, once each, in order.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on_state_change(|s| println!("connection is {}", s.as_str())).forget();
    /// ```
    pub fn on_state_change(&self, handler: impl Fn(&SseState) + 'static) -> Handle {
        self.add(Slot::State, |h| &mut h.state, Rc::new(handler))
    }

    /// Runs `handler` each time a reconnect is scheduled (the state stays
    /// `Connecting` while retrying, so this is how to show the countdown).
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on_retry(|r| println!("attempt {} failed, retrying in {} ms", r.attempt, r.delay_ms)).forget();
    /// ```
    pub fn on_retry(&self, handler: impl Fn(&Retry) + 'static) -> Handle {
        self.add(Slot::Retry, |h| &mut h.retry, Rc::new(handler))
    }

    /// Runs `handler` with every failure (and each event a typed handler
    /// could not decode), and the attempt it happened on (GoSPA's
    /// `onError((error, attempt) => ...)`).
    pub fn on_error(&self, handler: impl Fn(&SseError, u32) + 'static) -> Handle {
        let wrapped = move |(error, attempt): &(SseError, u32)| handler(error, *attempt);
        self.add(Slot::Error, |h| &mut h.error, Rc::new(wrapped))
    }

    #[cfg(test)]
    pub(crate) fn inner_rc(&self) -> Rc<RefCell<Inner>> {
        self.inner.clone()
    }

    /// Registers a handler in one of the lists.
    fn add<T>(
        &self,
        slot: Slot,
        list: impl FnOnce(&mut Handlers) -> &mut Vec<(u64, Callback<T>)>,
        handler: Callback<T>,
    ) -> Handle {
        let id = {
            let mut inner = self.inner.borrow_mut();
            let id = inner.next_handler_id();
            list(&mut inner.handlers).push((id, handler));
            id
        };
        Handle {
            inner: Rc::downgrade(&self.inner),
            slot,
            id,
        }
    }

    /// Calls every handler of a list. The list is copied first and no borrow
    /// is held during the calls, so handlers may use the client freely.
    fn emit<T>(&self, list: impl FnOnce(&Handlers) -> &Vec<(u64, Callback<T>)>, value: &T) {
        let handlers: Vec<Callback<T>> = list(&self.inner.borrow().handlers)
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        for h in handlers {
            h(value);
        }
    }

    /// Feeds the machine, then carries out its actions. No borrow is held
    /// while user callbacks run, so they may call back into the client.
    fn drive(&self, step: impl FnOnce(&mut Machine, u64) -> Vec<Action>) {
        let actions = {
            let mut inner = self.inner.borrow_mut();
            let now = now_ms();
            step(&mut inner.machine, now)
        };
        self.apply(actions);
    }

    fn apply(&self, actions: Vec<Action>) {
        for action in actions {
            self.debug(&format!("{action:?}"));
            match action {
                Action::Open { last_event_id } => self.open(last_event_id.as_deref()),
                Action::Close => self.close_source(),
                Action::Failed {
                    failure: Failure::Invalid,
                    attempt,
                } => self.report(SseError::Open(self.stream_url()), attempt),
                Action::Failed { failure, attempt } => self.report(failure.into(), attempt),
                Action::RetryScheduled { attempt, delay_ms } => {
                    self.emit(|h| &h.retry, &Retry { attempt, delay_ms })
                }
                Action::State(state) => self.emit(|h| &h.state, &state),
            }
        }
        self.arm_timer();
    }

    fn report(&self, error: SseError, attempt: u32) {
        self.debug(&format!("error (attempt {attempt}): {error}"));
        self.emit(|h| &h.error, &(error, attempt));
    }

    /// An event arrived on the current connection.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn received(&self, msg: SseMessage) {
        let mut missing = Vec::new();
        let handlers: Vec<_> = {
            let mut inner = self.inner.borrow_mut();
            let now = now_ms();
            let lifecycle = LIFECYCLE.contains(&msg.event.as_str());
            inner
                .machine
                .event(now, Some(&msg.last_event_id), lifecycle);
            if msg.event == Connected::NAME {
                if let Ok(c) = Connected::from_data(&msg.data) {
                    if let Some(ms) = c.retry {
                        inner.machine.retry_hint(ms);
                    }
                    if let Some(beat) = c.heartbeat {
                        // What this connection can see of the heartbeats,
                        // and how often they come.
                        let visible = beat.visible || inner.sees_comments();
                        inner.machine.server_heartbeats(visible, beat.interval_ms);
                    }
                    inner.identity = c.secret.clone().map(|s| (c.client_id.clone(), s));
                    // Held topics this connection did not start with (the
                    // URL was made before they were added).
                    missing = inner
                        .topics
                        .iter()
                        .filter(|t| !c.topics.contains(t))
                        .cloned()
                        .collect();
                }
            }
            let named = inner.handlers.named.get(&msg.event).into_iter().flatten();
            let any = inner.handlers.named.get(ANY_EVENT).into_iter().flatten();
            named.chain(any).map(|(_, h)| h.clone()).collect()
        };
        self.debug(&format!(
            "event {:?} id={:?} {}",
            msg.event, msg.last_event_id, msg.data
        ));
        self.spawn_change(TopicChange {
            subscribe: true,
            topics: missing,
        });
        self.arm_timer();
        for h in handlers {
            h(&msg);
        }
    }

    fn debug(&self, _line: &str) {
        #[cfg(target_arch = "wasm32")]
        if self.inner.borrow().config.debug {
            web_sys::console::log_1(&format!("[herald] {_line}").into());
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn open(&self, _last_event_id: Option<&str>) {}
    #[cfg(not(target_arch = "wasm32"))]
    fn close_source(&self) {}
    #[cfg(not(target_arch = "wasm32"))]
    fn arm_timer(&self) {}
}

impl Inner {
    /// The configured URL with the held topics added to its `topics=`.
    fn stream_url(&self) -> String {
        if self.topics.is_empty() {
            return self.config.url.clone();
        }
        let own = url_topics(&self.config.url);
        let all: Vec<String> = own
            .iter()
            .map(|t| encode_component(t))
            .chain(
                self.topics
                    .iter()
                    .filter(|t| !own.contains(t))
                    .map(|t| encode_component(t)),
            )
            .collect();
        let topics = format!("topics={}", all.join(","));
        with_param(&self.config.url, "topics", Some(&topics))
    }

    fn next_handler_id(&mut self) -> u64 {
        self.handlers.next_id += 1;
        self.handlers.next_id
    }

    /// Every event name some handler (or the runtime itself) wants.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn wanted_names(&self) -> HashSet<String> {
        self.handlers
            .named
            .keys()
            .filter(|n| *n != ANY_EVENT)
            .cloned()
            .chain(BUILTIN.iter().map(|s| (*s).to_owned()))
            .collect()
    }

    /// Whether this client's transport shows comment lines (heartbeats
    /// written as comments): `fetch` does, `EventSource` never.
    fn sees_comments(&self) -> bool {
        self.config.effective_transport() == crate::config::Transport::Fetch
    }
}

#[cfg(target_arch = "wasm32")]
fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn seed() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Math::random() * (u64::MAX as f64)) as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        now_ms() ^ 0x9E37_79B9_7F4A_7C15
    }
}

#[cfg(target_arch = "wasm32")]
mod browser;

/// The topics a stream URL names in `topics=` (comma-separated, decoded).
fn url_topics(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|p| p.strip_prefix("topics="))
        .flat_map(|list| list.split(','))
        .map(decode_component)
        .filter(|t| !t.is_empty())
        .collect()
}

/// `%XX` escapes decoded (malformed ones kept as written).
fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/_sse/connect?x=1` → `/_sse/subscribe`: the management routes sit next
/// to the broker's stream route; any other stream (an app's, such as
/// `/chat/stream`) is a broker connection too, managed at its origin's
/// `/_sse/` routes.
pub(crate) fn sibling_route(stream_url: &str, action: &str) -> String {
    let path = stream_url.split('?').next().unwrap_or(stream_url);
    if let Some(dir) = path.strip_suffix("/connect") {
        return format!("{dir}/{action}");
    }
    let origin = path
        .find("://")
        .and_then(|scheme| {
            path[scheme + 3..]
                .find('/')
                .map(|i| &path[..scheme + 3 + i])
        })
        .unwrap_or(if path.contains("://") { path } else { "" });
    format!("{origin}/_sse/{action}")
}

/// Topics to add to or take off the open stream.
struct TopicChange {
    subscribe: bool,
    topics: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_routes_sit_next_to_the_broker_stream_or_at_the_origin() {
        assert_eq!(
            sibling_route("/_sse/connect?topics=a", "subscribe"),
            "/_sse/subscribe"
        );
        assert_eq!(
            sibling_route("http://h:1/app/_sse/connect", "unsubscribe"),
            "http://h:1/app/_sse/unsubscribe"
        );
        assert_eq!(
            sibling_route("/chat/stream?room=a", "subscribe"),
            "/_sse/subscribe"
        );
        assert_eq!(
            sibling_route("https://push.example:8443/chat/stream", "subscribe"),
            "https://push.example:8443/_sse/subscribe"
        );
    }

    #[test]
    fn held_topics_join_the_urls_own() {
        let client = SSEClient::new(SseConfig::new("/s?topics=a,b%3Ac&x=1"));
        assert_eq!(url_topics(&client.config().url), ["a", "b:c"]);
        client.subscribe(&["b:c", "d"]);
        assert_eq!(client.topics(), ["d"]);
        assert_eq!(client.stream_url(), "/s?x=1&topics=a,b%3Ac,d");
        client.unsubscribe(&["d", "never-held"]);
        assert_eq!(client.stream_url(), "/s?topics=a,b%3Ac&x=1");
    }
}
