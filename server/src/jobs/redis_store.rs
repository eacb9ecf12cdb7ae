//! The Redis job store: jobs shared by every node and worker process on
//! one Redis (`--backplane redis://…`; `herald-server worker` runs workers
//! alone).
//!
//! # Key layout (prefix `herald:` by default, as the backplane's)
//!
//! | key | type | what |
//! |---|---|---|
//! | `job:<id>` | hash | `spec` (JSON, fixed), `state` (JSON), `seq` (its update's number), `final` (set once finished); expires a day after it finishes |
//! | `jobs:unfinished`, `jobs:unfinished:<owner>` | sets | unfinished job ids, for the limits and `/jobs/my` |
//! | `jobs:lock:<owner>` | string | held while one of the owner's updates is published and recorded |
//! | `jobs:queue` | stream, group `workers` | one entry per job to run |
//!
//! Every change is one Lua script (atomic). A worker takes a job with
//! `XAUTOCLAIM` (an entry whose holder has not renewed it for the
//! visibility timeout: a worker that crashed) or else `XREADGROUP` (a new
//! entry); it renews its hold with `XCLAIM` on every step and, once the job
//! is finished, `XACK`s and deletes the entry. A node whose worker did not
//! run a job learns when its stream should end by reading the record's
//! `final` a few times a second while that stream is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_shared::events::JobState;
use redis::Script;
use tokio::sync::watch;

use super::store::{JobRecord, JobSpec, JobStore, Limits, OwnerGuard, Taken};
use super::JobError;
use crate::broker::{BoxFuture, Link, Target};
use crate::sync::lock;

/// Owners remembered for the topic policy's synchronous lookups, at most.
const OWNER_CACHE: usize = 10_000;
/// How often an open stream's node looks whether its job finished.
const FINISHED_POLL: Duration = Duration::from_millis(200);
/// An owner's publish lock expires by itself after this (a holder that died).
const LOCK_TTL: Duration = Duration::from_secs(5);
/// Finished jobs stay readable (polling, a late stream) this long.
const KEEP_FINISHED: Duration = Duration::from_secs(24 * 3600);

/// See the module docs.
pub struct RedisStore {
    commands: Link,
    prefix: String,
    visibility: Duration,
    owners: Arc<Mutex<HashMap<String, String>>>,
    scripts: Scripts,
}

struct Scripts {
    insert: Script,
    record: Script,
    running: Script,
    take: Script,
    unlock: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            // KEYS: job, all unfinished, owner's unfinished. ARGV: spec,
            // state, per-user limit, overall limit, id.
            insert: Script::new(
                r"
                if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'user' end
                if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'server' end
                redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'state', ARGV[2], 'seq', 0)
                redis.call('SADD', KEYS[2], ARGV[5])
                redis.call('SADD', KEYS[3], ARGV[5])
                return 'ok'",
            ),
            // KEYS: job, all unfinished, owner's unfinished.
            // ARGV: state, seq, final (1/0), id, keep (ms).
            record: Script::new(
                r"
                local seq = tonumber(ARGV[2])
                if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
                if seq <= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') then return 0 end
                redis.call('HSET', KEYS[1], 'state', ARGV[1], 'seq', seq)
                if ARGV[3] == '1' then
                  redis.call('HSET', KEYS[1], 'final', seq)
                  redis.call('SREM', KEYS[2], ARGV[4])
                  redis.call('SREM', KEYS[3], ARGV[4])
                  redis.call('PEXPIRE', KEYS[1], ARGV[5])
                end
                return 1",
            ),
            // KEYS: owner's unfinished. ARGV: job key prefix. Returns
            // {state, ...}.
            running: Script::new(
                r"
                local out = {}
                for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
                  local state = redis.call('HGET', ARGV[2] .. id, 'state')
                  if state then out[#out + 1] = state end
                end
                return out",
            ),
            // KEYS: queue. ARGV: group, worker, visibility (ms). A job
            // whose holder went quiet first, else a new one. Returns
            // {entry id, job id} or nothing.
            take: Script::new(
                r"
                local stale = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', 1)
                local entry = stale[2][1]
                if not entry then
                  local new = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
                  if not new then return false end
                  entry = new[1][2][1]
                end
                if not entry then return false end
                return {entry[1], entry[2][2]}",
            ),
            unlock: Script::new(
                r"
                if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
                return 1",
            ),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> JobError {
    JobError::Store(format!("redis: {e}"))
}

const GROUP: &str = "workers";

impl RedisStore {
    /// Connects to `url` and makes sure the queue's consumer group exists.
    /// `visibility`: how long a worker may go without renewing its hold
    /// before another takes the job over.
    ///
    /// On a Redis Cluster every key of the store carries one hash tag
    /// (`<prefix>{jobs}…`): its scripts touch several keys at once, so the
    /// store lives on one master (jobs are not where a cluster's load is).
    pub async fn connect(url: &str, prefix: &str, visibility: Duration) -> Result<Self, JobError> {
        let target = Target::open(url).map_err(unavailable)?;
        let prefix = if target.is_cluster() {
            format!("{prefix}{{jobs}}")
        } else {
            prefix.to_owned()
        };
        let mut commands = target.commands().await.map_err(unavailable)?;
        let created: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(format!("{prefix}jobs:queue"))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut commands)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(unavailable(e)),
        }
        Ok(RedisStore {
            commands,
            prefix,
            visibility,
            owners: Arc::new(Mutex::new(HashMap::new())),
            scripts: Scripts::new(),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn job_key(&self, id: &str) -> String {
        self.key(&format!("job:{id}"))
    }

    fn remember_owner(&self, id: &str, owner: &str) {
        let mut owners = lock(&self.owners);
        if owners.len() >= OWNER_CACHE {
            owners.clear();
        }
        owners.insert(id.to_owned(), owner.to_owned());
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, JobError> {
    serde_json::to_string(value).map_err(|e| JobError::Store(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JobError> {
    serde_json::from_str(text).map_err(|e| JobError::Store(format!("a job record: {e}")))
}

impl JobStore for RedisStore {
    fn insert<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        limits: Limits,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let answer: String = self
                .scripts
                .insert
                .key(self.job_key(&spec.id))
                .key(self.key("jobs:unfinished"))
                .key(self.key(&format!("jobs:unfinished:{}", spec.owner)))
                .arg(json(spec)?)
                .arg(json(state)?)
                .arg(limits.per_user)
                .arg(limits.all)
                .arg(&spec.id)
                .invoke_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            match answer.as_str() {
                "user" => Err(JobError::Busy {
                    scope: "user",
                    limit: limits.per_user,
                }),
                "server" => Err(JobError::Busy {
                    scope: "server",
                    limit: limits.all,
                }),
                _ => {
                    self.remember_owner(&spec.id, &spec.owner);
                    Ok(())
                }
            }
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobRecord>, JobError>> {
        Box::pin(async move {
            let (spec, state, seq, final_seq): (
                Option<String>,
                Option<String>,
                Option<u64>,
                Option<u64>,
            ) = redis::cmd("HMGET")
                .arg(self.job_key(id))
                .arg("spec")
                .arg("state")
                .arg("seq")
                .arg("final")
                .query_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            let (Some(spec), Some(state)) = (spec, state) else {
                return Ok(None);
            };
            let spec: JobSpec = parse(&spec)?;
            self.remember_owner(id, &spec.owner);
            Ok(Some(JobRecord {
                spec,
                state: parse(&state)?,
                last_seq: seq.unwrap_or(0),
                final_seq,
            }))
        })
    }

    fn owner_now(&self, id: &str) -> Option<String> {
        lock(&self.owners).get(id).cloned()
    }

    fn learn_owners<'a>(&'a self, ids: &'a [&'a str]) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            // One pipeline: every job key shares the `{jobs}` tag, so on a
            // cluster it is one round trip to one master too.
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.cmd("HGET").arg(self.job_key(id)).arg("spec");
            }
            let specs: Vec<Option<String>> = pipe
                .query_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            for (id, spec) in ids.iter().zip(specs) {
                if let Some(spec) = spec.and_then(|s| serde_json::from_str::<JobSpec>(&s).ok()) {
                    self.remember_owner(id, &spec.owner);
                }
            }
            Ok(())
        })
    }

    fn lock_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<OwnerGuard, JobError>> {
        Box::pin(async move {
            let key = self.key(&format!("jobs:lock:{owner}"));
            let token = crate::random::token(8);
            let deadline = tokio::time::Instant::now() + LOCK_TTL * 2;
            loop {
                let got: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LOCK_TTL.as_millis() as u64)
                    .query_async(&mut self.commands.clone())
                    .await
                    .map_err(unavailable)?;
                if got.is_some() {
                    let guard: OwnerGuard = Box::new(Unlock {
                        commands: self.commands.clone(),
                        key,
                        token,
                        script: self.scripts.unlock.clone(),
                    });
                    return Ok(guard);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(JobError::Store(format!(
                        "the updates of {owner:?} stayed locked"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    fn record<'a>(
        &'a self,
        spec: &'a JobSpec,
        state: &'a JobState,
        seq: u64,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let _: i64 = self
                .scripts
                .record
                .key(self.job_key(&spec.id))
                .key(self.key("jobs:unfinished"))
                .key(self.key(&format!("jobs:unfinished:{}", spec.owner)))
                .arg(json(state)?)
                .arg(seq)
                .arg(if state.status.is_final() { "1" } else { "0" })
                .arg(&spec.id)
                .arg(KEEP_FINISHED.as_millis() as u64)
                .invoke_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn running_for<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<JobState>, JobError>> {
        Box::pin(async move {
            let reply: Vec<String> = self
                .scripts
                .running
                .key(self.key(&format!("jobs:unfinished:{owner}")))
                .arg(self.key("job:"))
                .invoke_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            let mut states: Vec<JobState> =
                reply.iter().map(|s| parse(s)).collect::<Result<_, _>>()?;
            states.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
            Ok(states)
        })
    }

    fn enqueue<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let _: String = redis::cmd("XADD")
                .arg(self.key("jobs:queue"))
                .arg("*")
                .arg("job")
                .arg(id)
                .query_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn take<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<Option<Taken>, JobError>> {
        Box::pin(async move {
            let taken: Option<(String, String)> = self
                .scripts
                .take
                .key(self.key("jobs:queue"))
                .arg(GROUP)
                .arg(worker)
                .arg(self.visibility.as_millis().max(1) as u64)
                .invoke_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            Ok(taken.map(|(entry, job)| Taken { job, entry }))
        })
    }

    fn keep<'a>(
        &'a self,
        worker: &'a str,
        taken: &'a Taken,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let kept: Vec<String> = redis::cmd("XCLAIM")
                .arg(self.key("jobs:queue"))
                .arg(GROUP)
                .arg(worker)
                .arg(0)
                .arg(&taken.entry)
                .arg("JUSTID")
                .query_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            if kept.is_empty() {
                // Acknowledged by whoever took it over and finished it.
                return Err(JobError::Store(format!(
                    "job {} is no longer held by {worker}",
                    taken.job
                )));
            }
            Ok(())
        })
    }

    fn done<'a>(&'a self, taken: &'a Taken) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let queue = self.key("jobs:queue");
            let _: () = redis::pipe()
                .cmd("XACK")
                .arg(&queue)
                .arg(GROUP)
                .arg(&taken.entry)
                .ignore()
                .cmd("XDEL")
                .arg(&queue)
                .arg(&taken.entry)
                .ignore()
                .query_async(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn finished(&self, id: &str, known: Option<u64>) -> watch::Receiver<Option<u64>> {
        let (tx, rx) = watch::channel(known);
        if known.is_none() {
            let mut commands = self.commands.clone();
            let key = self.job_key(id);
            tokio::spawn(async move {
                while !tx.is_closed() {
                    tokio::time::sleep(FINISHED_POLL).await;
                    let at: Result<Option<u64>, _> = redis::cmd("HGET")
                        .arg(&key)
                        .arg("final")
                        .query_async(&mut commands)
                        .await;
                    if let Ok(Some(seq)) = at {
                        tx.send_replace(Some(seq));
                        return;
                    }
                }
            });
        }
        rx
    }
}

/// Releases an owner's lock if it is still this holder's.
struct Unlock {
    commands: Link,
    key: String,
    token: String,
    script: Script,
}

impl Drop for Unlock {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut commands = self.commands.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        let script = self.script.clone();
        runtime.spawn(async move {
            let released: Result<i64, _> =
                script.key(key).arg(token).invoke_async(&mut commands).await;
            if let Err(e) = released {
                // It expires by itself.
                tracing::debug!(error = %e, "job lock not released");
            }
        });
    }
}
