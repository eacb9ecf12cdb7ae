//! Job progress over SSE (the system that replaced polling):
//!
//! - `POST /api/v1/characters` `{name, fail?}` and `POST /api/v1/media`
//!   `{prompt, fail?}` queue a job for the caller → 202 `{success, jobId, ...}`.
//! - `GET /api/v1/sse/jobs/character/:jobId`, `.../media/:jobId`: the job's
//!   stream, for its owner only (403 for anyone else, 404 for no such job):
//!   `connected`, `initial_status` (the job's state now), then a
//!   `job_update` per step; the stream ends after `completed` / `failed`.
//! - `GET /api/v1/sse/jobs/my`: every job of the caller, never ending.
//! - `GET /api/v1/characters/jobs/:jobId` (and `/api/v1/media/jobs/:jobId`):
//!   the state, for clients that still poll.
//!
//! Messages are unnamed `data:` events tagged by `type`, as documented;
//! keepalives are the broker's heartbeats. All routes need a token.
//!
//! The jobs themselves (queue, store, workers) are [`crate::jobs`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_shared::events::{JobConnected, JobMessage, SseEvent};
use herald_shared::wire::Event;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::broker::{ConnectOptions, Position};
use crate::jobs::{job_topic, owner_topic, JobError, JobKind, Snapshot};
use crate::state::AppState;
use crate::web::caller::Caller;
use crate::web::error::ApiError;
use crate::web::sse_stream_response;
use crate::web::LastEventId;

/// The job routes, over the state's job queue.
pub fn router(state: AppState) -> Router {
    state.jobs.answer_owner_lookups();
    Router::new()
        .route("/api/v1/characters", post(create_character))
        .route("/api/v1/media", post(create_media))
        .route("/api/v1/sse/jobs/my", get(my_jobs))
        .route("/api/v1/sse/jobs/{kind}/{job_id}", get(job_stream))
        .route("/api/v1/characters/jobs/{job_id}", get(poll_character))
        .route("/api/v1/media/jobs/{job_id}", get(poll_media))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CharacterBody {
    name: String,
    #[serde(default)]
    fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody {
    prompt: String,
    #[serde(default)]
    fail: bool,
}

async fn create_character(
    State(s): State<AppState>,
    caller: Caller,
    body: Result<Json<CharacterBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    caller.admit_publish(&s)?;
    let Json(body) = body?;
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let input = json!({ "name": body.name });
    create(&s, &user.sub, JobKind::Character, input, body.fail).await
}

async fn create_media(
    State(s): State<AppState>,
    caller: Caller,
    body: Result<Json<MediaBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    caller.admit_publish(&s)?;
    let Json(body) = body?;
    if body.prompt.trim().is_empty() {
        return Err(ApiError::bad_request("prompt must not be empty"));
    }
    let input = json!({ "prompt": body.prompt });
    create(&s, &user.sub, JobKind::Media, input, body.fail).await
}

async fn create(
    s: &AppState,
    owner: &str,
    kind: JobKind,
    input: Value,
    fail: bool,
) -> Result<Response, ApiError> {
    let id = s
        .jobs
        .create(kind, owner, input, fail)
        .await
        .map_err(ApiError::from)?;
    let kind = kind.as_str();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "jobId": id,
            "type": kind,
            "status": "waiting",
            "streamUrl": format!("/api/v1/sse/jobs/{kind}/{id}"),
        })),
    )
        .into_response())
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Busy { .. } => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            JobError::Store(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            JobError::Broker(e) => e.into(),
        }
    }
}

/// The caller's job, or 404 (no such job of this kind) / 403 (not theirs).
async fn owned(
    s: &AppState,
    caller: &Caller,
    kind: JobKind,
    id: &str,
) -> Result<Snapshot, ApiError> {
    let user = caller.user()?;
    let snapshot = s
        .jobs
        .snapshot(id)
        .await?
        .filter(|j| j.kind == kind)
        .ok_or_else(|| ApiError::not_found(format!("no {} job {id:?}", kind.as_str())))?;
    if snapshot.owner != user.sub {
        return Err(ApiError::forbidden("only the job's owner may follow it"));
    }
    Ok(snapshot)
}

fn kind_from(segment: &str) -> Result<JobKind, ApiError> {
    match segment {
        "character" => Ok(JobKind::Character),
        "media" => Ok(JobKind::Media),
        other => Err(ApiError::not_found(format!(
            "no job type {other:?}: use character or media"
        ))),
    }
}

fn message(m: &JobMessage) -> Result<Event, ApiError> {
    m.to_event().map_err(ApiError::encoding)
}

fn connected(job_id: &str, what: &str) -> Result<Event, ApiError> {
    message(&JobMessage::Connected(JobConnected {
        job_id: job_id.to_owned(),
        message: format!("Connected to {what}"),
    }))
}

/// The position a reconnecting job stream resumes after, if its
/// `Last-Event-ID` is one of this log's (any other id starts over from
/// the job's state now, which says everything a `reset` would).
fn resume_after(s: &AppState, last_event_id: Option<String>) -> Option<Position> {
    last_event_id?
        .parse::<Position>()
        .ok()
        .filter(|at| at.epoch == s.broker.epoch() && at.shards() == s.broker.backplane().shards())
}

/// A job's stream. First time: `connected`, `initial_status` (the state
/// now, with the id of the update it reflects), then each `job_update`;
/// the stream ends after the final one. Reconnecting with an id: the
/// updates missed since it. Reconnecting after the final update: `204 No
/// Content`, which an `EventSource` takes as "done" and stops.
async fn job_stream(
    State(s): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
    LastEventId(last_event_id): LastEventId,
) -> Result<Response, ApiError> {
    let snapshot = owned(&s, &caller, kind_from(&kind)?, &id).await?;
    let resume = resume_after(&s, last_event_id);
    let topic = job_topic(&id);
    let final_seq = *snapshot.finished.borrow();
    if let (Some(last), Some(at)) = (final_seq, &resume) {
        if at.seq(s.broker.shard_of(&topic)) >= last {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    let mut greeting = vec![connected(&id, "job status stream")?];
    if resume.is_none() {
        let mut initial = message(&JobMessage::InitialStatus(snapshot.state.clone()))?;
        initial.id = Some(snapshot.after.to_string());
        greeting.push(initial);
    }
    if snapshot.state.status.is_final() && resume.is_none() {
        // Nothing more will happen: say where it ended, and end. Its id
        // brings a reconnect to the 204 above.
        let mut frames = Vec::new();
        for event in greeting {
            frames.push(event.encode().map_err(crate::broker::BrokerError::from)?);
        }
        return Ok(sse_stream_response(futures::stream::iter(frames)));
    }
    let sub = s
        .broker
        .connect(ConnectOptions {
            principal: caller.principal(),
            topics: vec![topic.clone()],
            no_broadcasts: true,
            no_identity_topics: true,
            greeting: Some(greeting),
            last_event_id: Some(resume.unwrap_or(snapshot.after).to_string()),
            ..ConnectOptions::default()
        })
        .await?;
    // The job's final update may be published before or after this
    // connected: the stream ends right after it either way.
    sub.end_after(&topic, snapshot.finished);
    Ok(crate::web::sse_response(sub))
}

/// Every job of the caller: `connected` and each unfinished job's
/// `initial_status`, then every `job_update`; reconnecting with an id,
/// the updates missed since it.
async fn my_jobs(
    State(s): State<AppState>,
    caller: Caller,
    LastEventId(last_event_id): LastEventId,
) -> Result<Response, ApiError> {
    let user = caller.user()?;
    let resume = resume_after(&s, last_event_id);
    let (running, after) = s.jobs.running_for(&user.sub).await?;
    let mut greeting = vec![connected("my", "your jobs' status stream")?];
    if resume.is_none() {
        for state in running {
            greeting.push(message(&JobMessage::InitialStatus(state))?);
        }
        // A reconnect before the next update resumes from this snapshot.
        if let Some(last) = greeting.last_mut() {
            last.id = Some(after.to_string());
        }
    }
    let sub = s
        .broker
        .connect(ConnectOptions {
            principal: caller.principal(),
            topics: vec![owner_topic(&user.sub)],
            no_broadcasts: true,
            no_identity_topics: true,
            greeting: Some(greeting),
            last_event_id: Some(resume.unwrap_or(after).to_string()),
            ..ConnectOptions::default()
        })
        .await?;
    Ok(crate::web::sse_response(sub))
}

async fn poll_character(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    poll(&s, &caller, JobKind::Character, &id).await
}

async fn poll_media(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    poll(&s, &caller, JobKind::Media, &id).await
}

/// `{success: true, data: {jobId, status, progress, ...}}`.
async fn poll(
    s: &AppState,
    caller: &Caller,
    kind: JobKind,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let snapshot = owned(s, caller, kind, id).await?;
    Ok(Json(json!({ "success": true, "data": snapshot.state })))
}
