//! `/sse-demo`: a live view of one Herald stream.

use leptos::prelude::*;

/// One received event, as the feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub name: String,
    pub id: String,
    pub data: String,
}

/// The live demo page.
#[component]
pub fn SseDemo() -> impl IntoView {
    let (state, set_state) = signal(String::from("idle"));
    let (client_id, set_client_id) = signal(None::<String>);
    let (feed, set_feed) = signal(Vec::<FeedItem>::new());
    let (clicks, set_clicks) = signal(0u32);

    // Effects only run in the browser, so the server renders the idle page
    // and the stream opens once the page has hydrated.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        live::open("/_sse/connect", set_state, set_client_id, set_feed);
        #[cfg(not(feature = "hydrate"))]
        let _ = (set_state, set_client_id, set_feed);
    });

    view! {
        <main class="demo">
            <header class="demo-header">
                <h1>"Herald live demo"</h1>
                <noscript>
                    <p class="notice">"This page needs JavaScript for live updates."</p>
                </noscript>
            </header>
            <section class="panel" aria-labelledby="conn-title">
                <h2 id="conn-title">"Connection"</h2>
                <p>
                    <span class="state-dot" data-state=move || state.get()></span>
                    <span data-testid="state">{move || state.get()}</span>
                </p>
                <p>
                    "Client id: "
                    <code data-testid="client-id">
                        {move || client_id.get().unwrap_or_else(|| "(not connected)".into())}
                    </code>
                </p>
                <button data-testid="hydration-check" on:click=move |_| set_clicks.update(|n| *n += 1)>
                    "Clicks: " {move || clicks.get()}
                </button>
            </section>
            <section class="panel" aria-labelledby="feed-title">
                <h2 id="feed-title">"Events"</h2>
                <ol class="feed" data-testid="feed">
                    <For
                        each=move || feed.get().into_iter().enumerate().rev()
                        key=|(i, _)| *i
                        children=|(_, item)| view! {
                            <li class="feed-item" data-event=item.name.clone()>
                                <span class="event-name">{item.name.clone()}</span>
                                <span class="event-id">{item.id.clone()}</span>
                                <pre class="event-data">{item.data.clone()}</pre>
                            </li>
                        }
                    />
                </ol>
            </section>
        </main>
    }
}

/// The browser side of the first slice: a raw `EventSource`. The client
/// runtime (`herald-client`) takes this over with reconnects and typed events.
#[cfg(feature = "hydrate")]
mod live {
    use super::FeedItem;
    use herald_shared::events::{Connected, SseEvent};
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{EventSource, MessageEvent};

    const NAMES: [&str; 6] = [
        "connected",
        "heartbeat",
        "message",
        "notification",
        "reset",
        "update",
    ];
    const FEED_LIMIT: usize = 200;

    pub fn open(
        url: &str,
        set_state: WriteSignal<String>,
        set_client_id: WriteSignal<Option<String>>,
        set_feed: WriteSignal<Vec<FeedItem>>,
    ) {
        let Ok(source) = EventSource::new(url) else {
            set_state.set("error".into());
            return;
        };
        set_state.set("connecting".into());
        let on_open = Closure::<dyn FnMut()>::new(move || set_state.set("connected".into()));
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        let on_error = Closure::<dyn FnMut()>::new(move || set_state.set("connecting".into()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        let mut listeners = Vec::new();
        for name in NAMES {
            let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
                let data = e.data().as_string().unwrap_or_default();
                if name == Connected::NAME {
                    if let Ok(c) = Connected::from_data(&data) {
                        set_client_id.set(Some(c.client_id));
                    }
                }
                set_feed.update(|feed| {
                    feed.push(FeedItem {
                        name: name.to_owned(),
                        id: e.last_event_id(),
                        data,
                    });
                    if feed.len() > FEED_LIMIT {
                        feed.remove(0);
                    }
                });
            });
            let _ =
                source.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
            listeners.push(listener);
        }
        let keep = SendWrapper::new((source, on_open, on_error, listeners));
        on_cleanup(move || keep.0.close());
    }
}
