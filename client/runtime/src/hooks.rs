//! Leptos hooks. Each one is a no-op on the server (effects never run
//! during SSR, so nothing connects and pages still render) and cleans up
//! when its component unmounts.
//!
//! A component that shows the latest notification, in five lines:
//!
//! ```
//! use herald_client::{use_sse, use_sse_event, SseConfig};
//! use herald_shared::events::Notification;
//! use leptos::prelude::*;
//!
//! #[component]
//! fn LatestNotification() -> impl IntoView {
//!     let (_state, sse) = use_sse(SseConfig::new("/_sse/connect"));
//!     let latest = use_sse_event::<Notification>(sse);
//!     view! { <p>{move || latest.get().map(|n| n.message)}</p> }
//! }
//! ```

use std::collections::VecDeque;

use herald_shared::SseEvent;
use leptos::prelude::*;

use crate::client::{Handle, Retry, SSEClient, SseError, ANY_EVENT};
use crate::config::SseConfig;
use crate::manager::SharedStream;
use crate::runtime::machine::SseState;

/// A component's handle on its client: `Copy` and `Send`, so it can go into
/// view closures; the client itself stays on the browser thread. It also
/// carries what a page shows of the connection as signals: its state, its
/// latest error, the pending retry and the last event id.
///
/// ```
/// use herald_client::{use_sse, SseConfig, SseState};
/// use leptos::prelude::*;
///
/// #[component]
/// fn Controls() -> impl IntoView {
///     let (state, sse) = use_sse(SseConfig::new("/_sse/connect"));
///     view! {
///         <span>{move || state.get().as_str()}</span>
///         // Past its fast retries the client says so and keeps trying slowly.
///         <Show when=move || state.get() == SseState::Error>
///             <p>"Offline: " {move || sse.error().get().map(|e| e.to_string())}</p>
///         </Show>
///         <button on:click=move |_| sse.reconnect()>"Reconnect"</button>
///         <button on:click=move |_| sse.disconnect()>"Stop"</button>
///     }
/// }
/// ```
#[derive(Clone, Copy)]
pub struct SseHandle {
    client: StoredValue<SSEClient, LocalStorage>,
    state: RwSignal<SseState>,
    error: RwSignal<Option<SseError>>,
    retry: RwSignal<Option<Retry>>,
    last_event_id: RwSignal<Option<String>>,
}

impl SseHandle {
    /// Follows `client` in signals (from now on, until the component goes).
    fn follow(client: SSEClient) -> Self {
        let handle = SseHandle {
            state: RwSignal::new(client.state()),
            error: RwSignal::new(None),
            retry: RwSignal::new(None),
            last_event_id: RwSignal::new(client.last_event_id()),
            client: StoredValue::new_local(client),
        };
        let registered: StoredValue<Vec<Handle>, LocalStorage> = StoredValue::new_local(Vec::new());
        Effect::new(move |_| {
            let hs = handle.with(|c| {
                let SseHandle {
                    state,
                    error,
                    retry,
                    last_event_id,
                    ..
                } = handle;
                vec![
                    c.on_state_change(move |s| {
                        state.try_set(*s);
                        if *s == SseState::Connected {
                            retry.try_set(None);
                        }
                    }),
                    c.on_error(move |e, _| {
                        error.try_set(Some(e.clone()));
                    }),
                    c.on_retry(move |r| {
                        retry.try_set(Some(*r));
                    }),
                    c.on_named(ANY_EVENT, move |m| {
                        if !m.last_event_id.is_empty() {
                            last_event_id.try_set(Some(m.last_event_id.clone()));
                        }
                    }),
                ]
            });
            registered.set_value(hs.unwrap_or_default());
        });
        on_cleanup(move || {
            if let Some(hs) = registered.try_update_value(std::mem::take) {
                hs.into_iter().for_each(Handle::unsubscribe);
            }
        });
        handle
    }

    /// Runs `f` with the client (nothing after the component is gone).
    pub fn with<R>(&self, f: impl FnOnce(&SSEClient) -> R) -> Option<R> {
        self.client.try_with_value(f)
    }
    /// Opens the stream (again).
    pub fn connect(&self) {
        self.with(SSEClient::connect);
    }
    /// Closes the stream on purpose.
    pub fn disconnect(&self) {
        self.with(SSEClient::disconnect);
    }
    /// Closes and reopens now, with a fresh retry count.
    pub fn reconnect(&self) {
        self.with(SSEClient::reconnect);
    }
    /// The connection's state.
    pub fn state(&self) -> Signal<SseState> {
        self.state.into()
    }
    /// The latest failure (kept after a reconnect succeeds: the state says
    /// whether it still matters).
    pub fn error(&self) -> Signal<Option<SseError>> {
        self.error.into()
    }
    /// The pending retry ("retrying in 4 s"), `None` once connected.
    pub fn retry(&self) -> Signal<Option<Retry>> {
        self.retry.into()
    }
    /// The id the stream would resume from.
    pub fn last_event_id(&self) -> Signal<Option<String>> {
        self.last_event_id.into()
    }
}

/// Opens a managed connection for the lifetime of the component.
///
/// Returns its state as a signal and a handle on the client (with the
/// error, retry and last-id signals). Takes a URL or a full
/// [`SseConfig`]:
///
/// ```
/// use herald_client::{use_sse, SseConfig};
/// use leptos::prelude::*;
///
/// #[component]
/// fn Status() -> impl IntoView {
///     let (state, sse) = use_sse(SseConfig::new("/_sse/connect").max_retries(0));
///     let (_plain, _) = use_sse("/sse");
///     view! { <p>{move || state.get().as_str()} " after " {move || sse.last_event_id().get()}</p> }
/// }
/// ```
pub fn use_sse(config: impl Into<SseConfig>) -> (Signal<SseState>, SseHandle) {
    let handle = SseHandle::follow(SSEClient::new(config.into()));
    Effect::new(move |_| {
        handle.connect();
    });
    on_cleanup(move || handle.disconnect());
    (handle.state(), handle)
}

/// A lease on the page's **one** connection to `url` for the lifetime of
/// the component, holding `topics` on it
/// ([`SSEManager::share`](crate::SSEManager::share)): many components,
/// one `EventSource`. The connection closes when the last component
/// holding it goes. Do not `disconnect` a shared handle: the others use it.
///
/// ```
/// use herald_client::{use_shared_sse, use_sse_event};
/// use herald_shared::events::Notification;
/// use leptos::prelude::*;
///
/// #[component]
/// fn Alerts() -> impl IntoView {
///     let sse = use_shared_sse("/_sse/connect", &["alerts"]);
///     let latest = use_sse_event::<Notification>(sse);
///     view! { <p>{move || latest.get().map(|n| n.message)}</p> }
/// }
/// ```
pub fn use_shared_sse(url: &str, topics: &[&str]) -> SseHandle {
    let lease = crate::get_sse_manager().share(url);
    let handle = SseHandle::follow(lease.client().clone());
    let lease: StoredValue<Option<SharedStream>, LocalStorage> =
        StoredValue::new_local(Some(lease));
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    Effect::new(move |_| {
        lease.update_value(|l| {
            if let Some(l) = l {
                let wanted: Vec<&str> = topics.iter().map(String::as_str).collect();
                l.subscribe(&wanted);
            }
        });
    });
    on_cleanup(move || {
        lease.try_update_value(Option::take);
    });
    handle
}

impl From<&str> for SseConfig {
    fn from(url: &str) -> Self {
        SseConfig::new(url)
    }
}

impl From<String> for SseConfig {
    fn from(url: String) -> Self {
        SseConfig::new(url)
    }
}

/// Registers a handler for the component's lifetime.
fn on_for_component<T: SseEvent + 'static>(sse: SseHandle, f: impl Fn(T) + Clone + 'static) {
    let registered: StoredValue<Option<Handle>, LocalStorage> = StoredValue::new_local(None);
    Effect::new(move |_| {
        let f = f.clone();
        if let Some(h) = sse.with(|client| client.on::<T>(f)) {
            registered.set_value(Some(h));
        }
    });
    on_cleanup(move || {
        if let Some(h) = registered.try_update_value(Option::take).flatten() {
            h.unsubscribe();
        }
    });
}

/// The latest `T` event, `None` until one arrives. A burst faster than the
/// page renders shows only its last event: use [`use_sse_events`] to keep all.
pub fn use_sse_event<T>(sse: SseHandle) -> ReadSignal<Option<T>>
where
    T: SseEvent + Send + Sync + 'static,
{
    let (value, set_value) = signal(None::<T>);
    on_for_component::<T>(sse, move |v| {
        set_value.try_set(Some(v));
    });
    value
}

/// Every `T` event, oldest first, keeping at most `capacity` (the oldest
/// are dropped beyond that). Nothing of a burst is lost below `capacity`.
///
/// ```
/// use herald_client::{use_sse, use_sse_events, SseConfig};
/// use herald_shared::events::ChatMessage;
/// use leptos::prelude::*;
///
/// #[component]
/// fn Chat() -> impl IntoView {
///     let (_state, sse) = use_sse(SseConfig::new("/_sse/connect?topics=room:general"));
///     let messages = use_sse_events::<ChatMessage>(sse, 100);
///     view! {
///         <ul>{move || messages.get().into_iter().map(|m| view! { <li>{m.username}": "{m.message}</li> }).collect_view()}</ul>
///     }
/// }
/// ```
pub fn use_sse_events<T>(sse: SseHandle, capacity: usize) -> ReadSignal<VecDeque<T>>
where
    T: SseEvent + Send + Sync + 'static,
{
    let (events, set_events) = signal(VecDeque::<T>::new());
    on_for_component::<T>(sse, move |v| {
        set_events.try_update(|buf| {
            buf.push_back(v);
            while buf.len() > capacity.max(1) {
                buf.pop_front();
            }
        });
    });
    events
}
