//! `/sse-demo`: everything Herald does, on one page, through the client runtime.
//!
//! The page owns one managed connection (`use_sse`); the panels read and
//! drive it through [`Demo`], a bundle of `Copy` signals shared by context.

mod api;
mod chat;
mod connection;
mod feed;
mod send;
mod status;
mod topics;

use herald_client::{use_sse, Retry, SseConfig, SseHandle, SseState};
use herald_shared::events::{Connected, SseEvent};
use leptos::prelude::*;

pub use feed::FeedItem;

/// Event names the feed listens to from the start; custom names sent from
/// the page are added as they are used.
const FEED_NAMES: [&str; 9] = [
    "connected",
    "heartbeat",
    "message",
    "notification",
    "update",
    "alert",
    "progress",
    "reset",
    "status",
];
const FEED_LIMIT: usize = 200;
const TIMELINE_LIMIT: usize = 50;

/// Who this page is on the server, from its latest `connected` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub client_id: String,
    pub secret: String,
    pub topics: Vec<String>,
}

/// One line of the connection timeline: a state transition or a scheduled retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub at_ms: f64,
    pub state: SseState,
    /// `Some` for a scheduled retry.
    pub retry: Option<Retry>,
}

/// The page's shared state (all `Copy`).
#[derive(Clone, Copy)]
pub struct Demo {
    pub sse: SseHandle,
    pub state: Signal<SseState>,
    pub session_id: StoredValue<String>,
    pub identity: RwSignal<Option<Identity>>,
    pub feed: RwSignal<Vec<FeedItem>>,
    pub timeline: RwSignal<Vec<Transition>>,
    /// The pending retry, while one is scheduled.
    pub retry: RwSignal<Option<Retry>>,
    pub last_event_id: RwSignal<String>,
    pub reset_notice: RwSignal<Option<String>>,
    /// Event names with a feed handler registered.
    pub listening: StoredValue<Vec<String>>,
    next_seq: StoredValue<u64>,
}

impl Demo {
    /// This page's client id, or `""` before the first `connected` event.
    pub fn client_id(&self) -> String {
        self.identity
            .get_untracked()
            .map(|i| i.client_id)
            .unwrap_or_default()
    }

    /// Shows every event named `name` in the feed (once per name).
    pub fn listen(&self, name: &str) {
        let name = name.to_owned();
        if self.listening.with_value(|l| l.contains(&name)) {
            return;
        }
        self.listening.update_value(|l| l.push(name.clone()));
        let demo = *self;
        self.sse.with(|client| {
            client.on_named(&name, move |m| demo.record(m)).forget();
        });
    }

    fn record(&self, m: &herald_client::SseMessage) {
        let seq = self.next_seq.with_value(|s| *s);
        self.next_seq.set_value(seq + 1);
        if !m.last_event_id.is_empty() {
            self.last_event_id.try_set(m.last_event_id.clone());
        }
        if m.event == "reset" {
            self.reset_notice.try_set(Some(m.data.clone()));
        }
        if m.event == Connected::NAME {
            if let Ok(c) = Connected::from_data(&m.data) {
                self.identity.try_set(Some(Identity {
                    client_id: c.client_id,
                    secret: c.secret.unwrap_or_default(),
                    topics: c.topics,
                }));
            }
        }
        let item = FeedItem::new(seq, m, api::now_ms());
        self.feed.try_update(|feed| {
            feed.push(item);
            if feed.len() > FEED_LIMIT {
                feed.remove(0);
            }
        });
    }
}

fn random_session() -> String {
    #[cfg(feature = "hydrate")]
    {
        format!(
            "s{:08x}",
            (js_sys::Math::random() * f64::from(u32::MAX)) as u32
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        "ssr".to_owned()
    }
}

/// The live demo page.
#[component]
pub fn SseDemo() -> impl IntoView {
    // A session id per page load: "to my session" reaches every tab that shares it.
    let session = random_session();
    let (state, sse) = use_sse(SseConfig::new(format!("/_sse/connect?sessionId={session}")));
    let demo = Demo {
        sse,
        state,
        session_id: StoredValue::new(session),
        identity: RwSignal::new(None),
        feed: RwSignal::new(Vec::new()),
        timeline: RwSignal::new(Vec::new()),
        retry: RwSignal::new(None),
        last_event_id: RwSignal::new(String::new()),
        reset_notice: RwSignal::new(None),
        listening: StoredValue::new(Vec::new()),
        next_seq: StoredValue::new(0),
    };
    provide_context(demo);

    // Browser only: effects do not run during server rendering.
    Effect::new(move |_| {
        for name in FEED_NAMES {
            demo.listen(name);
        }
        let log = move |entry: Transition| {
            demo.timeline.try_update(|t| {
                t.push(entry);
                if t.len() > TIMELINE_LIMIT {
                    t.remove(0);
                }
            });
        };
        sse.with(|client| {
            client
                .on_state_change(move |s| {
                    if *s != SseState::Connecting {
                        demo.retry.try_set(None);
                    }
                    log(Transition {
                        at_ms: api::now_ms(),
                        state: *s,
                        retry: None,
                    });
                })
                .forget();
            client
                .on_retry(move |r| {
                    demo.retry.try_set(Some(*r));
                    log(Transition {
                        at_ms: api::now_ms(),
                        state: SseState::Connecting,
                        retry: Some(*r),
                    });
                })
                .forget();
        });
    });

    view! {
        <main class="demo">
            <header class="demo-header">
                <h1>"Herald live demo"</h1>
                <p class="lede">
                    "One Server-Sent Events connection, managed by Herald's client runtime: "
                    "reconnects with backoff, heartbeat monitoring, resume from the last event id."
                </p>
                <noscript>
                    <p class="notice">"This page needs JavaScript for live updates."</p>
                </noscript>
                <Show when=move || demo.reset_notice.get().is_some()>
                    <p class="notice" data-testid="reset-notice" role="status">
                        "The server could not replay everything this page missed (it restarted or its history ran out). "
                        "Reload to resync; new events keep arriving."
                    </p>
                </Show>
            </header>
            <div class="column">
                <connection::ConnectionPanel/>
                <topics::TopicsPanel/>
                <status::StatusPanel/>
            </div>
            <div class="column">
                <send::SendPanel/>
                <chat::ChatPanel/>
                <feed::FeedPanel/>
            </div>
        </main>
    }
}
