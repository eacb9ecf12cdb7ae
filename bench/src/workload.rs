//! The workloads: `fanout`, `idle` and `churn`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_shared::wire::{Frame, Parser};
use tokio::sync::Semaphore;

use crate::client::{self, micros_now, Publisher};
use crate::proc;
use crate::stats::{summarize, Integrity, SeqCheck, Summary};
use crate::stream::{EventStream, Reader};
use crate::target::{parse_payload, payload, Target, CHANNEL};

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 256;

/// `fanout` settings.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    pub subscribers: usize,
    pub events: u64,
    /// Events per second; `None` publishes flat out.
    pub rate: Option<f64>,
    /// Loopback source addresses to spread connections over.
    pub sources: usize,
    /// How subscribers read.
    pub reader: Reader,
    /// Herald only: more than 1 spreads subscribers over that many topics
    /// (`bench-<k>`), and each event number is published to every one of
    /// them (on a sharded log, topics on every shard).
    pub topics: usize,
    /// Publish through this address instead of the target's (another
    /// node of the same cluster).
    pub publish_via: Option<SocketAddr>,
}

impl FanoutOpts {
    /// `subscribers` on the one topic, `events` at `rate` (flat out when
    /// `None`), published to the target itself.
    pub fn new(
        subscribers: usize,
        events: u64,
        rate: Option<f64>,
        sources: usize,
        reader: Reader,
    ) -> Self {
        FanoutOpts {
            subscribers,
            events,
            rate,
            sources,
            reader,
            topics: 1,
            publish_via: None,
        }
    }

    /// The topic of subscriber (or publish) `n`.
    fn topic(&self, target: &Target, n: usize) -> String {
        if self.topics > 1 {
            format!("{CHANNEL}-{}", n % self.topics)
        } else {
            target.topic()
        }
    }
}

/// What `fanout` measured.
#[derive(Debug, Clone)]
pub struct FanoutReport {
    pub subscribers: usize,
    pub delivered: u64,
    /// Delivered events per second, first publish to last delivery.
    pub delivered_per_sec: f64,
    pub latency: Option<Summary>,
    pub integrity: Integrity,
    pub generator_cpu: Duration,
    pub server_cpu: Option<Duration>,
    pub elapsed: Duration,
}

impl FanoutReport {
    /// Server CPU per delivered event, in µs: the figure that says how good
    /// the server is when the generator shares its cores (delivered/s is
    /// capped by the generator's own cost).
    pub fn server_micros_per_event(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.delivered > 0).then(|| cpu.as_secs_f64() * 1e6 / self.delivered as f64)
    }
}

struct SubResult {
    check: SeqCheck,
    latencies: Vec<u64>,
    last_at: Option<Instant>,
}

/// N subscribers on one channel, M numbered events published over HTTP;
/// every subscriber checks it got 1..=M once and in order.
pub async fn fanout(target: Target, opts: &FanoutOpts) -> anyhow::Result<FanoutReport> {
    let ready = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(opts.subscribers);
    for n in 0..opts.subscribers {
        let (ready, limit) = (ready.clone(), limit.clone());
        let from = client::source(n, opts.sources);
        let path = if opts.topics > 1 {
            format!("/_sse/connect?topics={}", opts.topic(&target, n))
        } else {
            target.subscribe_path()
        };
        let (events, reader) = (opts.events, opts.reader);
        tasks.push(tokio::spawn(async move {
            let permit = limit.acquire_owned().await;
            let mut stream = EventStream::open_with(reader, target.addr, from, &path).await?;
            drop(permit);
            ready.fetch_add(1, Ordering::SeqCst);
            let mut result = SubResult {
                check: SeqCheck::new(events),
                latencies: Vec::with_capacity(events as usize),
                last_at: None,
            };
            let mut parser = Parser::new();
            let mut got = 0;
            // Ends when every event came, or 5 s after the last one.
            while got < events {
                let Some(data) = stream.next_data(Duration::from_secs(5)).await else {
                    break;
                };
                let now = micros_now();
                parser.feed(data, |frame| {
                    if let Frame::Event(e) = frame {
                        if let Some((seq, sent)) = parse_payload(&e.data) {
                            result.check.record(seq);
                            result.latencies.push(now.saturating_sub(sent));
                            got += 1;
                        }
                    }
                });
                result.last_at = Some(Instant::now());
            }
            anyhow::Ok(result)
        }));
    }
    while ready.load(Ordering::SeqCst) < opts.subscribers {
        if tasks.iter().any(|t| t.is_finished()) && ready.load(Ordering::SeqCst) < opts.subscribers
        {
            // A subscriber failed to connect: surface its error.
            for t in tasks {
                if t.is_finished() {
                    t.await??;
                }
            }
            anyhow::bail!("a subscriber ended before the run started");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last subscriptions settle on the server.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let cpu0 = proc::own_cpu();
    let server_cpu0 = target.pid.and_then(proc::cpu_of);
    let started = Instant::now();
    publish_from_own_thread(target, opts, started).await?;

    let mut integrity = Integrity::default();
    let mut latencies = Vec::new();
    let mut delivered = 0;
    let mut last = started;
    for t in tasks {
        let r = t.await??;
        delivered += r.check.received;
        integrity.add(&r.check);
        latencies.extend(r.latencies);
        if let Some(at) = r.last_at {
            last = last.max(at);
        }
    }
    let elapsed = last.duration_since(started);
    Ok(FanoutReport {
        subscribers: opts.subscribers,
        delivered,
        delivered_per_sec: delivered as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: summarize(&mut latencies),
        integrity,
        generator_cpu: proc::own_cpu().saturating_sub(cpu0),
        server_cpu: target
            .pid
            .and_then(proc::cpu_of)
            .zip(server_cpu0)
            .map(|(b, a)| b.saturating_sub(a)),
        elapsed,
    })
}

/// Publishes events `1..=events` (at `rate`, or flat out) from a thread
/// and runtime of its own: on the subscribers' runtime, each publish's
/// response would wait behind thousands of subscriber tasks, and the
/// generator, not the server, would set the publish rate.
async fn publish_from_own_thread(
    target: Target,
    opts: &FanoutOpts,
    started: Instant,
) -> anyhow::Result<()> {
    let (done, result) = tokio::sync::oneshot::channel();
    let opts = opts.clone();
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            // One publisher per topic, side by side (a topic's events in
            // order): with several topics the log's throughput is measured,
            // not one publisher's round trip.
            let publish = |k: usize| {
                let (opts, path) = (&opts, target.publish_path());
                async move {
                    let addr = opts.publish_via.unwrap_or(target.addr);
                    let mut publisher = Publisher::connect(addr, path).await?;
                    for seq in 1..=opts.events {
                        if let Some(rate) = opts.rate {
                            let due = started + Duration::from_secs_f64((seq - 1) as f64 / rate);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let data = payload(seq, micros_now());
                        if opts.topics <= 1 {
                            let (body, content_type) = target.publish_body(&data);
                            publisher.post(body, content_type).await?;
                        } else {
                            let topic = opts.topic(&target, k);
                            let body = serde_json::json!({ "topic": topic, "data": data });
                            publisher.post(body.to_string(), "application/json").await?;
                        }
                    }
                    anyhow::Ok(())
                }
            };
            let run = async {
                let all = futures::future::join_all((0..opts.topics.max(1)).map(publish)).await;
                all.into_iter()
                    .collect::<anyhow::Result<Vec<()>>>()
                    .map(drop)
            };
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run));
            let _ = done.send(outcome);
        })?;
    result.await?
}

/// What `idle` measured.
#[derive(Debug, Clone)]
pub struct IdleReport {
    pub connections: usize,
    pub rss_before: Option<u64>,
    pub rss_held: Option<u64>,
    pub bytes_per_connection: Option<f64>,
}

/// Holds N idle streams for `hold`, reading the server's RSS before and
/// while they are held.
pub async fn idle(
    target: Target,
    connections: usize,
    hold: Duration,
    sources: usize,
) -> anyhow::Result<IdleReport> {
    let rss_before = target.pid.and_then(proc::rss_bytes);
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(connections);
    for n in 0..connections {
        let limit = limit.clone();
        let from = client::source(n, sources);
        let path = target.subscribe_path();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            EventStream::open(target.addr, from, &path).await
        }));
    }
    let mut held = Vec::with_capacity(connections);
    for t in tasks {
        held.push(t.await??);
    }
    // Drain what is already there (greetings), so buffers settle.
    for stream in held.iter_mut() {
        while stream.next_data(Duration::from_millis(1)).await.is_some() {}
    }
    tokio::time::sleep(hold).await;
    let rss_held = target.pid.and_then(proc::rss_bytes);
    drop(held);
    Ok(IdleReport {
        connections,
        rss_before,
        rss_held,
        bytes_per_connection: rss_held
            .zip(rss_before)
            .map(|(h, b)| h.saturating_sub(b) as f64 / connections.max(1) as f64),
    })
}

/// What `churn` measured.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    pub connections: u64,
    pub errors: u64,
    /// `(seconds since start, RSS bytes)`, one sample a second.
    pub rss: Vec<(u64, u64)>,
}

/// Connections that connect, read `reads` events and leave, `rate` per
/// second for `duration`, while events are published 20 times a second.
pub async fn churn(
    target: Target,
    rate: f64,
    duration: Duration,
    reads: usize,
    sources: usize,
) -> anyhow::Result<ChurnReport> {
    let errors = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let publisher_task = {
        let stop = stop.clone();
        let errors = errors.clone();
        tokio::spawn(async move {
            let mut publisher = match Publisher::connect(target.addr, target.publish_path()).await {
                Ok(p) => p,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut seq = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.notified() => return,
                }
                seq += 1;
                let (body, ct) = target.publish_body(&payload(seq, micros_now()));
                if publisher.post(body, ct).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut next_sample = started;
    let mut n = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    while started.elapsed() < duration {
        tick.tick().await;
        if Instant::now() >= next_sample {
            if let Some(r) = target.pid.and_then(proc::rss_bytes) {
                rss.push((started.elapsed().as_secs(), r));
            }
            next_sample += Duration::from_secs(1);
        }
        n += 1;
        let from = client::source(n, sources);
        let path = target.subscribe_path();
        let (errors, opened) = (errors.clone(), opened.clone());
        tokio::spawn(async move {
            opened.fetch_add(1, Ordering::Relaxed);
            let Ok(mut stream) = EventStream::open(target.addr, from, &path).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut parser = Parser::new();
            let mut got = 0;
            while got < reads {
                let Some(data) = stream.next_data(Duration::from_secs(5)).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                parser.feed(data, |f| {
                    if matches!(&f, Frame::Event(e) if parse_payload(&e.data).is_some()) {
                        got += 1;
                    }
                });
            }
        });
    }
    // Let the last ones finish and the server release them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.notify_one();
    let _ = publisher_task.await;
    if let Some(r) = target.pid.and_then(proc::rss_bytes) {
        rss.push((started.elapsed().as_secs(), r));
    }
    Ok(ChurnReport {
        connections: opened.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        rss,
    })
}
