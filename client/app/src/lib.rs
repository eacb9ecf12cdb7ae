//! # herald-app
//!
//! Herald's demo app: the pages, rendered on the server (feature `ssr`, used
//! by `herald-server`) and hydrated in the browser (feature `hydrate`,
//! compiled to WASM by cargo-leptos). The reusable client runtime lives in
//! `herald-client`; this crate is only its first user.

// Deeply nested view types need more than the default 128 levels.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::StaticSegment;

mod demo;

pub use demo::SseDemo;

/// The HTML document around the app, rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The app's routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                <Route path=StaticSegment("") view=Home/>
                <Route path=StaticSegment("sse-demo") view=SseDemo/>
            </Routes>
        </Router>
    }
}

/// The landing page: what Herald is, and the way to the demo.
#[component]
fn Home() -> impl IntoView {
    view! {
        <main class="home">
            <h1>"Herald"</h1>
            <p>"Server-Sent Events, done properly: topics, resume, heartbeats, backpressure."</p>
            <A href="/sse-demo">"Open the live demo"</A>
        </main>
    }
}

/// The browser entry point: attaches the server-rendered page to the WASM app.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
