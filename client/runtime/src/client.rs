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
//! Outside a browser (server-side rendering, native tests) nothing is opened:
//! the client stays `Connecting` after `connect()`, and components render.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};

use herald_shared::events::{Connected, SseEvent};
use thiserror::Error;

use crate::config::SseConfig;
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
    Decode { event: String, message: String },
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
    TooManyRequests { retry_after_ms: Option<u64> },
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
    /// The browser refused to start the request (e.g. a malformed URL).
    #[error("could not open a stream for {0:?}")]
    Open(String),
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
/// client.on::<Notification>(|n| println!("{}", n.message)).forget();
/// let _state = client.on_state_change(|s| println!("now {}", s.as_str()));
/// assert_eq!(client.state(), SseState::Disconnected);
/// client.connect();
/// ```
#[derive(Clone)]
pub struct SSEClient {
    inner: Rc<RefCell<Inner>>,
}

/// Keeps a handler registered. Dropping it (or calling
/// [`Handle::unsubscribe`]) removes the handler; [`Handle::forget`] keeps it
/// for the client's lifetime.
///
/// ```
/// use herald_client::{SSEClient, SseConfig};
/// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
/// let handle = client.on_named("progress", |m| println!("{}", m.data));
/// // ... later, when the component goes away:
/// handle.unsubscribe();
/// ```
#[must_use = "dropping a Handle removes its handler at once; call .forget() to keep it"]
pub struct Handle {
    inner: Weak<RefCell<Inner>>,
    slot: Option<Slot>,
    id: u64,
}

impl Handle {
    /// Removes the handler now (the same as dropping the handle).
    pub fn unsubscribe(self) {}

    /// Keeps the handler for as long as the client lives.
    ///
    /// ```
    /// use herald_client::{SSEClient, SseConfig};
    /// let client = SSEClient::new(SseConfig::new("/_sse/connect"));
    /// client.on_message(|m| println!("{}", m.data)).forget();
    /// ```
    pub fn forget(mut self) {
        self.slot = None;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (Some(slot), Some(inner)) = (self.slot.take(), self.inner.upgrade()) else {
            return;
        };
        let Ok(mut inner) = inner.try_borrow_mut() else {
            return; // dropped from inside a callback of the same client: keep it
        };
        let id = self.id;
        match slot {
            Slot::Named(name) => {
                if let Some(list) = inner.handlers.named.get_mut(&name) {
                    list.retain(|(i, _)| *i != id);
                }
            }
            Slot::State => inner.handlers.state.retain(|(i, _)| *i != id),
            Slot::Error => inner.handlers.error.retain(|(i, _)| *i != id),
            Slot::Retry => inner.handlers.retry.retain(|(i, _)| *i != id),
        }
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

    /// Closes and reopens now, with a fresh retry count.
    pub fn reconnect(&self) {
        self.drive(|m, now| m.reconnect(now));
    }

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
            slot: Some(slot),
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
                        // What this connection can see of the heartbeats.
                        let visible =
                            beat.interval_ms > 0 && (beat.visible || inner.sees_comments());
                        inner.machine.server_heartbeats(visible);
                    }
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
        self.config.transport == crate::config::Transport::Fetch
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
mod browser {
    //! The only code that touches web-sys.

    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::rc::Weak;

    use herald_shared::wire::{Frame, Parser};
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        AbortController, EventSource, EventSourceInit, Headers, MessageEvent,
        ReadableStreamDefaultReader, RequestCredentials, RequestInit, Response,
    };

    use super::{Inner, SSEClient, SseError, SseMessage};
    use crate::config::Transport;
    use crate::runtime::machine::Failure;

    /// The connection and its JS callbacks. The callbacks are created once
    /// per client and shared by every `EventSource` it opens: none is ever
    /// dropped while one might still call it. Dropped with the client:
    /// then the connection is closed and the timer cleared first.
    pub(super) struct Browser {
        source: Option<EventSource>,
        listening: HashSet<String>,
        /// The fetch transport's request, aborted to close it.
        fetch: Option<AbortController>,
        timer: Option<i32>,
        on_open: Closure<dyn FnMut()>,
        on_error: Closure<dyn FnMut()>,
        on_event: Closure<dyn FnMut(MessageEvent)>,
        on_timer: Closure<dyn FnMut()>,
    }

    impl Drop for Browser {
        fn drop(&mut self) {
            self.close();
            if let (Some(id), Some(window)) = (self.timer.take(), web_sys::window()) {
                window.clear_timeout_with_handle(id);
            }
        }
    }

    fn with_client(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(SSEClient)) {
        if let Some(inner) = weak.upgrade() {
            f(SSEClient { inner });
        }
    }

    impl Browser {
        pub(super) fn new(weak: Weak<RefCell<Inner>>) -> Self {
            let w = weak.clone();
            let on_open = Closure::<dyn FnMut()>::new(move || {
                with_client(&w, |c| c.drive(|m, now| m.opened(now)))
            });
            let w = weak.clone();
            let on_error = Closure::<dyn FnMut()>::new(move || {
                with_client(&w, |c| c.drive(|m, now| m.error(now, Failure::Network)))
            });
            let w = weak.clone();
            let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                with_client(&w, |c| {
                    let data = e.data().as_string().unwrap_or_default();
                    c.received(SseMessage::new(&e.type_(), &data, &e.last_event_id()))
                })
            });
            let w = weak;
            let on_timer = Closure::<dyn FnMut()>::new(move || {
                with_client(&w, |c| {
                    if let Some(b) = &mut c.inner.borrow_mut().browser {
                        b.timer = None;
                    }
                    c.drive(|m, now| m.wake(now));
                })
            });
            Browser {
                source: None,
                listening: HashSet::new(),
                fetch: None,
                timer: None,
                on_open,
                on_error,
                on_event,
                on_timer,
            }
        }

        pub(super) fn listen(&mut self, name: &str) {
            if let Some(es) = &self.source {
                if self.listening.insert(name.to_owned()) {
                    let _ = es.add_event_listener_with_callback(
                        name,
                        self.on_event.as_ref().unchecked_ref(),
                    );
                }
            }
        }

        fn close(&mut self) {
            if let Some(es) = self.source.take() {
                es.set_onopen(None);
                es.set_onerror(None);
                es.close();
            }
            if let Some(fetch) = self.fetch.take() {
                fetch.abort();
            }
        }
    }

    /// What one fetch needs, taken out of the client before awaiting.
    struct FetchPlan {
        url: String,
        init: RequestInit,
        last_event_id: Option<String>,
        generation: u64,
    }

    impl SSEClient {
        pub(super) fn open(&self, last_event_id: Option<&str>) {
            let transport = self.inner.borrow().config.transport;
            match transport {
                Transport::EventSource => self.open_event_source(last_event_id),
                Transport::Fetch => self.open_fetch(last_event_id),
            }
        }

        fn open_event_source(&self, last_event_id: Option<&str>) {
            let result = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                inner.generation += 1;
                let url = inner.config.url_for(last_event_id);
                let init = EventSourceInit::new();
                init.set_with_credentials(inner.config.with_credentials);
                let names = inner.wanted_names();
                let weak = std::rc::Rc::downgrade(&self.inner);
                let browser = inner.browser.get_or_insert_with(|| Browser::new(weak));
                browser.close();
                match EventSource::new_with_event_source_init_dict(&url, &init) {
                    Ok(es) => {
                        es.set_onopen(Some(browser.on_open.as_ref().unchecked_ref()));
                        es.set_onerror(Some(browser.on_error.as_ref().unchecked_ref()));
                        browser.source = Some(es);
                        browser.listening.clear();
                        for name in names {
                            browser.listen(&name);
                        }
                        Ok(())
                    }
                    Err(_) => Err(url),
                }
            };
            if let Err(url) = result {
                self.failed_to_open(url);
            }
        }

        /// The browser would not even start the request.
        fn failed_to_open(&self, url: String) {
            let attempt = self.attempt() + 1;
            self.report(SseError::Open(url), attempt);
            self.drive(|m, now| m.error(now, Failure::Network));
        }

        fn open_fetch(&self, last_event_id: Option<&str>) {
            let plan = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                inner.generation += 1;
                let weak = std::rc::Rc::downgrade(&self.inner);
                let browser = inner.browser.get_or_insert_with(|| Browser::new(weak));
                browser.close();
                let Ok(controller) = AbortController::new() else {
                    drop(guard);
                    let url = self.inner.borrow().config.url.clone();
                    return self.failed_to_open(url);
                };
                let init = RequestInit::new();
                init.set_method("GET");
                init.set_signal(Some(&controller.signal()));
                init.set_credentials(if inner.config.with_credentials {
                    RequestCredentials::Include
                } else {
                    RequestCredentials::SameOrigin
                });
                if let Ok(headers) = Headers::new() {
                    // Only headers a cross-origin request may send without
                    // the server's leave are added here (Accept is one).
                    let _ = headers.set("Accept", "text/event-stream");
                    for (k, v) in &inner.config.headers {
                        let _ = headers.set(k, v);
                    }
                    // fetch can send what an EventSource cannot: the
                    // resume point goes as the header.
                    if let Some(id) = last_event_id {
                        let _ = headers.set("Last-Event-ID", id);
                    }
                    init.set_headers(&headers);
                }
                browser.fetch = Some(controller);
                FetchPlan {
                    url: inner.config.url.clone(),
                    init,
                    last_event_id: last_event_id.map(str::to_owned),
                    generation: inner.generation,
                }
            };
            let weak = std::rc::Rc::downgrade(&self.inner);
            wasm_bindgen_futures::spawn_local(read_fetch(weak, plan));
        }

        pub(super) fn close_source(&self) {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            if let Some(b) = &mut inner.browser {
                b.close();
            }
        }

        pub(super) fn arm_timer(&self) {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let wake = inner.machine.next_wake();
            let Some(b) = &mut inner.browser else { return };
            let Some(window) = web_sys::window() else {
                return;
            };
            if let Some(id) = b.timer.take() {
                window.clear_timeout_with_handle(id);
            }
            if let Some(at) = wake {
                let delay = at.saturating_sub(super::now_ms()).min(i32::MAX as u64) as i32;
                b.timer = window
                    .set_timeout_with_callback_and_timeout_and_arguments_0(
                        b.on_timer.as_ref().unchecked_ref(),
                        delay,
                    )
                    .ok();
            }
        }
    }

    /// Runs `f` with the client if it still exists and `generation` is
    /// still its current connection (a closed one's news is stale).
    fn current(weak: &Weak<RefCell<Inner>>, generation: u64, f: impl FnOnce(SSEClient)) -> bool {
        let Some(inner) = weak.upgrade() else {
            return false;
        };
        if inner.borrow().generation != generation {
            return false;
        }
        f(SSEClient { inner });
        true
    }

    /// The fetch transport: one request, its status, then its body parsed
    /// as it streams in.
    async fn read_fetch(weak: Weak<RefCell<Inner>>, plan: FetchPlan) {
        let FetchPlan {
            url,
            init,
            last_event_id,
            generation,
        } = plan;
        let Some(window) = web_sys::window() else {
            return;
        };
        let fail = |failure: Failure| {
            current(&weak, generation, |c| {
                c.drive(|m, now| m.error(now, failure))
            });
        };
        let response = match JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await {
            Ok(r) => r,
            Err(_) => return fail(Failure::Network),
        };
        let Ok(response) = response.dyn_into::<Response>() else {
            return fail(Failure::Network);
        };
        let status = response.status();
        if status == 204 {
            // Nothing more to say: done, not an error.
            current(&weak, generation, |c| c.drive(|m, now| m.done(now)));
            return;
        }
        if let Some(failure) = Failure::from_status(status, retry_after_ms(&response)) {
            return fail(failure);
        }
        let Some(reader) = response.body().and_then(|b| {
            b.get_reader()
                .dyn_into::<ReadableStreamDefaultReader>()
                .ok()
        }) else {
            return fail(Failure::Network);
        };
        if !current(&weak, generation, |c| c.drive(|m, now| m.opened(now))) {
            let _ = reader.cancel();
            return;
        }
        let mut parser = match &last_event_id {
            Some(id) => Parser::with_last_event_id(id.clone()),
            None => Parser::new(),
        };
        loop {
            let chunk = match JsFuture::from(reader.read()).await {
                Ok(chunk) => chunk,
                // Aborted (closed by us) or dropped by the network.
                Err(_) => return fail(Failure::Network),
            };
            let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
                .map(|d| d.is_truthy())
                .unwrap_or(true);
            if done {
                // The server ended the stream: reconnect and resume.
                return fail(Failure::Network);
            }
            let Ok(bytes) = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")) else {
                return fail(Failure::Network);
            };
            let bytes = js_sys::Uint8Array::new(&bytes).to_vec();
            let mut frames = Vec::new();
            parser.feed(&bytes, |f| frames.push(f));
            let still = current(&weak, generation, |c| {
                for frame in frames {
                    match frame {
                        Frame::Event(e) => {
                            c.received(SseMessage::new(&e.event, &e.data, &e.last_event_id))
                        }
                        Frame::Retry(ms) => c.inner.borrow_mut().machine.retry_hint(ms),
                        Frame::Comment(_) => {
                            c.inner.borrow_mut().machine.activity(super::now_ms());
                            c.arm_timer();
                        }
                    }
                }
            });
            if !still {
                let _ = reader.cancel();
                return;
            }
        }
    }

    /// `Retry-After` in milliseconds (the seconds form).
    fn retry_after_ms(response: &Response) -> Option<u64> {
        let value = response.headers().get("retry-after").ok()??;
        value.trim().parse::<u64>().ok().map(|s| s * 1000)
    }
}
