//! Topics: the page's connection holds topics added at runtime
//! (`SSEClient::subscribe_now`): on the open stream through
//! `/_sse/subscribe`, and on every later connection, resumed from the last
//! event id, however it reconnects. A topic the server refuses is shown
//! with its error and not held.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Demo;

#[component]
pub fn TopicsPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let topic = RwSignal::new("room:lobby".to_owned());
    let error = RwSignal::new(None::<String>);

    let change = move |subscribe: bool| {
        let name = topic.get_untracked().trim().to_owned();
        error.set(None);
        let Some(client) = demo.sse.with(Clone::clone) else {
            return;
        };
        spawn_local(async move {
            let answer = if subscribe {
                client.subscribe_now(&[name]).await
            } else {
                client.unsubscribe_now(&[name]).await
            };
            match answer {
                Ok(topics) => demo.identity.update(|i| {
                    if let Some(i) = i {
                        i.topics = topics;
                    }
                }),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };

    view! {
        <section class="panel" aria-labelledby="topics-title">
            <h2 id="topics-title">"Topics"</h2>
            <div class="buttons">
                <input aria-label="Topic" data-testid="topic-name" prop:value=topic
                    on:input=move |ev| topic.set(event_target_value(&ev))/>
                <button data-testid="topic-subscribe" on:click=move |_| change(true)>"Subscribe"</button>
                <button data-testid="topic-unsubscribe" on:click=move |_| change(false)>"Unsubscribe"</button>
            </div>
            <p class="error" data-testid="topic-error">{move || error.get()}</p>
            <ul class="topics" data-testid="topics">
                {move || demo.identity.get().map(|i| i.topics).unwrap_or_default().into_iter()
                    .map(|t| view! { <li><code>{t}</code></li> }).collect_view()}
            </ul>
        </section>
    }
}
