//! The system status panel: a second, public stream read with the runtime's
//! hooks (`use_sse` + `use_sse_event`), exactly as another app would.

use herald_client::{use_sse, use_sse_event, SseConfig};
use herald_shared::events::SystemStatus;
use leptos::prelude::*;

#[component]
pub fn StatusPanel() -> impl IntoView {
    let (state, sse) = use_sse(SseConfig::new("/system/status/stream"));
    let status = use_sse_event::<SystemStatus>(sse);
    let field = move |f: fn(&SystemStatus) -> String| {
        move || status.get().map(|s| f(&s)).unwrap_or_else(|| "…".into())
    };

    view! {
        <section class="panel" aria-labelledby="status-title">
            <h2 id="status-title">"System status"</h2>
            <p class="muted">"Stream: " {move || state.get().as_str()}</p>
            <dl class="facts" data-testid="system-status">
                <dt>"Status"</dt><dd data-testid="status-status">{field(|s| s.status.clone())}</dd>
                <dt>"Connections"</dt><dd data-testid="status-connections">{field(|s| s.connections.to_string())}</dd>
                <dt>"Uptime"</dt><dd>{field(|s| format!("{} s", s.uptime))}</dd>
                <dt>"Memory"</dt><dd>{field(|s| s.memory.clone())}</dd>
                <dt>"CPU"</dt><dd>{field(|s| s.cpu.clone())}</dd>
                <dt>"Events/s"</dt>
                <dd>{field(|s| s.events_per_second.map_or_else(|| "…".into(), |r| format!("{r:.1}")))}</dd>
            </dl>
        </section>
    }
}
