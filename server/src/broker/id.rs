//! Event ids and stream positions.
//!
//! An event's id is `<epoch>-<seq>`, both decimal — the same form as a
//! Redis stream entry id, which is exactly what the Redis backplane stores
//! them as. `seq` numbers the events of one **shard** of the log: a single
//! log (in memory, one Redis) is one shard, so its `seq` grows by one for
//! every event on any topic and "everything after id N" is well defined
//! across all of a client's topics. A sharded log (Redis Cluster) numbers
//! each shard on its own, and a topic lives in one shard
//! ([`shard_of`]).
//!
//! What a stream writes as `id:` (and gets back as `Last-Event-ID`) is its
//! [`Position`]: for each shard, the last seq it has. With one shard that
//! is just the last event's id, `<epoch>-<seq>`; with several it is
//! `2.<epoch>.<seq of shard 0>.<seq of shard 1>…` (the leading `2` is the
//! format's version).
//!
//! `epoch` is drawn at random when the log starts: an id minted by an
//! earlier run (or by another broker) carries a different epoch and is
//! recognised as foreign instead of being mistaken for a position in this
//! broker's history.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A broker's identity for the lifetime of its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// A fresh random epoch.
    pub fn random() -> Self {
        Epoch(rand::random())
    }
}

/// A position in one broker's event sequence.
///
/// ```
/// use herald_server::broker::{Epoch, EventId};
///
/// let id = EventId { epoch: Epoch(171), seq: 42 };
/// assert_eq!(id.to_string(), "171-42");
/// assert_eq!("171-42".parse::<EventId>().unwrap(), id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    pub epoch: Epoch,
    pub seq: u64,
}

/// A `Last-Event-ID` that is not of the `<epoch>-<seq>` form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a Herald event id: {0:?}")]
pub struct InvalidEventId(pub String);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch.0, self.seq)
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEventId(s.chars().take(64).collect());
        let (epoch, seq) = s.split_once('-').ok_or_else(invalid)?;
        let epoch = decimal(epoch).and_then(|e| u32::try_from(e).ok());
        match (epoch, decimal(seq)) {
            (Some(epoch), Some(seq)) => Ok(EventId {
                epoch: Epoch(epoch),
                seq,
            }),
            _ => Err(invalid()),
        }
    }
}

/// The most shards a log may have: bounds a position's length (about
/// 11 bytes per shard).
pub const MAX_SHARDS: usize = 64;

/// The shard of a `shards`-shard log that holds `topic` (FNV-1a: stable
/// across nodes and builds; 0 for a single log).
///
/// ```
/// use herald_server::broker::shard_of;
/// assert_eq!(shard_of("room:general", 8), shard_of("room:general", 8));
/// assert!(shard_of("anything", 8) < 8);
/// assert_eq!(shard_of("anything", 1), 0);
/// ```
pub fn shard_of(topic: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards as u64) as usize
}

/// Where a stream is in a log: per shard, the seq of the last event it
/// has (0: none). See the module docs for its text form.
///
/// ```
/// use herald_server::broker::{Epoch, EventId, Position};
///
/// let one: Position = "171-42".parse().unwrap();
/// assert_eq!(one, Position::from(EventId { epoch: Epoch(171), seq: 42 }));
/// assert_eq!(one.to_string(), "171-42");
///
/// let mut three = Position::start(Epoch(171), 3);
/// three.advance(1, 9);
/// assert_eq!(three.to_string(), "2.171.0.9.0");
/// assert_eq!("2.171.0.9.0".parse::<Position>().unwrap(), three);
/// assert_eq!(three.seq(1), 9);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: Epoch,
    seqs: Vec<u64>,
}

impl Position {
    /// Before every event of a `shards`-shard log (at least one shard).
    pub fn start(epoch: Epoch, shards: usize) -> Self {
        Position {
            epoch,
            seqs: vec![0; shards.clamp(1, MAX_SHARDS)],
        }
    }

    /// From each shard's seq (clamped to 1 ..= [`MAX_SHARDS`] shards).
    pub fn new(epoch: Epoch, mut seqs: Vec<u64>) -> Self {
        seqs.truncate(MAX_SHARDS);
        if seqs.is_empty() {
            seqs.push(0);
        }
        Position { epoch, seqs }
    }

    pub fn shards(&self) -> usize {
        self.seqs.len()
    }

    /// The last seq had of `shard` (0 for a shard it does not know).
    pub fn seq(&self, shard: usize) -> u64 {
        self.seqs.get(shard).copied().unwrap_or(0)
    }

    pub fn seqs(&self) -> &[u64] {
        &self.seqs
    }

    /// Has nothing of `shard`.
    pub fn rewind(&mut self, shard: usize) {
        if let Some(s) = self.seqs.get_mut(shard) {
            *s = 0;
        }
    }

    /// Has the event `seq` of `shard` (and every one before it there).
    pub fn advance(&mut self, shard: usize, seq: u64) {
        if let Some(s) = self.seqs.get_mut(shard) {
            *s = (*s).max(seq);
        }
    }
}

impl From<EventId> for Position {
    fn from(id: EventId) -> Self {
        Position {
            epoch: id.epoch,
            seqs: vec![id.seq],
        }
    }
}

/// The version of the several-shard form.
const SHARDED: &str = "2";

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seqs.as_slice() {
            [seq] => write!(f, "{}-{seq}", self.epoch.0),
            seqs => {
                write!(f, "{SHARDED}.{}", self.epoch.0)?;
                for seq in seqs {
                    write!(f, ".{seq}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Position {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix(SHARDED).and_then(|r| r.strip_prefix('.')) else {
            return s.parse::<EventId>().map(Position::from);
        };
        let invalid = || InvalidEventId(s.chars().take(64).collect());
        let mut parts = rest.split('.');
        let epoch = parts.next().and_then(decimal).ok_or_else(invalid)?;
        let epoch = Epoch(u32::try_from(epoch).map_err(|_| invalid())?);
        let seqs = parts
            .map(|p| decimal(p).ok_or_else(invalid))
            .collect::<Result<Vec<u64>, _>>()?;
        if seqs.len() < 2 || seqs.len() > MAX_SHARDS {
            return Err(invalid());
        }
        Ok(Position { epoch, seqs })
    }
}

/// Plain decimal digits (no sign, no spaces) that fit a `u64`.
fn decimal(t: &str) -> Option<u64> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "42",
            "abc-1",
            "ab-1",
            "-1",
            "171-",
            "171-x",
            "171--1",
            "+171-1",
            "4294967296-1",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} accepted");
            assert!(bad.parse::<Position>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_malformed_positions() {
        for bad in [
            "2.",
            "2.171",
            "2.171.5",
            "2.171.5.",
            "2..5.6",
            "2.171.5.x",
            "2.171.-5.6",
            "2.4294967296.1.2",
            "3.171.1.2",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} accepted");
        }
        let too_long = format!("2.1{}", ".0".repeat(MAX_SHARDS + 1));
        assert!(too_long.parse::<Position>().is_err());
        let longest = format!("2.1{}", ".0".repeat(MAX_SHARDS));
        assert_eq!(
            longest.parse::<Position>().map(|p| p.shards()),
            Ok(MAX_SHARDS)
        );
    }

    #[test]
    fn shards_spread_topics() {
        let seen: std::collections::HashSet<usize> = (0..100)
            .map(|i| shard_of(&format!("topic-{i}"), 8))
            .collect();
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn a_position_only_moves_forward() {
        let mut p = Position::start(Epoch(1), 2);
        p.advance(0, 5);
        p.advance(0, 3);
        p.advance(7, 1);
        assert_eq!(p.seqs(), [5, 0]);
        p.rewind(0);
        assert_eq!(p.seqs(), [0, 0]);
    }
}
