//! The job engine behind seed 003's API (`crate::apps::jobs` is its
//! routes): a [`JobQueue`] over a [`JobStore`] — this process's memory by
//! default, Redis with `--backplane redis://…` ([`RedisStore`]), where any
//! node answers for any job and any node's or worker process's worker runs
//! it. See [`store`] for who owns what.

mod local;
mod queue;
mod redis_store;
pub mod store;

pub use queue::{
    job_topic, owner_topic, JobError, JobQueue, JobSettings, Snapshot, DEFAULT_MAX_JOBS,
    DEFAULT_MAX_JOBS_PER_USER, DEFAULT_STEP_MS, DEFAULT_VISIBILITY, DEFAULT_WORKERS,
};
pub use redis_store::RedisStore;
pub use store::{JobKind, JobRecord, JobSpec, JobStore, Limits, OwnerGuard, Taken};
