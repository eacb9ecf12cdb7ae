//! The job queue: jobs are created by the routes, taken by workers, run
//! step by step, and every state change is published as one `job_update`
//! to the job's topic (`job:<id>`) and its owner's (`jobs:<owner>`). The
//! store ([`super::store`]) remembers each job's state and the number of
//! its latest update, so a stream can start from a consistent snapshot and
//! resume the topic right after it.
//!
//! The "work" is simulated (a pause per step), standing in for the
//! character-creation and image-generation workers of the system this
//! replaces; `fail: true` in a request makes a job fail at 60 %. A job
//! taken over from a worker that stopped continues after the last step
//! recorded, so its progress never goes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_shared::events::{JobMessage, JobState, JobStatus, SseEvent};
use herald_shared::wire::Event;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::local::LocalStore;
use super::store::{JobKind, JobSpec, JobStore, Limits, Taken};
use crate::broker::policy::{Owners, Publisher};
use crate::broker::{BoxFuture, BrokerError, Position, SSEBroker};

pub use crate::broker::names::{job as job_topic, jobs_of as owner_topic};

/// Unfinished jobs one owner may have.
pub const DEFAULT_MAX_JOBS_PER_USER: usize = 10;
/// Unfinished jobs in all.
pub const DEFAULT_MAX_JOBS: usize = 1000;
/// Milliseconds per progress step of the demo jobs.
pub const DEFAULT_STEP_MS: u64 = 500;
/// Job workers per process.
pub const DEFAULT_WORKERS: usize = 4;
/// How long a worker may go without renewing its hold on a job before
/// another takes the job over (it renews on every step).
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// The steps a job goes through, by progress.
const STEPS: [u8; 5] = [0, 20, 40, 60, 80];

/// Queue settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs this process runs at once (0: none; other processes do).
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
            workers: DEFAULT_WORKERS,
            step: Duration::from_millis(DEFAULT_STEP_MS),
            max_per_user: DEFAULT_MAX_JOBS_PER_USER,
            max_unfinished: DEFAULT_MAX_JOBS,
        }
    }
}

/// Why a job was not queued or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("too many unfinished jobs for this {scope} (limit {limit}); wait for one to finish")]
    Busy { scope: &'static str, limit: usize },
    #[error("job store unavailable: {0}")]
    Store(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// What a stream needs to start: the job's state and where its topic stood.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub kind: JobKind,
    pub owner: String,
    pub state: JobState,
    /// Resume the job's topic after this position: later updates are replayed.
    pub after: Position,
    /// `Some(seq)` once the final update (sequence `seq`) is out.
    pub finished: watch::Receiver<Option<u64>>,
}

/// The job queue over its store (in this process by default).
///
/// ```
/// use std::time::Duration;
/// use herald_server::jobs::{JobKind, JobQueue, JobSettings};
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
/// let mut finished = queue.snapshot(&id).await.unwrap().unwrap().finished;
/// finished.wait_for(Option::is_some).await.unwrap();
/// let done = queue.snapshot(&id).await.unwrap().unwrap();
/// assert_eq!(done.state.status, JobStatus::Completed);
/// # });
/// ```
/// Who owns each job, as the topic policy asks it (`job:<id>` topics).
struct JobOwners(std::sync::Weak<dyn JobStore>);

impl Owners for JobOwners {
    fn owner_now(&self, id: &str) -> Option<String> {
        self.0.upgrade()?.owner_now(id)
    }

    fn learn<'a>(&'a self, ids: &'a [&'a str]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(store) = self.0.upgrade() else {
                return;
            };
            if let Err(e) = store.learn_owners(ids).await {
                tracing::debug!(error = %e, "job owners not known");
            }
        })
    }
}

#[derive(Clone)]
pub struct JobQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    broker: SSEBroker,
    store: Arc<dyn JobStore>,
    settings: JobSettings,
    started: AtomicBool,
    /// Dropped with the last queue handle: its workers stop.
    alive: watch::Sender<()>,
}

impl JobQueue {
    /// A queue in this process, publishing through `broker`. Its
    /// `settings.workers` worker tasks start with the first job, on that
    /// caller's runtime.
    pub fn new(broker: SSEBroker, settings: JobSettings) -> Self {
        Self::with_store(broker, settings, Arc::new(LocalStore::default()))
    }

    /// A queue over `store` (e.g. [`super::RedisStore`]).
    pub fn with_store(broker: SSEBroker, settings: JobSettings, store: Arc<dyn JobStore>) -> Self {
        JobQueue {
            inner: Arc::new(Inner {
                broker,
                store,
                settings,
                started: AtomicBool::new(false),
                alive: watch::Sender::new(()),
            }),
        }
    }

    /// Makes this queue the one the topic policy asks who owns `job:<id>`,
    /// so the job's owner (and nobody else) reads it on every way in.
    /// Called by the routes that serve this queue.
    pub fn answer_owner_lookups(&self) {
        let owners = JobOwners(Arc::downgrade(&self.inner.store));
        self.inner
            .broker
            .policy()
            .set_owner_lookup("job:*", Arc::new(owners));
    }

    /// Starts this process's workers, once (none if `settings.workers` is
    /// 0). They stop when the last handle of the queue is dropped.
    pub fn start_workers(&self) {
        if self.inner.started.swap(true, Ordering::Relaxed) {
            return;
        }
        for n in 0..self.inner.settings.workers {
            let name = format!("{}/{n}", self.inner.broker.node_id());
            let queue = Arc::downgrade(&self.inner);
            let store = self.inner.store.clone();
            let mut alive = self.inner.alive.subscribe();
            tokio::spawn(async move {
                loop {
                    let taken = tokio::select! {
                        taken = store.take(&name) => taken,
                        _ = alive.changed() => break,
                    };
                    let Some(queue) = queue.upgrade() else { break };
                    let queue = JobQueue { inner: queue };
                    match taken {
                        Ok(Some(taken)) => queue.work(&name, &taken).await,
                        Ok(None) => tokio::time::sleep(IDLE_POLL).await,
                        Err(e) => {
                            tracing::warn!(worker = %name, error = %e, "could not take a job");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
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
        let spec = JobSpec {
            id: crate::random::token(6),
            kind,
            owner: owner.to_owned(),
            input,
            fail,
        };
        let state = JobState {
            job_id: spec.id.clone(),
            status: JobStatus::Waiting,
            progress: 0,
            result: None,
            failed_reason: None,
            started_at: None,
            completed_at: None,
            timestamp: Some(crate::clock::now_rfc3339()),
        };
        let limits = Limits {
            per_user: self.inner.settings.max_per_user,
            all: self.inner.settings.max_unfinished,
        };
        self.inner.store.insert(&spec, &state, limits).await?;
        self.update(&spec, state).await?;
        self.start_workers();
        self.inner.store.enqueue(&spec.id).await?;
        Ok(spec.id)
    }

    /// The job's state now, or `None` if there is no such job.
    pub async fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, JobError> {
        let Some(job) = self.inner.store.get(id).await? else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            kind: job.spec.kind,
            finished: self.inner.store.finished(id, job.final_seq),
            owner: job.spec.owner,
            state: job.state,
            after: self.inner.broker.position_of(&job_topic(id), job.last_seq),
        }))
    }

    /// The owner's unfinished jobs, and where a fresh stream of
    /// `jobs:<owner>` goes live from.
    pub async fn running_for(&self, owner: &str) -> Result<(Vec<JobState>, Position), JobError> {
        let store = &self.inner.store;
        // Under the owner's lock none of their updates is between its
        // publish and its record, so every event up to the log's head is
        // either in the snapshot or not the job engine's: anything else on
        // the owner's topic (a publish-claim token's event) is history a
        // fresh stream must not replay. The head is read after every
        // recorded update was published, so it is past all of them.
        let _quiet = store.lock_owner(owner).await?;
        let head = self
            .inner
            .broker
            .backplane()
            .head()
            .await
            .map_err(BrokerError::from)?;
        let running = store.running_for(owner).await?;
        Ok((running, head))
    }

    /// Runs a taken job, then lets it go (unless the store failed: then
    /// the job is taken over once its hold expires).
    async fn work(&self, worker: &str, taken: &Taken) {
        match self.run(worker, taken).await {
            Ok(()) => {
                if let Err(e) = self.inner.store.done(taken).await {
                    tracing::warn!(job = %taken.job, error = %e, "could not mark a job done");
                }
            }
            Err(e) => tracing::warn!(job = %taken.job, error = %e, "job interrupted"),
        }
    }

    /// Runs a job through its steps, from the last one recorded.
    async fn run(&self, worker: &str, taken: &Taken) -> Result<(), JobError> {
        let store = &self.inner.store;
        let Some(job) = store.get(&taken.job).await? else {
            return Ok(());
        };
        if job.final_seq.is_some() {
            return Ok(());
        }
        let spec = &job.spec;
        let mut state = job.state.clone();
        // Taken over mid-job: continue after the last step recorded.
        let done_up_to = (state.status == JobStatus::Active).then_some(state.progress);
        if state.status != JobStatus::Active {
            state.status = JobStatus::Active;
            state.started_at = Some(crate::clock::now_rfc3339());
        }
        for progress in STEPS {
            if done_up_to.is_some_and(|p| progress <= p) {
                continue;
            }
            store.keep(worker, taken).await?;
            if spec.fail && progress == 60 {
                let reason = "simulated failure (the request asked for fail: true)";
                state.status = JobStatus::Failed;
                state.failed_reason = Some(reason.to_owned());
                state.result = Some(json!({ "error": reason }));
                state.completed_at = Some(crate::clock::now_rfc3339());
                return self.update(spec, state).await;
            }
            state.progress = progress;
            self.update(spec, state.clone()).await?;
            tokio::time::sleep(self.inner.settings.step).await;
        }
        store.keep(worker, taken).await?;
        state.status = JobStatus::Completed;
        state.progress = 100;
        state.result = Some(result(spec.kind, &spec.id, &spec.input));
        state.completed_at = Some(crate::clock::now_rfc3339());
        self.update(spec, state).await
    }

    /// Publishes a `job_update`, one event to the job's and the owner's
    /// topics, then records the state with the update's number; one owner's
    /// updates one at a time (see the store's docs).
    async fn update(&self, spec: &JobSpec, mut state: JobState) -> Result<(), JobError> {
        state.timestamp = Some(crate::clock::now_rfc3339());
        let event: Event = JobMessage::JobUpdate(state.clone())
            .to_event()
            .map_err(|e| BrokerError::Serialize(e.to_string()))?;
        let topics = [job_topic(&spec.id), owner_topic(&spec.owner)];
        let topics = [topics[0].as_str(), topics[1].as_str()];
        let store = &self.inner.store;
        let _in_order = store.lock_owner(&spec.owner).await?;
        let id = self
            .inner
            .broker
            .publish_to_as(Publisher::Server, &topics, event)
            .await?;
        store.record(spec, &state, id.seq).await
    }
}

/// How long an idle worker waits before asking a store that does not wait
/// for it (Redis) again.
const IDLE_POLL: Duration = Duration::from_millis(100);

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
