//! Where jobs live and how workers take them: the seam between the job
//! app ([`super::JobQueue`]: the worker loop; `crate::apps::jobs`: the routes) and its storage.
//!
//! The store owns the **records** (each job's owner, input, latest state
//! and the number of the update that state was published as) and the
//! **queue** (jobs waiting for a worker, and which worker holds which).
//! Publishing is the broker's: a worker publishes each update, then the
//! store records it. Two stores:
//!
//! - `LocalStore` (`jobs/local.rs`), the default: a map and a channel in this
//!   process; its workers are tasks of the web server.
//! - [`super::RedisStore`] (`--backplane redis://…`): records in
//!   Redis hashes and the queue a Redis Stream with a consumer group, so
//!   any node's or `herald-server worker` process's worker takes a job, a
//!   job held by a worker that stopped renewing it is taken over after the
//!   visibility timeout, and every node answers for every job.
//!
//! Two rules keep streams exact. A job's state and its update number are
//! recorded together, and never replaced by an older update's; and an
//! owner's updates are published and recorded one at a time
//! ([`JobStore::lock_owner`]), so under that lock every update published
//! so far is recorded: the log's head read then is a position the owner's
//! snapshot fully reflects. A stream that starts from a snapshot and
//! resumes after its position then misses nothing and repeats nothing.

use herald_shared::events::JobState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::JobError;
use crate::broker::BoxFuture;

/// What a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// What a job was asked to do (fixed once created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: String,
    pub kind: JobKind,
    pub owner: String,
    pub input: Value,
    /// Fail at 60 % (demos and tests).
    pub fail: bool,
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub spec: JobSpec,
    pub state: JobState,
    /// Sequence number of the update `state` was published as (0: none).
    pub last_seq: u64,
    /// Set once the final update is recorded: its number.
    pub final_seq: Option<u64>,
}

/// Unfinished jobs allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_user: usize,
    pub all: usize,
}

/// A job a worker holds until [`JobStore::done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub job: String,
    /// The store's handle on the hold (Redis: the queue entry's id).
    pub(crate) entry: String,
}

/// Held while an owner's update is published and recorded.
pub type OwnerGuard = Box<dyn Send + Sync>;

/// See the module docs.
pub trait JobStore: Send + Sync + 'static {
    /// Records a new job (waiting, no update yet) if the owner and the
    /// store are within `limits`.
    fn insert<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        limits: Limits,
    ) -> BoxFuture<'a, Result<(), JobError>>;

    /// The job, if there is one.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>, JobError>>;

    /// The job's owner if known here without waiting (for the topic
    /// policy, which asks synchronously); `get` and `learn_owners` make
    /// it known.
    fn owner_now(&self, id: &str) -> Option<String>;

    /// Makes the owners of the jobs `ids` known to `owner_now`, in one
    /// round trip. A store that holds every job here needs nothing.
    fn learn_owners<'a>(&'a self, _ids: &'a [&'a str]) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Waits until this caller alone publishes and records `owner`'s
    /// updates; released when the guard is dropped.
    fn lock_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<OwnerGuard, JobError>>;

    /// Records `state` as published under `seq` (ignored if the job has a
    /// later one).
    fn record<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        seq: u64,
    ) -> BoxFuture<'a, Result<(), JobError>>;

    /// The owner's unfinished jobs, oldest first.
    fn running_for<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<JobState>, JobError>>;

    /// Hands the job to the workers.
    fn enqueue<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), JobError>>;

    /// The next job for `worker`: a waiting one, or one whose worker
    /// stopped renewing its hold. `None` when there is nothing now.
    fn take<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<Option<Taken>, JobError>>;

    /// `worker` still works on `taken`: renews its hold.
    fn keep<'a>(&'a self, worker: &'a str, taken: &'a Taken)
        -> BoxFuture<'a, Result<(), JobError>>;

    /// `taken` is finished (or gone): nobody takes it again.
    fn done<'a>(&'a self, taken: &'a Taken) -> BoxFuture<'a, Result<(), JobError>>;

    /// Says the final update's number once it is recorded (`known` if the
    /// caller knows it already). Stops watching when every receiver is gone.
    fn finished(&self, id: &str, known: Option<u64>) -> watch::Receiver<Option<u64>>;
}
