//! A topic: its subscribers and its bounded history.
//!
//! Every send in Herald is a publish to a topic (`client:<id>`, `user:<id>`,
//! `session:<id>`, `all`, a room, a job). A publish takes the topic's own
//! lock, appends the encoded frame to the history and hands the same bytes to
//! every subscriber's queue with `try_send`: publishing never waits on a
//! subscriber, and two topics never contend with each other.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::ClientState;
use super::stats::Stats;

/// One published event as stored in history: already encoded, shared by
/// reference count with every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub seq: u64,
    pub at: Instant,
    pub frame: Bytes,
}

/// How much history each topic keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistoryLimits {
    pub max_events: usize,
    pub max_age: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct TopicState {
    pub history: VecDeque<Entry>,
    /// The highest seq ever dropped from history: a client that last saw an
    /// event before it has missed something history cannot give back.
    pub trimmed_through: u64,
    pub subscribers: HashMap<Arc<str>, Arc<ClientState>>,
}

/// A named topic. See the module docs.
#[derive(Debug)]
pub(crate) struct Topic {
    state: Mutex<TopicState>,
}

/// What a resuming client gets from one topic.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub entries: Vec<Entry>,
    pub gap: bool,
}

impl Topic {
    pub fn new() -> Self {
        Topic {
            state: Mutex::new(TopicState::default()),
        }
    }

    /// The topic's state. A panic while holding the lock cannot leave the
    /// state half-updated in a way that matters (every update is a push or a
    /// remove), so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores and fans out one frame. `next_seq` is called under the topic
    /// lock so that, within a topic, history order, delivery order and id
    /// order are the same.
    pub fn publish(
        &self,
        next_seq: impl FnOnce() -> u64,
        encode: impl FnOnce(u64) -> Bytes,
        limits: HistoryLimits,
        stats: &Stats,
    ) -> u64 {
        let now = Instant::now();
        let mut state = self.lock();
        let seq = next_seq();
        let frame = encode(seq);
        state.history.push_back(Entry {
            seq,
            at: now,
            frame: frame.clone(),
        });
        state.trim(limits, now);
        let mut evicted = Vec::new();
        for (id, client) in &state.subscribers {
            if client.offer(frame.clone()) {
                stats.delivered();
            } else {
                evicted.push(id.clone());
            }
        }
        for id in evicted {
            state.subscribers.remove(&id);
            stats.evicted();
        }
        seq
    }

    /// Adds a subscriber; with `after`, also returns the history it missed.
    /// Both happen under one lock, so nothing falls between replay and live.
    pub fn subscribe(&self, client: &Arc<ClientState>, after: Option<u64>) -> Replay {
        let mut state = self.lock();
        state.subscribers.insert(client.id.clone(), client.clone());
        let Some(after) = after else {
            return Replay::default();
        };
        Replay {
            gap: after < state.trimmed_through,
            entries: state
                .history
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect(),
        }
    }

    /// Removes a subscriber if it is still this exact connection.
    pub fn unsubscribe(&self, client: &Arc<ClientState>) {
        let mut state = self.lock();
        if state
            .subscribers
            .get(&client.id)
            .is_some_and(|c| Arc::ptr_eq(c, client))
        {
            state.subscribers.remove(&client.id);
        }
    }

    /// Drops expired history; true when the topic holds nothing worth keeping.
    pub fn sweep(&self, limits: HistoryLimits, now: Instant) -> bool {
        let mut state = self.lock();
        state.trim(limits, now);
        state.subscribers.is_empty() && state.history.is_empty()
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }
}

impl TopicState {
    fn trim(&mut self, limits: HistoryLimits, now: Instant) {
        while self.history.len() > limits.max_events
            || self
                .history
                .front()
                .is_some_and(|e| now.duration_since(e.at) > limits.max_age)
        {
            if let Some(old) = self.history.pop_front() {
                self.trimmed_through = old.seq;
            }
        }
    }
}
