//! The connection panel: state, timeline, retry countdown, controls, and the
//! client's settings, editable live.

use herald_client::{SseState, Transport};
use leptos::prelude::*;

use super::{api, Demo};

/// Reads a number from an input, keeping `fallback` for junk.
fn parse_or<T: std::str::FromStr>(text: &str, fallback: T) -> T {
    text.trim().parse().unwrap_or(fallback)
}

#[component]
pub fn ConnectionPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let state = demo.state;

    // The settings form starts from the client's own configuration.
    let initial = demo
        .sse
        .with(|c| c.config())
        .unwrap_or_else(|| herald_client::SseConfig::new(""));
    let max_retries = RwSignal::new(initial.max_retries.to_string());
    let delay = RwSignal::new(initial.reconnect_delay.to_string());
    let max_delay = RwSignal::new(initial.max_reconnect_delay.to_string());
    let heartbeat = RwSignal::new(initial.heartbeat_interval.to_string());
    let missed = RwSignal::new(initial.missed_heartbeats_limit.to_string());
    let debug = RwSignal::new(false);
    let transport = RwSignal::new(transport_name(initial.transport).to_owned());

    let apply = move |_| {
        demo.sse.with(|client| {
            client.configure(|c| {
                c.max_retries = parse_or(&max_retries.get_untracked(), c.max_retries);
                c.reconnect_delay = parse_or(&delay.get_untracked(), c.reconnect_delay);
                c.max_reconnect_delay = parse_or(&max_delay.get_untracked(), c.max_reconnect_delay);
                c.heartbeat_interval = parse_or(&heartbeat.get_untracked(), c.heartbeat_interval);
                c.missed_heartbeats_limit =
                    parse_or(&missed.get_untracked(), c.missed_heartbeats_limit);
                c.debug = debug.get_untracked();
            });
            let wanted = transport_from(&transport.get_untracked());
            if client.config().transport != wanted {
                client.configure(|c| c.transport = wanted);
                client.reconnect();
                demo.transport_shown.set(Some(transport_name(wanted)));
            }
        });
    };

    let retry_text = move || match (state.get(), demo.retry.get()) {
        (SseState::Connecting, Some(r)) => format!(
            "attempt {} failed; retrying in {} ms",
            r.attempt, r.delay_ms
        ),
        // Past its fast retries the client still tries, slowly.
        (SseState::Error, Some(r)) => format!(
            "retries exhausted; trying again every {} s",
            r.delay_ms / 1000
        ),
        (SseState::Error, None) => "gave up: retries exhausted".to_owned(),
        _ => String::new(),
    };

    view! {
        <section class="panel" aria-labelledby="conn-title">
            <h2 id="conn-title">"Connection"</h2>
            <p class="state-line">
                <span class="state-dot" data-state=move || state.get().as_str() aria-hidden="true"></span>
                <span data-testid="state" aria-live="polite">{move || state.get().as_str()}</span>
            </p>
            <dl class="facts">
                <dt>"Client id"</dt>
                <dd>
                    <code data-testid="client-id">
                        {move || demo.identity.get().map(|i| i.client_id).unwrap_or_else(|| "(not connected)".into())}
                    </code>
                </dd>
                <dt>"User"</dt>
                <dd>
                    <code data-testid="user-id">
                        {move || demo.user_shown.get().unwrap_or_default()}
                    </code>
                </dd>
                <dt>"Transport"</dt>
                <dd data-testid="transport">{move || demo.transport_shown.get().unwrap_or_default()}</dd>
                <dt>"Last event id"</dt>
                <dd><code data-testid="last-event-id">{move || demo.last_event_id.get()}</code></dd>
                <dt>"Retry"</dt>
                <dd data-testid="retry">{retry_text}</dd>
            </dl>
            <div class="buttons">
                <button data-testid="connection-connect" on:click=move |_| demo.sse.connect()>"Connect"</button>
                <button data-testid="connection-disconnect" on:click=move |_| demo.sse.disconnect()>"Disconnect"</button>
                <button data-testid="connection-reconnect" on:click=move |_| demo.sse.reconnect()>"Reconnect"</button>
            </div>

            <details class="settings">
                <summary>"Client settings"</summary>
                <div class="form-grid">
                    <NumberField label="Max retries (0 = unlimited)" test_id="cfg-max-retries" value=max_retries/>
                    <NumberField label="Reconnect delay (ms)" test_id="cfg-delay" value=delay/>
                    <NumberField label="Max delay (ms)" test_id="cfg-max-delay" value=max_delay/>
                    <NumberField label="Heartbeat expected every (ms)" test_id="cfg-heartbeat" value=heartbeat/>
                    <NumberField label="Missed heartbeats before reconnect" test_id="cfg-missed" value=missed/>
                    <label>"Transport"
                        <select data-testid="cfg-transport" prop:value=transport
                            on:change=move |ev| transport.set(event_target_value(&ev))>
                            <option value="eventsource">"EventSource"</option>
                            <option value="fetch">"fetch (headers, HTTP status)"</option>
                        </select>
                    </label>
                    <label class="check">
                        <input type="checkbox" data-testid="cfg-debug"
                            prop:checked=debug on:change=move |ev| debug.set(event_target_checked(&ev))/>
                        "Debug logging (browser console)"
                    </label>
                </div>
                <button data-testid="cfg-apply" on:click=apply>"Apply settings"</button>
            </details>

            <h3>"Timeline"</h3>
            <ol class="timeline" data-testid="timeline">
                <For
                    each=move || demo.timeline.get().into_iter().enumerate().rev()
                    key=|(i, t)| (*i, t.at_ms.to_bits())
                    children=|(_, t)| view! {
                        <li data-state=t.state.as_str() data-kind=if t.retry.is_some() { "retry" } else { "state" }>
                            <time>{api::clock(t.at_ms)}</time>
                            " "
                            {match t.retry {
                                Some(r) => format!("retry {} in {} ms", r.attempt, r.delay_ms),
                                None => t.state.as_str().to_owned(),
                            }}
                        </li>
                    }
                />
            </ol>
        </section>
    }
}

/// The transport's name in the settings form and in `?transport=`.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::EventSource => "eventsource",
        Transport::Fetch => "fetch",
    }
}

/// The transport a name stands for (EventSource for anything else).
pub fn transport_from(name: &str) -> Transport {
    match name {
        "fetch" => Transport::Fetch,
        _ => Transport::EventSource,
    }
}

/// A labelled non-negative number input bound to a text signal.
#[component]
fn NumberField(
    label: &'static str,
    test_id: &'static str,
    value: RwSignal<String>,
) -> impl IntoView {
    view! {
        <label>{label}
            <input type="number" min="0" data-testid=test_id
                prop:value=value on:input=move |ev| value.set(event_target_value(&ev))/>
        </label>
    }
}
