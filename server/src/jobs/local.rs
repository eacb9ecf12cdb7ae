//! The in-process job store: records in a map, the queue a channel read
//! by worker tasks of this process. The default without Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_shared::events::JobState;
use tokio::sync::{mpsc, watch};

use super::store::{JobRecord, JobSpec, JobStore, Limits, OwnerGuard, Taken};
use super::JobError;
use crate::broker::BoxFuture;
use crate::sync::lock;

/// Finished jobs kept for polling, at most.
const KEEP_FINISHED: usize = 10_000;

struct Entry {
    record: JobRecord,
    finished: watch::Sender<Option<u64>>,
}

/// See the module docs.
pub struct LocalStore {
    jobs: Mutex<HashMap<String, Entry>>,
    waiting: mpsc::UnboundedSender<String>,
    receiver: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    /// One publisher at a time: enough for one process's workers.
    publishing: Arc<tokio::sync::Mutex<()>>,
}

impl Default for LocalStore {
    fn default() -> Self {
        let (waiting, receiver) = mpsc::unbounded_channel();
        LocalStore {
            jobs: Mutex::new(HashMap::new()),
            waiting,
            receiver: tokio::sync::Mutex::new(receiver),
            publishing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl JobStore for LocalStore {
    fn insert<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        limits: Limits,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        let mut jobs = lock(&self.jobs);
        let unfinished = jobs.values().filter(|e| e.record.final_seq.is_none());
        let (all, mine) = unfinished.fold((0, 0), |(all, mine), e| {
            (
                all + 1,
                mine + usize::from(e.record.spec.owner == spec.owner),
            )
        });
        if mine >= limits.per_user {
            return ready(Err(JobError::Busy {
                scope: "user",
                limit: limits.per_user,
            }));
        }
        if all >= limits.all {
            return ready(Err(JobError::Busy {
                scope: "server",
                limit: limits.all,
            }));
        }
        if jobs.len() >= KEEP_FINISHED {
            jobs.retain(|_, e| e.record.final_seq.is_none());
        }
        jobs.insert(
            spec.id.clone(),
            Entry {
                record: JobRecord {
                    spec: spec.clone(),
                    state: state.clone(),
                    last_seq: 0,
                    final_seq: None,
                },
                finished: watch::Sender::new(None),
            },
        );
        ready(Ok(()))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>, JobError>> {
        ready(Ok(lock(&self.jobs).get(id).map(|e| e.record.clone())))
    }

    fn owner_now(&self, id: &str) -> Option<String> {
        lock(&self.jobs)
            .get(id)
            .map(|e| e.record.spec.owner.clone())
    }

    fn lock_owner<'a>(&'a self, _owner: &'a str) -> BoxFuture<'a, Result<OwnerGuard, JobError>> {
        let publishing = self.publishing.clone();
        Box::pin(async move {
            let guard: OwnerGuard = Box::new(publishing.lock_owned().await);
            Ok(guard)
        })
    }

    fn record<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        seq: u64,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        let mut jobs = lock(&self.jobs);
        if let Some(entry) = jobs.get_mut(&spec.id) {
            if seq > entry.record.last_seq {
                entry.record.state = state.clone();
                entry.record.last_seq = seq;
                if state.status.is_final() {
                    entry.record.final_seq = Some(seq);
                    entry.finished.send_replace(Some(seq));
                }
            }
        }
        ready(Ok(()))
    }

    fn running_for<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<JobState>, JobError>> {
        let jobs = lock(&self.jobs);
        let mut running: Vec<JobState> = jobs
            .values()
            .filter(|e| e.record.spec.owner == owner && e.record.final_seq.is_none())
            .map(|e| e.record.state.clone())
            .collect();
        running.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        ready(Ok(running))
    }

    fn enqueue<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), JobError>> {
        // The receiver lives as long as the store.
        let _ = self.waiting.send(id.to_owned());
        ready(Ok(()))
    }

    fn take<'a>(&'a self, _worker: &'a str) -> BoxFuture<'a, Result<Option<Taken>, JobError>> {
        Box::pin(async move {
            // Waits for a job: a worker here has nothing else to do. The
            // receiver ends only with the store.
            let id = self.receiver.lock().await.recv().await;
            Ok(id.map(|job| Taken {
                job,
                entry: String::new(),
            }))
        })
    }

    fn keep<'a>(
        &'a self,
        _worker: &'a str,
        _taken: &'a Taken,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        // A job here dies with the process that runs it: nothing to renew.
        ready(Ok(()))
    }

    fn done<'a>(&'a self, _taken: &'a Taken) -> BoxFuture<'a, Result<(), JobError>> {
        ready(Ok(()))
    }

    fn finished(&self, id: &str, known: Option<u64>) -> watch::Receiver<Option<u64>> {
        match lock(&self.jobs).get(id) {
            Some(entry) => entry.finished.subscribe(),
            None => watch::Sender::new(known).subscribe(),
        }
    }
}
