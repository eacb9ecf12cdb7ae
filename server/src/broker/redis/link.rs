//! How a node reaches Redis: one server (or a primary with replicas) or a
//! Redis Cluster. Both sit behind [`Link`], one connection type, so every
//! command the backplane sends is written once; what differs is where the
//! keys live ([`super::layout`]).

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// The URL scheme of a Redis Cluster: `redis+cluster://host:port,host:port,…`.
pub(super) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Waits for a node to answer a connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Waits for an answer to a command (a blocking read waits longer).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the backplane's Redis is, and how to open connections to it.
pub(crate) enum Target {
    Server(Client),
    /// The cluster's seed nodes (boxed: a cluster client is several times
    /// a server's size).
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// From `redis://…` (one server) or `redis+cluster://a:p,b:p` (seed
    /// nodes of a cluster; any of them will do, more help at start-up).
    pub fn open(url: &str) -> RedisResult<Self> {
        let Some(nodes) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Client::open(url).map(Target::Server);
        };
        let nodes: Vec<String> = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| format!("redis://{n}"))
            .collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            // A master that is down answers 503 soon, not after the
            // client's default of 16 retries.
            .retries(2)
            .max_retry_wait(500)
            .build()?;
        Ok(Target::Cluster(Box::new(client)))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// The shared connection every command but blocking reads goes through.
    pub async fn commands(&self) -> RedisResult<Link> {
        match self {
            Target::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Link::Server)
            }
            Target::Cluster(commands) => commands.get_async_connection().await.map(Link::Cluster),
        }
    }

    /// A connection of its own for blocking reads (`XREAD BLOCK`) of `key`,
    /// which would hold up every command queued behind them on a shared
    /// one. On a cluster it goes straight to the master that serves the
    /// key's slot now (asked of `commands`): a reader issues one command
    /// after another on one key, and the cluster client's routing costs
    /// each a hop through its own task. When the slot moves the read
    /// fails (`MOVED`), and the reader reconnects here.
    pub async fn reader(
        &self,
        key: &str,
        commands: &Link,
        read_block: Duration,
    ) -> RedisResult<Link> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(read_block + Duration::from_secs(3)));
        let client = match self {
            Target::Server(client) => client.clone(),
            Target::Cluster(_) => {
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut commands.clone())
                    .await?;
                let (host, port) = master_of(&slots, super::layout::slot(key.as_bytes()))
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "no master serves the slot",
                            key.to_owned(),
                        ))
                    })?;
                Client::open(format!("redis://{host}:{port}"))?
            }
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map(Link::Dedicated)
    }
}

/// The master serving `slot`, from a `CLUSTER SLOTS` answer: entries of
/// `[first slot, last slot, [host, port, id, ...], replicas...]`.
fn master_of(slots: &Value, slot: u16) -> Option<(String, i64)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(range) = range else {
            return None;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (range.first(), range.get(1), range.get(2))
        else {
            return None;
        };
        if !(*first..=*last).contains(&i64::from(slot)) {
            return None;
        }
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return None;
        };
        Some((host, *port))
    })
}

/// A connection to the backplane's Redis, whichever kind it is.
#[derive(Clone)]
pub(crate) enum Link {
    /// Shared, to one server: reconnects by itself.
    Server(ConnectionManager),
    /// Of its own, to one server.
    Dedicated(MultiplexedConnection),
    /// To a cluster: each command goes to the master of its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Server(c) => c.req_packed_command(cmd),
            Link::Dedicated(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Dedicated(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Server(c) => c.get_db(),
            Link::Dedicated(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Commands on many keys, sent in as few pipelines as the target allows:
/// one to a server; one per hash slot to a cluster, where a pipeline must
/// not cross slots.
pub(super) struct Pipes {
    cluster: bool,
    pipes: std::collections::BTreeMap<u16, Pipeline>,
}

impl Pipes {
    pub fn new(cluster: bool) -> Self {
        Pipes {
            cluster,
            pipes: Default::default(),
        }
    }

    /// The pipeline for commands on `key`.
    pub fn on(&mut self, key: &str) -> &mut Pipeline {
        let slot = if self.cluster {
            super::layout::slot(key.as_bytes())
        } else {
            0
        };
        self.pipes.entry(slot).or_insert_with(redis::pipe)
    }

    /// Sends every pipeline (at once); the first error, if any.
    pub async fn send(self, con: &Link) -> RedisResult<()> {
        let sent = self.pipes.into_values().map(|pipe| {
            let mut con = con.clone();
            async move { pipe.query_async::<()>(&mut con).await }
        });
        futures::future::join_all(sent).await.into_iter().collect()
    }
}
