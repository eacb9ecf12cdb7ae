//! `herald-bench backplanes`: Herald on one Redis and on a three-master
//! Redis Cluster, started here on loopback, under the same fan-out:
//! subscribers on node B spread over topics (so, on the cluster, over
//! every master), every event published through node A. Says how many
//! events/s reach the subscribers through each, and how much Redis CPU
//! each publish costs on each Redis (its `INFO cpu` before and after).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::proc::{free_addr, wait_listening};
use crate::stream::Reader;
use crate::target::{Kind, Target};
use crate::workload::{self, FanoutOpts, FanoutReport};

/// What to run.
#[derive(Debug, Clone)]
pub struct BackplanesOpts {
    pub herald_bin: PathBuf,
    pub subscribers: usize,
    /// Event numbers, each published to every topic.
    pub events: u64,
    /// Event numbers per second (flat out when `None`).
    pub rate: Option<f64>,
    pub topics: usize,
    /// The cluster's log shards (`--redis-shards`).
    pub shards: usize,
    /// Runs per backplane: the median (by delivered/s) is reported.
    pub runs: usize,
    pub sources: usize,
}

/// One backplane's figures.
#[derive(Debug, Clone)]
pub struct BackplaneReport {
    pub name: &'static str,
    /// The median run.
    pub fanout: FanoutReport,
    /// Publishes over all runs.
    pub publishes: u64,
    /// Per Redis process: CPU (user + sys) over all runs.
    pub redis_cpu: Vec<Duration>,
    /// Over all Redis processes and runs: `(command, calls)` of the
    /// commands the log runs per event (`evalsha`, `xread`).
    pub calls: Vec<(&'static str, u64)>,
}

impl BackplaneReport {
    /// Each Redis's CPU per publish, µs.
    pub fn redis_micros_per_publish(&self) -> Vec<f64> {
        self.redis_cpu
            .iter()
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.publishes.max(1) as f64)
            .collect()
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Redis processes (one server, or a cluster's masters) and their files.
struct Redis {
    ports: Vec<u16>,
    _procs: Vec<Proc>,
    dir: PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        self._procs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Redis {
    async fn start(masters: usize, cluster: bool) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "herald-bench-redis-{}-{}",
            std::process::id(),
            free_addr()?.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut ports = Vec::new();
        let mut procs = Vec::new();
        for _ in 0..masters {
            let port = if cluster {
                cluster_port()?
            } else {
                free_addr()?.port()
            };
            let mut cmd = Command::new("redis-server");
            cmd.current_dir(&dir)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"]);
            if cluster {
                cmd.args(["--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
            }
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server (scripts/setup.sh installs it)")?;
            procs.push(Proc(child));
            ports.push(port);
        }
        for port in &ports {
            wait_listening(SocketAddr::from(([127, 0, 0, 1], *port))).await?;
        }
        if cluster {
            let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            let created = Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&nodes)
                .arg("--cluster-yes")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !created.success() {
                bail!("redis-cli --cluster create failed");
            }
            let whole = |p: &u16| redis_cli(*p, &["cluster", "info"]).contains("cluster_state:ok");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !ports.iter().all(whole) {
                if std::time::Instant::now() > deadline {
                    bail!("the Redis Cluster did not form");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(Redis {
            ports,
            _procs: procs,
            dir,
        })
    }

    fn url(&self, cluster: bool) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        if cluster {
            format!("redis+cluster://{}", nodes.join(","))
        } else {
            format!("redis://{}", nodes[0])
        }
    }

    /// Each process's CPU so far.
    fn cpu(&self) -> Vec<Duration> {
        self.ports.iter().map(|p| redis_cpu(*p)).collect()
    }

    /// Calls of `command` so far, over every process.
    fn calls(&self, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        self.ports
            .iter()
            .map(|p| redis_cli(*p, &["info", "commandstats"]))
            .filter_map(|info| {
                let line = info.lines().find_map(|l| l.strip_prefix(prefix.as_str()))?;
                line.split(',').next()?.parse::<u64>().ok()
            })
            .sum()
    }
}

/// What `redis-cli -p <port> <command>` printed ("" if it failed).
fn redis_cli(port: u16, command: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(command)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// User + system CPU of the Redis on `port`.
fn redis_cpu(port: u16) -> Duration {
    let info = redis_cli(port, &["info", "cpu"]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Duration::from_secs_f64(field("used_cpu_user") + field("used_cpu_sys"))
}

/// A free port for a cluster node: its bus listens on port + 10 000, so
/// both must be free and below 65 536 (the kernel's ephemeral ports, which
/// `free_addr` draws from, often are not).
fn cluster_port() -> anyhow::Result<u16> {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    (0..1000)
        .map(|_| 20_000 + rand_u16() % 30_000)
        .find(|&p| free(p) && free(p + 10_000))
        .context("no free port pair for a cluster node")
}

/// A number that differs between calls and processes (no `rand` here).
fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u16
}

/// A Herald node on `backplane`, logging to `log`.
async fn herald(
    bin: &Path,
    backplane: &str,
    shards: usize,
    log: &Path,
) -> anyhow::Result<(Proc, Target)> {
    let addr = free_addr()?;
    let child = Command::new(bin)
        .args(["--addr", &addr.to_string(), "--backplane", backplane])
        .args(["--redis-shards", &shards.to_string()])
        .args(["--anonymous-publish", "--publish-rate", "0"])
        .args(["--max-connections", "100000", "--status-secs", "3600"])
        .args([
            "--max-connections-per-ip",
            "0",
            "--max-connections-per-user",
            "0",
        ])
        .args(["--streams-max-connections", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let target = Target {
        kind: Kind::Herald,
        addr,
        pid: Some(child.id()),
        token: None,
    };
    let proc = Proc(child);
    if let Err(e) = wait_listening(addr).await {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        bail!("{e}; the node said:\n{said}");
    }
    Ok((proc, target))
}

/// Runs the fan-out `opts.runs` times through two nodes on `backplane`.
async fn measure(
    name: &'static str,
    opts: &BackplanesOpts,
    cluster: bool,
) -> anyhow::Result<BackplaneReport> {
    let redis = Redis::start(if cluster { 3 } else { 1 }, cluster).await?;
    let url = redis.url(cluster);
    let log = |node: &str| redis.dir.join(format!("herald-{node}.log"));
    let (_a, a) = herald(&opts.herald_bin, &url, opts.shards, &log("a")).await?;
    let (_b, b) = herald(&opts.herald_bin, &url, opts.shards, &log("b")).await?;
    eprintln!("== {name}: {url}");
    let fanout = FanoutOpts {
        topics: opts.topics,
        publish_via: Some(a.addr),
        ..FanoutOpts::new(
            opts.subscribers,
            opts.events,
            opts.rate,
            opts.sources,
            Reader::Raw,
        )
    };
    const COMMANDS: [&str; 2] = ["evalsha", "xread"];
    let cpu0 = redis.cpu();
    let calls0: Vec<u64> = COMMANDS.iter().map(|c| redis.calls(c)).collect();
    let mut runs = Vec::new();
    for _ in 0..opts.runs.max(1) {
        let report = workload::fanout(b, &fanout).await?;
        eprintln!(
            "   {:.0} events/s, {} lost, {} duplicated, {} out of order",
            report.delivered_per_sec,
            report.integrity.lost,
            report.integrity.duplicated,
            report.integrity.out_of_order
        );
        runs.push(report);
    }
    let redis_cpu = redis
        .cpu()
        .iter()
        .zip(cpu0)
        .map(|(after, before)| after.saturating_sub(before))
        .collect();
    let calls = COMMANDS
        .iter()
        .zip(calls0)
        .map(|(c, before)| (*c, redis.calls(c).saturating_sub(before)))
        .collect();
    let publishes = opts.events * opts.topics as u64 * runs.len() as u64;
    runs.sort_by(|x, y| x.delivered_per_sec.total_cmp(&y.delivered_per_sec));
    let fanout = runs.swap_remove(runs.len() / 2);
    Ok(BackplaneReport {
        name,
        fanout,
        publishes,
        redis_cpu,
        calls,
    })
}

/// Both backplanes, one after the other: one Redis, then the cluster.
pub async fn backplanes(opts: &BackplanesOpts) -> anyhow::Result<[BackplaneReport; 2]> {
    Ok([
        measure("one Redis", opts, false).await?,
        measure("Redis Cluster (3 masters)", opts, true).await?,
    ])
}
