//! The README's component, in an app of its own: the latest
//! notifications of topic `outside` from a Herald server on another
//! origin, with the connection's state and the error to show while it is
//! down. The server's address comes from the page's `?server=`
//! (`http://127.0.0.1:3000` by default).

use herald_client::events::Notification;
use herald_client::{use_sse, use_sse_events, SseConfig, SseState};
use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// The page's entry point.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// `?server=` of the page's URL.
fn server() -> String {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("server="))
        .map(|s| s.replace("%3A", ":").replace("%2F", "/"))
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned())
}

#[component]
fn App() -> impl IntoView {
    let url = format!("{}/_sse/connect?topics=outside", server());
    let (state, sse) = use_sse(SseConfig::new(url));
    let notes = use_sse_events::<Notification>(sse, 1000);
    view! {
        <h1>"An app outside Herald's workspace"</h1>
        <p>"State: " <span data-testid="state">{move || state.get().as_str()}</span></p>
        <Show when=move || state.get() == SseState::Error>
            <p data-testid="offline">
                "Offline, still trying: " {move || sse.error().get().map(|e| e.to_string())}
            </p>
        </Show>
        <p>"Received: " <span data-testid="count">{move || notes.get().len()}</span></p>
        <ol data-testid="notes">
            {move || notes.get().into_iter().map(|n| view! { <li>{n.message}</li> }).collect_view()}
        </ol>
    }
}
