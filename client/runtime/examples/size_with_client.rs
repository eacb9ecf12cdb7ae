//! `size_baseline` plus one event stream read through herald-client: its
//! state, and the latest typed event. See `scripts/wasm-size.sh`.

use herald_client::{use_sse, use_sse_event};
use herald_shared::events::Notification;
use leptos::prelude::*;

#[component]
fn App() -> impl IntoView {
    let (count, set_count) = signal(0u32);
    let (state, sse) = use_sse("/_sse/connect?topics=news");
    let latest = use_sse_event::<Notification>(sse);
    view! {
        <button on:click=move |_| set_count.update(|n| *n += 1)>"+1"</button>
        <p>{move || count.get()}</p>
        <p>{move || state.get().as_str()}</p>
        <p>{move || latest.get().map(|n| n.message)}</p>
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
