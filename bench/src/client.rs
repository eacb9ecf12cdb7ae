//! The run's clock, source addresses, and the publishing connection.
//! Subscribers are [`crate::stream::EventStream`]s, one connection each
//! (as browsers do), bound to a chosen loopback source address so tens of
//! thousands of connections fit in the ephemeral port range.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// The run's clock: publish times in payloads are microseconds since this.
pub fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

pub fn micros_now() -> u64 {
    clock().elapsed().as_micros() as u64
}

/// The `n`-th loopback source address (127.0.0.1, .2, ... up to `spread`).
pub fn source(n: usize, spread: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 1 + (n % spread.max(1)) as u8])
}

async fn connect(addr: SocketAddr, from: IpAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (sender, conn) = handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A keep-alive connection that publishes.
pub struct Publisher {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: String,
}

impl Publisher {
    pub async fn connect(addr: SocketAddr, path: String) -> anyhow::Result<Self> {
        Ok(Publisher {
            sender: connect(addr, IpAddr::from([127, 0, 0, 1])).await?,
            addr,
            path,
        })
    }

    /// POSTs `body`; fails unless the answer is 2xx.
    pub async fn post(&mut self, body: String, content_type: &str) -> anyhow::Result<()> {
        self.sender.ready().await?;
        let req = Request::post(&self.path)
            .header("host", self.addr.to_string())
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let text = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        Ok(())
    }
}
