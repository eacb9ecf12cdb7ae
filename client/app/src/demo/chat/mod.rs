//! The chat panel, over seed 002's chat API: joining opens
//! `/chat/stream?room=` for this browser's demo user under the name typed
//! (the server stamps that identity into every event and announces
//! `user-joined` / `user-left`), sending and typing are `POST /chat/send`
//! and `/chat/typing`, and who is in the room comes from the server
//! (`GET /_sse/presence?topic=chat:<room>`, every node's connections):
//! asked on joining, when someone joins or leaves, and every few seconds
//! (a closed tab says nothing). The room's stream is the client runtime's:
//! it reconnects by itself and resumes the room from its last event id.
//!
//! [`model::Room`] holds the state and its rules; this file only wires
//! the stream, the requests and the view to it.

mod model;

use herald_client::events::{ChatMessage, Typing, UserJoined, UserLeft};
use herald_client::http::encode_component;
use herald_client::{SSEClient, SseConfig, SseEvent, SseState};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use super::{api, demo_token_named, Demo};
use model::Room;

fn guest_name() -> String {
    #[cfg(feature = "hydrate")]
    {
        format!("guest-{:04}", (js_sys::Math::random() * 10_000.0) as u32)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        "guest".to_owned()
    }
}

/// Milliseconds between presence refreshes while in a room.
const PRESENCE_EVERY_MS: u64 = 5000;
/// At most one typing indicator sent per this many ms.
const TYPING_EVERY_MS: f64 = 2000.0;

/// What a joined room needs for its requests.
#[derive(Clone)]
struct Seat {
    room: String,
    token: String,
}

impl Seat {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// POSTs to one of the chat routes as this seat's user.
    async fn post(&self, path: &str, body: serde_json::Value) -> api::Answer {
        let bearer = self.bearer();
        herald_client::http::post_json_with(path, body.to_string(), &[("Authorization", &bearer)])
            .await
    }

    /// The users in the room, as the server says.
    async fn members(&self) -> Option<Vec<String>> {
        let bearer = self.bearer();
        let topic = format!("chat:{}", self.room);
        let presence = herald_client::http::presence_with(&topic, &[("Authorization", &bearer)])
            .await
            .ok()?;
        Some(
            presence
                .members
                .into_iter()
                .filter_map(|m| m.user_id)
                .collect(),
        )
    }
}

#[component]
pub fn ChatPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let room_name = RwSignal::new("lobby".to_owned());
    let name = RwSignal::new(guest_name());
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let room = RwSignal::new(Room::default());
    // Ticks once a second while the page runs: typing indicators expire.
    let now = RwSignal::new(0.0);
    let seat = StoredValue::new_local(None::<Seat>);
    let stream = StoredValue::new_local(None::<SSEClient>);
    let last_typing_sent = StoredValue::new(0f64);

    // `try_`: an answer may arrive after the panel is gone.
    let refresh = move || {
        let Some(s) = seat.try_get_value().flatten() else {
            return;
        };
        spawn_local(async move {
            if let Some(ids) = s.members().await {
                room.try_update(|r| r.set_members(&s.room, ids));
            }
        });
    };
    // Browser only (intervals do not run on the server).
    Effect::new(move |_| {
        let presence =
            set_interval_with_handle(refresh, std::time::Duration::from_millis(PRESENCE_EVERY_MS));
        let clock = set_interval_with_handle(
            move || {
                now.try_set(api::now_ms());
            },
            std::time::Duration::from_millis(1000),
        );
        on_cleanup(move || {
            presence.map(|h| h.clear()).ok();
            clock.map(|h| h.clear()).ok();
        });
    });

    let leave_stream = move || {
        if let Some(client) = stream.try_update_value(Option::take).flatten() {
            // The server announces `user-left` when the stream ends.
            client.disconnect();
        }
        seat.try_set_value(None);
    };
    on_cleanup(leave_stream);

    let join = move |_| {
        let target = room_name.get_untracked().trim().to_owned();
        if target.is_empty() {
            error.set(Some("name a room".into()));
            return;
        }
        leave_stream();
        error.set(None);
        let me = demo.user.get_value();
        let token = demo_token_named(&me, &name.get_untracked());
        let url = format!(
            "/chat/stream?room={}&token={}",
            encode_component(&target),
            encode_component(&token)
        );
        let client = SSEClient::new(SseConfig::new(url));
        let me_too = me.clone();
        client.on::<ChatMessage>(move |m| room.update(|r| r.message(&m)));
        client.on::<UserJoined>(move |UserJoined(p)| {
            room.update(|r| r.joined_by(&p));
            refresh();
        });
        client.on::<UserLeft>(move |UserLeft(p)| {
            room.update(|r| r.left_by(&p));
            refresh();
        });
        client.on::<Typing>(move |t| room.update(|r| r.typing(&t, &me_too, api::now_ms())));
        client.on_state_change(move |s| match s {
            SseState::Connected => refresh(),
            SseState::Error => {
                error.set(Some("the room's stream is not connected; retrying".into()))
            }
            _ => {}
        });
        client.on_named(herald_client::ANY_EVENT, move |m| {
            if m.event == ChatMessage::NAME {
                error.set(None);
            }
        });
        room.update(|r| r.join(&target, &me, &name.get_untracked()));
        seat.set_value(Some(Seat {
            room: target,
            token,
        }));
        client.connect();
        stream.set_value(Some(client));
    };

    let leave = move |_| {
        leave_stream();
        room.update(Room::leave);
    };

    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(s), text) = (seat.get_value(), draft.get_untracked()) else {
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        draft.set(String::new());
        spawn_local(async move {
            let answer = s
                .post("/chat/send", json!({ "roomId": s.room, "message": text }))
                .await;
            if !answer.ok() {
                error.try_set(Some(answer.error_message()));
            }
        });
    };

    let on_typing = move |ev| {
        draft.set(event_target_value(&ev));
        let Some(s) = seat.get_value() else {
            return;
        };
        let at = api::now_ms();
        if at - last_typing_sent.get_value() < TYPING_EVERY_MS {
            return;
        }
        last_typing_sent.set_value(at);
        spawn_local(async move {
            s.post(
                "/chat/typing",
                json!({ "roomId": s.room, "isTyping": true }),
            )
            .await;
        });
    };

    let joined = move || room.with(|r| r.joined.clone());
    view! {
        <section class="panel" aria-labelledby="chat-title">
            <h2 id="chat-title">"Chat"</h2>
            <div class="form-grid">
                <label>"Room"
                    <input data-testid="chat-room" prop:value=room_name on:input=move |ev| room_name.set(event_target_value(&ev))/>
                </label>
                <label>"Your name"
                    <input data-testid="chat-name" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
                </label>
            </div>
            <div class="buttons">
                <button data-testid="chat-join" on:click=join>"Join"</button>
                <button data-testid="chat-leave" on:click=leave disabled=move || joined().is_none()>"Leave"</button>
                <span data-testid="chat-joined">
                    {move || joined().map(|r| format!("in room:{r}")).unwrap_or_default()}
                </span>
            </div>
            <p class="muted" data-testid="chat-presence-count">
                {move || room.with(|r| r.joined.as_ref().map(|_| format!("In the room: {}", r.members.len()))).unwrap_or_default()}
            </p>
            <ul class="presence" data-testid="chat-presence">
                {move || {
                    let me = demo.user.get_value();
                    room.with(|r| r.member_labels(&me))
                        .into_iter()
                        .map(|label| view! { <li>{label}</li> })
                        .collect::<Vec<_>>()
                }}
            </ul>
            <ol class="chat" data-testid="chat-lines" aria-live="polite">
                <For
                    each=move || room.with(|r| r.lines.clone())
                    key=|l| l.seq
                    children=|l| view! {
                        <li class=format!("chat-{}", l.kind)>
                            <strong>{l.who.clone()}</strong>
                            {if l.kind == "message" { ": " } else { " " }}
                            {l.text.clone()}
                        </li>
                    }
                />
            </ol>
            <p class="muted" data-testid="chat-typing">
                {move || room.with(|r| r.typing_line(now.get().max(api::now_ms()))).unwrap_or_default()}
            </p>
            <form class="buttons" on:submit=send>
                <input aria-label="Message" data-testid="chat-draft" prop:value=draft on:input=on_typing
                    disabled=move || joined().is_none()/>
                <button data-testid="chat-send" type="submit" disabled=move || joined().is_none()>"Send"</button>
            </form>
            <p class="error">{move || error.get()}</p>
        </section>
    }
}
