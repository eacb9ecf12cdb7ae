//! Topics: subscribe this connection to topics at runtime, and leave them,
//! through `/_sse/subscribe` and `/_sse/unsubscribe` (proving ownership
//! with the connection's secret).

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::{api, Demo};

#[component]
pub fn TopicsPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let topic = RwSignal::new("room:lobby".to_owned());
    let error = RwSignal::new(None::<String>);

    let change = move |action: &'static str| {
        let Some(me) = demo.identity.get_untracked() else {
            error.set(Some("not connected yet".into()));
            return;
        };
        let body = json!({ "clientId": me.client_id, "secret": me.secret, "topics": [topic.get_untracked().trim()] });
        error.set(None);
        spawn_local(async move {
            let answer = api::post_json(&format!("/_sse/{action}"), body.to_string()).await;
            if answer.ok() {
                let topics: Vec<String> = serde_json::from_str::<Value>(&answer.body)
                    .ok()
                    .and_then(|v| serde_json::from_value(v["held"].clone()).ok())
                    .unwrap_or_default();
                demo.identity.update(|i| {
                    if let Some(i) = i {
                        i.topics = topics;
                    }
                });
            } else {
                error.set(Some(format!(
                    "{} {}",
                    answer.status,
                    answer.error_message()
                )));
            }
        });
    };

    view! {
        <section class="panel" aria-labelledby="topics-title">
            <h2 id="topics-title">"Topics"</h2>
            <div class="buttons">
                <input aria-label="Topic" data-testid="topic-name" prop:value=topic
                    on:input=move |ev| topic.set(event_target_value(&ev))/>
                <button data-testid="topic-subscribe" on:click=move |_| change("subscribe")>"Subscribe"</button>
                <button data-testid="topic-unsubscribe" on:click=move |_| change("unsubscribe")>"Unsubscribe"</button>
            </div>
            <p class="error" data-testid="topic-error">{move || error.get()}</p>
            <ul class="topics" data-testid="topics">
                {move || demo.identity.get().map(|i| i.topics).unwrap_or_default().into_iter()
                    .map(|t| view! { <li><code>{t}</code></li> }).collect_view()}
            </ul>
        </section>
    }
}
