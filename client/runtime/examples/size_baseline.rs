//! The smallest Leptos app worth measuring: a signal, a button, a text.
//! `scripts/wasm-size.sh` builds it next to `size_with_client` (the same
//! app reading one event stream through herald-client); the difference in
//! their WASM is what the client runtime costs an app.

use leptos::prelude::*;

#[component]
fn App() -> impl IntoView {
    let (count, set_count) = signal(0u32);
    view! {
        <button on:click=move |_| set_count.update(|n| *n += 1)>"+1"</button>
        <p>{move || count.get()}</p>
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
