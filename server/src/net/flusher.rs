//! Writing subscriptions straight to their sockets.
//!
//! The obvious way to serve an event stream is a task per connection that
//! wakes for each event, takes it from its queue and writes it. For one
//! event to 10 000 subscribers that is 10 000 task wake-ups, polls and
//! write calls, and the wake-ups and polls cost as much as the writes. And
//! while those tasks run, the next publish request waits its turn behind
//! them, so events are published one fan-out at a time.
//!
//! Here a publish only queues the frame and marks the connection dirty
//! (the queue's `on_ready` hook); flusher threads (half the cores) take
//! the dirty connections and write what each has queued with one
//! non-blocking vectored write, all queued frames in one HTTP chunk. A
//! flusher that is still busy when more events arrive writes them all in
//! its next pass: under load, batches grow by themselves and the cost per
//! event falls. A publish writes to a socket itself only when a client's
//! queue is full (`Ready::Full`): one try, to tell a lagging flusher from
//! a client that reads too slowly, before the client is evicted.
//!
//! The connection's own task only sleeps until something needs it: the
//! socket was full (it waits until writable, with the idle timeout, and
//! flushes itself), the stream ended, the client was evicted (the stream
//! ends at once, even mid-chunk: the client resumes from the last event
//! it read whole), the peer closed, or shutdown.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::socket::{chunk_size_line, peer_closed, writable_within};
use crate::broker::{Ready, Subscription};
use crate::sync::lock;

/// Frames one write may carry (well under the kernel's 1024 iovecs).
const MAX_BATCH: usize = 256;
/// Bytes one write may carry (a single larger frame goes alone): what a
/// full socket leaves over is copied until it drains, so a client that
/// reads slowly holds at most this much of the server's memory.
const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// The flusher threads.
#[derive(Debug)]
pub(crate) struct Flusher {
    shards: Vec<Arc<Shard>>,
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Shard {
    state: Mutex<ShardState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct ShardState {
    dirty: Vec<Arc<Conn>>,
    stopped: bool,
}

impl Flusher {
    /// Starts `threads` flusher threads (0: half the cores, at least one).
    pub fn start(threads: usize) -> io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let n = if threads == 0 {
            (cores / 2).max(1)
        } else {
            threads
        };
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let shard = Arc::new(Shard::default());
            let worker = shard.clone();
            std::thread::Builder::new()
                .name(format!("herald-flush-{i}"))
                .spawn(move || worker.run())?;
            shards.push(shard);
        }
        Ok(Flusher {
            shards,
            next: AtomicUsize::new(0),
        })
    }

    /// Writes `head`, then `sub`, to `tcp` until the stream ends, the peer
    /// leaves, a write stalls for `idle`, or `stopping` is cancelled.
    ///
    /// The future keeps only the connection and its task's wait: the
    /// arguments move into the [`Conn`] before it is made (an async fn
    /// would keep them all for the stream's life).
    pub(super) fn stream<'a>(
        &self,
        tcp: TcpStream,
        sub: Subscription,
        head: Vec<u8>,
        idle: Option<Duration>,
        stopping: &'a CancellationToken,
    ) -> impl Future<Output = io::Result<()>> + 'a {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let conn = Arc::new(Conn {
            tcp,
            state: Mutex::new(ConnState {
                sub: None,
                // The response head goes out first, like any unwritten tail.
                leftover: head,
                blocked: false,
                outcome: None,
            }),
            dirty: Arc::new(AtomicBool::new(false)),
            task: Notify::new(),
        });
        let shard = self.shards[i].clone();
        let weak = Arc::downgrade(&conn);
        let dirty = conn.dirty.clone();
        sub.on_ready(move |why| match why {
            Ready::Queued => schedule(&dirty, &weak, &shard),
            Ready::Full => {
                if let Some(conn) = weak.upgrade() {
                    conn.flush_now(&mut Vec::new());
                }
            }
            // The task ends the stream, even if it is waiting for a full
            // socket to drain.
            Ready::Evicted => {
                if let Some(conn) = weak.upgrade() {
                    conn.task.notify_one();
                }
            }
        });
        lock(&conn.state).sub = Some(sub);
        async move {
            let result = conn.serve(idle, stopping).await;
            // Disconnects from the broker now, not when the last flusher
            // reference goes away; outside the state lock, which a
            // publisher may be waiting for while it holds the topic's lock.
            let sub = lock(&conn.state).sub.take();
            drop(sub);
            result
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        for shard in &self.shards {
            lock(&shard.state).stopped = true;
            shard.wake.notify_one();
        }
    }
}

/// Marks `conn` dirty on its shard (called by the broker on each push).
///
/// Under load most pushes find the connection already waiting for a pass:
/// that case is one shared read, no write to a cache line the flusher
/// threads also touch.
fn schedule(dirty: &AtomicBool, conn: &Weak<Conn>, shard: &Shard) {
    if dirty.load(Ordering::Acquire) || dirty.swap(true, Ordering::AcqRel) {
        return; // already waiting for a pass
    }
    let Some(conn) = conn.upgrade() else { return };
    let mut state = lock(&shard.state);
    state.dirty.push(conn);
    let first = state.dirty.len() == 1;
    drop(state);
    if first {
        shard.wake.notify_one();
    }
}

impl Shard {
    fn run(&self) {
        let mut batch = Vec::new();
        // Reused for every connection this thread flushes: no allocation
        // per connection per pass.
        let mut frames = Vec::with_capacity(MAX_BATCH);
        loop {
            {
                let mut state = lock(&self.state);
                while state.dirty.is_empty() && !state.stopped {
                    state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.dirty.is_empty() {
                    return; // stopped, nothing left
                }
                std::mem::swap(&mut batch, &mut state.dirty);
            }
            for conn in batch.drain(..) {
                conn.dirty.store(false, Ordering::Release);
                conn.flush_now(&mut frames);
            }
        }
    }
}

/// How a stream ended, as seen by a flush.
#[derive(Debug)]
enum Outcome {
    /// The broker closed the stream and everything was written.
    Finished,
    Failed(io::Error),
}

#[derive(Debug)]
struct Conn {
    tcp: TcpStream,
    state: Mutex<ConnState>,
    /// In a shard's dirty list, or about to be (shared with the broker's
    /// hook, which checks it without touching the connection).
    dirty: Arc<AtomicBool>,
    /// Wakes the connection's task: blocked, finished or failed.
    task: Notify,
}

#[derive(Debug)]
struct ConnState {
    /// `None` once the stream is over.
    sub: Option<Subscription>,
    /// The unwritten tail of a partial write: goes out before anything else.
    leftover: Vec<u8>,
    /// The socket was full: the task waits until writable and flushes;
    /// flushers leave the connection alone until then.
    blocked: bool,
    outcome: Option<Outcome>,
}

/// What a connection's task does after a wake-up.
enum Next {
    /// Look at the stream again.
    Look,
    /// Read the next page of history, and write it.
    Replay,
    /// The socket is full: wait until it drains, and flush.
    Drain,
    /// Shutdown: write what is left and end.
    Stop,
}

/// What one flush did.
enum Flushed {
    /// Everything queued was written.
    Done,
    /// Everything read was written; more history must be read (by the
    /// connection's task: it is async) before anything else goes out.
    Replay,
    /// The socket is full.
    Blocked,
    /// The stream is over (see `ConnState::outcome`).
    Over,
}

impl Conn {
    /// One pass that never waits: writes what the socket takes now and
    /// hands anything left (a full socket, a replay, the end) to the
    /// connection's task. Run by a flusher thread, and by the publishing
    /// thread when the client's queue is full — the last chance before
    /// eviction costs that thread non-blocking writes, never a wait.
    fn flush_now(&self, frames: &mut Vec<Bytes>) {
        let mut state = lock(&self.state);
        if state.blocked || state.outcome.is_some() || state.sub.is_none() {
            return;
        }
        match self.flush(&mut state, frames) {
            Flushed::Done => {}
            Flushed::Blocked => {
                state.blocked = true;
                drop(state);
                self.task.notify_one();
            }
            Flushed::Over | Flushed::Replay => {
                drop(state);
                self.task.notify_one();
            }
        }
    }

    /// Writes what is queued, under the state lock: whoever holds it (a
    /// flusher, or the task after the socket drained) writes in order.
    /// `frames` is scratch space, left empty.
    fn flush(&self, state: &mut ConnState, frames: &mut Vec<Bytes>) -> Flushed {
        if state.sub.as_ref().is_some_and(Subscription::is_evicted) {
            // Nothing more is written: a half-written chunk is cut short,
            // and the client resumes from the last event it read whole.
            return self.fail(state, evicted_error());
        }
        if !state.leftover.is_empty() {
            match self.tcp.try_write(&state.leftover) {
                Ok(n) if n == state.leftover.len() => state.leftover = Vec::new(),
                Ok(n) => {
                    state.leftover.drain(..n);
                    return Flushed::Blocked;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) => return self.fail(state, e),
            }
        }
        let Some(sub) = state.sub.as_mut() else {
            return Flushed::Over;
        };
        loop {
            frames.clear();
            sub.drain_ready(frames, MAX_BATCH, MAX_CHUNK_BYTES);
            if frames.is_empty() {
                if sub.is_finished() {
                    state.outcome = Some(Outcome::Finished);
                    return Flushed::Over;
                }
                if sub.needs_replay() {
                    return Flushed::Replay;
                }
                return Flushed::Done;
            }
            let written = write_chunk(&self.tcp, frames);
            frames.clear();
            match written {
                Ok(None) => {}
                Ok(Some(rest)) => {
                    state.leftover = rest;
                    return Flushed::Blocked;
                }
                Err(e) => return self.fail(state, e),
            }
        }
    }

    fn fail(&self, state: &mut ConnState, e: io::Error) -> Flushed {
        state.outcome = Some(Outcome::Failed(e));
        Flushed::Over
    }

    /// The connection's task: sleeps until a flush needs it.
    async fn serve(&self, idle: Option<Duration>, stopping: &CancellationToken) -> io::Result<()> {
        // The greeting (and any replay) goes out at once.
        Box::pin(self.flush_until_drained(idle)).await?;
        // What the peer sends while its stream is open (it should send
        // nothing; a pipelined request is dropped with the connection).
        let mut ignored = Vec::new();
        loop {
            // What to do once `woken` is gone: a task waits on one
            // `Notified` at a time, or a notification meant for the one
            // it waits on could go to a forgotten one.
            let next = {
                let woken = self.task.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if self.settled()? {
                    // The chunked body's end: the client sees a clean close.
                    let _ = self.tcp.try_write(b"0\r\n\r\n");
                    return Ok(());
                }
                let (evicted, blocked, replay) = {
                    let state = lock(&self.state);
                    let sub = state.sub.as_ref();
                    let evicted = sub.is_some_and(Subscription::is_evicted);
                    let replay = sub.is_some_and(Subscription::needs_replay);
                    (evicted, state.blocked, replay)
                };
                if evicted {
                    return Err(evicted_error());
                }
                if blocked {
                    Next::Drain
                } else if replay {
                    Next::Replay
                } else {
                    tokio::select! {
                        () = woken => Next::Look,
                        () = peer_closed(&self.tcp, &mut ignored) => return Ok(()),
                        () = stopping.cancelled() => Next::Stop,
                    }
                }
            };
            match next {
                Next::Look => {}
                Next::Drain => Box::pin(self.flush_until_drained(idle)).await?,
                Next::Replay => {
                    Box::pin(self.read_replay()).await?;
                    Box::pin(self.flush_until_drained(idle)).await?;
                }
                Next::Stop => {
                    // Shutdown closed the broker's streams first: what they
                    // queued last (a retry hint) still goes out.
                    Box::pin(self.flush_until_drained(idle)).await?;
                    let _ = self.tcp.try_write(b"0\r\n\r\n");
                    return Ok(());
                }
            }
        }
    }

    /// Reads the next page of the stream's history. The subscription is
    /// taken out meanwhile (flushers leave a connection without one alone;
    /// live frames wait in its queue, behind the history).
    async fn read_replay(&self) -> io::Result<()> {
        let Some(mut sub) = lock(&self.state).sub.take() else {
            return Ok(());
        };
        let read = sub.read_replay().await;
        lock(&self.state).sub = Some(sub);
        read.map_err(io::Error::other)
    }

    /// Whether the stream is over: `Ok(true)` finished, an error if failed.
    fn settled(&self) -> io::Result<bool> {
        let mut state = lock(&self.state);
        match state.outcome.take() {
            None => Ok(false),
            Some(Outcome::Finished) => Ok(true),
            Some(Outcome::Failed(e)) => Err(e),
        }
    }

    /// Flushes until everything queued is out, waiting for the socket
    /// between tries (a stall longer than `idle` fails the stream; an
    /// eviction ends the wait at once). Boxed where it is awaited: its
    /// timer and readiness future are only needed while a socket is full,
    /// and an idle stream should not carry them.
    async fn flush_until_drained(&self, idle: Option<Duration>) -> io::Result<()> {
        loop {
            let woken = self.task.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let flushed = {
                let mut state = lock(&self.state);
                let flushed = self.flush(&mut state, &mut Vec::new());
                state.blocked = matches!(flushed, Flushed::Blocked);
                flushed
            };
            match flushed {
                Flushed::Done | Flushed::Over | Flushed::Replay => return Ok(()),
                Flushed::Blocked => {}
            }
            tokio::select! {
                writable = writable_within(&self.tcp, idle) => writable?,
                () = woken => {}
            }
        }
    }
}

/// The error an evicted stream ends with.
fn evicted_error() -> io::Error {
    io::Error::other("evicted: the client read too slowly")
}

/// Writes `frames` as one HTTP chunk without waiting. `Ok(None)`: all of
/// it went out; `Ok(Some(rest))`: the socket took only part, `rest` is
/// the unwritten tail.
fn write_chunk(tcp: &TcpStream, frames: &[Bytes]) -> io::Result<Option<Vec<u8>>> {
    // `drain_ready` hands out at most MAX_BATCH frames per call.
    debug_assert!(frames.len() <= MAX_BATCH);
    let frames = &frames[..frames.len().min(MAX_BATCH)];
    let len: usize = frames.iter().map(Bytes::len).sum();
    let mut size = [0u8; 20];
    let size = chunk_size_line(len, &mut size);
    // On the stack: this runs once per connection per pass.
    let mut slices = [IoSlice::new(&[]); MAX_BATCH + 2];
    let count = frames.len() + 2;
    slices[0] = IoSlice::new(size);
    for (slot, frame) in slices[1..].iter_mut().zip(frames) {
        *slot = IoSlice::new(frame);
    }
    slices[count - 1] = IoSlice::new(b"\r\n");
    let slices = &slices[..count];
    let total = size.len() + len + 2;
    let written = match tcp.try_write_vectored(slices) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    super::direct::count_bytes_written(written);
    if written == total {
        return Ok(None);
    }
    let mut rest = Vec::with_capacity(total - written);
    let mut skip = written;
    for slice in slices {
        if skip >= slice.len() {
            skip -= slice.len();
            continue;
        }
        rest.extend_from_slice(&slice[skip..]);
        skip = 0;
    }
    Ok(Some(rest))
}
