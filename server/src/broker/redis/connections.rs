//! Keeping this node's cluster-wide records alive: its admitted
//! connections (`conns:<group>`) and its claimed client ids (`cid:<id>`)
//! are refreshed before they expire, so a node that dies stops counting
//! within the lease ([`super::DEFAULT_LEASE`]).

use super::link::Pipes;
use super::{now_ms, Shared};

use crate::sync::lock;

/// Keeps this node's connections counted and their client ids held:
/// re-scores and re-expires them before they expire.
pub(super) async fn refresh_connections(shared: std::sync::Weak<Shared>) {
    let Some(lease) = shared.upgrade().map(|s| s.options.lease) else {
        return;
    };
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        let admitted: Vec<(String, String)> = lock(&s.admitted).iter().cloned().collect();
        let claimed: Vec<(String, String)> = lock(&s.claimed).iter().cloned().collect();
        if admitted.is_empty() && claimed.is_empty() {
            continue;
        }
        let ttl = lease.as_millis() as u64;
        let expiry = now_ms() + ttl;
        let mut pipes = Pipes::new(s.target.is_cluster());
        for (user, member) in &admitted {
            let key = s.layout.key(&format!("conns:{user}"));
            pipes
                .on(&key)
                .cmd("ZADD")
                .arg(&key)
                .arg("XX")
                .arg(expiry)
                .arg(member)
                .ignore();
        }
        for (id, _) in &claimed {
            let key = s.layout.key(&format!("cid:{id}"));
            pipes.on(&key).cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
        }
        if let Err(e) = pipes.send(&s.commands).await {
            tracing::debug!(error = %e, "could not refresh connection counts");
        }
    }
}
