//! Keeping this node's cluster-wide records alive: its admitted
//! connections (`conns:<group>`) and its claimed client ids (`cid:<id>`)
//! are refreshed before they expire, so a node that dies stops counting
//! within the lease ([`super::DEFAULT_LEASE`]).

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
        let mut pipe = redis::pipe();
        for (user, member) in &admitted {
            pipe.cmd("ZADD")
                .arg(s.key(&format!("conns:{user}")))
                .arg("XX")
                .arg(expiry)
                .arg(member)
                .ignore();
        }
        for (id, _) in &claimed {
            pipe.cmd("PEXPIRE")
                .arg(s.key(&format!("cid:{id}")))
                .arg(ttl)
                .ignore();
        }
        let mut con = s.commands.clone();
        let refreshed: Result<(), _> = pipe.query_async(&mut con).await;
        if let Err(e) = refreshed {
            tracing::debug!(error = %e, "could not refresh connection counts");
        }
    }
}
