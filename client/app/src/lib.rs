//! # herald-app
//!
//! Herald's demo app: the pages, rendered on the server (feature `ssr`, used
//! by `herald-server`) and hydrated in the browser (feature `hydrate`,
//! compiled to WASM by cargo-leptos). The reusable client runtime lives in
//! `herald-client`; this crate is only its first user.

// Deeply nested view types need more than the default 128 levels.
#![recursion_limit = "256"]

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};

mod demo;

pub use demo::SseDemo;

/// The app's pages. The server renders the page a request's path names,
/// and the browser hydrates the same one, both through [`Page::from_path`].
///
/// There is no client-side router: two pages do not need one, and
/// `leptos_router` was a third of the demo's WASM (359 → 240 KiB
/// gzipped without it, `scripts/wasm-size.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Home,
    Demo,
    /// Any other path (the server answers 404).
    NotFound,
}

impl Page {
    /// Every page with a path of its own.
    pub const ROUTES: [(&'static str, Page); 2] = [("/", Page::Home), ("/sse-demo", Page::Demo)];

    /// The page at `path`.
    ///
    /// ```
    /// use herald_app::Page;
    /// assert_eq!(Page::from_path("/sse-demo"), Page::Demo);
    /// assert_eq!(Page::from_path("/elsewhere"), Page::NotFound);
    /// ```
    pub fn from_path(path: &str) -> Page {
        Page::ROUTES
            .iter()
            .find(|(at, _)| *at == path)
            .map_or(Page::NotFound, |(_, page)| *page)
    }
}

/// The HTML document around the app, rendered by the server.
pub fn shell(options: LeptosOptions, page: Page) -> impl IntoView {
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
                <App page/>
            </body>
        </html>
    }
}

/// The app: the page, its title and style.
#[component]
pub fn App(page: Page) -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        {match page {
            Page::Home => EitherOf3::A(view! { <Home/> }),
            Page::Demo => EitherOf3::B(view! { <SseDemo/> }),
            Page::NotFound => EitherOf3::C(view! { <p class="not-found">"Page not found."</p> }),
        }}
    }
}

/// The landing page: what Herald is, and the way to the demo.
#[component]
fn Home() -> impl IntoView {
    view! {
        <main class="home">
            <h1>"Herald"</h1>
            <p>"Server-Sent Events, done properly: topics, resume, heartbeats, backpressure."</p>
            <a href="/sse-demo">"Open the live demo"</a>
        </main>
    }
}

/// The browser entry point: attaches the server-rendered page to the WASM app.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let path = window().location().pathname().unwrap_or_default();
    let page = Page::from_path(&path);
    leptos::mount::hydrate_body(move || view! { <App page/> });
}
