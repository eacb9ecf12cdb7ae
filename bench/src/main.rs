//! `herald-bench`: fanout / idle / churn against one running server, or
//! `compare`, which starts Herald and the baselines on loopback and runs the
//! same workloads against each, printing ratios.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use herald_bench::backplanes::{self, BackplaneReport, BackplanesOpts};
use herald_bench::proc::{free_addr, wait_listening};
use herald_bench::stream::Reader;
use herald_bench::target::{Kind, Target};
use herald_bench::workload::{self, FanoutOpts, FanoutReport, IdleReport};
use herald_bench::{client, proc};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N subscribers, M events: throughput, latency, integrity.
    Fanout {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 200)]
        events: u64,
        /// Events per second (flat out when absent).
        #[arg(long)]
        rate: Option<f64>,
        /// How subscribers read (see `stream.rs`).
        #[arg(long, value_enum, default_value_t = Reader::Raw)]
        reader: Reader,
    },
    /// N idle connections held T seconds: memory per connection.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 3)]
        hold_secs: u64,
    },
    /// The floor under a paced fan-out here: CPU per small write to one of
    /// many idle loopback sockets (see `floor.rs`).
    Floor {
        #[arg(long, default_value_t = 5000)]
        sockets: usize,
        #[arg(long, default_value_t = 40)]
        rounds: usize,
        /// Bytes per write (an event of the fan-out runs, chunk framing
        /// included, is ~60 on the wire).
        #[arg(long, default_value_t = 60)]
        bytes: usize,
        /// Milliseconds between rounds (the paced runs' 20 events/s: 50).
        #[arg(long, default_value_t = 50)]
        pause_ms: u64,
    },
    /// Connect, read a few events, leave; at a rate, for a duration.
    Churn {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value_t = 3)]
        reads: usize,
    },
    /// Start Herald, the naive axum server and nginx + Nchan; run the same
    /// workloads against each; print a table of ratios.
    Compare(CompareArgs),
    /// Start Redis and a three-master Redis Cluster here, two Herald nodes
    /// on each; the same fan-out through each (publish on one node,
    /// subscribers on the other, topics on every shard): delivered/s and
    /// Redis CPU per publish on each Redis.
    Backplanes {
        #[arg(long, default_value_t = 2_000)]
        subscribers: usize,
        /// Event numbers; each goes to every topic.
        #[arg(long, default_value_t = 100)]
        events: u64,
        /// Event numbers per second (flat out when absent): latency when
        /// nothing is saturated.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 12)]
        topics: usize,
        /// The cluster's log shards (`--redis-shards`).
        #[arg(long, default_value_t = 3)]
        shards: usize,
        /// Runs per backplane (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The Herald server binary (default: next to this one).
        #[arg(long)]
        herald_bin: Option<PathBuf>,
        #[arg(long, default_value_t = 16)]
        sources: usize,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// herald, herald-chat, herald-jobs, naive-axum or nchan.
    #[arg(long, default_value = "herald")]
    kind: String,
    /// herald-chat and herald-jobs: a token for user `bench` whose publish
    /// claim covers `chat:bench` / `jobs:bench` (`herald-server token --sub
    /// bench --publish 'chat:*' --publish 'jobs:*'`).
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The server's pid, for memory and CPU readings.
    #[arg(long)]
    pid: Option<u32>,
    /// Loopback source addresses to spread connections over (127.0.0.1..):
    /// each gives ~28 000 ports, and a closed connection holds its port in
    /// TIME_WAIT for a minute.
    #[arg(long, default_value_t = 16)]
    sources: usize,
}

impl TargetArgs {
    fn target(&self) -> anyhow::Result<Target> {
        let kind = Kind::parse(&self.kind)
            .context("kind: herald, herald-chat, herald-jobs, naive-axum or nchan")?;
        if kind.needs_token() && self.token.is_none() {
            bail!("--kind {} needs --token", kind.name());
        }
        Ok(Target {
            kind,
            addr: self.addr,
            pid: self.pid,
            // Once per process: see `Target::token`.
            token: self.token.clone().map(|t| &*Box::leak(t.into_boxed_str())),
        })
    }
}

#[derive(Args)]
struct CompareArgs {
    /// Subscribers of the fan-out runs (the workload: 10 000).
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Events of each flat-out run.
    #[arg(long, default_value_t = 400)]
    events: u64,
    /// Flat-out runs per server; the table shows the median (by events/s):
    /// on 2 shared cores one run varies by ±20 %.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Subscribers and events of the small flat-out run (latency when
    /// the server is not the bottleneck: 1 000 × 1 000).
    #[arg(long, default_value_t = 1_000)]
    small_subscribers: usize,
    #[arg(long, default_value_t = 1_000)]
    small_events: u64,
    /// Subscribers of the light paced run (at --rate, 5 s: 2 000 × 20/s).
    #[arg(long, default_value_t = 2_000)]
    light_subscribers: usize,
    /// Events per second of the paced runs (which last 5 s).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Idle connections held (the workload: 15 000).
    #[arg(long, default_value_t = 15_000)]
    idle: usize,
    /// The Herald server binary (default: next to this one).
    #[arg(long)]
    herald_bin: Option<PathBuf>,
    /// Leave out nginx + Nchan.
    #[arg(long)]
    no_nchan: bool,
    /// Also measure two Herald app routes written by the same stream path
    /// as `/_sse/connect`: a chat stream and a job stream (rows
    /// herald-chat, herald-jobs; their ratios to herald should be ~1).
    #[arg(long)]
    herald_routes: bool,
    /// How subscribers read, comma-separated: `raw` (the cheap reader),
    /// `hyper` (a hyper client per subscriber, slower, so server sockets
    /// fill as with real clients). Each reader gets its own fan-out runs
    /// and rows.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "raw")]
    readers: Vec<Reader>,
    /// Loopback source addresses (a compare run opens ~165 000 connections).
    #[arg(long, default_value_t = 16)]
    sources: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let limit = proc::raise_fd_limit();
    client::clock();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Fanout {
                target,
                subscribers,
                events,
                rate,
                reader,
            } => {
                let opts = FanoutOpts::new(subscribers, events, rate, target.sources, reader);
                let report = workload::fanout(target.target()?, &opts).await?;
                print_fanout(&report);
            }
            Cmd::Backplanes {
                subscribers,
                events,
                rate,
                topics,
                shards,
                runs,
                herald_bin,
                sources,
            } => {
                let opts = BackplanesOpts {
                    herald_bin: herald_bin.map_or_else(|| sibling("herald-server"), Ok)?,
                    subscribers,
                    events,
                    rate,
                    topics,
                    shards,
                    runs,
                    sources,
                };
                print_backplanes(&opts, &backplanes::backplanes(&opts).await?);
            }
            Cmd::Idle {
                target,
                connections,
                hold_secs,
            } => {
                let r = workload::idle(
                    target.target()?,
                    connections,
                    Duration::from_secs(hold_secs),
                    target.sources,
                )
                .await?;
                print_idle(&r);
            }
            Cmd::Floor {
                sockets,
                rounds,
                bytes,
                pause_ms,
            } => {
                let pause = Duration::from_millis(pause_ms);
                let per_write = tokio::task::spawn_blocking(move || {
                    herald_bench::floor::write_floor(sockets, rounds, bytes, pause)
                })
                .await??;
                println!(
                    "{sockets} sockets × {rounds} rounds of {bytes} B: {:.2} µs of CPU per write",
                    per_write.as_secs_f64() * 1e6
                );
            }
            Cmd::Churn {
                target,
                rate,
                secs,
                reads,
            } => {
                let r = workload::churn(
                    target.target()?,
                    rate,
                    Duration::from_secs(secs),
                    reads,
                    target.sources,
                )
                .await?;
                println!("connections {}  errors {}", r.connections, r.errors);
                for (s, rss) in &r.rss {
                    println!("  t={s:>4}s  rss {:.1} MiB", *rss as f64 / 1048576.0);
                }
                if let Some(line) = churn_summary(&r.rss) {
                    println!("{line}");
                }
            }
            Cmd::Compare(args) => compare(args, limit).await?,
        }
        anyhow::Ok(())
    })
}

/// RSS at the end against the cold start and against the first reading
/// after 30 s of churn: a fresh process first grows to its working set
/// (allocator arenas, maps and slabs sized for the concurrency), so the
/// warm reading separates that from growth that keeps going.
fn churn_summary(rss: &[(u64, u64)]) -> Option<String> {
    let mib = |b: u64| b as f64 / 1048576.0;
    let (_, cold) = *rss.first()?;
    let (_, end) = *rss.last()?;
    let (_, warm) = *rss.iter().find(|(t, _)| *t >= 30)?;
    let pct = |from: u64| (end as f64 / from.max(1) as f64 - 1.0) * 100.0;
    Some(format!(
        "rss: cold {:.1} MiB, at 30 s {:.1} MiB, end {:.1} MiB: {:+.0} % vs cold, {:+.0} % vs 30 s",
        mib(cold),
        mib(warm),
        mib(end),
        pct(cold),
        pct(warm)
    ))
}

fn print_fanout(r: &FanoutReport) {
    let per_event = r.server_micros_per_event().map_or_else(String::new, |us| {
        format!(" ({us:.2} µs per delivered event)")
    });
    let lat = r
        .latency
        .map(|l| format!("p50 {} µs  p99 {} µs  max {} µs", l.p50, l.p99, l.max))
        .unwrap_or_default();
    println!(
        "{} subscribers: {} delivered in {:.2} s = {:.0} events/s; {lat}; lost {} dup {} reordered {}; generator CPU {:.2} s, server CPU {}{per_event}",
        r.subscribers,
        r.delivered,
        r.elapsed.as_secs_f64(),
        r.delivered_per_sec,
        r.integrity.lost,
        r.integrity.duplicated,
        r.integrity.out_of_order,
        r.generator_cpu.as_secs_f64(),
        r.server_cpu.map_or("n/a".into(), |c| format!("{:.2} s", c.as_secs_f64())),
    );
}

fn print_idle(r: &IdleReport) {
    println!(
        "{} idle connections: {} per connection (RSS {} → {})",
        r.connections,
        r.bytes_per_connection
            .map_or("n/a".into(), |b| format!("{:.1} KiB", b / 1024.0)),
        r.rss_before.map_or("n/a".into(), mib),
        r.rss_held.map_or("n/a".into(), mib),
    );
}

fn print_backplanes(opts: &BackplanesOpts, reports: &[BackplaneReport; 2]) {
    println!(
        "\n{} subscribers on node B over {} topics, {} event numbers × {} topics published \
         on node A, median of {} runs:",
        opts.subscribers, opts.topics, opts.events, opts.topics, opts.runs
    );
    for r in reports {
        let per_redis: Vec<String> = r
            .redis_micros_per_publish()
            .iter()
            .map(|us| format!("{us:.1}"))
            .collect();
        let i = &r.fanout.integrity;
        let node_b = r.fanout.server_micros_per_event();
        let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
        let latency = r.fanout.latency.as_ref().map(|l| (ms(l.p50), ms(l.p99)));
        let (p50, p99) = latency.unwrap_or(("n/a".into(), "n/a".into()));
        println!(
            "{:<28} {:>9.0} delivered/s   p50 {p50} ms  p99 {p99} ms   node B {} µs per delivered event   Redis \
             CPU per publish: {} µs (each Redis)   lost {} duplicated {} out of order {}",
            r.name,
            r.fanout.delivered_per_sec,
            node_b.map_or("n/a".into(), |us| format!("{us:.2}")),
            per_redis.join(" + "),
            i.lost,
            i.duplicated,
            i.out_of_order
        );
    }
    for r in reports {
        let per_publish: Vec<String> = r
            .calls
            .iter()
            .map(|(c, n)| format!("{c} {:.2}", *n as f64 / r.publishes.max(1) as f64))
            .collect();
        println!(
            "{:<28} Redis calls per publish: {}",
            r.name,
            per_publish.join(", ")
        );
    }
    let [one, cluster] = reports;
    println!(
        "cluster / one Redis: {:.2}× delivered/s",
        cluster.fanout.delivered_per_sec / one.fanout.delivered_per_sec.max(1e-9)
    );
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

/// A server started for `compare`, killed when dropped.
struct Server {
    target: Target,
    child: Child,
    _dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

async fn start(kind: Kind, args: &CompareArgs) -> anyhow::Result<Server> {
    let addr = free_addr()?;
    let (child, dir) = match kind {
        Kind::Herald | Kind::HeraldChat | Kind::HeraldJobs => {
            let bin = herald_bin(args)?;
            // The same server for every Herald row: only the route differs.
            let child = Command::new(&bin)
                .args(["--addr", &addr.to_string()])
                .args(["--anonymous-publish", "--publish-rate", "0"])
                .args(["--max-connections", "100000", "--status-secs", "3600"])
                // Every generated subscriber comes from a few loopback
                // addresses, and the app routes' are all user `bench`.
                .args(["--max-connections-per-ip", "0"])
                .args(["--max-connections-per-user", "0"])
                .args(["--streams-max-connections", "0"])
                .env("HERALD_JWT_SECRET", BENCH_SECRET)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            (child, None)
        }
        Kind::NaiveAxum => {
            let child = Command::new(sibling("naive-axum")?)
                .arg(addr.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting naive-axum")?;
            (child, None)
        }
        Kind::Nchan => {
            let dir =
                std::env::temp_dir().join(format!("herald-bench-nchan-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let template = include_str!("../baselines/nchan.conf");
            let conf = template
                .replace("{PORT}", &addr.port().to_string())
                .replace("{PREFIX}", &dir.display().to_string())
                .replace("{MODULE}", "/usr/lib/nginx/modules/ngx_nchan_module.so");
            let path = dir.join("nginx.conf");
            std::fs::write(&path, conf)?;
            let child = Command::new("nginx")
                .arg("-c")
                .arg(&path)
                .arg("-p")
                .arg(&dir)
                .args(["-g", "daemon off; master_process off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context(
                    "starting nginx (the bench setup installs nginx and libnginx-mod-nchan)",
                )?;
            (child, Some(dir))
        }
    };
    let pid = child.id();
    let token = match kind.needs_token() {
        true => Some(mint_token(args)?),
        false => None,
    };
    let server = Server {
        target: Target {
            kind,
            addr,
            pid: Some(pid),
            token,
        },
        child,
        _dir: dir,
    };
    wait_listening(addr).await?;
    Ok(server)
}

/// The HS256 secret of the Herald servers `compare` starts (loopback only).
const BENCH_SECRET: &str = "herald-bench-secret-for-loopback-runs-only";

fn herald_bin(args: &CompareArgs) -> anyhow::Result<PathBuf> {
    match &args.herald_bin {
        Some(b) => Ok(b.clone()),
        None => sibling("herald-server"),
    }
}

/// A token for user `bench` that may publish the app routes' topics,
/// minted by `herald-server token` with the servers' secret. Leaked: see
/// `Target::token` (one per server started).
fn mint_token(args: &CompareArgs) -> anyhow::Result<&'static str> {
    let bin = herald_bin(args)?;
    let out = Command::new(&bin)
        .args(["token", "--sub", herald_bench::target::BENCH_USER])
        .args(["--publish", "chat:*", "--publish", "jobs:*"])
        .env("HERALD_JWT_SECRET", BENCH_SECRET)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("minting a token with {}", bin.display()))?;
    if !out.status.success() {
        bail!("herald-server token failed: {}", out.status);
    }
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    Ok(Box::leak(token.into_boxed_str()))
}

type Pick = fn(&ReaderRuns) -> &FanoutReport;
type Figure = fn(&FanoutReport) -> Option<f64>;

/// The table's rows for each reader: name, which run, the figure, unit.
const FIGURES: [(&str, Pick, Figure, &str); 8] = [
    (
        "delivered events/s, flat out",
        |x| &x.flat,
        |f| Some(f.delivered_per_sec / 1000.0),
        "k",
    ),
    (
        "server µs per event, flat out",
        |x| &x.flat,
        FanoutReport::server_micros_per_event,
        " µs",
    ),
    (
        "p99 latency, flat out",
        |x| &x.flat,
        |f| f.latency.map(|l| l.p99 as f64 / 1000.0),
        " ms",
    ),
    (
        "server µs per event, paced",
        |x| &x.paced,
        FanoutReport::server_micros_per_event,
        " µs",
    ),
    (
        "p50 latency, paced",
        |x| &x.paced,
        |f| f.latency.map(|l| l.p50 as f64 / 1000.0),
        " ms",
    ),
    (
        "p99 latency, paced",
        |x| &x.paced,
        |f| f.latency.map(|l| l.p99 as f64 / 1000.0),
        " ms",
    ),
    (
        "p99 latency, small flat out",
        |x| &x.small_flat,
        |f| f.latency.map(|l| l.p99 as f64 / 1000.0),
        " ms",
    ),
    (
        "p99 latency, light paced",
        |x| &x.light_paced,
        |f| f.latency.map(|l| l.p99 as f64 / 1000.0),
        " ms",
    ),
];

/// One server's figures: per reader its runs (flat-out median, paced,
/// small flat out, light paced), and memory per idle connection.
struct Row {
    runs: Vec<ReaderRuns>,
    idle: IdleReport,
}

struct ReaderRuns {
    flat: FanoutReport,
    paced: FanoutReport,
    small_flat: FanoutReport,
    light_paced: FanoutReport,
}

async fn measure(kind: Kind, args: &CompareArgs) -> anyhow::Result<Row> {
    let server = start(kind, args).await?;
    let t = server.target;
    eprintln!("== {} on {}", kind.name(), t.addr);
    let mut runs = Vec::new();
    for &reader in &args.readers {
        let mut flats = Vec::new();
        for _ in 0..args.runs.max(1) {
            let opts = FanoutOpts::new(args.subscribers, args.events, None, args.sources, reader);
            let flat = workload::fanout(t, &opts).await?;
            eprint!("{} reader: ", reader.name());
            print_fanout(&flat);
            flats.push(flat);
        }
        flats.sort_by(|a, b| a.delivered_per_sec.total_cmp(&b.delivered_per_sec));
        let flat = flats.swap_remove(flats.len() / 2);
        let run = |subscribers: usize, events: u64, rate: Option<f64>| async move {
            let opts = FanoutOpts::new(subscribers, events, rate, args.sources, reader);
            let report = workload::fanout(t, &opts).await?;
            eprint!("{} reader: ", reader.name());
            print_fanout(&report);
            anyhow::Ok(report)
        };
        let paced_events = (args.rate * 5.0) as u64;
        runs.push(ReaderRuns {
            flat,
            paced: run(args.subscribers, paced_events, Some(args.rate)).await?,
            small_flat: run(args.small_subscribers, args.small_events, None).await?,
            light_paced: run(args.light_subscribers, paced_events, Some(args.rate)).await?,
        });
    }
    // Memory per connection on a fresh process: what the fan-out runs
    // allocated would otherwise blur the baseline reading.
    drop(server);
    let server = start(kind, args).await?;
    let idle = workload::idle(
        server.target,
        args.idle,
        Duration::from_secs(3),
        args.sources,
    )
    .await?;
    print_idle(&idle);
    Ok(Row { runs, idle })
}

async fn compare(args: CompareArgs, fd_limit: u64) -> anyhow::Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "herald-bench compare: {} subscribers, {} events flat out (median of {} runs), {} events/s paced; small flat out {} × {}; light paced {} × {}/s; {} idle; readers {}; {} cores; fd limit {fd_limit}; load {}",
        args.subscribers,
        args.events,
        args.runs.max(1),
        args.rate,
        args.small_subscribers,
        args.small_events,
        args.light_subscribers,
        args.rate,
        args.idle,
        args.readers
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
    let mut kinds = vec![Kind::Herald];
    if args.herald_routes {
        kinds.extend([Kind::HeraldChat, Kind::HeraldJobs]);
    }
    kinds.push(Kind::NaiveAxum);
    if !args.no_nchan {
        kinds.push(Kind::Nchan);
    }
    let mut rows = Vec::new();
    for kind in &kinds {
        rows.push((*kind, measure(*kind, &args).await?));
    }

    let cell = |v: f64, unit: &str| format!("{v:.2}{unit}");
    type Get = Box<dyn Fn(&Row) -> Option<f64>>;
    let mut metrics: Vec<(String, Get, &str)> = Vec::new();
    for (i, reader) in args.readers.iter().enumerate() {
        // With one reader the rows keep their plain names.
        let by = match args.readers.len() {
            1 => String::new(),
            _ => format!(", {} reader", reader.name()),
        };
        for (name, pick, figure, unit) in FIGURES {
            metrics.push((
                format!("{name}{by}"),
                Box::new(move |r: &Row| r.runs.get(i).map(pick).and_then(figure)),
                unit,
            ));
        }
    }
    metrics.push((
        "memory per idle connection".to_owned(),
        Box::new(|r: &Row| r.idle.bytes_per_connection.map(|b| b / 1024.0)),
        " KiB",
    ));
    metrics.push((
        "lost + dup + reordered".to_owned(),
        Box::new(|r: &Row| {
            let i = |f: &FanoutReport| {
                (f.integrity.lost + f.integrity.duplicated + f.integrity.out_of_order) as f64
            };
            Some(
                r.runs
                    .iter()
                    .map(|x| i(&x.flat) + i(&x.paced) + i(&x.small_flat) + i(&x.light_paced))
                    .sum(),
            )
        }),
        "",
    ));
    print!("\n{:<44}", "");
    for (kind, _) in &rows {
        print!("{:>14}", kind.name());
    }
    for (kind, _) in rows.iter().skip(1) {
        print!("{:>20}", format!("herald/{}", kind.name()));
    }
    println!();
    for (name, get, unit) in &metrics {
        print!("{name:<44}");
        let values: Vec<Option<f64>> = rows.iter().map(|(_, r)| get(r)).collect();
        for v in &values {
            print!("{:>14}", v.map_or("n/a".into(), |v| cell(v, unit)));
        }
        for v in values.iter().skip(1) {
            let ratio = match (values[0], v) {
                (Some(h), Some(b)) if *b > 0.0 => format!("{:.2}×", h / b),
                _ => "n/a".into(),
            };
            print!("{ratio:>20}");
        }
        println!();
    }
    for (i, reader) in args.readers.iter().enumerate() {
        println!(
            "\ngenerator CPU (flat out, {} reader): {}",
            reader.name(),
            rows.iter()
                .filter_map(|(k, r)| r.runs.get(i).map(|x| (k, x)))
                .map(|(k, x)| format!("{} {:.2} s", k.name(), x.flat.generator_cpu.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // What one paced write costs here, with no server: the floor under the
    // paced rows' µs per event (see `floor.rs`), measured in the same run.
    let floor = tokio::task::spawn_blocking(|| {
        herald_bench::floor::write_floor(5000, 40, 60, Duration::from_millis(50))
    })
    .await??;
    println!(
        "\npaced write floor (herald-bench floor: 60 B to one of 5 000 idle sockets every 50 ms): {:.2} µs of CPU per write",
        floor.as_secs_f64() * 1e6
    );
    Ok(())
}
