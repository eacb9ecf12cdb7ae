//! A small in-process job queue: jobs wait in a channel, worker tasks run
//! them step by step, and every state change is published as a
//! `job_update` to the job's topic (`job:<id>`) and its owner's
//! (`jobs:<owner>`). The queue remembers each job's state and the id of its
//! latest update, so a stream can start from a consistent snapshot and
//! resume the topic right after it.
//!
//! The "work" is simulated (a pause per step), standing in for the
//! character-creation and image-generation workers of the system this
//! replaces; `fail: true` in a request makes a job fail at 60 %.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_shared::events::{JobMessage, JobState, JobStatus};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::broker::{BrokerError, EventId, SSEBroker};

/// What a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Character,
    Media,
}

impl JobKind {
    /// The path segment of the kind's routes.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Character => "character",
            JobKind::Media => "media",
        }
    }
}

pub use crate::broker::names::{job as job_topic, jobs_of as owner_topic};

/// Unfinished jobs one owner may have.
pub const DEFAULT_MAX_JOBS_PER_USER: usize = 10;
/// Unfinished jobs in all.
pub const DEFAULT_MAX_JOBS: usize = 1000;

/// Queue settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs run at once.
    pub workers: usize,
    /// Time per progress step (five steps per job).
    pub step: Duration,
    /// Unfinished (waiting or running) jobs one owner may have: one user
    /// cannot fill the queue and starve the others.
    pub max_per_user: usize,
    /// Unfinished jobs in all.
    pub max_unfinished: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 4,
            step: Duration::from_millis(500),
            max_per_user: DEFAULT_MAX_JOBS_PER_USER,
            max_unfinished: DEFAULT_MAX_JOBS,
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("too many unfinished jobs for this {scope} (limit {limit}); wait for one to finish")]
    Busy { scope: &'static str, limit: usize },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A job as the queue keeps it.
#[derive(Debug)]
struct Job {
    kind: JobKind,
    owner: String,
    input: Value,
    fail: bool,
    state: JobState,
    /// Sequence number of the latest update on the job's topic.
    last_seq: u64,
    /// Set to the final update's sequence number once it is published.
    finished: watch::Sender<Option<u64>>,
}

/// What a stream needs to start: the job's state and where its topic stood.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub kind: JobKind,
    pub owner: String,
    pub state: JobState,
    /// Resume the job's topic after this id: later updates are replayed.
    pub after: EventId,
    /// `Some(seq)` once the final update (sequence `seq`) is out.
    pub finished: watch::Receiver<Option<u64>>,
}

/// The in-process job queue.
///
/// ```
/// use std::time::Duration;
/// use herald_server::apps::jobs::{JobKind, JobQueue, JobSettings};
/// use herald_server::broker::{BrokerConfig, SSEBroker};
/// use herald_shared::events::JobStatus;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let queue = JobQueue::new(
///     SSEBroker::new(BrokerConfig::default()),
///     JobSettings { workers: 1, step: Duration::from_millis(1), ..JobSettings::default() },
/// );
/// let id = queue
///     .create(JobKind::Character, "alice", serde_json::json!({"name": "Ada"}), false)
///     .await
///     .unwrap();
/// let mut finished = queue.snapshot(&id).unwrap().finished;
/// finished.wait_for(Option::is_some).await.unwrap();
/// assert_eq!(queue.snapshot(&id).unwrap().state.status, JobStatus::Completed);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct JobQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: SSEBroker,
    jobs: Mutex<HashMap<String, Job>>,
    /// Per owner: sequence number of the latest update on `jobs:<owner>`.
    owners: Mutex<HashMap<String, u64>>,
    waiting: mpsc::UnboundedSender<String>,
    /// The workers' end of `waiting`, taken when the first job starts them.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    workers: usize,
    step: Duration,
    max_per_user: usize,
    max_unfinished: usize,
    /// Held from an update's publish until its state is recorded: updates
    /// are recorded in the order they were numbered, so a snapshot's state
    /// and position always agree (anything published but not yet recorded
    /// is numbered after the snapshot and reaches the stream by replay).
    publishing: tokio::sync::Mutex<()>,
}

/// Finished jobs kept for polling, at most.
const KEEP_FINISHED: usize = 10_000;

impl JobQueue {
    /// A queue publishing through `broker`. Its `settings.workers` worker
    /// tasks start with the first job, on that caller's runtime.
    pub fn new(broker: SSEBroker, settings: JobSettings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        JobQueue {
            inner: Arc::new(Inner {
                broker,
                jobs: Mutex::new(HashMap::new()),
                owners: Mutex::new(HashMap::new()),
                waiting: tx,
                receiver: Mutex::new(Some(rx)),
                workers: settings.workers.max(1),
                step: settings.step,
                max_per_user: settings.max_per_user,
                max_unfinished: settings.max_unfinished,
                publishing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Makes this queue the one the topic policy asks who owns `job:<id>`,
    /// so the job's owner (and nobody else) reads it on every way in.
    /// Called by the routes that serve this queue.
    pub fn answer_owner_lookups(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.broker.policy().set_owner_lookup(
            "job:*",
            Arc::new(move |id| {
                let inner = weak.upgrade()?;
                let jobs = inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
                jobs.get(id).map(|j| j.owner.clone())
            }),
        );
    }

    /// Starts the workers, once. Each holds a weak reference: dropping the
    /// last queue handle closes the channel and they end.
    fn start_workers(&self) {
        let Some(rx) = self
            .inner
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..self.inner.workers {
            let inner = Arc::downgrade(&self.inner);
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let (Some(id), Some(inner)) = (next, inner.upgrade()) else {
                        break;
                    };
                    let queue = JobQueue { inner };
                    if let Err(e) = queue.run(&id).await {
                        tracing::warn!(job = %id, error = %e, "job updates could not be published");
                    }
                }
            });
        }
    }

    /// Queues a job for `owner`, within the limits; its `waiting` update
    /// is published before this returns, so every stream opened afterwards
    /// starts from it.
    pub async fn create(
        &self,
        kind: JobKind,
        owner: &str,
        input: Value,
        fail: bool,
    ) -> Result<String, JobError> {
        let id = crate::broker::random_token(6);
        let state = JobState {
            job_id: id.clone(),
            status: JobStatus::Waiting,
            progress: 0,
            result: None,
            failed_reason: None,
            started_at: None,
            completed_at: None,
            timestamp: Some(crate::clock::now_rfc3339()),
        };
        {
            let mut jobs = self.lock_jobs();
            let unfinished = jobs.values().filter(|j| !j.state.status.is_final());
            let (all, mine) = unfinished.fold((0, 0), |(all, mine), j| {
                (all + 1, mine + usize::from(j.owner == owner))
            });
            if mine >= self.inner.max_per_user {
                let limit = self.inner.max_per_user;
                return Err(JobError::Busy {
                    scope: "user",
                    limit,
                });
            }
            if all >= self.inner.max_unfinished {
                let limit = self.inner.max_unfinished;
                return Err(JobError::Busy {
                    scope: "server",
                    limit,
                });
            }
            if jobs.len() >= KEEP_FINISHED {
                jobs.retain(|_, j| !j.state.status.is_final());
            }
            jobs.insert(
                id.clone(),
                Job {
                    kind,
                    owner: owner.to_owned(),
                    input,
                    fail,
                    state: state.clone(),
                    last_seq: 0,
                    finished: watch::Sender::new(None),
                },
            );
        }
        self.publish(&id, state).await?;
        self.start_workers();
        // The workers hold the receiver for as long as the queue exists.
        let _ = self.inner.waiting.send(id.clone());
        Ok(id)
    }

    /// The job's state now, or `None` if there is no such job.
    pub fn snapshot(&self, id: &str) -> Option<Snapshot> {
        let jobs = self.lock_jobs();
        let job = jobs.get(id)?;
        Some(Snapshot {
            kind: job.kind,
            owner: job.owner.clone(),
            state: job.state.clone(),
            after: self.id(job.last_seq),
            finished: job.finished.subscribe(),
        })
    }

    /// The owner's unfinished jobs, and where `jobs:<owner>` stood.
    pub fn running_for(&self, owner: &str) -> (Vec<JobState>, EventId) {
        let jobs = self.lock_jobs();
        let owners = self.inner.owners.lock().unwrap_or_else(|p| p.into_inner());
        let mut running: Vec<JobState> = jobs
            .values()
            .filter(|j| j.owner == owner && !j.state.status.is_final())
            .map(|j| j.state.clone())
            .collect();
        running.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        (running, self.id(owners.get(owner).copied().unwrap_or(0)))
    }

    fn id(&self, seq: u64) -> EventId {
        EventId {
            epoch: self.inner.broker.epoch(),
            seq,
        }
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a job through its steps.
    async fn run(&self, id: &str) -> Result<(), BrokerError> {
        let Some(snapshot) = self.snapshot(id) else {
            return Ok(());
        };
        let (input, fail) = {
            let jobs = self.lock_jobs();
            let job = jobs.get(id);
            (
                job.map(|j| j.input.clone()).unwrap_or_default(),
                job.is_some_and(|j| j.fail),
            )
        };
        let mut state = snapshot.state;
        state.status = JobStatus::Active;
        state.started_at = Some(crate::clock::now_rfc3339());
        for progress in [0, 20, 40, 60, 80] {
            if fail && progress == 60 {
                let reason = "simulated failure (the request asked for fail: true)";
                state.status = JobStatus::Failed;
                state.failed_reason = Some(reason.to_owned());
                state.result = Some(json!({ "error": reason }));
                state.completed_at = Some(crate::clock::now_rfc3339());
                return self.publish(id, state).await;
            }
            state.progress = progress;
            self.publish(id, state.clone()).await?;
            tokio::time::sleep(self.inner.step).await;
        }
        state.status = JobStatus::Completed;
        state.progress = 100;
        state.result = Some(result(snapshot.kind, id, &input));
        state.completed_at = Some(crate::clock::now_rfc3339());
        self.publish(id, state).await
    }

    /// Publishes a `job_update` to the job's and the owner's topics, then
    /// records the state with the update's position.
    async fn publish(&self, id: &str, mut state: JobState) -> Result<(), BrokerError> {
        let Some(owner) = self.lock_jobs().get(id).map(|j| j.owner.clone()) else {
            return Ok(());
        };
        state.timestamp = Some(crate::clock::now_rfc3339());
        let message = JobMessage::JobUpdate(state.clone());
        let broker = &self.inner.broker;
        let _in_order = self.inner.publishing.lock().await;
        let on_job = broker.publish_typed(&job_topic(id), &message).await?;
        let on_owner = broker.publish_typed(&owner_topic(&owner), &message).await?;
        let mut jobs = self.lock_jobs();
        self.inner
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(owner, on_owner.seq);
        if let Some(job) = jobs.get_mut(id) {
            let last = state.status.is_final();
            job.state = state;
            job.last_seq = on_job.seq;
            if last {
                job.finished.send_replace(Some(on_job.seq));
            }
        }
        Ok(())
    }
}

/// What a finished job produced.
fn result(kind: JobKind, id: &str, input: &Value) -> Value {
    match kind {
        JobKind::Character => json!({
            "characterId": format!("chr_{id}"),
            "displayId": format!("char-{id}"),
            "name": input.get("name").and_then(Value::as_str).unwrap_or("Unnamed"),
        }),
        JobKind::Media => json!({
            "mediaId": format!("med_{id}"),
            "url": format!("/media/{id}.png"),
            "prompt": input.get("prompt").and_then(Value::as_str).unwrap_or(""),
        }),
    }
}
