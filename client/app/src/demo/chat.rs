//! A chat room over topics: the room is the topic `room:<name>`; joining
//! subscribes this connection to it; messages, joins, leaves and typing are
//! the shared chat events (`message`, `user-joined`, `user-left`, `typing`)
//! published to it, so every tab in the room sees them. Who is in the room
//! comes from the server (`GET /_sse/presence`, every node's connections):
//! asked on joining, when someone joins or leaves, and every few seconds
//! (a closed tab says nothing).

use std::collections::HashMap;

use herald_shared::events::{ChatMessage, Presence, SseEvent, Typing, UserJoined, UserLeft};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::{api, Demo};

/// One line of the room's transcript.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    seq: u64,
    kind: &'static str,
    who: String,
    text: String,
}

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

/// Publishes a typed chat event to the room's topic.
async fn publish<T: SseEvent>(room: &str, value: &T) -> api::Answer {
    let body = json!({
        "topic": format!("room:{room}"),
        "event": T::NAME,
        "data": serde_json::to_value(value).unwrap_or(Value::Null),
    });
    api::post_json("/_sse/publish", body.to_string()).await
}

/// The users on the room's topic, oldest connection first. The server
/// shows members' user ids (never their client ids) to whoever may
/// publish to the room, as every demo page may.
async fn who_is_in(room: &str) -> Result<Vec<String>, String> {
    let presence = herald_client::http::presence(&format!("room:{room}"))
        .await
        .map_err(|answer| answer.error_message())?;
    Ok(presence
        .members
        .into_iter()
        .filter_map(|m| m.user_id)
        .collect())
}

/// Milliseconds between presence refreshes while in a room.
const PRESENCE_EVERY_MS: u64 = 5000;

async fn membership(demo: Demo, action: &str, room: &str) -> Result<(), String> {
    let me = demo.identity.get_untracked().ok_or("not connected yet")?;
    let body = json!({ "clientId": me.client_id, "secret": me.secret, "topics": [format!("room:{room}")] });
    let answer = api::post_json(&format!("/_sse/{action}"), body.to_string()).await;
    if answer.ok() {
        Ok(())
    } else {
        Err(answer.error_message())
    }
}

#[component]
pub fn ChatPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let room = RwSignal::new("lobby".to_owned());
    let name = RwSignal::new(guest_name());
    let joined = RwSignal::new(None::<String>);
    let draft = RwSignal::new(String::new());
    let lines = RwSignal::new(Vec::<Line>::new());
    let typing = RwSignal::new(None::<(String, f64)>);
    let error = RwSignal::new(None::<String>);
    let next = StoredValue::new(0u64);
    let last_typing_sent = StoredValue::new(0f64);
    // Who is in the room (user ids), and the names chat events gave them.
    let members = RwSignal::new(Vec::<String>::new());
    let names = RwSignal::new(HashMap::<String, String>::new());
    let learn = move |user_id: &str, name: &str| {
        let known = names.try_with_untracked(|n| n.get(user_id).map(String::as_str) == Some(name));
        if known == Some(false) {
            names.try_update(|n| n.insert(user_id.to_owned(), name.to_owned()));
        }
    };
    // `try_`: an answer may arrive after the panel is gone.
    let refresh = move || {
        let Some(current) = joined.try_get_untracked().flatten() else {
            return;
        };
        spawn_local(async move {
            if let Ok(ids) = who_is_in(&current).await {
                // Only if still in that room.
                if joined.try_get_untracked().flatten().as_deref() == Some(&*current) {
                    members.try_set(ids);
                }
            }
        });
    };
    // Browser only (intervals do not run on the server).
    Effect::new(move |_| {
        if let Ok(every) =
            set_interval_with_handle(refresh, std::time::Duration::from_millis(PRESENCE_EVERY_MS))
        {
            on_cleanup(move || every.clear());
        }
    });

    let push = move |kind: &'static str, who: String, text: String| {
        let seq = next.with_value(|n| *n);
        next.set_value(seq + 1);
        lines.try_update(|l| {
            l.push(Line {
                seq,
                kind,
                who,
                text,
            });
            if l.len() > 100 {
                l.remove(0);
            }
        });
    };

    // Browser only: listen to the room's events on the page's connection.
    Effect::new(move |_| {
        demo.sse.with(|client| {
            let in_room = move |r: &str| joined.get_untracked().as_deref() == Some(r);
            client
                .on_named(ChatMessage::NAME, move |m| {
                    // Unnamed events that are not chat messages are not ours.
                    if let Ok(msg) = ChatMessage::from_data(&m.data) {
                        if in_room(&msg.room_id) {
                            learn(&msg.user_id, &msg.username);
                            typing.try_set(None);
                            push("message", msg.username, msg.message);
                        }
                    }
                })
                .forget();
            client
                .on::<UserJoined>(move |UserJoined(p)| {
                    if in_room(&p.room_id) {
                        learn(&p.user_id, &p.username);
                        push("joined", p.username, "joined".into());
                        refresh();
                    }
                })
                .forget();
            client
                .on::<UserLeft>(move |UserLeft(p)| {
                    if in_room(&p.room_id) {
                        push("left", p.username, "left".into());
                        refresh();
                    }
                })
                .forget();
            client
                .on::<Typing>(move |t| {
                    let me = name.get_untracked();
                    if in_room(&t.room_id) && t.username != me && t.is_typing {
                        typing.try_set(Some((t.username, api::now_ms())));
                    }
                })
                .forget();
        });
    });

    let presence = move |room: &str| Presence {
        room_id: room.to_owned(),
        user_id: demo.user.get_value(),
        username: name.get_untracked(),
        timestamp: api::clock(api::now_ms()),
    };

    let join = move |_| {
        let target = room.get_untracked().trim().to_owned();
        error.set(None);
        spawn_local(async move {
            match membership(demo, "subscribe", &target).await {
                Ok(()) => {
                    joined.set(Some(target.clone()));
                    lines.set(Vec::new());
                    learn(&demo.user.get_value(), &name.get_untracked());
                    publish(&target, &UserJoined(presence(&target))).await;
                    refresh();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let leave = move |_| {
        let Some(current) = joined.get_untracked() else {
            return;
        };
        spawn_local(async move {
            // Out of the room first: whoever refreshes on `user-left`
            // no longer finds this connection there.
            let _ = membership(demo, "unsubscribe", &current).await;
            joined.set(None);
            members.set(Vec::new());
            publish(&current, &UserLeft(presence(&current))).await;
        });
    };
    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(current), text) = (joined.get_untracked(), draft.get_untracked()) else {
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        draft.set(String::new());
        let msg = ChatMessage {
            id: format!("{}-{}", name.get_untracked(), api::now_ms() as u64),
            room_id: current.clone(),
            user_id: demo.user.get_value(),
            username: name.get_untracked(),
            message: text,
            timestamp: api::clock(api::now_ms()),
        };
        spawn_local(async move {
            let answer = publish(&current, &msg).await;
            if !answer.ok() {
                error.set(Some(answer.error_message()));
            }
        });
    };
    let on_typing = move |ev| {
        draft.set(event_target_value(&ev));
        let Some(current) = joined.get_untracked() else {
            return;
        };
        // At most one typing event every 2 s.
        let now = api::now_ms();
        if now - last_typing_sent.get_value() < 2000.0 {
            return;
        }
        last_typing_sent.set_value(now);
        let t = Typing {
            room_id: current.clone(),
            user_id: String::new(),
            username: name.get_untracked(),
            is_typing: true,
        };
        spawn_local(async move {
            publish(&current, &t).await;
        });
    };

    view! {
        <section class="panel" aria-labelledby="chat-title">
            <h2 id="chat-title">"Chat"</h2>
            <div class="form-grid">
                <label>"Room"
                    <input data-testid="chat-room" prop:value=room on:input=move |ev| room.set(event_target_value(&ev))/>
                </label>
                <label>"Your name"
                    <input data-testid="chat-name" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
                </label>
            </div>
            <div class="buttons">
                <button data-testid="chat-join" on:click=join>"Join"</button>
                <button data-testid="chat-leave" on:click=leave disabled=move || joined.get().is_none()>"Leave"</button>
                <span data-testid="chat-joined">
                    {move || joined.get().map(|r| format!("in room:{r}")).unwrap_or_default()}
                </span>
            </div>
            <p class="muted" data-testid="chat-presence-count">
                {move || joined.get().map(|_| format!("In the room: {}", members.get().len())).unwrap_or_default()}
            </p>
            <ul class="presence" data-testid="chat-presence">
                {move || {
                    let me = demo.user.get_value();
                    names.with(|names| {
                        members
                            .get()
                            .into_iter()
                            .map(|id| {
                                let name = names.get(&id).cloned().unwrap_or_else(|| id.clone());
                                let label = if id == me { format!("{name} (you)") } else { name };
                                view! { <li>{label}</li> }
                            })
                            .collect::<Vec<_>>()
                    })
                }}
            </ul>
            <ol class="chat" data-testid="chat-lines" aria-live="polite">
                <For
                    each=move || lines.get()
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
                {move || typing.get().map(|(who, _)| format!("{who} is typing…")).unwrap_or_default()}
            </p>
            <form class="buttons" on:submit=send>
                <input aria-label="Message" data-testid="chat-draft" prop:value=draft on:input=on_typing
                    disabled=move || joined.get().is_none()/>
                <button data-testid="chat-send" type="submit" disabled=move || joined.get().is_none()>"Send"</button>
            </form>
            <p class="error">{move || error.get()}</p>
        </section>
    }
}
