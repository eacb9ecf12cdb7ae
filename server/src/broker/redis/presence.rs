//! Presence across nodes (`crate::broker::presence`): each topic's members
//! in a sorted set, `presence:<topic>`, one record per connection scored
//! by its lease's end.
//!
//! A node writes its own records, all through one task, in the order its
//! connections joined and left (a leave never overtakes its join). The
//! same task renews every record this node holds each third of the lease,
//! so a node that dies stops being listed within the lease; a reader asks
//! only for records whose lease has not ended (and sweeps the others). A
//! join whose write fails is repaired by the next renewal; a leave whose
//! write fails is listed until its lease ends.

use std::sync::Weak;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

use super::link::Pipes;
use super::{now_ms, Shared};
use crate::broker::presence::Member;
use crate::sync::lock;

/// Records renewed by one `ZADD`.
const RENEW_CHUNK: usize = 1000;

/// What the writer task does next.
#[derive(Debug)]
pub(super) enum Op {
    /// Record `record` in the set at `key`.
    Join { key: String, record: String },
    /// Remove it.
    Leave { key: String, record: String },
}

/// A [`Member`] as stored (short names: one per connection and topic).
#[derive(Serialize, Deserialize)]
struct Record {
    /// The connection's serial: two connections that continue one client
    /// id are two records.
    s: String,
    c: String,
    u: Option<String>,
    /// The session (absent in records of nodes before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    n: String,
    t: u64,
}

/// The stored form of `member`.
pub(super) fn encode(member: &Member) -> String {
    let record = Record {
        s: member.serial.clone(),
        c: member.client_id.clone(),
        u: member.user_id.clone(),
        e: member.session_id.clone(),
        n: member.node.clone(),
        t: member.since,
    };
    // A struct of strings and a number always serializes.
    serde_json::to_string(&record).unwrap_or_default()
}

/// The member a stored record names (`None`: not one of ours).
pub(super) fn decode(record: &str) -> Option<Member> {
    let r: Record = serde_json::from_str(record).ok()?;
    Some(Member {
        client_id: r.c,
        user_id: r.u,
        session_id: r.e,
        node: r.n,
        since: r.t,
        serial: r.s,
    })
}

/// Writes this node's joins and leaves in order, and renews its records.
pub(super) async fn write_presence(shared: Weak<Shared>, mut ops: UnboundedReceiver<Op>) {
    let Some(lease) = shared.upgrade().map(|s| s.options.lease) else {
        return;
    };
    let mut renew = tokio::time::interval(lease / 3);
    let mut batch = Vec::new();
    loop {
        let renewing = tokio::select! {
            n = ops.recv_many(&mut batch, 512) => {
                if n == 0 {
                    return; // the backplane is gone
                }
                false
            }
            _ = renew.tick() => true,
        };
        let Some(s) = shared.upgrade() else { return };
        let lease_ms = lease.as_millis() as u64;
        let until = now_ms() + lease_ms;
        let mut pipes = Pipes::new(s.target.is_cluster());
        for op in batch.drain(..) {
            match op {
                Op::Join { key, record } => {
                    let pipe = pipes.on(&key);
                    pipe.zadd(&key, record, until).ignore();
                    pipe.pexpire(&key, lease_ms as i64).ignore();
                }
                Op::Leave { key, record } => {
                    pipes.on(&key).zrem(&key, record).ignore();
                }
            }
        }
        if renewing {
            // Taken here, after every op queued before it was written:
            // what left is not in it, and is not brought back.
            let mut held: Vec<(String, String)> = lock(&s.present).iter().cloned().collect();
            metrics::gauge!("herald_presence_records").set(held.len() as f64);
            held.sort_unstable();
            // One ZADD per key and chunk of records, one PEXPIRE per key:
            // a popular topic's thousands of records are a few commands.
            for same_key in held.chunk_by(|a, b| a.0 == b.0) {
                let key = &same_key[0].0;
                let pipe = pipes.on(key);
                for chunk in same_key.chunks(RENEW_CHUNK) {
                    let scored: Vec<(u64, &str)> =
                        chunk.iter().map(|(_, r)| (until, r.as_str())).collect();
                    pipe.zadd_multiple(key, &scored).ignore();
                }
                pipe.pexpire(key, lease_ms as i64).ignore();
            }
        }
        if let Err(e) = pipes.send(&s.commands).await {
            metrics::counter!("herald_presence_write_errors_total").increment(1);
            tracing::debug!(error = %e, "could not write presence (renewal repairs joins; leaves expire)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_survives_its_stored_form() {
        let member = Member {
            client_id: "c1".into(),
            user_id: Some("alice".into()),
            session_id: Some("s-9".into()),
            node: "node-a".into(),
            since: 1_764_000_000_000,
            serial: "s1".into(),
        };
        assert_eq!(decode(&encode(&member)), Some(member));
        assert_eq!(decode("not a record"), None);
    }
}
