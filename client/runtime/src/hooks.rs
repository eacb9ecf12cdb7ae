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

use crate::client::{Handle, SSEClient};
use crate::config::SseConfig;
use crate::runtime::machine::SseState;

/// A component's handle on its client: `Copy` and `Send`, so it can go into
/// view closures; the client itself stays on the browser thread.
///
/// ```
/// use herald_client::{use_sse, SseConfig};
/// use leptos::prelude::*;
///
/// #[component]
/// fn Controls() -> impl IntoView {
///     let (state, sse) = use_sse(SseConfig::new("/_sse/connect"));
///     view! {
///         <span>{move || state.get().as_str()}</span>
///         <button on:click=move |_| sse.reconnect()>"Reconnect"</button>
///         <button on:click=move |_| sse.disconnect()>"Stop"</button>
///     }
/// }
/// ```
#[derive(Clone, Copy)]
pub struct SseHandle(StoredValue<SSEClient, LocalStorage>);

impl SseHandle {
    /// Runs `f` with the client (nothing after the component is gone).
    pub fn with<R>(&self, f: impl FnOnce(&SSEClient) -> R) -> Option<R> {
        self.0.try_with_value(f)
    }
    pub fn connect(&self) {
        self.with(SSEClient::connect);
    }
    pub fn disconnect(&self) {
        self.with(SSEClient::disconnect);
    }
    pub fn reconnect(&self) {
        self.with(SSEClient::reconnect);
    }
}

/// Opens a managed connection for the lifetime of the component.
///
/// Returns its state as a signal and a handle on the client. Takes a URL or
/// a full [`SseConfig`]:
///
/// ```
/// use herald_client::{use_sse, SseConfig};
/// use leptos::prelude::*;
///
/// #[component]
/// fn Status() -> impl IntoView {
///     let (state, _sse) = use_sse(SseConfig::new("/_sse/connect").max_retries(0));
///     let (_plain, _) = use_sse("/sse");
///     view! { <p>{move || state.get().as_str()}</p> }
/// }
/// ```
pub fn use_sse(config: impl Into<SseConfig>) -> (Signal<SseState>, SseHandle) {
    let (state, set_state) = signal(SseState::Disconnected);
    let handle = SseHandle(StoredValue::new_local(SSEClient::new(config.into())));
    Effect::new(move |_| {
        handle.with(|client| {
            client
                .on_state_change(move |s| {
                    set_state.try_set(*s);
                })
                .forget();
            client.connect();
        });
    });
    on_cleanup(move || handle.disconnect());
    (state.into(), handle)
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
        registered.try_update_value(Option::take);
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
