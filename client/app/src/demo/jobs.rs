//! The job runner: starts a character or media job on the job-progress API
//! and follows it on its own stream (a second `SSEClient`, over the same
//! transport as the page's), showing the progress bar, then the result or
//! the failure reason. The stream ends after the final update; the client
//! is disconnected then (a reconnect would be told `204`: nothing more),
//! and when the panel goes away.

use herald_client::{SSEClient, SseConfig};
use herald_shared::events::{JobMessage, JobState, JobStatus, SseEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

use super::{api, Demo};

/// What the panel shows of the current job.
#[derive(Debug, Clone, PartialEq)]
struct JobView {
    id: String,
    status: JobStatus,
    progress: u8,
    result: Option<Value>,
    failed_reason: Option<String>,
}

impl JobView {
    fn waiting(id: String) -> Self {
        JobView {
            id,
            status: JobStatus::Waiting,
            progress: 0,
            result: None,
            failed_reason: None,
        }
    }

    fn apply(&mut self, s: JobState) {
        self.status = s.status;
        self.progress = s.progress;
        self.result = s.result;
        self.failed_reason = s.failed_reason;
    }
}

fn status_text(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Waiting => "waiting",
        JobStatus::Active => "active",
        JobStatus::Completed => "completed",
        JobStatus::Failed => "failed",
    }
}

#[component]
pub fn JobsPanel() -> impl IntoView {
    let demo = expect_context::<Demo>();
    let kind = RwSignal::new("character".to_owned());
    let input = RwSignal::new("Ada Lovelace".to_owned());
    let fail = RwSignal::new(false);
    let job = RwSignal::new(None::<JobView>);
    let error = RwSignal::new(None::<String>);
    // The stream of the job being followed; replacing it closes the old one.
    let follower = StoredValue::new_local(None::<SSEClient>);

    let follow = move |kind: String, id: String| {
        let url = format!("/api/v1/sse/jobs/{kind}/{id}?token={}", demo.token());
        let transport = demo.sse.with(|c| c.config().transport).unwrap_or_default();
        let client = SSEClient::new(SseConfig::new(url).max_retries(3).transport(transport));
        client
            .on_named(JobMessage::NAME, move |m| {
                let Ok(message) = JobMessage::from_data(&m.data) else {
                    return;
                };
                let state = match message {
                    JobMessage::Connected(_) => return,
                    JobMessage::InitialStatus(s) | JobMessage::JobUpdate(s) => s,
                };
                let done = state.status.is_final();
                job.try_update(|j| {
                    if let Some(j) = j.as_mut().filter(|j| j.id == state.job_id) {
                        j.apply(state);
                    }
                });
                if done {
                    // Through the panel's slot, not a clone of the client:
                    // a handler holding its own client would keep it alive.
                    follower.with_value(|f| f.as_ref().map(SSEClient::disconnect));
                }
            })
            .forget();
        client.connect();
        follower.update_value(|f| {
            if let Some(old) = f.replace(client) {
                old.disconnect();
            }
        });
    };

    // Leaving the page stops following: the client closes its stream.
    on_cleanup(move || {
        follower.update_value(|f| {
            if let Some(client) = f.take() {
                client.disconnect();
            }
        });
    });

    let start = move |_| {
        error.set(None);
        let kind = kind.get_untracked();
        let (path, field) = match kind.as_str() {
            "media" => ("/api/v1/media", "prompt"),
            _ => ("/api/v1/characters", "name"),
        };
        let body = json!({ field: input.get_untracked(), "fail": fail.get_untracked() });
        let url = format!("{path}?token={}", demo.token());
        spawn_local(async move {
            let answer = api::post_json(&url, body.to_string()).await;
            let id = serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| v["jobId"].as_str().map(str::to_owned));
            match id {
                Some(id) if answer.ok() => {
                    job.set(Some(JobView::waiting(id.clone())));
                    follow(kind, id);
                }
                _ => error.set(Some(format!(
                    "{} {}",
                    answer.status,
                    answer.error_message()
                ))),
            }
        });
    };

    view! {
        <section class="panel" aria-labelledby="jobs-title">
            <h2 id="jobs-title">"Job runner"</h2>
            <p class="muted">"Starts a job on the job-progress API and follows its own stream."</p>
            <div class="form-grid">
                <label>"Kind"
                    <select data-testid="job-kind" prop:value=kind on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="character">"character"</option>
                        <option value="media">"media"</option>
                    </select>
                </label>
                <label>"Name / prompt"
                    <input data-testid="job-input" prop:value=input on:input=move |ev| input.set(event_target_value(&ev))/>
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="job-fail"
                        prop:checked=fail on:change=move |ev| fail.set(event_target_checked(&ev))/>
                    "Make it fail"
                </label>
            </div>
            <button data-testid="job-start" on:click=start>"Start job"</button>
            {move || error.get().map(|e| view! { <p class="error" data-testid="job-error" role="alert">{e}</p> })}
            {move || job.get().map(|j| {
                let result = j.result.as_ref().filter(|_| j.status == JobStatus::Completed).map(|r| {
                    serde_json::to_string_pretty(r).unwrap_or_default()
                });
                view! {
                    <div class="job" data-testid="job" data-status=status_text(j.status)>
                        <p>
                            "Job " <code data-testid="job-id">{j.id.clone()}</code> ": "
                            <strong data-testid="job-status">{status_text(j.status)}</strong>
                        </p>
                        <progress max="100" value=j.progress data-testid="job-progress"
                            aria-label="Job progress">{j.progress}"%"</progress>
                        <span class="job-percent" data-testid="job-percent">{j.progress}"%"</span>
                        {result.map(|r| view! { <pre class="event-data" data-testid="job-result">{r}</pre> })}
                        {j.failed_reason.clone().map(|r| view! { <p class="error" data-testid="job-failure">{r}</p> })}
                    </div>
                }
            })}
        </section>
    }
}
