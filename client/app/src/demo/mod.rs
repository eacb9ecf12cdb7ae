//! `/sse-demo`: everything Herald does, on one page, through the client runtime.
//!
//! The page owns one managed connection (`use_sse`); the panels read and
//! drive it through [`Demo`], a bundle of `Copy` signals shared by context.

mod api;
mod chat;
mod connection;
mod feed;
mod jobs;
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
    /// This browser's demo user (`""` while server rendering).
    pub user: StoredValue<String>,
    /// Shown once the page runs in the browser (the user is the browser's).
    pub user_shown: RwSignal<Option<String>>,
    /// The client's transport, as shown (known once in the browser).
    pub transport_shown: RwSignal<Option<&'static str>>,
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
    /// The dev-mode token of this page's user, for `?token=`.
    pub fn token(&self) -> String {
        demo_token(&self.user.get_value())
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

/// The transport the page asks for (`/sse-demo?transport=fetch`), else
/// `EventSource`.
fn page_transport() -> herald_client::Transport {
    #[cfg(feature = "hydrate")]
    {
        let search = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .unwrap_or_default();
        let name = search
            .trim_start_matches('?')
            .split('&')
            .find_map(|pair| pair.strip_prefix("transport="))
            .unwrap_or("");
        connection::transport_from(name)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        herald_client::Transport::EventSource
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

/// Where the demo user is remembered, so every tab of a browser is the
/// same user ("to my user" reaches them all).
#[cfg(feature = "hydrate")]
const USER_KEY: &str = "herald-demo-user";

/// This browser's demo user: `visitor-xxxxxx`, kept in `localStorage`.
fn demo_user() -> String {
    #[cfg(feature = "hydrate")]
    {
        let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        let kept = storage
            .as_ref()
            .and_then(|s| s.get_item(USER_KEY).ok().flatten())
            .filter(|u| u.starts_with("visitor-") && u.len() <= 32);
        if let Some(user) = kept {
            return user;
        }
        let user = format!(
            "visitor-{:06x}",
            (js_sys::Math::random() * 16_777_216.0) as u32
        );
        if let Some(s) = storage {
            let _ = s.set_item(USER_KEY, &user);
        }
        user
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}

/// The multi-stream API's documented demo token for `user`: base64 of
/// `id:username:email:roles`. A server accepts it only in dev mode
/// (`HERALD_DEV=1`), which is how `./scripts/run.sh` serves the demo.
pub fn demo_token(user: &str) -> String {
    demo_token_named(user, user)
}

/// [`demo_token`] for `user` shown as `name` (the token's username, which
/// the chat stamps into its events).
pub fn demo_token_named(user: &str, name: &str) -> String {
    use base64::Engine;
    // The format is `:`-separated: a name must not add fields.
    let name = name.replace(':', " ");
    base64::engine::general_purpose::STANDARD
        .encode(format!("{user}:{name}:{user}@demo.invalid:user"))
}

/// The live demo page.
#[component]
pub fn SseDemo() -> impl IntoView {
    // A session id per page load: "to my session" reaches every tab that shares it.
    let session = random_session();
    let user = demo_user();
    let token = demo_token(&user);
    let (state, sse) = use_sse(
        SseConfig::new(format!("/_sse/connect?sessionId={session}&token={token}"))
            .transport(page_transport()),
    );
    let demo = Demo {
        sse,
        state,
        session_id: StoredValue::new(session),
        user: StoredValue::new(user),
        user_shown: RwSignal::new(None),
        transport_shown: RwSignal::new(None),
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
        demo.user_shown.set(Some(demo.user.get_value()));
        demo.transport_shown.set(
            demo.sse
                .with(|c| connection::transport_name(c.config().transport)),
        );
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
                <jobs::JobsPanel/>
                <chat::ChatPanel/>
                <feed::FeedPanel/>
            </div>
        </main>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_token_is_the_documented_base64_format() {
        // base64("ann:ann:ann@demo.invalid:user")
        assert_eq!(
            super::demo_token("ann"),
            "YW5uOmFubjphbm5AZGVtby5pbnZhbGlkOnVzZXI="
        );
    }
}
