//! The live event feed: newest first, bounded, filterable by event name.

use leptos::prelude::*;

use super::{api, Demo};

/// One received event, as the feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub seq: u64,
    pub name: String,
    pub id: String,
    pub at_ms: f64,
    /// Pretty-printed when it is JSON.
    pub data: String,
}

impl FeedItem {
    pub fn new(seq: u64, m: &herald_client::SseMessage, at_ms: f64) -> Self {
        let data = serde_json::from_str::<serde_json::Value>(&m.data)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| m.data.clone());
        FeedItem {
            seq,
            name: m.event.clone(),
            id: m.last_event_id.clone(),
            at_ms,
            data,
        }
    }
}

#[component]
pub fn FeedPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let filter = RwSignal::new(String::new());
    let hide_heartbeats = RwSignal::new(false);
    let visible = move || {
        let f = filter.get().trim().to_lowercase();
        let hide = hide_heartbeats.get();
        demo.feed
            .get()
            .into_iter()
            .rev()
            .filter(|i| !(hide && i.name == "heartbeat"))
            .filter(|i| f.is_empty() || i.name.to_lowercase().contains(&f))
            .collect::<Vec<_>>()
    };

    view! {
        <section class="panel" aria-labelledby="feed-title">
            <h2 id="feed-title">"Events"</h2>
            <div class="feed-tools">
                <label>"Filter by name "
                    <input type="search" placeholder="e.g. notification" data-testid="feed-filter"
                        prop:value=filter on:input=move |ev| filter.set(event_target_value(&ev))/>
                </label>
                <label class="check">
                    <input type="checkbox" prop:checked=hide_heartbeats
                        on:change=move |ev| hide_heartbeats.set(event_target_checked(&ev))/>
                    "Hide heartbeats"
                </label>
                <button on:click=move |_| demo.feed.set(Vec::new())>"Clear"</button>
            </div>
            <ol class="feed" data-testid="feed" aria-live="polite">
                <For
                    each=visible
                    key=|item| item.seq
                    children=|item| view! {
                        <li class="feed-item" data-event=item.name.clone()>
                            <span class="event-name">{item.name.clone()}</span>
                            <span class="event-id">{item.id.clone()}</span>
                            <time class="event-time">{api::clock(item.at_ms)}</time>
                            <pre class="event-data">{item.data.clone()}</pre>
                        </li>
                    }
                />
            </ol>
        </section>
    }
}
