//! The send panel: publish notifications, alerts, progress and custom
//! events through `POST /_sse/publish`, to this page, its session, a topic
//! or everyone.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::{api, Demo};

/// Where a publish goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Me,
    User,
    Session,
    Everyone,
    Topic,
}

impl Target {
    fn parse(s: &str) -> Self {
        match s {
            "user" => Target::User,
            "session" => Target::Session,
            "everyone" => Target::Everyone,
            "topic" => Target::Topic,
            _ => Target::Me,
        }
    }
}

/// The destination fields of a publish body, as a JSON object's members.
fn destination(demo: &Demo, target: Target, topic: &str) -> Result<Value, String> {
    Ok(match target {
        Target::Me => {
            let id = demo
                .identity
                .get_untracked()
                .map(|i| i.client_id)
                .ok_or("not connected yet")?;
            json!({ "target": { "clientId": id } })
        }
        Target::User => json!({ "target": { "userId": demo.user.get_value() } }),
        Target::Session => json!({ "target": { "sessionId": demo.session_id.get_value() } }),
        Target::Everyone => json!({}),
        Target::Topic => json!({ "topic": topic.trim() }),
    })
}

#[component]
pub fn SendPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let target = RwSignal::new("me".to_owned());
    let topic = RwSignal::new("room:lobby".to_owned());
    let message = RwSignal::new("Hello from Herald!".to_owned());
    let level = RwSignal::new("info".to_owned());
    let percent = RwSignal::new("50".to_owned());
    let custom_name = RwSignal::new("my-event".to_owned());
    let custom_json = RwSignal::new("{\"hello\": \"world\"}".to_owned());
    let result = RwSignal::new(None::<Result<String, String>>);

    // Sends `body` (already complete JSON text) and shows the outcome.
    let send_text = move |body: String| {
        result.set(None);
        spawn_local(async move {
            let answer = api::post_json("/_sse/publish", body).await;
            result.set(Some(if answer.ok() {
                let id = serde_json::from_str::<Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Ok(format!("sent as {id}"))
            } else {
                Err(format!("{} {}", answer.status, answer.error_message()))
            }));
        });
    };
    // Sends a typed event: `{event, data}` plus the chosen destination.
    let send = move |event: &str, data: Value| match destination(
        &demo,
        Target::parse(&target.get_untracked()),
        &topic.get_untracked(),
    ) {
        Ok(mut body) => {
            body["event"] = json!(event);
            body["data"] = data;
            send_text(body.to_string());
        }
        Err(e) => result.set(Some(Err(e.to_owned()))),
    };

    let notify = move |_| {
        send(
            "notification",
            json!({ "title": "Demo", "message": message.get_untracked(), "type": "info",
                    "timestamp": api::clock(api::now_ms()) }),
        )
    };
    let alert = move |_| {
        send(
            "alert",
            json!({ "level": level.get_untracked(), "message": message.get_untracked() }),
        )
    };
    let progress = move |_| {
        let p = percent
            .get_untracked()
            .trim()
            .parse::<u8>()
            .unwrap_or(0)
            .min(100);
        send(
            "progress",
            json!({ "progress": p, "message": message.get_untracked() }),
        )
    };
    // The raw text goes to the server as it is: if it is not JSON, the
    // server refuses the whole request and nothing is published.
    let custom = move |_| {
        let name = custom_name.get_untracked();
        demo.listen(&name);
        match destination(
            &demo,
            Target::parse(&target.get_untracked()),
            &topic.get_untracked(),
        ) {
            Ok(dest) => {
                let mut members = String::new();
                if let Value::Object(map) = dest {
                    for (k, v) in map {
                        members.push_str(&format!("{}:{},", Value::String(k), v));
                    }
                }
                send_text(format!(
                    "{{{members}\"event\":{},\"data\":{}}}",
                    Value::String(name),
                    custom_json.get_untracked()
                ));
            }
            Err(e) => result.set(Some(Err(e.to_owned()))),
        }
    };

    view! {
        <section class="panel" aria-labelledby="send-title">
            <h2 id="send-title">"Send"</h2>
            <div class="form-grid">
                <label>"To"
                    <select data-testid="send-target" prop:value=target on:change=move |ev| target.set(event_target_value(&ev))>
                        <option value="me">"me (this page)"</option>
                        <option value="user">"my user (every tab of this browser)"</option>
                        <option value="session">"my session"</option>
                        <option value="everyone">"everyone"</option>
                        <option value="topic">"a topic"</option>
                    </select>
                </label>
                <label>"Topic"
                    <input data-testid="send-topic" prop:value=topic on:input=move |ev| topic.set(event_target_value(&ev))/>
                </label>
                <label class="wide">"Message"
                    <input data-testid="send-message" prop:value=message on:input=move |ev| message.set(event_target_value(&ev))/>
                </label>
            </div>
            <div class="buttons">
                <button data-testid="send-notification" on:click=notify>"Send notification"</button>
                <select aria-label="Alert level" data-testid="send-level" prop:value=level on:change=move |ev| level.set(event_target_value(&ev))>
                    <option value="info">"info"</option>
                    <option value="success">"success"</option>
                    <option value="warning">"warning"</option>
                    <option value="error">"error"</option>
                </select>
                <button data-testid="send-alert" on:click=alert>"Send alert"</button>
                <input aria-label="Progress percent" class="narrow" type="number" min="0" max="100"
                    data-testid="send-percent" prop:value=percent on:input=move |ev| percent.set(event_target_value(&ev))/>
                <button data-testid="send-progress" on:click=progress>"Send progress"</button>
            </div>
            <h3>"Custom event"</h3>
            <div class="form-grid">
                <label>"Event name"
                    <input data-testid="custom-name" prop:value=custom_name on:input=move |ev| custom_name.set(event_target_value(&ev))/>
                </label>
                <label class="wide">"Data (raw JSON)"
                    <textarea rows="3" data-testid="custom-json" prop:value=custom_json
                        on:input=move |ev| custom_json.set(event_target_value(&ev))></textarea>
                </label>
            </div>
            <button data-testid="send-custom" on:click=custom>"Send custom event"</button>
            <p class="send-result" role="status">
                {move || match result.get() {
                    Some(Ok(text)) => view! { <span class="ok" data-testid="send-ok">{text}</span> }.into_any(),
                    Some(Err(text)) => view! { <span class="error" data-testid="send-error">{text}</span> }.into_any(),
                    None => ().into_any(),
                }}
            </p>
        </section>
    }
}
