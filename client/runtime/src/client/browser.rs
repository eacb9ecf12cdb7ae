//! The only code that touches web-sys: the browser half of [`SSEClient`].
//!
//! Both transports end the same way for the same server answer: the
//! fetch transport sees the status itself; an `EventSource` that fails
//! before it opens hides it, so the same URL is asked once more with
//! `fetch` (a probe, aborted as soon as its status is known) and the
//! machine hears the status, not just "the network failed". The page's
//! `online` and `visibilitychange` events nudge a waiting retry.

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

use super::{Inner, SSEClient, SseMessage};
use crate::config::{with_param, with_resume, Transport};
use crate::runtime::machine::Failure;

/// The connection and its JS callbacks. The callbacks are created once
/// per client and shared by every `EventSource` it opens: none is ever
/// dropped while one might still call it. Dropped with the client:
/// then the connection is closed, the timer cleared and the page's
/// listeners removed first.
pub(super) struct Browser {
    source: Option<EventSource>,
    /// The current `EventSource` has opened (an error before that is
    /// probed for its status).
    opened: bool,
    listening: HashSet<String>,
    /// The fetch transport's request (or an `EventSource`'s probe),
    /// aborted to close it.
    fetch: Option<AbortController>,
    timer: Option<i32>,
    on_open: Closure<dyn FnMut()>,
    on_error: Closure<dyn FnMut()>,
    on_event: Closure<dyn FnMut(MessageEvent)>,
    on_timer: Closure<dyn FnMut()>,
    /// `online` on the window, `visibilitychange` on the document.
    on_back: Closure<dyn FnMut()>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.close();
        if let Some(window) = web_sys::window() {
            if let Some(id) = self.timer.take() {
                window.clear_timeout_with_handle(id);
            }
            let back = self.on_back.as_ref().unchecked_ref();
            let _ = window.remove_event_listener_with_callback("online", back);
            if let Some(document) = window.document() {
                let _ = document.remove_event_listener_with_callback("visibilitychange", back);
            }
        }
    }
}

fn with_client(weak: &Weak<RefCell<Inner>>, f: impl FnOnce(SSEClient)) {
    if let Some(inner) = weak.upgrade() {
        f(SSEClient { inner });
    }
}

/// Whether the page is shown (a hidden tab's `visibilitychange` is no
/// reason to hurry).
fn page_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
}

impl Browser {
    pub(super) fn new(weak: Weak<RefCell<Inner>>) -> Self {
        let w = weak.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            with_client(&w, |c| {
                if let Some(b) = &mut c.inner.borrow_mut().browser {
                    b.opened = true;
                }
                c.drive(|m, now| m.opened(now))
            })
        });
        let w = weak.clone();
        let on_error = Closure::<dyn FnMut()>::new(move || with_client(&w, |c| c.source_failed()));
        let w = weak.clone();
        let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            with_client(&w, |c| {
                let data = e.data().as_string().unwrap_or_default();
                c.received(SseMessage::new(&e.type_(), &data, &e.last_event_id()))
            })
        });
        let w = weak.clone();
        let on_timer = Closure::<dyn FnMut()>::new(move || {
            with_client(&w, |c| {
                if let Some(b) = &mut c.inner.borrow_mut().browser {
                    b.timer = None;
                }
                c.drive(|m, now| m.wake(now));
            })
        });
        let w = weak;
        let on_back = Closure::<dyn FnMut()>::new(move || {
            if page_visible() {
                with_client(&w, |c| c.drive(|m, now| m.nudge(now)));
            }
        });
        if let Some(window) = web_sys::window() {
            let back = on_back.as_ref().unchecked_ref();
            let _ = window.add_event_listener_with_callback("online", back);
            if let Some(document) = window.document() {
                let _ = document.add_event_listener_with_callback("visibilitychange", back);
            }
        }
        Browser {
            source: None,
            opened: false,
            listening: HashSet::new(),
            fetch: None,
            timer: None,
            on_open,
            on_error,
            on_event,
            on_timer,
            on_back,
        }
    }

    pub(super) fn listen(&mut self, name: &str) {
        if let Some(es) = &self.source {
            if self.listening.insert(name.to_owned()) {
                let _ = es
                    .add_event_listener_with_callback(name, self.on_event.as_ref().unchecked_ref());
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

/// Whether the browser can make a request to `url` at all (relative URLs
/// against the page's): one it cannot is no network failure, and no retry
/// makes it one it can.
fn valid_url(url: &str) -> bool {
    let base = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    web_sys::Url::new_with_base(url, &base).is_ok()
}

impl SSEClient {
    pub(super) fn open(&self, last_event_id: Option<&str>) {
        let (transport, url) = {
            let inner = self.inner.borrow();
            (inner.config.effective_transport(), inner.stream_url())
        };
        if !valid_url(&url) {
            return self.fail_later(Failure::Invalid);
        }
        match transport {
            Transport::EventSource => self.open_event_source(last_event_id),
            Transport::Fetch => self.open_fetch(last_event_id),
        }
    }

    fn open_event_source(&self, last_event_id: Option<&str>) {
        let opened = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            inner.generation += 1;
            let url = with_resume(&inner.stream_url(), last_event_id);
            let init = EventSourceInit::new();
            init.set_with_credentials(inner.config.with_credentials);
            let names = inner.wanted_names();
            let weak = std::rc::Rc::downgrade(&self.inner);
            let browser = inner.browser.get_or_insert_with(|| Browser::new(weak));
            browser.close();
            browser.opened = false;
            match EventSource::new_with_event_source_init_dict(&url, &init) {
                Ok(es) => {
                    es.set_onopen(Some(browser.on_open.as_ref().unchecked_ref()));
                    es.set_onerror(Some(browser.on_error.as_ref().unchecked_ref()));
                    browser.source = Some(es);
                    browser.listening.clear();
                    for name in names {
                        browser.listen(&name);
                    }
                    true
                }
                Err(_) => false,
            }
        };
        if !opened {
            // The browser would not make the request: no retry helps.
            self.fail_later(Failure::Invalid);
        }
    }

    /// The `EventSource` failed. Once it had opened, the stream dropped;
    /// before that, it was refused or never reached the server, and only a
    /// fetch of the same URL can say which.
    fn source_failed(&self) {
        let probe = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let Some(browser) = &mut inner.browser else {
                return;
            };
            if browser.opened {
                None
            } else {
                // Closed at once: the browser must not retry on its own.
                browser.close();
                let plan = fetch_plan(inner, browser_url(inner), None);
                plan.map(|(plan, controller)| {
                    if let Some(b) = &mut inner.browser {
                        b.fetch = Some(controller);
                    }
                    plan
                })
            }
        };
        match probe {
            None => self.drive(|m, now| m.error(now, Failure::Network)),
            Some(plan) => {
                let weak = std::rc::Rc::downgrade(&self.inner);
                wasm_bindgen_futures::spawn_local(probe_status(weak, plan));
            }
        }
    }

    fn open_fetch(&self, last_event_id: Option<&str>) {
        let plan = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            inner.generation += 1;
            let weak = std::rc::Rc::downgrade(&self.inner);
            inner
                .browser
                .get_or_insert_with(|| Browser::new(weak))
                .close();
            // The resume point goes as the header (fetch can send one), and
            // only there: a `lastEventId` in the URL would be a second one.
            let url = with_param(&inner.stream_url(), "lastEventId", None);
            fetch_plan(inner, url, last_event_id).map(|(plan, controller)| {
                if let Some(b) = &mut inner.browser {
                    b.fetch = Some(controller);
                }
                plan
            })
        };
        match plan {
            Some(plan) => {
                let weak = std::rc::Rc::downgrade(&self.inner);
                wasm_bindgen_futures::spawn_local(read_fetch(weak, plan));
            }
            None => self.fail_later(Failure::Invalid),
        }
    }

    /// The attempt being opened failed before it started: told to the
    /// machine once the actions that opened it are all carried out (told
    /// now, its state would be reported before the `Connecting` it
    /// replaces).
    fn fail_later(&self, failure: Failure) {
        let generation = self.inner.borrow().generation;
        let weak = std::rc::Rc::downgrade(&self.inner);
        wasm_bindgen_futures::spawn_local(async move {
            current(&weak, generation, |c| {
                c.drive(|m, now| m.error(now, failure))
            });
        });
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

/// The URL the current `EventSource` asked for (its probe asks the same).
fn browser_url(inner: &Inner) -> String {
    with_resume(&inner.stream_url(), inner.machine.last_event_id())
}

/// A fetch of `url` as the client's settings say (credentials, headers,
/// `Accept: text/event-stream`, the resume point as a header), and the
/// controller that aborts it; `None` when the browser cannot make one.
fn fetch_plan(
    inner: &Inner,
    url: String,
    last_event_id: Option<&str>,
) -> Option<(FetchPlan, AbortController)> {
    let controller = AbortController::new().ok()?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_signal(Some(&controller.signal()));
    init.set_credentials(if inner.config.with_credentials {
        RequestCredentials::Include
    } else {
        RequestCredentials::SameOrigin
    });
    let headers = Headers::new().ok()?;
    // Only headers a cross-origin request may send without the server's
    // leave are added here (Accept is one).
    let _ = headers.set("Accept", "text/event-stream");
    for (k, v) in &inner.config.headers {
        let _ = headers.set(k, v);
    }
    if let Some(id) = last_event_id {
        let _ = headers.set("Last-Event-ID", id);
    }
    init.set_headers(&headers);
    Some((
        FetchPlan {
            url,
            init,
            last_event_id: last_event_id.map(str::to_owned),
            generation: inner.generation,
        },
        controller,
    ))
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

/// What an answer's head means for a stream: `Ok` to read its body, or
/// how the attempt ends (`None`: done, `204 No Content`).
fn judge(response: &Response) -> Result<(), Option<Failure>> {
    let status = response.status();
    if status == 204 {
        return Err(None);
    }
    if let Some(failure) = Failure::from_status(status, retry_after_ms(response)) {
        return Err(Some(failure));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
    {
        return Err(Some(Failure::NotAStream));
    }
    Ok(())
}

/// An `EventSource` failed before it opened: its URL asked once with
/// fetch, the answer's head read and the request aborted. The machine
/// hears what that says (a 200 that opens now: the network, as before).
async fn probe_status(weak: Weak<RefCell<Inner>>, plan: FetchPlan) {
    let FetchPlan {
        url,
        init,
        generation,
        ..
    } = plan;
    let Some(window) = web_sys::window() else {
        return;
    };
    let answer = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    let verdict = match answer.ok().and_then(|r| r.dyn_into::<Response>().ok()) {
        None => Err(Some(Failure::Network)),
        Some(response) => {
            if let Some(body) = response.body() {
                let _ = body.cancel();
            }
            judge(&response)
        }
    };
    current(&weak, generation, |c| {
        if let Some(b) = &mut c.inner.borrow_mut().browser {
            if let Some(probe) = b.fetch.take() {
                probe.abort();
            }
        }
        match verdict {
            Err(None) => c.drive(|m, now| m.done(now)),
            Err(Some(failure)) => c.drive(|m, now| m.error(now, failure)),
            Ok(()) => c.drive(|m, now| m.error(now, Failure::Network)),
        }
    });
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
    match judge(&response) {
        Ok(()) => {}
        // Nothing more to say: done, not an error.
        Err(None) => {
            current(&weak, generation, |c| c.drive(|m, now| m.done(now)));
            return;
        }
        Err(Some(failure)) => return fail(failure),
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
        for frame in frames {
            // Asked per frame: a handler that disconnects (or reconnects)
            // stops the rest of this chunk from being dispatched.
            let still = current(&weak, generation, |c| match frame {
                Frame::Event(e) => c.received(SseMessage::new(&e.event, &e.data, &e.last_event_id)),
                Frame::Retry(ms) => c.inner.borrow_mut().machine.retry_hint(ms),
                Frame::Comment(_) => {
                    c.inner.borrow_mut().machine.activity(super::now_ms());
                    c.arm_timer();
                }
            });
            if !still {
                let _ = reader.cancel();
                return;
            }
        }
    }
}

/// `Retry-After` in milliseconds: seconds, or an HTTP date.
fn retry_after_ms(response: &Response) -> Option<u64> {
    let value = response.headers().get("retry-after").ok()??;
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = js_sys::Date::parse(value);
    (!at.is_nan()).then(|| (at - js_sys::Date::now()).max(0.0) as u64)
}
