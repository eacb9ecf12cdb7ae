//! `/sse-demo`: a live view of one Herald stream, through the client runtime.

use herald_client::{use_sse, SseConfig, SseHandle, SseState};
use herald_shared::events::{Connected, SseEvent};
use leptos::prelude::*;

/// One received event, as the feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub seq: u64,
    pub name: String,
    pub id: String,
    pub data: String,
}

/// Event names the feed shows.
const FEED_NAMES: [&str; 8] = [
    "connected",
    "heartbeat",
    "message",
    "notification",
    "update",
    "alert",
    "progress",
    "reset",
];
const FEED_LIMIT: usize = 200;

/// The live demo page.
#[component]
pub fn SseDemo() -> impl IntoView {
    let (state, sse) = use_sse(SseConfig::new("/_sse/connect"));
    let (client_id, set_client_id) = signal(None::<String>);
    let (feed, set_feed) = signal(Vec::<FeedItem>::new());
    let (clicks, set_clicks) = signal(0u32);
    let (attempt, set_attempt) = signal((0u32, None::<u64>));

    Effect::new(move |_| show_events(sse, set_client_id, set_feed, set_attempt));

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
                    <span class="state-dot" data-state=move || state.get().as_str()></span>
                    <span data-testid="state">{move || state.get().as_str()}</span>
                </p>
                <p>
                    "Client id: "
                    <code data-testid="client-id">
                        {move || client_id.get().unwrap_or_else(|| "(not connected)".into())}
                    </code>
                </p>
                <p class="retry" data-testid="retry">
                    {move || match (state.get(), attempt.get()) {
                        (SseState::Connecting, (n, Some(ms))) if n > 0 => format!("retry {n} in {ms} ms"),
                        _ => String::new(),
                    }}
                </p>
                <div class="buttons">
                    <button on:click=move |_| sse.connect()>"Connect"</button>
                    <button on:click=move |_| sse.disconnect()>"Disconnect"</button>
                    <button on:click=move |_| sse.reconnect()>"Reconnect"</button>
                </div>
                <button data-testid="hydration-check" on:click=move |_| set_clicks.update(|n| *n += 1)>
                    "Clicks: " {move || clicks.get()}
                </button>
            </section>
            <section class="panel" aria-labelledby="feed-title">
                <h2 id="feed-title">"Events"</h2>
                <ol class="feed" data-testid="feed">
                    <For
                        each=move || feed.get().into_iter().rev()
                        key=|item| item.seq
                        children=|item| view! {
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

/// Feeds the page's signals from the client (browser only: runs in an effect).
fn show_events(
    sse: SseHandle,
    set_client_id: WriteSignal<Option<String>>,
    set_feed: WriteSignal<Vec<FeedItem>>,
    set_attempt: WriteSignal<(u32, Option<u64>)>,
) {
    sse.with(|client| {
        for name in FEED_NAMES {
            client
                .on_named(name, move |m| {
                    set_feed.try_update(|feed| {
                        let seq = feed.last().map_or(0, |i| i.seq + 1);
                        feed.push(FeedItem {
                            seq,
                            name: m.event.clone(),
                            id: m.last_event_id.clone(),
                            data: m.data.clone(),
                        });
                        if feed.len() > FEED_LIMIT {
                            feed.remove(0);
                        }
                    });
                })
                .forget();
        }
        client
            .on_named(Connected::NAME, move |m| {
                if let Ok(c) = Connected::from_data(&m.data) {
                    set_client_id.try_set(Some(c.client_id));
                }
            })
            .forget();
        // Through the handle, not a clone of the client: a handler that owned
        // its own client would keep it alive forever.
        client
            .on_state_change(move |_| {
                if let Some(retry) = sse.with(|c| (c.attempt(), c.next_delay_ms())) {
                    set_attempt.try_set(retry);
                }
            })
            .forget();
    });
}
